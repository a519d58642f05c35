#include "server/sql/engine.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/sampled_log.h"
#include "common/sqlite.h"

namespace parc::server::sql {

Engine::Engine(const Options& options, std::unique_ptr<Connection> writer,
               std::vector<std::unique_ptr<Connection>> readers, std::unique_ptr<Hooks> hooks)
    : options_(options),
      writer_(std::move(writer)),
      hooks_(std::move(hooks)),
      readers_(std::move(readers)) {
  answer_thread_ = std::thread([this] { AnswerLoop(); });
  writer_thread_ = std::thread([this] { WriterLoop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_thread_.joinable()) writer_thread_.join();
  {
    std::lock_guard<std::mutex> lock(answers_mu_);
    answers_stopping_ = true;
  }
  answers_cv_.notify_all();
  if (answer_thread_.joinable()) answer_thread_.join();
  hooks_->Stop();
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
    if (!stopping_ && queued < options_.max_queued_writes) {
      queue_.push_back(PendingWrite{std::move(op), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  if (queued >= options_.max_queued_writes) {
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

// A write that lost a lock conflict with another node's transaction (PostgreSQL: deadlock
// detected, serialization failure). Its savepoint is rolled back, but the locks the rest of its
// batch holds stay until the COMMIT: run at once it would meet the same conflict, run in the
// next batch it goes through.
bool IsConflict(const absl::Status& s) {
  auto state = s.GetPayload(common::kStorageErrorPayload);
  return state.has_value() && (*state == "40P01" || *state == "40001");
}

constexpr int kMaxConflictRetries = 3;

}  // namespace

void Engine::WriterLoop() {
  pthread_setname_np(pthread_self(), "parc-writer");
  Connection* db = writer_.get();
  std::vector<PendingWrite> batch;
  std::vector<absl::Status> results;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    hooks_->BeforeBatch(db);
    results.assign(batch.size(), absl::OkStatus());
    const absl::Time batch_start = absl::Now();
    bool committed = false;
    absl::Status begin = db->Exec(options_.begin);
    if (!begin.ok()) {
      db->DropNotifications();
      db->RolledBack();
      for (auto& r : results) r = begin;
    } else {
      for (size_t i = 0; i < batch.size(); ++i) {
        absl::Status sp = db->ExecRepeated("SAVEPOINT w");
        if (!sp.ok()) {
          results[i] = sp;
          continue;
        }
        db->WriteStarted();
        results[i] = batch[i].op(db);
        if (!results[i].ok()) {
          (void)db->Exec("ROLLBACK TO w");
          db->WriteUndone();
        }
        (void)db->ExecRepeated("RELEASE w");
      }
      absl::Status commit = db->FlushNotifications();
      if (commit.ok()) commit = db->Exec("COMMIT");
      committed = commit.ok();
      if (commit.ok()) {
        db->Committed();
      } else {
        (void)db->Exec("ROLLBACK");
        db->DropNotifications();
        db->RolledBack();
        for (auto& r : results) {
          if (r.ok()) r = commit;
        }
      }
    }
    // Conflicts with other nodes go again, first in the next batch.
    std::vector<PendingWrite> again;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (IsConflict(results[i]) && batch[i].attempts < kMaxConflictRetries) {
        ++batch[i].attempts;
        again.push_back(std::move(batch[i]));
        batch[i].done = nullptr;
        results[i] = absl::OkStatus();
      }
    }
    if (!again.empty()) {
      conflict_retries_.fetch_add(again.size());
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = again.rbegin(); it != again.rend(); ++it) queue_.push_front(std::move(*it));
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
    {
      std::lock_guard<std::mutex> lock(answers_mu_);
      answers_.push_back(Finished{std::move(batch), std::move(results), committed, batch_start});
    }
    answers_cv_.notify_one();
    batch.clear();
    results.clear();
  }
}

void Engine::AnswerLoop() {
  pthread_setname_np(pthread_self(), "parc-answers");
  std::deque<Finished> taken;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(answers_mu_);
      answers_cv_.wait(lock, [&] { return answers_stopping_ || !answers_.empty(); });
      if (answers_.empty()) return;  // stopping and drained
      taken.swap(answers_);
    }
    // One flush for every batch committed since the last: under load the writer commits the
    // next batch while this one waits for the disk.
    bool any_committed = false;
    for (const auto& f : taken) any_committed |= f.committed;
    absl::Status durable = any_committed ? hooks_->MakeDurable() : absl::OkStatus();
    if (!durable.ok()) {
      writable_ = false;
      failed_batches_.fetch_add(1);
      uint64_t suppressed = 0;
      if (WriteFailureLog().Take(&suppressed)) {
        spdlog::error("store: committed writes could not be made durable: {} ({} more not logged)",
                      durable.ToString(), suppressed);
      }
    }
    const absl::Time now = absl::Now();
    for (auto& f : taken) {
      if (f.committed && durable.ok() && commit_observer_) {
        commit_observer_(now - f.started, f.writes.size());
      }
      for (size_t i = 0; i < f.writes.size(); ++i) {
        if (!f.writes[i].done) continue;
        absl::Status r = std::move(f.results[i]);
        if (r.ok() && f.committed && !durable.ok()) r = durable;
        f.writes[i].done(std::move(r));
      }
    }
    taken.clear();
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
  std::unique_ptr<Connection> db;
  {
    std::unique_lock<std::mutex> lock(readers_mu_);
    readers_cv_.wait(lock, [&] { return !readers_.empty(); });
    db = std::move(readers_.back());
    readers_.pop_back();
  }
  hooks_->BeforeRead(db.get());
  return ReaderLease(this, std::move(db));
}

}  // namespace parc::server::sql
