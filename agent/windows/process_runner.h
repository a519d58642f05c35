#pragma once

#include <string>
#include <vector>

#include "agent/core/platform.h"

namespace parc::agent {

// Runs programs with CreateProcess, inside a Job object that kills the program and everything
// it started when the timeout expires or the agent dies (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE).
// Standard output and error go to one pipe whose tail is kept. No window, no console.
class WindowsProcessRunner final : public ProcessRunner {
 public:
  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv, absl::Duration timeout,
                                    size_t tail_bytes) const override;
};

// argv as one Windows command line, quoted so that CommandLineToArgvW (and the C runtime of
// the program) gives back the same arguments.
std::wstring WindowsCommandLine(const std::vector<std::string>& argv);

}  // namespace parc::agent
