#include "server/sql_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/postgres/engine.h"
#include "server/postgres/schema.h"
#include "server/sqlite/engine.h"
#include "server/sqlite/schema.h"

namespace parc::server {

absl::StatusOr<std::unique_ptr<SqlStore>> SqlStore::Open(const Options& options) {
  std::unique_ptr<sql::Engine> engine;
  std::string origin;
  if (!options.postgres.empty()) {
    PARC_ASSIGN_OR_RETURN(origin, common::RandomHex(8));
    pg::EngineOptions e;
    e.origin = origin;
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
    e.health_counts = true;
    PARC_ASSIGN_OR_RETURN(engine, sqlite::OpenEngine(e, sqlite::Migrations()));
  }
  std::unique_ptr<SqlStore> store(new SqlStore(std::move(engine), options));
  if (store->postgres_) {
    // Off until the notifications of the other nodes' writes arrive.
    store->cache_.SetEnabled(false);
    pg::Coordinator::Options c;
    c.conninfo = options.postgres;
    c.channels = {kCacheChannel, kRolloutChannel};
    c.origin = origin;
    SqlStore* s = store.get();
    PARC_ASSIGN_OR_RETURN(store->coordinator_,
                          pg::Coordinator::Start(
                              c,
                              [s](const std::string& channel, const std::string& message) {
                                s->OnNotification(channel, message);
                              },
                              [s](bool connected) { s->cache_.SetEnabled(connected); }));
  }
  return store;
}

void SqlStore::OnNotification(const std::string& channel, const std::string& message) {
  if (channel == kRolloutChannel) {
    if (!LeadsJobs()) return;  // the leading node has it too
    std::lock_guard<std::mutex> lock(handler_mu_);
    if (rollout_handler_) rollout_handler_(message);
    return;
  }
  if (channel != kCacheChannel) return;
  if (absl::StartsWith(message, "device ")) {
    cache_.InvalidateDevice(message.substr(7));
  } else if (message == "devices") {
    cache_.InvalidateDevices();
  } else if (message == "assignments") {
    cache_.InvalidateAssignments();
  } else if (message == "software_sets") {
    cache_.InvalidateSoftwareSets();
  } else {
    spdlog::warn("store: unknown cache notification \"{}\"", message);
    cache_.SetEnabled(true);  // empties it
  }
}

void SqlStore::RequestRolloutEvaluation(const std::string& id) {
  if (LeadsJobs()) {
    std::lock_guard<std::mutex> lock(handler_mu_);
    if (rollout_handler_) rollout_handler_(id);
    return;
  }
  Submit(
      [id](sql::Connection* db) {
        db->Notify(kRolloutChannel, id);
        return absl::OkStatus();
      },
      [id](absl::Status s) {
        if (!s.ok()) spdlog::warn("rollout {}: cannot reach the leading node: {}", id, s.message());
      });
}

void SqlStore::set_rollout_handler(std::function<void(const std::string&)> handler) {
  std::lock_guard<std::mutex> lock(handler_mu_);
  rollout_handler_ = std::move(handler);
}

SqlStore::SqlStore(std::unique_ptr<sql::Engine> engine, const Options& options)
    : engine_(std::move(engine)),
      postgres_(!options.postgres.empty()),
      before_software_sweep_(options.before_software_sweep),
      max_pending_checkins_(options.max_pending_checkins),
      checkin_flush_interval_(absl::ToChronoNanoseconds(
          std::clamp(options.checkin_flush_interval, absl::ZeroDuration(), absl::Hours(24)))),
      checkin_flush_size_(std::max<size_t>(options.checkin_flush_size, 1)),
      checkin_write_chunk_(std::max<size_t>(options.checkin_write_chunk, 1)),
      cache_(options.max_cached_devices) {
  checkin_flusher_ = std::thread([this] { FlushCheckInsLoop(); });
}

SqlStore::~SqlStore() {
  // No more notifications from other nodes (nor rollout requests for a server going away).
  coordinator_.reset();
  // The check-ins answered already are written before the writer drains.
  {
    std::lock_guard<std::mutex> lock(checkins_mu_);
    closing_ = true;
  }
  checkins_cv_.notify_all();
  checkin_flusher_.join();
  // Queued writes run their callbacks, which touch the cache, before anything else goes.
  engine_.reset();
}

}  // namespace parc::server
