#include "server/sqlite/engine.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/logging.h"
#include "common/sqlite.h"
#include "common/status_macros.h"
#include "server/sqlite/connection.h"

namespace parc::server::sqlite {
namespace {

using common::Database;

// Checkpoints (copying the WAL back into the database file, with its fsync) run on their own
// connection and thread, every checkpoint_pages of WAL, not in the writer's commit path where
// they held up every request of the batch behind them for tens of milliseconds (the WAL hook
// replaces SQLite's automatic checkpoint). SQLite reuses the WAL from its start only when a
// write transaction begins on a fully checkpointed WAL, which a background checkpoint racing
// the next batch never leaves: so once the WAL reaches wal_restart_pages, the writer itself
// copies the frames committed since the last background checkpoint, between two batches (a
// pause of one fsync, a few milliseconds, every few seconds under load), and the WAL restarts
// and is truncated back to journal_size_limit.
class Checkpointer final : public sql::Engine::Hooks {
 public:
  Checkpointer(Database* writer, std::unique_ptr<Database> own, int checkpoint_pages,
               int wal_restart_pages)
      : writer_(writer),
        db_(std::move(own)),
        checkpoint_pages_(checkpoint_pages),
        wal_restart_pages_(wal_restart_pages),
        wal_path_(sqlite3_filename_wal(sqlite3_db_filename(writer->raw(), "main"))) {
    sqlite3_wal_hook(
        writer_->raw(),
        [](void* self, sqlite3*, const char*, int pages) {
          static_cast<Checkpointer*>(self)->OnWalCommit(pages);
          return SQLITE_OK;
        },
        this);
    thread_ = std::thread([this] { Loop(); });
  }

  void BeforeBatch(sql::Connection*) override {
    if (!finish_.exchange(false)) return;
    // The background checkpoint copied the bulk; the frames committed since are few.
    int rc = sqlite3_wal_checkpoint_v2(writer_->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                       nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      spdlog::warn("store: checkpoint failed: {}", writer_->Error(rc, "checkpoint").message());
    }
    busy_ = false;
  }

  void Stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    sqlite3_wal_hook(writer_->raw(), nullptr, nullptr);
    if (wal_fd_ >= 0) close(wal_fd_);
    wal_fd_ = -1;
  }

  uint64_t checkpoints() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return checkpoints_;
  }

  // The writer's COMMIT writes the WAL frames without flushing them to disk
  // (Database::Options::wal_synced_by_caller). Flushing the WAL file makes every transaction
  // committed before durable (SQLite's own FULL does the same flush inside each COMMIT,
  // holding the writer). A WAL that SQLite replaced (a new inode under the same name) is opened
  // again; the first time, its directory is flushed too, as SQLite does for a file it created.
  absl::Status MakeDurable() override {
    struct stat by_name {};
    if (wal_fd_ >= 0 && (stat(wal_path_.c_str(), &by_name) != 0 || by_name.st_ino != held_.st_ino ||
                         by_name.st_dev != held_.st_dev)) {
      close(wal_fd_);
      wal_fd_ = -1;
    }
    if (wal_fd_ < 0) {
      wal_fd_ = open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (wal_fd_ < 0) return FlushError("open");
      if (fstat(wal_fd_, &held_) != 0) return FlushError("inspect");
      const std::string dir = std::filesystem::path(wal_path_).parent_path().string();
      const int dir_fd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir_fd < 0) return FlushError("open the directory of");
      const int rc = fsync(dir_fd);
      close(dir_fd);
      if (rc != 0) return FlushError("flush the directory of");
    }
    if (fdatasync(wal_fd_) != 0) return FlushError("flush");
    return absl::OkStatus();
  }

 private:
  absl::Status FlushError(absl::string_view what) const {
    absl::Status status = absl::UnavailableError(absl::StrCat(
        "sqlite: cannot ", what, " the write-ahead log ", wal_path_, ": ", std::strerror(errno)));
    status.SetPayload(common::kStorageErrorPayload, absl::Cord(std::strerror(errno)));
    return status;
  }

  // The writer's WAL hook: wakes the checkpointer once the WAL is large enough.
  void OnWalCommit(int pages) {
    if (pages < mark_) mark_ = 0;  // the WAL restarted
    // One checkpoint at a time: a checkpointer running again while the writer tries to
    // restart the WAL would hold the locks the restart needs.
    if (pages - mark_ < checkpoint_pages_ || busy_.exchange(true)) return;
    mark_ = pages;
    {
      std::lock_guard<std::mutex> lock(mu_);
      wanted_ = true;
      restart_wanted_ = pages >= wal_restart_pages_;
    }
    cv_.notify_one();
  }

  void Loop() {
    pthread_setname_np(pthread_self(), "parc-checkpoint");
    while (true) {
      bool restart = false;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || wanted_; });
        if (stop_) return;
        wanted_ = false;
        restart = restart_wanted_;
      }
      // PASSIVE: copies what no reader still needs, never waits for the writer or readers.
      int rc = sqlite3_wal_checkpoint_v2(db_->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                         nullptr);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        spdlog::warn("store: checkpoint failed: {}", db_->Error(rc, "checkpoint").message());
        busy_ = false;
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++checkpoints_;
      }
      if (restart) {
        finish_ = true;  // the writer finishes it and clears busy_
      } else {
        busy_ = false;
      }
    }
  }

  Database* writer_;
  std::unique_ptr<Database> db_;
  const int checkpoint_pages_;
  const int wal_restart_pages_;
  const std::string wal_path_;
  int wal_fd_ = -1;      // the answerer thread's (MakeDurable), then Stop's
  struct stat held_ {};  // wal_fd_'s file, as it was opened
  int mark_ = 0;         // WAL size at the last checkpoint request (writer thread only)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false;          // guarded by mu_
  bool restart_wanted_ = false;  // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  uint64_t checkpoints_ = 0;     // guarded by mu_
  // Set by the checkpointer, taken by the writer.
  std::atomic<bool> finish_{false};
  // From the wake-up of the checkpointer to the writer's end of that checkpoint.
  std::atomic<bool> busy_{false};
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<sql::Engine>> OpenEngine(
    const EngineOptions& options, const std::vector<common::Migration>& migrations) {
  Database::Options wopts;
  // The writer's COMMIT does not flush the WAL: the engine's answerer does, once for every
  // batch committed since its last flush, before any of their callbacks (MakeDurable). Its
  // COMMIT writes the batch's frames in writes of up to 128 KiB rather than two per page.
  Database::Options writer_opts = wopts;
  writer_opts.wal_synced_by_caller = true;
  PARC_ASSIGN_OR_RETURN(auto writer, Database::Open(options.path, writer_opts));
  PARC_RETURN_IF_ERROR(common::Migrate(writer.get(), migrations));
  PARC_RETURN_IF_ERROR(writer->Exec(absl::StrCat(
      "PRAGMA journal_size_limit=", int64_t{options.wal_restart_pages} * 4096 + (4 << 20))));
  // Each write of a batch runs in a savepoint, whose journal keeps the pages it changes: SQLite's
  // default, in memory up to 64 KiB, then in a temporary file. Not temp_store=MEMORY: its
  // journal is a list of 1 KiB blocks that the end of each statement walks from the start, so a
  // large write cost the square of its size (a flush of 4,096 first check-ins of the day:
  // ~100 us of writer per check-in, docs/performance.md).
  // The writer's page cache: 128 MiB, where SQLite's default of 2 MiB made it read most pages of
  // a later inventory (devices row, history index) from the file again. No other connection
  // writes, so its cache stays valid from one transaction to the next; the readers' do not
  // (any commit empties them), and they keep the default.
  PARC_RETURN_IF_ERROR(writer->Exec("PRAGMA cache_size=-131072"));
  PARC_ASSIGN_OR_RETURN(auto checkpointer, Database::Open(options.path, wopts));
  std::vector<std::unique_ptr<sql::Connection>> readers;
  for (int i = 0; i < options.readers; ++i) {
    PARC_ASSIGN_OR_RETURN(auto reader, Database::Open(options.path, wopts));
    PARC_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only=1"));
    readers.push_back(std::make_unique<Connection>(std::move(reader)));
  }
  Database* raw_writer = writer.get();
  // The health counts an inventory changes live in this process, the database's only writer
  // (sql::HealthCounts): rebuilt here, then kept by the writer's connection.
  auto writer_connection = std::make_unique<Connection>(std::move(writer));
  std::shared_ptr<sql::HealthCounts> health_counts;
  if (options.health_counts) {
    health_counts = std::make_shared<sql::HealthCounts>();
    PARC_RETURN_IF_ERROR(writer_connection->KeepHealthCounts(health_counts));
  }
  auto hooks = std::make_unique<Checkpointer>(raw_writer, std::move(checkpointer),
                                              options.checkpoint_pages, options.wal_restart_pages);
  sql::Engine::Options eopts;
  eopts.max_batch = options.max_batch;
  eopts.max_queued_writes = options.max_queued_writes;
  eopts.begin = "BEGIN IMMEDIATE";
  auto engine = std::make_unique<sql::Engine>(eopts, std::move(writer_connection),
                                              std::move(readers), std::move(hooks));
  engine->set_health_counts(std::move(health_counts));
  return engine;
}

}  // namespace parc::server::sqlite
