#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parc::common {

// Errors of the storage itself (disk full, I/O error, database busy or locked, corrupt or
// unwritable file) carry this payload: the request was fine, the server could not record it
// now. Errors of the request (a constraint) and of the code (SQL) do not.
inline constexpr char kStorageErrorPayload[] = "type.parc.dev/storage-error";
bool IsStorageError(const absl::Status& status);

class Database;

// A prepared statement borrowed from a Database's cache. Reset and unbound when the handle
// is destroyed. Not thread-safe (neither is the Database it comes from).
class Statement {
 public:
  Statement(Database* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement();
  Statement(Statement&& other) noexcept
      : db_(other.db_), stmt_(other.stmt_), stepped_(other.stepped_) {
    other.stmt_ = nullptr;
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;

  // Binds parameter i (1-based). Binding after Step/Run resets the statement first, so one
  // Statement can be bound and run repeatedly in a loop.
  Statement& Bind(int i, int64_t v);
  Statement& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, uint32_t v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, bool v) { return Bind(i, static_cast<int64_t>(v ? 1 : 0)); }
  Statement& Bind(int i, absl::string_view v);
  Statement& Bind(int i, const std::string& v) { return Bind(i, absl::string_view(v)); }
  Statement& Bind(int i, const char* v) { return Bind(i, absl::string_view(v)); }
  Statement& Bind(int i, std::nullopt_t);
  template <typename T>
  Statement& Bind(int i, const std::optional<T>& v) {
    return v.has_value() ? Bind(i, *v) : Bind(i, std::nullopt);
  }
  Statement& BindBlob(int i, absl::string_view v);

  // Binds all parameters in order, starting at 1.
  template <typename... Args>
  Statement& BindAll(const Args&... args) {
    int i = 0;
    (Bind(++i, args), ...);
    return *this;
  }

  // Advances; true when a row is available, false when done.
  [[nodiscard]] absl::StatusOr<bool> Step();
  // Steps until done (for statements without results).
  [[nodiscard]] absl::Status Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const;
  std::string Blob(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB or SQLITE_NULL.
  int Type(int col) const { return sqlite3_column_type(stmt_, col); }

 private:
  void ResetIfStepped();
  Database* db_;
  sqlite3_stmt* stmt_;
  bool stepped_ = false;
};

// One SQLite connection with a cache of prepared statements. Not thread-safe: each thread
// uses its own connection.
class Database {
 public:
  struct Options {
    bool read_only = false;
    // Applied on open: WAL journal, foreign keys, busy timeout.
    int busy_timeout_ms = 5000;
    // synchronous=NORMAL in WAL mode is durable against process crashes; FULL also against
    // power loss. The server uses FULL: a request is acknowledged only once durable.
    bool synchronous_full = true;
    // The caller makes the WAL durable itself, by syncing the WAL file before it acknowledges
    // what was committed: each COMMIT then hands its frames to the file in one write and
    // skips the flush to disk (common/sqlite_wal_writes.cc). Replaces synchronous_full.
    bool wal_synced_by_caller = false;
  };

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path,
                                                                      const Options& options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  [[nodiscard]] absl::Status Exec(absl::string_view sql);
  // Returns a cached prepared statement for sql.
  [[nodiscard]] absl::StatusOr<Statement> Prepare(absl::string_view sql);

  int64_t Changes() const { return sqlite3_changes64(db_); }
  int64_t LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
  sqlite3* raw() const { return db_; }
  const std::string& path() const { return path_; }

  // Status for a failed SQLite call, with the context and SQLite's message.
  absl::Status Error(int rc, absl::string_view context) const;

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
};

namespace internal {
// Once per process, before the first database opens: SQLite's files are opened for random
// access (no readahead) where the platform allows it. Database::Open calls it.
void AdviseRandomAccess();
// Once per process, before SQLite initializes: SQLite's page cache wrapped so that a commit
// after a page split does not walk the whole cache (common/sqlite_pcache.cc). False when
// SQLite was already initialized (its own cache then, unchanged). Database::Open calls it.
bool WrapPageCache();
// Since the process started: truncations of page caches passed on to SQLite's and skipped by
// the wrapper (nothing to drop), and pages that a B-tree balance parked on the spare number.
struct PageCacheCounts {
  uint64_t forwarded = 0;
  uint64_t skipped = 0;
  uint64_t spare_swaps = 0;
};
PageCacheCounts PageCacheCountsNow();
// The VFS of Options::wal_synced_by_caller, registered on first use (nullptr if it cannot be).
const char* CombinedWalVfs();
// Since the process started, through that VFS: writes handed to WAL files, WAL frames written
// by SQLite, commits' syncs skipped and other syncs passed on.
struct WalWriteCounts {
  uint64_t file_writes = 0;
  uint64_t frames = 0;
  uint64_t syncs_skipped = 0;
  uint64_t syncs_passed = 0;
};
WalWriteCounts WalWriteCountsNow();
}  // namespace internal

// A schema migration: SQL executed once, in order, tracked with PRAGMA user_version.
struct Migration {
  int version;
  const char* sql;
};

// Applies the migrations newer than the database's user_version, each in its own
// transaction. FAILED_PRECONDITION when the file comes from a newer program.
[[nodiscard]] absl::Status Migrate(Database* db, const std::vector<Migration>& migrations);

[[nodiscard]] absl::StatusOr<int> SchemaVersion(Database* db);

}  // namespace parc::common
