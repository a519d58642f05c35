#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/sql/health_counts.h"
#include "server/sql/sql.h"

namespace parc::server::sql {

// The defaults that both engines' options (sqlite::EngineOptions, pg::EngineOptions) and the
// store's (SqlStore::Options) share, written once here.
// Reading connections.
inline constexpr int kDefaultReaders = 4;
// Writes per batch (one transaction, one disk flush).
inline constexpr size_t kDefaultMaxBatch = 512;
// Writes waiting for the writer beyond which new ones are refused (RESOURCE_EXHAUSTED, retry
// later): memory stays bounded when the disk cannot keep up.
inline constexpr size_t kDefaultMaxQueuedWrites = 20000;

// How the store reaches its database, whatever the engine: one writer with group commit, and
// a pool of readers.
//
// Writes: one writer thread owns the only writing connection of this process. It takes every
// write queued while the previous batch committed and applies them in one transaction (group
// commit: one disk flush for hundreds of check-ins), each inside its own savepoint so that one
// failing write does not undo the others. A second thread, the answerer, makes the committed
// batches durable (Hooks::MakeDurable, one disk flush for every batch committed since the
// last) and then runs their callbacks, in commit order: the writer goes on with the next batch
// meanwhile, and the answers (gRPC sends, TLS) are not on its clock. No callback runs before
// its batch is durable. Reads: a pool of connections, so readers never wait for the writer.
// What differs between engines (SQLite's checkpoints and WAL flush, PostgreSQL's
// reconnections) is in its Hooks.
class Engine {
 public:
  struct Options {
    size_t max_batch = kDefaultMaxBatch;
    size_t max_queued_writes = kDefaultMaxQueuedWrites;
    // How the writer opens a batch's transaction.
    std::string begin = "BEGIN";
  };

  class Hooks {
   public:
    virtual ~Hooks() = default;
    // On the writer thread, before each batch.
    virtual void BeforeBatch(Connection* writer) { (void)writer; }
    // Before a reader connection is lent.
    virtual void BeforeRead(Connection* reader) { (void)reader; }
    // Once the writer has stopped, before the connections close.
    virtual void Stop() {}
    // Background checkpoints run so far (SQLite).
    virtual uint64_t checkpoints() const { return 0; }
    // On the answerer thread, before the callbacks of batches the writer committed: makes
    // every batch committed so far durable, if COMMIT did not (SQLite: the writer commits
    // without flushing, this flushes the WAL; PostgreSQL: COMMIT is durable, nothing to do).
    // An error fails the callbacks of those batches (a storage error).
    virtual absl::Status MakeDurable() { return absl::OkStatus(); }
  };

  // Starts the writer thread.
  Engine(const Options& options, std::unique_ptr<Connection> writer,
         std::vector<std::unique_ptr<Connection>> readers, std::unique_ptr<Hooks> hooks);
  // Drains queued writes (running their callbacks), then closes.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  using WriteOp = std::function<absl::Status(Connection*)>;
  using WriteDone = std::function<void(absl::Status)>;
  // Queues a write: op runs on the writer thread inside the next batch, done once the batch
  // is durable (or failed). op may run more than once (after a conflict with another node),
  // each time in a fresh savepoint: what it changes outside the database must allow that.
  // RESOURCE_EXHAUSTED (retry later) when too many are waiting.
  void Submit(WriteOp op, WriteDone done);
  // Submit for a write that computes a value.
  template <typename T>
  void SubmitFor(std::function<absl::StatusOr<T>(Connection*)> fn,
                 std::function<void(absl::StatusOr<T>)> done);

  // A read connection borrowed from the pool for the lifetime of the lease.
  class ReaderLease {
   public:
    ReaderLease(Engine* engine, std::unique_ptr<Connection> db)
        : engine_(engine), db_(std::move(db)) {}
    ReaderLease(ReaderLease&&) = default;
    ~ReaderLease();
    Connection* operator->() const { return db_.get(); }
    Connection& operator*() const { return *db_; }
    Connection* get() const { return db_.get(); }

   private:
    Engine* engine_;
    std::unique_ptr<Connection> db_;
  };
  // Waits for a free reader.
  ReaderLease AcquireReader();

  // Health of the write path: false from a batch that failed for the storage itself (disk
  // full, I/O error, lost connection) until one succeeds; the number of such batches.
  bool Writable() const { return writable_.load(); }
  uint64_t FailedBatches() const { return failed_batches_.load(); }
  // Batches committed, writes applied, background checkpoints run (metrics, tests).
  uint64_t batches_committed() const;
  uint64_t writes_applied() const;
  uint64_t checkpoints() const { return hooks_->checkpoints(); }
  // Writes run again in the next batch after a lock conflict with another node's transaction
  // (PostgreSQL deadlock or serialization failure; at most 3 times each, then the error is
  // the caller's).
  uint64_t conflict_retries() const { return conflict_retries_.load(); }
  // Observer of each committed batch (from its BEGIN to durable, number of writes). Set
  // before use; called on the answerer thread.
  void set_commit_observer(std::function<void(absl::Duration, size_t)> observer) {
    commit_observer_ = std::move(observer);
  }
  // The health counts the engine keeps in memory (SQLite, health_counts.h), or null where the
  // database keeps them all (PostgreSQL: health_tally).
  const HealthCounts* health_counts() const { return health_counts_.get(); }
  void set_health_counts(std::shared_ptr<const HealthCounts> counts) {
    health_counts_ = std::move(counts);
  }

 private:
  struct PendingWrite {
    WriteOp op;
    WriteDone done;
    int attempts = 0;
  };
  // A batch the writer finished, waiting for the answerer.
  struct Finished {
    std::vector<PendingWrite> writes;
    std::vector<absl::Status> results;
    bool committed = false;
    absl::Time started;
  };
  void WriterLoop();
  void AnswerLoop();

  Options options_;
  std::unique_ptr<Connection> writer_;
  std::unique_ptr<Hooks> hooks_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PendingWrite> queue_;
  bool stopping_ = false;
  std::atomic<bool> writable_{true};
  std::atomic<uint64_t> failed_batches_{0};
  std::atomic<uint64_t> conflict_retries_{0};
  uint64_t batches_ = 0;
  uint64_t writes_ = 0;

  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Connection>> readers_;

  std::mutex answers_mu_;
  std::condition_variable answers_cv_;
  std::deque<Finished> answers_;   // guarded by answers_mu_
  bool answers_stopping_ = false;  // guarded by answers_mu_

  std::function<void(absl::Duration, size_t)> commit_observer_;
  std::shared_ptr<const HealthCounts> health_counts_;
  std::thread answer_thread_;
  std::thread writer_thread_;
};

template <typename T>
inline void Engine::SubmitFor(std::function<absl::StatusOr<T>(Connection*)> fn,
                              std::function<void(absl::StatusOr<T>)> done) {
  auto result = std::make_shared<absl::StatusOr<T>>(absl::UnknownError("not run"));
  Submit(
      [fn = std::move(fn), result](Connection* db) {
        *result = fn(db);
        return result->status();
      },
      [result, done = std::move(done)](absl::Status status) {
        if (!status.ok()) {
          done(status);
        } else {
          done(std::move(*result));
        }
      });
}

}  // namespace parc::server::sql
