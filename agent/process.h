#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace parc::agent {

struct CommandResult {
  int exit_status = -1;  // exit code, or 128 + signal number
  bool timed_out = false;
  // Last bytes of standard output and error, interleaved as written.
  std::string output_tail;
};

// Runs argv (no shell; argv[0] searched in PATH) with stdin from /dev/null, stdout and stderr
// captured. The command runs in its own process group, killed whole when the timeout expires,
// and dies with the agent (PR_SET_PDEATHSIG) so that a killed agent leaves no install running.
// NOT_FOUND when the program does not exist; the exit status otherwise comes back as a value.
[[nodiscard]] absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                                       absl::Duration timeout,
                                                       size_t tail_bytes = 4096);

}  // namespace parc::agent
