#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parc/v1/bundle.pb.h"

namespace parc::agent {

struct InstallOutcome {
  bool ok = false;
  // For failures: install_failed, install_timeout, remove_failed, detect_failed.
  std::string reason;
  int exit_status = 0;
  std::string output_tail;
  std::string message;
};

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

// Installs one package from its verified artifact:
// - archive: extracts with libarchive (refusing absolute paths, "..", and links leading out)
//   into <target_dir>/.<version>.partial, renames it to <target_dir>/<version>, then points
//   <target_dir>/current at it by renaming a new symlink over the old one. An extraction
//   interrupted by a crash leaves only the .partial directory, replaced on the next attempt;
//   a version directory that exists is complete and is not extracted again.
// - command: runs install.argv ("{artifact}" and "{version}" substituted) with its timeout;
// - deb: dpkg --install <artifact>.
InstallOutcome Install(const parc::v1::PackageSpec& spec, const std::string& artifact_path,
                       const InstallerOptions& options);

// Removes an installed package (archive: its version directory, and current if it points
// there; command: remove.argv; deb: dpkg --remove).
InstallOutcome Remove(const parc::v1::PackageSpec& spec, const InstallerOptions& options);

// Runs the package's detection command: true when it exits 0, false otherwise (including
// when its program does not exist), nullopt when the package has none.
std::optional<bool> Detect(const parc::v1::PackageSpec& spec, const InstallerOptions& options);

}  // namespace parc::agent
