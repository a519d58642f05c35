#pragma once

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "server/artifact_store.h"

namespace parc::server::pg {

// The artifacts in the PostgreSQL database, for several server nodes (tables artifacts and
// artifact_chunks, schema version 2): stored once, in chunks of 1 MiB, in one transaction, so
// a half-stored artifact is never seen; read chunk by chunk, so memory stays flat whatever the
// size. Artifacts move rarely (an upload a year per bundle, one fetch per node), so each call
// opens its own connection rather than holding one. Thread-safe.
class Artifacts final : public SharedArtifacts {
 public:
  static constexpr size_t kChunkBytes = size_t{1} << 20;

  explicit Artifacts(std::string conninfo) : conninfo_(std::move(conninfo)) {}
  absl::StatusOr<bool> Has(const std::string& sha256) override;
  absl::Status Put(const std::string& sha256, const std::string& path, uint64_t size) override;
  absl::Status Get(const std::string& sha256,
                   const std::function<absl::Status(absl::string_view)>& write) override;

 private:
  std::string conninfo_;
};

}  // namespace parc::server::pg
