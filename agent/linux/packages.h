#pragma once

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "agent/core/command_steps.h"
#include "agent/core/platform.h"
#include "parc/v1/bundle.pb.h"

namespace parc::agent {

struct InstallerOptions {
  // dpkg, for packages of type deb.
  std::string dpkg = "dpkg";
  // The agent's own Debian package. Installing it restarts the agent (its postinst), so under
  // systemd dpkg runs in a transient unit of its own (systemd-run --wait): the restart cannot
  // interrupt it, and the restarted agent finds the new version with the detection command.
  std::string self_package = "parc-agent";
  std::string systemd_run = "systemd-run";
  // Whether systemd manages this machine; nullopt: look for /run/systemd/system.
  std::optional<bool> under_systemd;
  absl::Duration default_timeout = absl::Minutes(10);
  // Bytes an archive may unpack to; 0: 100 times its size, at least 64 MiB, at most 64 GiB.
  uint64_t max_extracted_bytes = 0;
};

// The Linux package types, from verified artifacts:
// - archive: extracts with libarchive (refusing absolute paths, "..", and links leading out)
//   into <target_dir>/.<version>.partial, renames it to <target_dir>/<version>, then points
//   <target_dir>/current at it by renaming a new symlink over the old one. An extraction
//   interrupted by a crash leaves only the .partial directory, replaced on the next attempt;
//   a version directory that exists is complete and is not extracted again. Removal deletes
//   the version directory, and current if it points there.
// - command: install.argv ("{artifact}" and "{version}" substituted) with its timeout, and
//   remove.argv;
// - deb: dpkg --install <artifact>, dpkg --remove <package>.
// Detection runs the package's detection command.
class LinuxPackages final : public PackageBackend {
 public:
  LinuxPackages(const ProcessRunner* runner, InstallerOptions options)
      : options_(std::move(options)), steps_(runner, options_.default_timeout) {}
  bool Handles(const parc::v1::PackageSpec& spec) const override;
  InstallOutcome Install(const parc::v1::PackageSpec& spec,
                         const std::string& artifact_path) override;
  InstallOutcome Remove(const parc::v1::PackageSpec& spec) override;
  std::optional<bool> Detect(const parc::v1::PackageSpec& spec) override;

 private:
  InstallOutcome InstallArchive(const parc::v1::PackageSpec& spec, const std::string& artifact);
  InstallerOptions options_;
  CommandSteps steps_;
};

}  // namespace parc::agent
