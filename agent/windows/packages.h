#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/core/command_steps.h"
#include "agent/core/platform.h"
#include "agent/windows/installed_products.h"
#include "common/file_util.h"

namespace parc::agent {

struct WindowsInstallerOptions {
  // Windows Installer's command line tool (%SystemRoot%\System32\msiexec.exe).
  std::string msiexec = "msiexec";
  absl::Duration default_timeout = absl::Minutes(30);
  // Bytes of an installer's log kept for the report.
  size_t log_tail_bytes = 4096;
  // Bytes an archive may unpack to; 0: 100 times its size, at least 64 MiB, at most 64 GiB.
  uint64_t max_extracted_bytes = 0;
};

// Archives on Windows: the file in the target directory that names the version unpacked there.
inline constexpr char kArchiveVersionFile[] = ".parc-version";

using common::IsWindowsDirectory;

// Windows Installer exit codes the agent acts on (winerror.h).
inline constexpr int kMsiSuccess = 0;
inline constexpr int kMsiRebootRequired = 3010;   // ERROR_SUCCESS_REBOOT_REQUIRED
inline constexpr int kMsiRebootInitiated = 1641;  // ERROR_SUCCESS_REBOOT_INITIATED
inline constexpr int kMsiAlreadyRunning = 1618;   // ERROR_INSTALL_ALREADY_RUNNING
inline constexpr int kMsiUnknownProduct = 1605;   // ERROR_UNKNOWN_PRODUCT

// The Windows package types, from verified artifacts (see bundle.proto):
// - msi: msiexec /i with a verbose log next to the artifact (<artifact>.log); its tail goes
//   into the report when the install fails;
// - exe: the artifact run with the manifest's arguments;
// - command: install.argv and remove.argv, as on Linux;
// - archive (target_dir "C:\\..."): zip or tar unpacked into target_dir, which holds one
//   version at a time (Windows programs, shortcuts and firewall rules expect a fixed
//   directory, and links need a privilege): unpacked beside it (<target_dir>.parc-new), then
//   swapped in with two renames, the previous version moved aside (<target_dir>.parc-old) and
//   removed. <target_dir>\.parc-version names the version: an install of the version already
//   there does nothing (an agent killed after the swap installs nothing twice), and it is how
//   the package is detected. A target directory in use (a program of it running) is tried
//   again at the next cycle.
// Detection: detect_installed among the installed products, else an msi's product code, else
// the detection command. Written over ProcessRunner and InstalledProducts only, so that it is
// tested anywhere with fakes and runs on Windows with CreateProcess and the registry.
class WindowsPackages final : public PackageBackend {
 public:
  WindowsPackages(const ProcessRunner* runner, const InstalledProducts* products,
                  WindowsInstallerOptions options);
  bool Handles(const parc::v1::PackageSpec& spec) const override;
  InstallOutcome Install(const parc::v1::PackageSpec& spec,
                         const std::string& artifact_path) override;
  InstallOutcome Remove(const parc::v1::PackageSpec& spec) override;
  std::optional<bool> Detect(const parc::v1::PackageSpec& spec) override;

 private:
  // An installer's outcome from its exit code (0, 3010, 1641, 1618, others).
  InstallOutcome FromExitCode(const std::string& what, const absl::StatusOr<CommandResult>& run,
                              absl::Duration timeout, const char* failure_reason,
                              const std::string& log_path) const;

  InstallOutcome InstallArchive(const parc::v1::PackageSpec& spec, const std::string& artifact);
  InstallOutcome RemoveArchive(const parc::v1::PackageSpec& spec);

  const ProcessRunner* runner_;
  const InstalledProducts* products_;
  WindowsInstallerOptions options_;
  CommandSteps steps_;
};

// The last max_bytes of a log as UTF-8: Windows Installer writes UTF-16LE logs (with a byte
// order mark) or 8-bit ones. "" when the file cannot be read.
std::string LogTail(const std::string& path, size_t max_bytes);

}  // namespace parc::agent
