#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/sqlite.h"
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

  // The SQLite connection itself (the engine's WAL hook and checkpoints, migrations).
  common::Database* db() const { return db_.get(); }

 private:
  class SqliteStatement;
  std::unique_ptr<common::Database> db_;
  std::map<std::string, std::unique_ptr<SqliteStatement>, std::less<>> cache_;
};

}  // namespace parc::server::sqlite
