#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/core/platform.h"
#include "parc/v1/bundle.pb.h"

namespace parc::agent {

// The parts of installing that are the same on every platform: running a step of a package
// (an install, remove or detection command from the signed manifest, or a platform's own tool
// such as dpkg or msiexec) through the platform's ProcessRunner, and turning its result into an
// InstallOutcome.
class CommandSteps {
 public:
  CommandSteps(const ProcessRunner* runner, absl::Duration default_timeout)
      : runner_(runner), default_timeout_(default_timeout) {}

  // Runs argv; ok when it exits 0 in time. Failures carry failure_reason (install_timeout when
  // the timeout expired), the exit status and the output's tail.
  InstallOutcome Run(const std::vector<std::string>& argv, absl::Duration timeout,
                     const char* failure_reason) const;

  // The package types every platform has: `command` (install.argv, remove.argv) ...
  InstallOutcome InstallCommand(const parc::v1::PackageSpec& spec,
                                const std::string& artifact_path) const;
  // ... whose removal without a remove command leaves the package in place, successfully.
  InstallOutcome RemoveCommand(const parc::v1::PackageSpec& spec) const;
  // The package's detection command: true when it exits 0; false otherwise, including when
  // its program does not exist (yet); nullopt when the package has none or it cannot run.
  std::optional<bool> Detect(const parc::v1::PackageSpec& spec) const;

  absl::Duration TimeoutOf(const parc::v1::CommandSpec& command) const;
  // command.argv with "{artifact}" and "{version}" replaced.
  static std::vector<std::string> Substitute(const parc::v1::CommandSpec& command,
                                             const std::string& artifact,
                                             const std::string& version);
  absl::Duration default_timeout() const { return default_timeout_; }

 private:
  const ProcessRunner* runner_;
  absl::Duration default_timeout_;
};

// A failed outcome.
InstallOutcome InstallFailure(std::string reason, std::string message);

}  // namespace parc::agent
