#include "server/sqlite/connection.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace parc::server::sqlite {

class Connection::SqliteStatement final : public sql::Statement {
 public:
  SqliteStatement(common::Database* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~SqliteStatement() override { sqlite3_finalize(stmt_); }

  void BindInt(int i, int64_t v) override {
    Restart();
    sqlite3_bind_int64(stmt_, i, v);
  }
  void BindText(int i, absl::string_view v) override {
    Restart();
    sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  }
  void BindBlob(int i, absl::string_view v) override {
    Restart();
    sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT);
  }
  void BindNull(int i) override {
    Restart();
    sqlite3_bind_null(stmt_, i);
  }
  absl::StatusOr<bool> Step() override {
    stepped_ = true;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_->Error(rc, sqlite3_sql(stmt_));
  }
  int64_t Int(int col) const override { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const override { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const override {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    if (p == nullptr) return "";
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  std::string Blob(int col) const override {
    const void* p = sqlite3_column_blob(stmt_, col);
    if (p == nullptr) return "";
    return std::string(static_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  bool IsNull(int col) const override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  void Reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    stepped_ = false;
  }

 private:
  void Restart() {
    if (stepped_) {
      sqlite3_reset(stmt_);
      stepped_ = false;
    }
  }
  common::Database* db_;
  sqlite3_stmt* stmt_;
  bool stepped_ = false;
};

Connection::Connection(std::unique_ptr<common::Database> db) : db_(std::move(db)) {}

Connection::~Connection() { cache_.clear(); }

absl::StatusOr<sql::Stmt> Connection::Prepare(absl::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_->raw(), sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return db_->Error(rc, sql);
    it = cache_.emplace(std::string(sql), std::make_unique<SqliteStatement>(db_.get(), stmt)).first;
  }
  return sql::Stmt(it->second.get());
}

absl::Status Connection::Exec(absl::string_view sql) { return db_->Exec(sql); }

absl::Status Connection::ExecRepeated(absl::string_view sql) {
  // Prepared once and kept, like any statement of Prepare: the writer's savepoints run
  // thousands of times a second.
  PARC_ASSIGN_OR_RETURN(sql::Stmt st, Prepare(sql));
  return st.Run();
}

std::string Connection::InList(absl::string_view expr, int param) const {
  return absl::StrCat(expr, " IN (SELECT value FROM json_each(?", param, "))");
}

std::string Connection::ListParam(const std::set<std::string>& values) const {
  // Values are validated by Scope::Parse (digits, UAIs, a lower-case académie name); quotes
  // and backslashes are escaped all the same.
  std::vector<std::string> quoted;
  for (const auto& v : values) {
    std::string escaped;
    for (char c : v) {
      if (c == '"' || c == '\\') escaped.push_back('\\');
      escaped.push_back(c);
    }
    quoted.push_back(absl::StrCat("\"", escaped, "\""));
  }
  return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
}

}  // namespace parc::server::sqlite
