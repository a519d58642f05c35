#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/sqlite.h"
#include "server/sql/health_counts.h"
#include "server/sql/sql.h"

namespace parc::server::sqlite {

// A SQLite connection as the store's SQL layer sees it (server/sql/sql.h), with its cache of
// prepared statements.
class Connection final : public sql::Connection {
 public:
  explicit Connection(std::unique_ptr<common::Database> db);
  ~Connection() override;

  absl::StatusOr<sql::Stmt> Prepare(absl::string_view sql) override;
  absl::Status Exec(absl::string_view sql) override;
  absl::Status ExecRepeated(absl::string_view sql) override;
  int64_t Changes() const override { return db_->Changes(); }
  // expr IN (SELECT value FROM json_each(?param)), the parameter a JSON array.
  std::string InList(absl::string_view expr, int param) const override;
  std::string ListParam(const std::set<std::string>& values) const override;
  bool grows_rows_in_place() const override { return true; }
  bool serializes_writes() const override { return true; }
  bool has_rowids() const override { return true; }
  int64_t LastInsertId() const override { return db_->LastInsertRowId(); }

  // The SQLite connection itself (the engine's WAL hook and checkpoints, migrations).
  common::Database* db() const { return db_.get(); }

  // Keeps counts (the writer's connection): rebuilds them from the devices table, then
  // follows every change of a device's establishment, battery, firmware year or operating
  // system through TEMP triggers of this connection only, applied to counts when the
  // transaction commits (Committed) and dropped with a write undone or a rollback.
  [[nodiscard]] absl::Status KeepHealthCounts(std::shared_ptr<sql::HealthCounts> counts);
  void WriteStarted() override;
  void WriteUndone() override;
  void Committed() override;
  void RolledBack() override;
  bool SoftwareSetKnown(const std::string& hash) const override {
    return known_sets_.contains(hash);
  }
  void SoftwareSetFound(const std::string& hash) override { found_sets_.push_back(hash); }
  void ForgetSoftwareSets() override;

  // At most this many known software sets (sql::Connection::SoftwareSetKnown); past it they
  // are forgotten and found again: a fleet of more distinct lists costs lookups, nothing else.
  static constexpr size_t kMaxKnownSets = 1 << 20;

 private:
  class SqliteStatement;
  std::unique_ptr<common::Database> db_;
  std::shared_ptr<sql::HealthCounts> health_counts_;
  sql::PendingHealthChanges pending_health_;
  absl::flat_hash_set<std::string> known_sets_;
  // Noted by the transaction in progress; from found_mark_ on, by its current write.
  std::vector<std::string> found_sets_;
  size_t found_mark_ = 0;
  std::map<std::string, std::unique_ptr<SqliteStatement>, std::less<>> cache_;
};

}  // namespace parc::server::sqlite
