#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sqlite.h"
#include "server/sql/engine.h"

namespace parc::server::sqlite {

// WAL growth (pages of 4 KiB) that starts a background checkpoint. 16 MiB: a page written by
// several batches between two checkpoints (an appended leaf, an index's last page) is copied
// back once; at 1,000 pages the checkpointer cost an inventory about a third more CPU (20
// against 15 µs, docs/performance.md).
inline constexpr int kDefaultCheckpointPages = 4000;
// WAL size (pages) from which the writer completes a checkpoint so that the WAL restarts.
inline constexpr int kDefaultWalRestartPages = 16384;

struct EngineOptions {
  std::string path;
  int readers = sql::kDefaultReaders;
  size_t max_batch = sql::kDefaultMaxBatch;
  size_t max_queued_writes = sql::kDefaultMaxQueuedWrites;
  int checkpoint_pages = kDefaultCheckpointPages;
  int wal_restart_pages = kDefaultWalRestartPages;
  // Keep the counts of the health families an inventory writes in memory
  // (sql::HealthCounts; the store's schema, with its devices table, is required).
  bool health_counts = false;
};

// The store's engine on one SQLite file in WAL mode: a writer connection, read-only reader
// connections, and a third connection on its own thread that checkpoints the WAL in the
// background when it has grown, so that no write waits for a checkpoint. Applies the
// migrations newer than the file's schema first.
[[nodiscard]] absl::StatusOr<std::unique_ptr<sql::Engine>> OpenEngine(
    const EngineOptions& options, const std::vector<common::Migration>& migrations);

}  // namespace parc::server::sqlite
