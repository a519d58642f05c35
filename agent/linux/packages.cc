#include "agent/linux/packages.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/core/archive.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace parc::agent {

InstallOutcome LinuxPackages::InstallArchive(const parc::v1::PackageSpec& spec,
                                             const std::string& artifact) {
  const std::string& target = spec.archive().target_dir();
  const std::string version_dir = absl::StrCat(target, "/", spec.version());
  absl::Status s = common::MakeDirs(target, 0755);
  if (!s.ok()) return InstallFailure("install_failed", std::string(s.message()));
  if (!common::PathExists(version_dir)) {
    const std::string partial = absl::StrCat(target, "/.", spec.version(), ".partial");
    s = common::RemoveTree(partial);
    if (s.ok()) s = common::MakeDirs(partial, 0755);
    if (s.ok()) {
      s = ExtractArchive(artifact, partial,
                         ExtractionBound(artifact, options_.max_extracted_bytes));
    }
    if (s.ok() && ::rename(partial.c_str(), version_dir.c_str()) != 0) {
      s = common::ErrnoStatus("cannot rename to", version_dir, errno);
    }
    if (!s.ok()) {
      (void)common::RemoveTree(partial);
      return InstallFailure("install_failed", std::string(s.message()));
    }
  }
  // Switch atomically: a new symlink renamed over "current".
  const std::string link = absl::StrCat(target, "/current");
  const std::string tmp_link = absl::StrCat(target, "/.current.new");
  ::unlink(tmp_link.c_str());
  if (::symlink(spec.version().c_str(), tmp_link.c_str()) != 0 ||
      ::rename(tmp_link.c_str(), link.c_str()) != 0) {
    return InstallFailure(
        "install_failed",
        absl::StrCat("cannot point ", link, " at ", spec.version(), ": ", std::strerror(errno)));
  }
  InstallOutcome o;
  o.ok = true;
  return o;
}

bool LinuxPackages::Handles(const parc::v1::PackageSpec& spec) const {
  switch (spec.install_case()) {
    case parc::v1::PackageSpec::kArchive:
      // A Windows directory (C:\...) is for Windows devices: one bundle carries both.
      return absl::StartsWith(spec.archive().target_dir(), "/");
    case parc::v1::PackageSpec::kCommand:
    case parc::v1::PackageSpec::kDeb:
      return true;
    default:
      return false;
  }
}

InstallOutcome LinuxPackages::Install(const parc::v1::PackageSpec& spec,
                                      const std::string& artifact_path) {
  switch (spec.install_case()) {
    case parc::v1::PackageSpec::kArchive:
      return InstallArchive(spec, artifact_path);
    case parc::v1::PackageSpec::kCommand:
      return steps_.InstallCommand(spec, artifact_path);
    case parc::v1::PackageSpec::kDeb: {
      std::vector<std::string> argv = {options_.dpkg, "--install", artifact_path};
      bool systemd = options_.under_systemd.value_or(common::PathExists("/run/systemd/system"));
      if (spec.deb().package_name() == options_.self_package && systemd) {
        argv.insert(argv.begin(), {options_.systemd_run, "--wait", "--collect", "--quiet",
                                   "--unit=parc-agent-self-update", "--"});
      }
      return steps_.Run(argv, options_.default_timeout, "install_failed");
    }
    default:
      return InstallFailure("install_failed", "the package declares no install method");
  }
}

InstallOutcome LinuxPackages::Remove(const parc::v1::PackageSpec& spec) {
  switch (spec.install_case()) {
    case parc::v1::PackageSpec::kArchive: {
      const std::string& target = spec.archive().target_dir();
      const std::string version_dir = absl::StrCat(target, "/", spec.version());
      const std::string link = absl::StrCat(target, "/current");
      char buf[512];
      ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
      if (n > 0 && std::string(buf, static_cast<size_t>(n)) == spec.version()) {
        ::unlink(link.c_str());
      }
      absl::Status s = common::RemoveTree(version_dir);
      if (!s.ok()) return InstallFailure("remove_failed", std::string(s.message()));
      InstallOutcome o;
      o.ok = true;
      return o;
    }
    case parc::v1::PackageSpec::kCommand:
      return steps_.RemoveCommand(spec);
    case parc::v1::PackageSpec::kDeb:
      return steps_.Run({options_.dpkg, "--remove", spec.deb().package_name()},
                        options_.default_timeout, "remove_failed");
    default:
      return InstallFailure("remove_failed", "the package declares no install method");
  }
}

std::optional<bool> LinuxPackages::Detect(const parc::v1::PackageSpec& spec) {
  return steps_.Detect(spec);
}

}  // namespace parc::agent
