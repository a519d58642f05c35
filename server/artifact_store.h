#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/crypto.h"

namespace parc::server {

// Artifacts on disk, named by their SHA-256 (<dir>/<sha256>), shared by every bundle version
// that lists them. Uploads land in <dir>/tmp and are renamed into place only once their size
// and hash are verified, so a file under its name is always complete. Thread-safe.
class ArtifactStore {
 public:
  static constexpr uint64_t kMaxArtifactBytes = uint64_t{8} << 30;

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(std::string dir);

  bool Has(const std::string& sha256) const;
  std::string PathOf(const std::string& sha256) const { return dir_ + "/" + sha256; }

  // An upload in progress. Abandoned (and its temporary file removed) unless committed.
  class Upload {
   public:
    ~Upload();
    [[nodiscard]] absl::Status Append(const std::string& data);
    // INVALID_ARGUMENT when the size or hash differs from what was announced.
    [[nodiscard]] absl::Status Commit();
    uint64_t received() const { return received_; }

   private:
    friend class ArtifactStore;
    Upload() = default;
    int fd_ = -1;
    std::string tmp_path_;
    std::string final_path_;
    std::string sha256_;
    uint64_t size_ = 0;
    uint64_t received_ = 0;
    common::Sha256 hash_;
    bool committed_ = false;
  };

  // INVALID_ARGUMENT for a malformed hash or a size over kMaxArtifactBytes.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Upload>> BeginUpload(const std::string& sha256,
                                                                    uint64_t size);

  static bool IsSha256(const std::string& s);

 private:
  explicit ArtifactStore(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace parc::server
