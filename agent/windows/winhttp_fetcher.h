#pragma once

#include "agent/core/platform.h"
#include "agent/windows/winhttp.h"

namespace parc::agent {

// Downloads artifacts with WinHTTP (see ArtifactFetcher for the contract, the same as the
// Linux agent's): a partial file is resumed with Range and If-Range (the artifact's hash is its
// ETag) and restarted when the server answers 200; the resumed prefix is hashed from disk
// first; a body longer than the declared size is refused; the bandwidth cap paces the reads.
class WinHttpFetcher final : public ArtifactFetcher {
 public:
  absl::StatusOr<DownloadResult> Fetch(const DownloadRequest& request, const std::string& part_path,
                                       const std::string& final_path) override;

 private:
  WinHttpSession session_;
};

}  // namespace parc::agent
