#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "agent/core/platform.h"

namespace parc::agent {

// Downloads an artifact with libcurl (see ArtifactFetcher for the contract): a partial file
// left by an interrupted attempt is resumed with Range and If-Range (the artifact's hash is its
// ETag), and a server that answers 200 instead restarts it; the resumed prefix is hashed from
// disk first; a body longer than the declared size aborts the transfer.
[[nodiscard]] absl::StatusOr<DownloadResult> DownloadArtifact(const DownloadRequest& request,
                                                              const std::string& part_path,
                                                              const std::string& final_path);

class CurlFetcher final : public ArtifactFetcher {
 public:
  absl::StatusOr<DownloadResult> Fetch(const DownloadRequest& request, const std::string& part_path,
                                       const std::string& final_path) override {
    return DownloadArtifact(request, part_path, final_path);
  }
};

}  // namespace parc::agent
