#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto.h"

namespace parc::server {

// The copy of the artifacts that every server node reads, when several nodes share one
// database (PostgreSQL: server/postgres/artifacts.h). Each node keeps its own directory as a
// cache of it.
class SharedArtifacts {
 public:
  virtual ~SharedArtifacts() = default;
  [[nodiscard]] virtual absl::StatusOr<bool> Has(const std::string& sha256) = 0;
  // Stores a complete file (already verified) of size bytes.
  [[nodiscard]] virtual absl::Status Put(const std::string& sha256, const std::string& path,
                                         uint64_t size) = 0;
  // Passes the artifact's bytes to write, in order. NOT_FOUND when it is not stored.
  [[nodiscard]] virtual absl::Status Get(
      const std::string& sha256, const std::function<absl::Status(absl::string_view)>& write) = 0;
};

// Artifacts on disk, named by their SHA-256 (<dir>/<sha256>), shared by every bundle version
// that lists them. Uploads land in <dir>/tmp and are renamed into place only once their size
// and hash are verified, so a file under its name is always complete. Thread-safe.
class ArtifactStore {
 public:
  static constexpr uint64_t kMaxArtifactBytes = uint64_t{8} << 30;

  // With shared (several nodes), the directory is this node's cache of it: an upload is stored
  // there too before it counts as received, and what the directory lacks is fetched from it.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(
      std::string dir, SharedArtifacts* shared = nullptr);

  // Whether the artifact was received (by any node).
  bool Has(const std::string& sha256) const;
  std::string PathOf(const std::string& sha256) const { return dir_ + "/" + sha256; }
  // Makes sure PathOf(sha256) holds the artifact, fetching it from the shared copy when this
  // node does not have it yet (its hash checked before it takes its name). NOT_FOUND when no
  // node received it.
  [[nodiscard]] absl::Status EnsureLocal(const std::string& sha256) const;

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
    SharedArtifacts* shared_ = nullptr;
  };

  // INVALID_ARGUMENT for a malformed hash or a size over kMaxArtifactBytes.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Upload>> BeginUpload(const std::string& sha256,
                                                                    uint64_t size);

  static bool IsSha256(const std::string& s);

 private:
  ArtifactStore(std::string dir, SharedArtifacts* shared) : dir_(std::move(dir)), shared_(shared) {}
  std::string dir_;
  SharedArtifacts* shared_;
  mutable std::mutex fetch_mu_;  // one fetch from the shared copy at a time
};

}  // namespace parc::server
