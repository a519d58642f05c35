#include "agent/linux/packages.h"

#include <archive.h>
#include <archive_entry.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace parc::agent {
namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  return ::remove(path) == 0 ? 0 : errno;
}

// rm -rf --one-file-system, in process: links are removed, never followed.
absl::Status RemoveTree(const std::string& path) {
  if (!common::PathExists(path)) return absl::OkStatus();
  int err = ::nftw(path.c_str(), RemoveEntry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  if (err != 0) return common::ErrnoStatus("cannot remove", path, err > 0 ? err : errno);
  return absl::OkStatus();
}

bool IsSafeRelativePath(absl::string_view path) {
  if (path.empty() || path[0] == '/') return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return false;
  }
  return true;
}

// Bytes an archive may unpack to: generous for real software (which compresses a few times),
// fatal to a decompression bomb.
uint64_t ExtractionBound(const std::string& artifact, uint64_t configured) {
  if (configured > 0) return configured;
  struct stat st;
  const uint64_t packed =
      ::stat(artifact.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return std::min<uint64_t>(uint64_t{64} << 30, std::max<uint64_t>(packed * 100, 64 << 20));
}

absl::Status Extract(const std::string& artifact, const std::string& dest_path,
                     uint64_t max_bytes) {
  char resolved[PATH_MAX];
  if (::realpath(dest_path.c_str(), resolved) == nullptr) {
    return common::ErrnoStatus("cannot resolve", dest_path, errno);
  }
  const std::string dest = resolved;
  struct archive* in = archive_read_new();
  // The formats software ships in, and no more: every other reader libarchive has (mtree,
  // which copies files named in the archive from the local disk; iso9660, rar, cab, lha, …)
  // is attack surface in a process running as root, and some spawn external programs.
  archive_read_support_format_tar(in);
  archive_read_support_format_zip(in);
  archive_read_support_filter_gzip(in);
  archive_read_support_filter_bzip2(in);
  archive_read_support_filter_xz(in);
  archive_read_support_filter_lzma(in);
  archive_read_support_filter_zstd(in);
  struct archive* out = archive_write_disk_new();
  // Entry paths are checked here (relative, no "..") and then prefixed with dest, which has
  // no symlink in it (realpath); libarchive refuses to write through symlinks.
  archive_write_disk_set_options(out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                          ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS);
  archive_write_disk_set_standard_lookup(out);
  absl::Status status;
  uint64_t unpacked = 0;
  uint64_t entries = 0;
  if (archive_read_open_filename(in, artifact.c_str(), 1 << 16) != ARCHIVE_OK) {
    status = absl::InvalidArgumentError(
        absl::StrCat("not a readable archive: ", archive_error_string(in)));
  }
  while (status.ok()) {
    struct archive_entry* entry = nullptr;
    int r = archive_read_next_header(in, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      status = absl::InvalidArgumentError(absl::StrCat("archive: ", archive_error_string(in)));
      break;
    }
    const char* raw_name = archive_entry_pathname(entry);
    if (raw_name == nullptr) {
      status = absl::InvalidArgumentError("archive entry without a name");
      break;
    }
    const std::string name = raw_name;
    const char* hardlink = archive_entry_hardlink(entry);
    if (!IsSafeRelativePath(name) || (hardlink != nullptr && !IsSafeRelativePath(hardlink))) {
      status = absl::InvalidArgumentError(
          absl::StrCat("archive entry \"", name, "\" points outside the install directory"));
      break;
    }
    // Files, directories and links only: the agent runs as root, and a device node or a
    // setuid program unpacked by it would hand root to whoever can run it.
    const auto type = archive_entry_filetype(entry);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
      status = absl::InvalidArgumentError(
          absl::StrCat("archive entry \"", name, "\" is a device, fifo or socket: refused"));
      break;
    }
    if (type == AE_IFLNK) {
      // A symbolic link must stay inside: relative, and not climbing above the install
      // directory from where it sits.
      const char* target = archive_entry_symlink(entry);
      std::string joined =
          name.find('/') == std::string::npos ? std::string() : name.substr(0, name.rfind('/') + 1);
      absl::StrAppend(&joined, target == nullptr ? "" : target);
      int depth = 0;
      bool inside = target != nullptr && target[0] != '/' && target[0] != '\0';
      for (absl::string_view part : absl::StrSplit(joined, '/')) {
        if (part == "..") {
          inside = inside && --depth >= 0;
        } else if (!part.empty() && part != ".") {
          ++depth;
        }
      }
      if (!inside) {
        status = absl::InvalidArgumentError(
            absl::StrCat("archive entry \"", name, "\" is a link to \"",
                         target == nullptr ? "" : target, "\", outside the install directory"));
        break;
      }
    }
    archive_entry_set_perm(entry, archive_entry_perm(entry) & 0777);  // no setuid, setgid, sticky
    if (++entries > 1000000) {
      status = absl::InvalidArgumentError("archive: more than 1,000,000 entries");
      break;
    }
    std::string path = absl::StrCat(dest, "/", name);
    archive_entry_set_pathname(entry, path.c_str());
    if (hardlink != nullptr) {
      std::string target = absl::StrCat(dest, "/", hardlink);
      archive_entry_set_hardlink(entry, target.c_str());
    }
    if (archive_write_header(out, entry) < ARCHIVE_WARN) {
      status = absl::InvalidArgumentError(absl::StrCat(
          "archive entry ", archive_entry_pathname(entry), ": ", archive_error_string(out)));
      break;
    }
    const void* buf;
    size_t size;
    la_int64_t offset;
    while ((r = archive_read_data_block(in, &buf, &size, &offset)) == ARCHIVE_OK) {
      unpacked += size;
      if (unpacked > max_bytes) {
        status = absl::ResourceExhaustedError(absl::StrCat(
            "archive unpacks to more than ", max_bytes, " bytes: refused (decompression bomb?)"));
        break;
      }
      if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN) {
        status = absl::InternalError(absl::StrCat("write: ", archive_error_string(out)));
        break;
      }
    }
    if (status.ok() && r < ARCHIVE_WARN) {
      status = absl::InvalidArgumentError(absl::StrCat("archive: ", archive_error_string(in)));
    }
    if (status.ok() && archive_write_finish_entry(out) < ARCHIVE_WARN) {
      status = absl::InternalError(absl::StrCat("write: ", archive_error_string(out)));
    }
  }
  archive_read_free(in);
  archive_write_free(out);
  return status;
}

}  // namespace

InstallOutcome LinuxPackages::InstallArchive(const parc::v1::PackageSpec& spec,
                                             const std::string& artifact) {
  const std::string& target = spec.archive().target_dir();
  const std::string version_dir = absl::StrCat(target, "/", spec.version());
  absl::Status s = common::MakeDirs(target, 0755);
  if (!s.ok()) return InstallFailure("install_failed", std::string(s.message()));
  if (!common::PathExists(version_dir)) {
    const std::string partial = absl::StrCat(target, "/.", spec.version(), ".partial");
    s = RemoveTree(partial);
    if (s.ok()) s = common::MakeDirs(partial, 0755);
    if (s.ok()) {
      s = Extract(artifact, partial, ExtractionBound(artifact, options_.max_extracted_bytes));
    }
    if (s.ok() && ::rename(partial.c_str(), version_dir.c_str()) != 0) {
      s = common::ErrnoStatus("cannot rename to", version_dir, errno);
    }
    if (!s.ok()) {
      (void)RemoveTree(partial);
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
      absl::Status s = RemoveTree(version_dir);
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
