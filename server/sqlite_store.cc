#include "server/sqlite_store.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/sampled_log.h"
#include "common/status_macros.h"
#include "server/software_sets.h"
#include "server/sqlite/schema.h"
#include "server/sqlite/scope_sql.h"
#include "server/sqlite_util.h"

namespace parc::server {

using common::Database;

const std::vector<common::Migration>& SqliteStore::Migrations() { return sqlite::Migrations(); }

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const Options& options) {
  sqlite::Engine::Options e;
  e.path = options.path;
  e.readers = options.readers;
  e.max_batch = options.max_batch;
  e.checkpoint_pages = options.checkpoint_pages;
  e.wal_restart_pages = options.wal_restart_pages;
  e.max_queued_writes = options.max_queued_writes;
  PARC_ASSIGN_OR_RETURN(auto engine, sqlite::Engine::Open(e, Migrations()));
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(engine), options));
  return store;
}

SqliteStore::SqliteStore(std::unique_ptr<sqlite::Engine> engine, const Options& options)
    : engine_(std::move(engine)),
      max_pending_checkins_(options.max_pending_checkins),
      cache_(options.max_cached_devices) {}

SqliteStore::~SqliteStore() {
  // Queued writes run their callbacks, which touch the cache, before anything else goes.
  engine_.reset();
}

}  // namespace parc::server
