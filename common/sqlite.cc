#include "common/sqlite.h"

#include <mutex>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace parc::common {

Statement::~Statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

void Statement::ResetIfStepped() {
  if (stepped_) {
    sqlite3_reset(stmt_);
    stepped_ = false;
  }
}

Statement& Statement::Bind(int i, int64_t v) {
  ResetIfStepped();
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Statement& Statement::Bind(int i, absl::string_view v) {
  ResetIfStepped();
  sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}

Statement& Statement::Bind(int i, std::nullopt_t) {
  ResetIfStepped();
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Statement& Statement::BindBlob(int i, absl::string_view v) {
  ResetIfStepped();
  sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT);
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  stepped_ = true;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->Error(rc, sqlite3_sql(stmt_));
}

absl::Status Statement::Run() {
  while (true) {
    PARC_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return absl::OkStatus();
  }
}

std::string Statement::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::string Statement::Blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  if (p == nullptr) return "";
  return std::string(static_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

bool IsStorageError(const absl::Status& status) {
  return status.GetPayload(kStorageErrorPayload).has_value();
}

absl::Status Database::Error(int rc, absl::string_view context) const {
  std::string msg = absl::StrCat("sqlite (", path_, "): ", sqlite3_errmsg(db_), " [",
                                 sqlite3_errstr(rc), "] in: ", context.substr(0, 200));
  absl::Status status;
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      return absl::FailedPreconditionError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      status = absl::UnavailableError(msg);
      break;
    case SQLITE_FULL:
      status = absl::ResourceExhaustedError(msg);
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      status = absl::DataLossError(msg);
      break;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      status = absl::PermissionDeniedError(msg);
      break;
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
      status = absl::InternalError(msg);
      break;
    default:
      return absl::InternalError(msg);
  }
  status.SetPayload(kStorageErrorPayload, absl::Cord(sqlite3_errstr(rc)));
  return status;
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path,
                                                         const Options& options) {
  static std::once_flag configured;
  std::call_once(configured, [] {
    // Before SQLite initializes: no count of the memory SQLite holds (nothing here reads it,
    // and keeping it takes a process-wide mutex at every allocation and free, on every
    // connection's thread).
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    (void)internal::WrapPageCache();  // first: what follows initializes SQLite
    internal::AdviseRandomAccess();
  });
  sqlite3* raw = nullptr;
  int flags =
      SQLITE_OPEN_NOMUTEX |
      (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  const char* vfs = nullptr;
  if (options.wal_synced_by_caller) {
    vfs = internal::CombinedWalVfs();
    if (vfs == nullptr) return absl::InternalError("sqlite: cannot register the combined-WAL VFS");
  }
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs);
  std::unique_ptr<Database> db(new Database(raw, path));
  if (rc != SQLITE_OK) {
    if (raw == nullptr) return absl::ResourceExhaustedError("sqlite: out of memory");
    return db->Error(rc, "open");
  }
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  sqlite3_extended_result_codes(raw, 1);
  if (!options.read_only) PARC_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL"));
  PARC_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON"));
  // With wal_synced_by_caller, FULL makes every COMMIT sync the WAL: the VFS writes the
  // commit's frames there, and leaves the flush to disk to the caller.
  PARC_RETURN_IF_ERROR(db->Exec(options.synchronous_full || options.wal_synced_by_caller
                                    ? "PRAGMA synchronous=FULL"
                                    : "PRAGMA synchronous=NORMAL"));
  // Fails early on a file that is not a database.
  PARC_RETURN_IF_ERROR(db->Exec("SELECT count(*) FROM sqlite_schema"));
  return db;
}

Database::~Database() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

absl::Status Database::Exec(absl::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (err != nullptr) sqlite3_free(err);
  if (rc != SQLITE_OK) return Error(rc, sql);
  return absl::OkStatus();
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return Statement(this, it->second);
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, sql);
  cache_.emplace(std::string(sql), stmt);
  return Statement(this, stmt);
}

absl::StatusOr<int> SchemaVersion(Database* db) {
  PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare("PRAGMA user_version"));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::InternalError("PRAGMA user_version returned nothing");
  return static_cast<int>(st.Int(0));
}

absl::Status Migrate(Database* db, const std::vector<Migration>& migrations) {
  PARC_ASSIGN_OR_RETURN(int current, SchemaVersion(db));
  int latest = migrations.empty() ? 0 : migrations.back().version;
  if (current > latest) {
    return absl::FailedPreconditionError(absl::StrCat(db->path(), " has schema version ", current,
                                                      ", newer than this program's ", latest,
                                                      ": upgrade Parc"));
  }
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    PARC_RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE"));
    absl::Status st = db->Exec(m.sql);
    if (st.ok()) st = db->Exec(absl::StrCat("PRAGMA user_version=", m.version));
    if (!st.ok()) {
      (void)db->Exec("ROLLBACK");
      return absl::Status(st.code(), absl::StrCat("migration to schema version ", m.version,
                                                  " failed: ", st.message()));
    }
    PARC_RETURN_IF_ERROR(db->Exec("COMMIT"));
  }
  return absl::OkStatus();
}

}  // namespace parc::common
