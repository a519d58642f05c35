#include "agent/windows/packages.h"

#include <fstream>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "agent/core/archive.h"
#include "common/file_util.h"

namespace parc::agent {
namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

std::string Utf16LeToUtf8(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
    uint32_t unit = static_cast<unsigned char>(bytes[i]) |
                    (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8);
    if (unit >= 0xd800 && unit < 0xdc00 && i + 3 < bytes.size()) {
      const uint32_t low = static_cast<unsigned char>(bytes[i + 2]) |
                           (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 3])) << 8);
      if (low >= 0xdc00 && low < 0xe000) {
        AppendUtf8(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00), &out);
        i += 2;
        continue;
      }
    }
    if (unit >= 0xd800 && unit < 0xe000) unit = 0xfffd;  // a lone surrogate
    AppendUtf8(unit, &out);
  }
  return out;
}

// Joins with the separator the directory uses ('\\' for "C:\\...", '/' otherwise, as in tests
// on Linux).
std::string Join(const std::string& dir, absl::string_view name) {
  return absl::StrCat(dir, IsWindowsDirectory(dir) ? "\\" : "/", name);
}

std::string WithoutTrailingSeparators(std::string dir) {
  while (dir.size() > 3 && (dir.back() == '\\' || dir.back() == '/')) dir.pop_back();
  return dir;
}

InstallOutcome Succeeded(std::string message = "") {
  InstallOutcome o;
  o.ok = true;
  o.message = std::move(message);
  return o;
}

InstallOutcome InUse(const std::string& dir, const absl::Status& status) {
  InstallOutcome o;
  o.retry_later = true;
  o.reason = "install_busy";
  o.message = absl::StrCat(dir, " is in use (one of its programs running?): tried again at the ",
                           "next cycle (", status.message(), ")");
  return o;
}

bool IsSuccess(int code) {
  return code == kMsiSuccess || code == kMsiRebootRequired || code == kMsiRebootInitiated;
}

bool SameProductCode(absl::string_view a, absl::string_view b) {
  return !a.empty() && absl::EqualsIgnoreCase(a, b);
}

}  // namespace

InstallOutcome WindowsPackages::InstallArchive(const parc::v1::PackageSpec& spec,
                                               const std::string& artifact) {
  const std::string target = WithoutTrailingSeparators(spec.archive().target_dir());
  auto installed = common::ReadFile(Join(target, kArchiveVersionFile), 4096);
  if (installed.ok() && *installed == spec.version()) return Succeeded();
  const std::string staging = absl::StrCat(target, ".parc-new");
  const std::string previous = absl::StrCat(target, ".parc-old");
  const size_t slash = target.find_last_of("\\/");
  absl::Status s = common::MakeDirs(target.substr(0, slash == std::string::npos ? 0 : slash));
  if (s.ok()) s = common::RemoveTree(staging);
  if (s.ok()) s = common::MakeDirs(staging);
  if (s.ok()) {
    s = ExtractArchive(artifact, staging, ExtractionBound(artifact, options_.max_extracted_bytes));
  }
  if (s.ok()) s = common::WriteFileAtomic(Join(staging, kArchiveVersionFile), spec.version());
  if (s.ok()) s = common::RemoveTree(previous);  // left by an earlier swap
  if (!s.ok()) {
    (void)common::RemoveTree(staging);
    return InstallFailure("install_failed", std::string(s.message()));
  }
  if (common::PathExists(target)) {
    s = common::RenamePath(target, previous);
    if (!s.ok()) return InUse(target, s);  // the unpacked version waits in staging
  }
  s = common::RenamePath(staging, target);
  if (!s.ok()) {
    (void)common::RenamePath(previous, target);
    return InstallFailure("install_failed", std::string(s.message()));
  }
  (void)common::RemoveTree(previous);  // else removed before the next swap
  return Succeeded();
}

InstallOutcome WindowsPackages::RemoveArchive(const parc::v1::PackageSpec& spec) {
  const std::string target = WithoutTrailingSeparators(spec.archive().target_dir());
  auto installed = common::ReadFile(Join(target, kArchiveVersionFile), 4096);
  if (!installed.ok() || *installed != spec.version()) {
    return Succeeded(absl::StrCat(spec.version(), " is not what ", target, " holds: left alone"));
  }
  const std::string previous = absl::StrCat(target, ".parc-old");
  absl::Status s = common::RemoveTree(previous);
  if (s.ok()) {
    s = common::RenamePath(target, previous);
    if (!s.ok()) return InUse(target, s);
  }
  if (s.ok()) s = common::RemoveTree(previous);
  if (!s.ok()) return InstallFailure("remove_failed", std::string(s.message()));
  return Succeeded();
}

std::string LogTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string text;
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0xff &&
      static_cast<unsigned char>(bytes[1]) == 0xfe) {
    text = Utf16LeToUtf8(bytes.substr(2));
  } else {
    text = std::move(bytes);
  }
  text = absl::StrReplaceAll(text, {{"\r\n", "\n"}});
  if (text.size() <= max_bytes) return text;
  size_t start = text.size() - max_bytes;
  // Not in the middle of a UTF-8 sequence.
  while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80) ++start;
  return text.substr(start);
}

WindowsPackages::WindowsPackages(const ProcessRunner* runner, const InstalledProducts* products,
                                 WindowsInstallerOptions options)
    : runner_(runner),
      products_(products),
      options_(std::move(options)),
      steps_(runner, options_.default_timeout) {}

bool WindowsPackages::Handles(const parc::v1::PackageSpec& spec) const {
  switch (spec.install_case()) {
    case parc::v1::PackageSpec::kMsi:
    case parc::v1::PackageSpec::kExe:
    case parc::v1::PackageSpec::kCommand:
      return true;
    case parc::v1::PackageSpec::kArchive:
      // A Linux directory (/opt/...) is for Linux devices: one bundle carries both.
      return IsWindowsDirectory(spec.archive().target_dir());
    default:
      return false;
  }
}

InstallOutcome WindowsPackages::FromExitCode(const std::string& what,
                                             const absl::StatusOr<CommandResult>& run,
                                             absl::Duration timeout, const char* failure_reason,
                                             const std::string& log_path) const {
  if (!run.ok()) return InstallFailure(failure_reason, std::string(run.status().message()));
  InstallOutcome o;
  o.exit_status = run->exit_status;
  o.output_tail = run->output_tail;
  if (run->timed_out) {
    o.reason = "install_timeout";
    o.message = absl::StrCat(what, " did not finish within ", absl::FormatDuration(timeout));
  } else if (IsSuccess(run->exit_status)) {
    o.ok = true;
    o.reboot_pending = run->exit_status != kMsiSuccess;
    if (o.reboot_pending) o.message = "installed; Windows asks for a reboot to complete it";
    return o;
  } else if (run->exit_status == kMsiAlreadyRunning) {
    o.retry_later = true;
    o.reason = "install_busy";
    o.message = "another installation is in progress (1618): tried again at the next cycle";
    return o;
  } else {
    o.reason = failure_reason;
    o.message = absl::StrCat(what, " exited with status ", run->exit_status);
  }
  if (!log_path.empty()) {
    std::string tail = LogTail(log_path, options_.log_tail_bytes);
    if (!tail.empty()) o.output_tail = std::move(tail);
  }
  return o;
}

InstallOutcome WindowsPackages::Install(const parc::v1::PackageSpec& spec,
                                        const std::string& artifact_path) {
  switch (spec.install_case()) {
    case parc::v1::PackageSpec::kMsi: {
      const std::string log = artifact_path + ".log";
      std::vector<std::string> argv = {options_.msiexec, "/i", artifact_path, "/qn", "/norestart",
                                       "/l*v",           log};
      for (const auto& p : spec.msi().properties()) argv.push_back(p);
      return FromExitCode("msiexec", runner_->Run(argv, options_.default_timeout),
                          options_.default_timeout, "install_failed", log);
    }
    case parc::v1::PackageSpec::kExe: {
      std::vector<std::string> argv = {artifact_path};
      for (const auto& a : spec.exe().args()) {
        argv.push_back(absl::StrReplaceAll(a, {{"{version}", spec.version()}}));
      }
      const absl::Duration timeout = spec.exe().timeout_seconds() > 0
                                         ? absl::Seconds(spec.exe().timeout_seconds())
                                         : options_.default_timeout;
      return FromExitCode("the installer", runner_->Run(argv, timeout), timeout, "install_failed",
                          "");
    }
    case parc::v1::PackageSpec::kCommand:
      return steps_.InstallCommand(spec, artifact_path);
    case parc::v1::PackageSpec::kArchive:
      return InstallArchive(spec, artifact_path);
    default:
      return InstallFailure("install_failed", "not a Windows package type");
  }
}

InstallOutcome WindowsPackages::Remove(const parc::v1::PackageSpec& spec) {
  switch (spec.install_case()) {
    case parc::v1::PackageSpec::kMsi: {
      if (spec.msi().product_code().empty()) {
        InstallOutcome o;
        o.ok = true;
        o.message = "no product code: left in place";
        return o;
      }
      auto run =
          runner_->Run({options_.msiexec, "/x", spec.msi().product_code(), "/qn", "/norestart"},
                       options_.default_timeout);
      if (run.ok() && !run->timed_out && run->exit_status == kMsiUnknownProduct) {
        InstallOutcome o;  // already gone
        o.ok = true;
        return o;
      }
      return FromExitCode("msiexec /x", run, options_.default_timeout, "remove_failed", "");
    }
    case parc::v1::PackageSpec::kExe: {
      if (spec.exe().remove().argv().empty()) {
        InstallOutcome o;
        o.ok = true;
        o.message = "no remove command: left in place";
        return o;
      }
      const auto& remove = spec.exe().remove();
      return FromExitCode(remove.argv(0),
                          runner_->Run(CommandSteps::Substitute(remove, "", spec.version()),
                                       steps_.TimeoutOf(remove)),
                          steps_.TimeoutOf(remove), "remove_failed", "");
    }
    case parc::v1::PackageSpec::kCommand:
      return steps_.RemoveCommand(spec);
    case parc::v1::PackageSpec::kArchive:
      return RemoveArchive(spec);
    default:
      return InstallFailure("remove_failed", "not a Windows package type");
  }
}

std::optional<bool> WindowsPackages::Detect(const parc::v1::PackageSpec& spec) {
  std::string product_code = spec.detect_installed().product_code();
  if (product_code.empty() && !spec.has_detect_installed() &&
      spec.install_case() == parc::v1::PackageSpec::kMsi) {
    product_code = spec.msi().product_code();
  }
  const std::string& name = spec.detect_installed().display_name();
  if (!product_code.empty() || !name.empty()) {
    const std::string& version = spec.detect_installed().display_version().empty()
                                     ? spec.version()
                                     : spec.detect_installed().display_version();
    for (const InstalledProduct& p : products_->List()) {
      if (SameProductCode(product_code, p.key)) {
        // An MSI's product code changes with each major version; a minor upgrade keeps it
        // and changes DisplayVersion.
        if (p.display_version.empty() || p.display_version == version) return true;
      }
      if (!name.empty() && p.display_name == name && p.display_version == version) return true;
    }
    if (spec.detect().argv().empty()) return false;
  }
  if (spec.install_case() == parc::v1::PackageSpec::kArchive && spec.detect().argv().empty()) {
    auto installed = common::ReadFile(
        Join(WithoutTrailingSeparators(spec.archive().target_dir()), kArchiveVersionFile), 4096);
    return installed.ok() && *installed == spec.version();
  }
  return steps_.Detect(spec);
}

}  // namespace parc::agent
