#include "agent/core/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

#ifdef _WIN32
#include "common/windows_util.h"
#endif

namespace parc::agent {
namespace {

#ifdef _WIN32
constexpr bool kWindows = true;
#else
constexpr bool kWindows = false;
#endif

// Components of an entry path: '/' separates them everywhere, '\' too on Windows.
std::vector<absl::string_view> Components(absl::string_view path) {
  if (kWindows) return absl::StrSplit(path, absl::ByAnyChar("/\\"));
  return absl::StrSplit(path, '/');
}

// Where a symbolic link entry (at `name`, pointing at `target`) ends up stays inside.
bool LinkStaysInside(const std::string& name, const char* target) {
  if (target == nullptr || target[0] == '/' || target[0] == '\0') return false;
  std::string joined =
      name.find('/') == std::string::npos ? std::string() : name.substr(0, name.rfind('/') + 1);
  absl::StrAppend(&joined, target);
  int depth = 0;
  for (absl::string_view part : absl::StrSplit(joined, '/')) {
    if (part == "..") {
      if (--depth < 0) return false;
    } else if (!part.empty() && part != ".") {
      ++depth;
    }
  }
  return true;
}

std::string Resolve(const std::string& dir) {
#ifdef _WIN32
  return dir;  // the staging directory the caller created; no links on the way
#else
  char resolved[PATH_MAX];
  if (::realpath(dir.c_str(), resolved) == nullptr) return "";
  return resolved;
#endif
}

}  // namespace

bool IsSafeEntryPath(absl::string_view path) {
  if (path.empty() || path[0] == '/') return false;
  if (kWindows && (path[0] == '\\' || path.find(':') != absl::string_view::npos)) return false;
  for (absl::string_view part : Components(path)) {
    if (part == "..") return false;
  }
  return true;
}

uint64_t ExtractionBound(const std::string& artifact, uint64_t configured) {
  if (configured > 0) return configured;
  const uint64_t packed = common::FileSize(artifact).value_or(0);
  return std::min<uint64_t>(uint64_t{64} << 30, std::max<uint64_t>(packed * 100, 64 << 20));
}

absl::Status ExtractArchive(const std::string& artifact, const std::string& dest_path,
                            uint64_t max_bytes) {
  const std::string dest = Resolve(dest_path);
  if (dest.empty() || !common::PathExists(dest)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot resolve ", dest_path));
  }
  struct archive* in = archive_read_new();
  // The formats software ships in, and no more: every other reader libarchive has (mtree,
  // which copies files named in the archive from the local disk; iso9660, rar, cab, lha, …)
  // is attack surface in a process running as root or SYSTEM, and some spawn external programs.
  archive_read_support_format_zip(in);
  archive_read_support_format_tar(in);
  archive_read_support_filter_gzip(in);
#ifndef _WIN32
  // Windows' libarchive is built with zlib only: without their libraries these filters would
  // run external programs.
  archive_read_support_filter_bzip2(in);
  archive_read_support_filter_xz(in);
  archive_read_support_filter_lzma(in);
  archive_read_support_filter_zstd(in);
#endif
  struct archive* out = archive_write_disk_new();
  // Entry paths are checked here (relative, no "..") and then prefixed with dest, which has
  // no symlink in it (realpath); libarchive refuses to write through symlinks.
  archive_write_disk_set_options(out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                          ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS);
#ifndef _WIN32
  archive_write_disk_set_standard_lookup(out);
#endif
  absl::Status status;
  uint64_t unpacked = 0;
  uint64_t entries = 0;
#ifdef _WIN32
  const int opened = archive_read_open_filename_w(in, common::Widen(artifact).c_str(), 1 << 16);
#else
  const int opened = archive_read_open_filename(in, artifact.c_str(), 1 << 16);
#endif
  if (opened != ARCHIVE_OK) {
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
    // Windows paths are UTF-16: names are taken as UTF-8 (zip's flag, or what libarchive
    // converts to); on Linux the bytes are written as they are.
    const char* raw_name =
        kWindows ? archive_entry_pathname_utf8(entry) : archive_entry_pathname(entry);
    if (raw_name == nullptr) {
      status = absl::InvalidArgumentError("archive entry without a name");
      break;
    }
    const std::string name = raw_name;
    const char* hardlink = archive_entry_hardlink(entry);
    if (!IsSafeEntryPath(name) || (hardlink != nullptr && !IsSafeEntryPath(hardlink))) {
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
    if (kWindows && (type == AE_IFLNK || hardlink != nullptr)) {
      status = absl::InvalidArgumentError(
          absl::StrCat("archive entry \"", name, "\" is a link: refused on Windows"));
      break;
    }
    if (type == AE_IFLNK && !LinkStaysInside(name, archive_entry_symlink(entry))) {
      // A symbolic link must stay inside: relative, and not climbing above the install
      // directory from where it sits.
      const char* target = archive_entry_symlink(entry);
      status = absl::InvalidArgumentError(
          absl::StrCat("archive entry \"", name, "\" is a link to \"",
                       target == nullptr ? "" : target, "\", outside the install directory"));
      break;
    }
    archive_entry_set_perm(entry, archive_entry_perm(entry) & 0777);  // no setuid, setgid, sticky
    if (++entries > 1000000) {
      status = absl::InvalidArgumentError("archive: more than 1,000,000 entries");
      break;
    }
#ifdef _WIN32
    archive_entry_copy_pathname_w(
        entry,
        common::Widen(absl::StrCat(dest, "\\", absl::StrReplaceAll(name, {{"/", "\\"}}))).c_str());
#else
    const std::string path = absl::StrCat(dest, "/", name);
    archive_entry_set_pathname(entry, path.c_str());
    if (hardlink != nullptr) {
      const std::string target = absl::StrCat(dest, "/", hardlink);
      archive_entry_set_hardlink(entry, target.c_str());
    }
#endif
    if (archive_write_header(out, entry) < ARCHIVE_WARN) {
      status = absl::InvalidArgumentError(
          absl::StrCat("archive entry ", name, ": ", archive_error_string(out)));
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

}  // namespace parc::agent
