#include "server/sqlite/connection.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "server/sql/health_sql.h"

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

namespace {

absl::string_view ValueText(sqlite3_value* v) {
  const unsigned char* p = sqlite3_value_text(v);
  if (p == nullptr) return "";  // a device without an establishment: '' as in health_tally
  return absl::string_view(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_value_bytes(v)));
}

// parc_health_count(n, uai, battery, firmware year, operating system): n devices (1: a row
// inserted, -1: a row deleted) under each family's value. parc_health_moved(old uai, its three
// values, new uai, its three values): a row updated, one device less under each old value that
// changed (or all of them when the establishment did) and one more under the new. Called by
// the TEMP triggers of KeepHealthCounts; what they add waits in the connection's pending
// changes until the transaction commits.
void HealthCountFunction(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  auto* pending = static_cast<sql::PendingHealthChanges*>(sqlite3_user_data(ctx));
  constexpr int kFamilies = 3;
  if (argc == 2 + kFamilies) {
    const int64_t n = sqlite3_value_int64(argv[0]);
    const absl::string_view uai = ValueText(argv[1]);
    for (int f = 0; f < kFamilies; ++f) {
      pending->Add(uai, sql::kInventoryHealthFamilies[f], sqlite3_value_int64(argv[2 + f]), n);
    }
  } else if (argc == 2 * (1 + kFamilies)) {
    const absl::string_view old_uai = ValueText(argv[0]);
    const absl::string_view new_uai = ValueText(argv[1 + kFamilies]);
    for (int f = 0; f < kFamilies; ++f) {
      const int64_t before = sqlite3_value_int64(argv[1 + f]);
      const int64_t after = sqlite3_value_int64(argv[2 + kFamilies + f]);
      if (old_uai == new_uai && before == after) continue;
      pending->Add(old_uai, sql::kInventoryHealthFamilies[f], before, -1);
      pending->Add(new_uai, sql::kInventoryHealthFamilies[f], after, 1);
    }
  }
  sqlite3_result_null(ctx);
}

// "uai, battery value, firmware year value, operating system value" of row (new, old, d).
std::string HealthArgs(const std::string& row) {
  std::string out = absl::StrCat(row, ".uai");
  for (auto f : sql::kInventoryHealthFamilies)
    absl::StrAppend(&out, ", ", sql::HealthValue(f, row));
  return out;
}

}  // namespace

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

absl::Status Connection::KeepHealthCounts(std::shared_ptr<sql::HealthCounts> counts) {
  // The counts as the devices table has them: one scan (about 0.7 s at 300,000 devices).
  std::string values;
  for (auto f : sql::kInventoryHealthFamilies)
    absl::StrAppend(&values, ", ", sql::HealthValue(f, "d"));
  PARC_ASSIGN_OR_RETURN(
      common::Statement scan,
      db_->Prepare(absl::StrCat("SELECT coalesce(d.uai, '')", values,
                                ", count(*) FROM devices d GROUP BY 1, 2, 3, 4")));
  std::vector<sql::HealthCounts::Change> all;
  while (true) {
    PARC_ASSIGN_OR_RETURN(bool row, scan.Step());
    if (!row) break;
    const std::string uai = scan.Text(0);
    for (size_t f = 0; f < std::size(sql::kInventoryHealthFamilies); ++f) {
      all.push_back(sql::HealthCounts::Change{uai, sql::kInventoryHealthFamilies[f],
                                              scan.Int(static_cast<int>(1 + f)), scan.Int(4)});
    }
  }
  counts->Reset(all);
  for (const auto& [name, args] :
       {std::make_pair("parc_health_count", 5), std::make_pair("parc_health_moved", 8)}) {
    int rc = sqlite3_create_function_v2(db_->raw(), name, args, SQLITE_UTF8, &pending_health_,
                                        HealthCountFunction, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return db_->Error(rc, name);
  }
  std::string changed = "old.uai IS NOT new.uai";
  for (auto f : sql::kInventoryHealthFamilies) {
    absl::StrAppend(&changed, " OR ", sql::HealthValue(f, "old"),
                    " != ", sql::HealthValue(f, "new"));
  }
  PARC_RETURN_IF_ERROR(db_->Exec(
      absl::StrCat("CREATE TEMP TRIGGER health_counts_insert AFTER INSERT ON main.devices BEGIN\n"
                   "  SELECT parc_health_count(1, ",
                   HealthArgs("new"),
                   ");\nEND;\n"
                   "CREATE TEMP TRIGGER health_counts_delete AFTER DELETE ON main.devices BEGIN\n"
                   "  SELECT parc_health_count(-1, ",
                   HealthArgs("old"),
                   ");\nEND;\n"
                   "CREATE TEMP TRIGGER health_counts_update AFTER UPDATE OF uai, battery_health, "
                   "firmware_year, os_id, win11 ON main.devices WHEN ",
                   changed, " BEGIN\n  SELECT parc_health_moved(", HealthArgs("old"), ", ",
                   HealthArgs("new"), ");\nEND;\n")));
  health_counts_ = std::move(counts);
  return absl::OkStatus();
}

void Connection::WriteStarted() {
  pending_health_.MarkWrite();
  found_mark_ = found_sets_.size();
}

void Connection::WriteUndone() {
  pending_health_.UndoWrite();
  found_sets_.resize(found_mark_);
}

void Connection::Committed() {
  if (health_counts_ != nullptr) {
    pending_health_.Commit(health_counts_.get());
  } else {
    pending_health_.Drop();
  }
  if (known_sets_.size() + found_sets_.size() > kMaxKnownSets) known_sets_.clear();
  for (std::string& hash : found_sets_) known_sets_.insert(std::move(hash));
  found_sets_.clear();
  found_mark_ = 0;
}

void Connection::RolledBack() {
  pending_health_.Drop();
  found_sets_.clear();
  found_mark_ = 0;
}

void Connection::ForgetSoftwareSets() {
  known_sets_.clear();
  found_sets_.clear();
  found_mark_ = 0;
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
