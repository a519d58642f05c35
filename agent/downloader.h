#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace parc::agent {

struct DownloadRequest {
  std::string url;
  // PEM of the CA that signed the artifact server's certificate ("" for http:// URLs).
  std::string ca_pem;
  std::string sha256;
  uint64_t size = 0;
  // Bytes per second; 0 for no cap.
  uint64_t rate_limit = 0;
  // A stalled transfer (below 1 byte/s for this long) is abandoned; the next attempt resumes.
  absl::Duration stall_timeout = absl::Seconds(60);
  absl::Duration connect_timeout = absl::Seconds(30);
};

struct DownloadResult {
  uint64_t bytes_transferred = 0;  // by this call (resumed bytes excluded)
  bool resumed = false;
};

// Downloads an artifact with libcurl to final_path, through part_path:
// - a partial file left by an interrupted attempt is resumed with Range and If-Range (the
//   artifact's hash is its ETag); a server that answers 200 instead restarts it;
// - the SHA-256 is computed while downloading (the resumed prefix is hashed from disk first);
// - no more than the declared size is ever read: a longer body aborts the transfer;
// - only a file whose size and hash match is renamed to final_path.
// Errors carry a reason (common::TrustReason): artifact_size_mismatch or artifact_hash_mismatch
// (the partial file is deleted), download_failed (network or HTTP error; the partial file is
// kept for the next attempt).
[[nodiscard]] absl::StatusOr<DownloadResult> DownloadArtifact(const DownloadRequest& request,
                                                              const std::string& part_path,
                                                              const std::string& final_path);

}  // namespace parc::agent
