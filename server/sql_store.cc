#include "server/sql_store.h"

#include <utility>

#include "common/status_macros.h"
#include "server/postgres/engine.h"
#include "server/postgres/schema.h"
#include "server/sqlite/engine.h"
#include "server/sqlite/schema.h"

namespace parc::server {

absl::StatusOr<std::unique_ptr<SqlStore>> SqlStore::Open(const Options& options) {
  std::unique_ptr<sql::Engine> engine;
  if (!options.postgres.empty()) {
    pg::EngineOptions e;
    e.conninfo = options.postgres;
    e.readers = options.readers;
    e.max_batch = options.max_batch;
    e.max_queued_writes = options.max_queued_writes;
    PARC_ASSIGN_OR_RETURN(engine, pg::OpenEngine(e, pg::Migrations()));
  } else {
    sqlite::EngineOptions e;
    e.path = options.path;
    e.readers = options.readers;
    e.max_batch = options.max_batch;
    e.checkpoint_pages = options.checkpoint_pages;
    e.wal_restart_pages = options.wal_restart_pages;
    e.max_queued_writes = options.max_queued_writes;
    PARC_ASSIGN_OR_RETURN(engine, sqlite::OpenEngine(e, sqlite::Migrations()));
  }
  std::unique_ptr<SqlStore> store(new SqlStore(std::move(engine), options));
  return store;
}

SqlStore::SqlStore(std::unique_ptr<sql::Engine> engine, const Options& options)
    : engine_(std::move(engine)),
      postgres_(!options.postgres.empty()),
      max_pending_checkins_(options.max_pending_checkins),
      cache_(options.max_cached_devices) {}

SqlStore::~SqlStore() {
  // Queued writes run their callbacks, which touch the cache, before anything else goes.
  engine_.reset();
}

}  // namespace parc::server
