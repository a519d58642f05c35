#include "server/sqlite/engine.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/sampled_log.h"
#include "common/status_macros.h"

namespace parc::server::sqlite {

using common::Database;
using common::Migration;

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const Options& options,
                                                     const std::vector<Migration>& migrations) {
  Database::Options wopts;
  PARC_ASSIGN_OR_RETURN(auto writer, Database::Open(options.path, wopts));
  PARC_RETURN_IF_ERROR(common::Migrate(writer.get(), migrations));
  // Checkpoints (copying the WAL back into the database file, with its fsync) run on their
  // own connection and thread, every checkpoint_pages of WAL, not in the writer's commit path
  // where they held up every request of the batch behind them for tens of milliseconds (the
  // WAL hook replaces SQLite's automatic checkpoint). SQLite reuses the WAL from its start
  // only when a write transaction begins on a fully checkpointed WAL, which a background
  // checkpoint racing the next batch never leaves: so once the WAL reaches wal_restart_pages,
  // the writer itself copies the frames committed since the last background checkpoint,
  // between two batches (a pause of one fsync, a few milliseconds, every few seconds under
  // load), and the WAL restarts and is truncated back to journal_size_limit.
  PARC_RETURN_IF_ERROR(writer->Exec(absl::StrCat(
      "PRAGMA journal_size_limit=", int64_t{options.wal_restart_pages} * 4096 + (4 << 20))));
  PARC_ASSIGN_OR_RETURN(auto checkpointer, Database::Open(options.path, wopts));
  std::unique_ptr<Engine> store(new Engine(std::move(writer)));
  store->max_batch_ = options.max_batch;
  store->max_queued_writes_ = options.max_queued_writes;
  store->checkpoint_pages_ = options.checkpoint_pages;
  store->wal_restart_pages_ = options.wal_restart_pages;
  store->checkpointer_db_ = std::move(checkpointer);
  sqlite3_wal_hook(
      store->writer_db_->raw(),
      [](void* self, sqlite3*, const char*, int pages) {
        static_cast<Engine*>(self)->OnWalCommit(pages);
        return SQLITE_OK;
      },
      store.get());
  store->checkpointer_thread_ = std::thread([s = store.get()] { s->CheckpointLoop(); });
  for (int i = 0; i < options.readers; ++i) {
    PARC_ASSIGN_OR_RETURN(auto reader, Database::Open(options.path, wopts));
    PARC_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only=1"));
    store->readers_.push_back(std::move(reader));
  }
  store->writer_thread_ = std::thread([s = store.get()] { s->WriterLoop(); });
  return store;
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_thread_.joinable()) writer_thread_.join();
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    checkpoint_stop_ = true;
  }
  checkpoint_cv_.notify_all();
  if (checkpointer_thread_.joinable()) checkpointer_thread_.join();
  if (writer_db_) sqlite3_wal_hook(writer_db_->raw(), nullptr, nullptr);
}

void Engine::OnWalCommit(int pages) {
  if (pages < wal_mark_) wal_mark_ = 0;  // the WAL restarted
  // One checkpoint at a time: a checkpointer running again while the writer tries to restart
  // the WAL would hold the locks the restart needs.
  if (pages - wal_mark_ < checkpoint_pages_ || checkpoint_busy_.exchange(true)) return;
  wal_mark_ = pages;
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    checkpoint_wanted_ = true;
    restart_wanted_ = pages >= wal_restart_pages_;
  }
  checkpoint_cv_.notify_one();
}

void Engine::CheckpointLoop() {
  pthread_setname_np(pthread_self(), "parc-checkpoint");
  while (true) {
    bool restart = false;
    {
      std::unique_lock<std::mutex> lock(checkpoint_mu_);
      checkpoint_cv_.wait(lock, [&] { return checkpoint_stop_ || checkpoint_wanted_; });
      if (checkpoint_stop_) return;
      checkpoint_wanted_ = false;
      restart = restart_wanted_;
    }
    // PASSIVE: copies what no reader still needs, never waits for the writer or readers.
    int rc = sqlite3_wal_checkpoint_v2(checkpointer_db_->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                       nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      spdlog::warn("store: checkpoint failed: {}",
                   checkpointer_db_->Error(rc, "checkpoint").message());
      checkpoint_busy_ = false;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++checkpoints_;
    }
    if (restart) {
      finish_checkpoint_ = true;  // the writer finishes it and clears checkpoint_busy_
    } else {
      checkpoint_busy_ = false;
    }
  }
}

uint64_t Engine::checkpoints() const {
  std::lock_guard<std::mutex> lock(mu_);
  return checkpoints_;
}

uint64_t Engine::batches_committed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

uint64_t Engine::writes_applied() const {
  std::lock_guard<std::mutex> lock(mu_);
  return writes_;
}

void Engine::Submit(WriteOp op, WriteDone done) {
  size_t queued = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued = queue_.size();
    if (!stopping_ && queued < max_queued_writes_) {
      queue_.push_back(PendingWrite{std::move(op), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  if (queued >= max_queued_writes_) {
    done(common::RetryLater(
        absl::ResourceExhaustedError(
            absl::StrCat("server busy: ", queued, " writes are waiting for the disk; retry later")),
        absl::Seconds(10)));
    return;
  }
  done(absl::UnavailableError("store is shutting down"));
}

namespace {

common::SampledLog& WriteFailureLog() {
  static common::SampledLog log(std::chrono::seconds(10));
  return log;
}

}  // namespace

void Engine::WriterLoop() {
  pthread_setname_np(pthread_self(), "parc-writer");
  Database* db = writer_db_.get();
  std::vector<PendingWrite> batch;
  std::vector<absl::Status> results;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (finish_checkpoint_.exchange(false)) {
      // The background checkpoint copied the bulk; the frames committed since are few.
      int rc = sqlite3_wal_checkpoint_v2(db->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                         nullptr);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        spdlog::warn("store: checkpoint failed: {}", db->Error(rc, "checkpoint").message());
      }
      checkpoint_busy_ = false;
    }
    results.assign(batch.size(), absl::OkStatus());
    const absl::Time batch_start = absl::Now();
    absl::Status begin = db->Exec("BEGIN IMMEDIATE");
    if (!begin.ok()) {
      for (auto& r : results) r = begin;
    } else {
      for (size_t i = 0; i < batch.size(); ++i) {
        absl::Status sp = db->Exec("SAVEPOINT w");
        if (!sp.ok()) {
          results[i] = sp;
          continue;
        }
        results[i] = batch[i].op(db);
        if (!results[i].ok()) (void)db->Exec("ROLLBACK TO w");
        (void)db->Exec("RELEASE w");
      }
      absl::Status commit = db->Exec("COMMIT");
      if (!commit.ok()) {
        (void)db->Exec("ROLLBACK");
        for (auto& r : results) {
          if (r.ok()) r = commit;
        }
      }
    }
    // The storage's own failures (not refused requests) turn the store's health red until a
    // batch goes through again.
    const absl::Status* storage_failure = nullptr;
    for (const auto& r : results) {
      if (common::IsStorageError(r)) storage_failure = &r;
    }
    if (storage_failure != nullptr) {
      writable_ = false;
      failed_batches_.fetch_add(1);
      uint64_t suppressed = 0;
      if (WriteFailureLog().Take(&suppressed)) {
        spdlog::error("store: a batch of {} writes failed: {} ({} more failed batches not logged)",
                      batch.size(), storage_failure->ToString(), suppressed);
      }
    } else {
      writable_ = true;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++batches_;
      writes_ += batch.size();
    }
    if (commit_observer_) commit_observer_(absl::Now() - batch_start, batch.size());
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
    batch.clear();
  }
}

Engine::ReaderLease::~ReaderLease() {
  if (db_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(engine_->readers_mu_);
    engine_->readers_.push_back(std::move(db_));
  }
  engine_->readers_cv_.notify_one();
}

Engine::ReaderLease Engine::AcquireReader() {
  std::unique_lock<std::mutex> lock(readers_mu_);
  readers_cv_.wait(lock, [&] { return !readers_.empty(); });
  auto db = std::move(readers_.back());
  readers_.pop_back();
  return ReaderLease(this, std::move(db));
}

}  // namespace parc::server::sqlite
