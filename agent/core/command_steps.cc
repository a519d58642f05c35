#include "agent/core/command_steps.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/logging.h"

namespace parc::agent {

InstallOutcome InstallFailure(std::string reason, std::string message) {
  InstallOutcome o;
  o.reason = std::move(reason);
  o.message = std::move(message);
  return o;
}

absl::Duration CommandSteps::TimeoutOf(const parc::v1::CommandSpec& command) const {
  return command.timeout_seconds() > 0 ? absl::Seconds(command.timeout_seconds())
                                       : default_timeout_;
}

std::vector<std::string> CommandSteps::Substitute(const parc::v1::CommandSpec& command,
                                                  const std::string& artifact,
                                                  const std::string& version) {
  std::vector<std::string> argv;
  for (const auto& a : command.argv()) {
    argv.push_back(absl::StrReplaceAll(a, {{"{artifact}", artifact}, {"{version}", version}}));
  }
  return argv;
}

InstallOutcome CommandSteps::Run(const std::vector<std::string>& argv, absl::Duration timeout,
                                 const char* failure_reason) const {
  if (argv.empty()) return InstallFailure(failure_reason, "empty command");
  auto r = runner_->Run(argv, timeout);
  if (!r.ok()) return InstallFailure(failure_reason, std::string(r.status().message()));
  InstallOutcome o;
  o.exit_status = r->exit_status;
  o.output_tail = r->output_tail;
  if (r->timed_out) {
    o.reason = "install_timeout";
    o.message = absl::StrCat(argv[0], " did not finish within ", absl::FormatDuration(timeout));
  } else if (r->exit_status != 0) {
    o.reason = failure_reason;
    o.message = absl::StrCat(argv[0], " exited with status ", r->exit_status);
  } else {
    o.ok = true;
  }
  return o;
}

InstallOutcome CommandSteps::InstallCommand(const parc::v1::PackageSpec& spec,
                                            const std::string& artifact_path) const {
  return Run(Substitute(spec.command().install(), artifact_path, spec.version()),
             TimeoutOf(spec.command().install()), "install_failed");
}

InstallOutcome CommandSteps::RemoveCommand(const parc::v1::PackageSpec& spec) const {
  if (spec.command().remove().argv().empty()) {
    InstallOutcome o;
    o.ok = true;
    o.message = "no remove command: left in place";
    return o;
  }
  return Run(Substitute(spec.command().remove(), "", spec.version()),
             TimeoutOf(spec.command().remove()), "remove_failed");
}

std::optional<bool> CommandSteps::Detect(const parc::v1::PackageSpec& spec) const {
  if (spec.detect().argv().empty()) return std::nullopt;
  auto r = runner_->Run(Substitute(spec.detect(), "", spec.version()), TimeoutOf(spec.detect()));
  // A detection command that does not exist (yet) means "not installed".
  if (absl::IsNotFound(r.status())) return false;
  if (!r.ok()) {
    spdlog::warn("package {}: detection cannot run: {}", spec.id(), r.status().ToString());
    return std::nullopt;
  }
  return !r->timed_out && r->exit_status == 0;
}

}  // namespace parc::agent
