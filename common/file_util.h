#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parc::common {

// Reads a whole file. NOT_FOUND when it does not exist; RESOURCE_EXHAUSTED when larger than
// max_bytes.
[[nodiscard]] absl::StatusOr<std::string> ReadFile(const std::string& path,
                                                   size_t max_bytes = 256u << 20);

// Writes a file atomically (temporary file, fsync, rename) with the given permissions.
[[nodiscard]] absl::Status WriteFileAtomic(const std::string& path, absl::string_view data,
                                           mode_t mode = 0644);

// Creates a directory and its parents; sets mode on the last one if it is created.
[[nodiscard]] absl::Status MakeDirs(const std::string& path, mode_t mode = 0755);

bool PathExists(const std::string& path);

// Size of a file in bytes; NOT_FOUND when it does not exist.
[[nodiscard]] absl::StatusOr<uint64_t> FileSize(const std::string& path);

// Renames a file or directory; fails when `to` exists (directories are never merged).
[[nodiscard]] absl::Status RenamePath(const std::string& from, const std::string& to);

// Removes a file or a directory and everything in it, like rm -rf on one file system: links
// (and Windows junctions) are removed, never followed. OK when nothing is there.
[[nodiscard]] absl::Status RemoveTree(const std::string& path);

// Status from errno with the operation and path in the message.
absl::Status ErrnoStatus(absl::string_view what, const std::string& path, int err);
// Writes all of data to fd (retrying short writes and EINTR); path names it in errors.
[[nodiscard]] absl::Status WriteAll(int fd, absl::string_view data, const std::string& path);

// A drive-absolute Windows path ("C:\\..." or "C:/..."): what says an archive package is for
// Windows devices (Linux ones take "/...").
bool IsWindowsDirectory(absl::string_view path);

}  // namespace parc::common
