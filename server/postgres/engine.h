#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sqlite.h"
#include "server/sql/engine.h"

namespace parc::server::pg {

struct EngineOptions {
  // libpq connection string or URI (postgresql://user@host/db).
  std::string conninfo;
  int readers = sql::kDefaultReaders;
  size_t max_batch = sql::kDefaultMaxBatch;
  size_t max_queued_writes = sql::kDefaultMaxQueuedWrites;
  // Who sends the notifications of this engine's writes (sql::Connection::Notify): each goes
  // out as "<origin> <message>", so that the node that wrote can tell its own from the others'
  // (pg::Coordinator::Options::origin).
  std::string origin;
};

// The store's engine on PostgreSQL: one writing connection with group commit and a pool of
// reading connections, each reconnected when the server went away (the batch or read that
// found it gone fails as a storage error, the next one reconnects). Applies the migrations
// newer than the database's schema first.
[[nodiscard]] absl::StatusOr<std::unique_ptr<sql::Engine>> OpenEngine(
    const EngineOptions& options, const std::vector<common::Migration>& migrations);

}  // namespace parc::server::pg
