#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace parc::agent {

// Unpacks a package's archive (zip; tar, plain or compressed) into an existing directory, with
// libarchive, on both platforms. Refused, with the entry named: a path that is absolute or
// climbs out with "..", a device, fifo or socket, a link pointing outside the directory (on
// Windows every link: Windows programs do not ship them and Windows needs a privilege to follow
// them), and more than max_bytes unpacked (a decompression bomb). Permission bits are kept
// without setuid, setgid and sticky. What was written before a refusal stays: callers unpack
// into a staging directory and remove it on failure.
[[nodiscard]] absl::Status ExtractArchive(const std::string& artifact, const std::string& dest,
                                          uint64_t max_bytes);

// Bytes an archive may unpack to: `configured` when set, else 100 times its size, at least
// 64 MiB and at most 64 GiB: generous for software (which compresses a few times), fatal to a
// decompression bomb.
uint64_t ExtractionBound(const std::string& artifact, uint64_t configured);

// Whether an archive entry's path stays inside the directory it is unpacked into: relative, no
// ".." component; on Windows also no drive, stream (':') or '\' component climbing out.
bool IsSafeEntryPath(absl::string_view path);

}  // namespace parc::agent
