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
#include "common/sqlite.h"

namespace parc::server::sqlite {

// The machinery of a SQLite file in WAL mode shared by every table of the store: one writer,
// a pool of readers, a checkpointer. It knows nothing of Parc's tables.
//
// Writes: one writer thread owns the only writing connection. It takes every write queued
// while the previous batch committed and applies them in one transaction (group commit), each
// inside its own savepoint so that one failing write does not undo the others, then runs each
// callback once the transaction is durable. Reads: a pool of read-only connections, so
// readers never wait for the writer. Checkpoints: a third connection on its own thread, woken
// when the WAL has grown, so no write waits for one.
class Engine {
 public:
  struct Options {
    std::string path;
    int readers = 4;
    size_t max_batch = 512;
    // WAL growth (pages of 4 KiB) that starts a background checkpoint.
    int checkpoint_pages = 1000;
    // WAL size from which the writer completes a checkpoint so that the WAL restarts.
    int wal_restart_pages = 16384;
    // Writes waiting for the writer beyond which new ones are refused (RESOURCE_EXHAUSTED,
    // retry later): memory stays bounded when the disk cannot keep up.
    size_t max_queued_writes = 20000;
  };

  // Opens the file, applies the migrations newer than its schema, starts the threads.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Engine>> Open(
      const Options& options, const std::vector<common::Migration>& migrations);
  // Drains queued writes (running their callbacks), then closes.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  using WriteOp = std::function<absl::Status(common::Database*)>;
  using WriteDone = std::function<void(absl::Status)>;
  // Queues a write: op runs on the writer thread inside the next batch, done once the batch
  // is durable (or failed). RESOURCE_EXHAUSTED (retry later) when too many are waiting.
  void Submit(WriteOp op, WriteDone done);
  // Submit for a write that computes a value.
  template <typename T>
  void SubmitFor(std::function<absl::StatusOr<T>(common::Database*)> fn,
                 std::function<void(absl::StatusOr<T>)> done);

  // A read connection borrowed from the pool for the lifetime of the lease.
  class ReaderLease {
   public:
    ReaderLease(Engine* engine, std::unique_ptr<common::Database> db)
        : engine_(engine), db_(std::move(db)) {}
    ReaderLease(ReaderLease&&) = default;
    ~ReaderLease();
    common::Database* operator->() const { return db_.get(); }
    common::Database* get() const { return db_.get(); }

   private:
    Engine* engine_;
    std::unique_ptr<common::Database> db_;
  };
  // Waits for a free reader.
  ReaderLease AcquireReader();

  // Health of the write path: false from a batch that failed for the storage itself (disk
  // full, I/O error) until one succeeds; the number of such batches.
  bool Writable() const { return writable_.load(); }
  uint64_t FailedBatches() const { return failed_batches_.load(); }
  // Batches committed, writes applied, background checkpoints run (metrics, tests).
  uint64_t batches_committed() const;
  uint64_t writes_applied() const;
  uint64_t checkpoints() const;
  // Observer of each committed batch (duration, number of writes). Set before use; called on
  // the writer thread.
  void set_commit_observer(std::function<void(absl::Duration, size_t)> observer) {
    commit_observer_ = std::move(observer);
  }

 private:
  struct PendingWrite {
    WriteOp op;
    WriteDone done;
  };

  explicit Engine(std::unique_ptr<common::Database> writer) : writer_db_(std::move(writer)) {}
  void WriterLoop();
  // WAL hook of the writer connection: wakes the checkpointer once the WAL is large enough.
  void OnWalCommit(int pages);
  void CheckpointLoop();

  std::unique_ptr<common::Database> writer_db_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PendingWrite> queue_;
  bool stopping_ = false;
  size_t max_batch_ = 512;
  size_t max_queued_writes_ = 20000;
  std::atomic<bool> writable_{true};
  std::atomic<uint64_t> failed_batches_{0};
  uint64_t batches_ = 0;
  uint64_t writes_ = 0;

  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<common::Database>> readers_;

  std::function<void(absl::Duration, size_t)> commit_observer_;
  std::thread writer_thread_;

  std::unique_ptr<common::Database> checkpointer_db_;
  int checkpoint_pages_ = 1000;
  int wal_restart_pages_ = 16384;
  int wal_mark_ = 0;             // WAL size at the last checkpoint request (writer thread only)
  bool restart_wanted_ = false;  // guarded by checkpoint_mu_
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;
  bool checkpoint_stop_ = false;
  uint64_t checkpoints_ = 0;  // guarded by mu_
  // Set by the checkpointer, taken by the writer (see Open).
  std::atomic<bool> finish_checkpoint_{false};
  // From the wake-up of the checkpointer to the writer's end of that checkpoint.
  std::atomic<bool> checkpoint_busy_{false};
  std::thread checkpointer_thread_;
};

template <typename T>
inline void Engine::SubmitFor(std::function<absl::StatusOr<T>(common::Database*)> fn,
                              std::function<void(absl::StatusOr<T>)> done) {
  auto result = std::make_shared<absl::StatusOr<T>>(absl::UnknownError("not run"));
  Submit(
      [fn = std::move(fn), result](common::Database* db) {
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

}  // namespace parc::server::sqlite
