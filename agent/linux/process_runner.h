#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/core/platform.h"

namespace parc::agent {

// Runs argv (no shell; argv[0] searched in PATH) with stdin from /dev/null, stdout and stderr
// captured. The command runs in its own process group, killed whole when the timeout expires,
// and dies with the agent (PR_SET_PDEATHSIG) so that a killed agent leaves no install running.
// NOT_FOUND when the program does not exist; the exit status otherwise comes back as a value.
[[nodiscard]] absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                                       absl::Duration timeout,
                                                       size_t tail_bytes = 4096);

class PosixProcessRunner final : public ProcessRunner {
 public:
  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv, absl::Duration timeout,
                                    size_t tail_bytes) const override {
    return RunCommand(argv, timeout, tail_bytes);
  }
};

}  // namespace parc::agent
