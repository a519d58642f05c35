#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "server/postgres/connection.h"
#include "server/sql/sql.h"

namespace parc::server::pg {

// A PostgreSQL connection as the store's SQL layer sees it (server/sql/sql.h): ?N and ?
// parameters become $N, statements are prepared once per connection, every parameter is sent
// as text (bytes as bytea) and typed by the server from its context.
class SqlConnection final : public sql::Connection {
 public:
  explicit SqlConnection(std::unique_ptr<pg::Connection> db);
  ~SqlConnection() override;

  absl::StatusOr<sql::Stmt> Prepare(absl::string_view sql) override;
  absl::Status Exec(absl::string_view sql) override { return db_->Run(sql); }
  int64_t Changes() const override { return changes_; }
  // expr = ANY(CAST(?param AS TEXT[])), the parameter an array literal.
  std::string InList(absl::string_view expr, int param) const override;
  std::string ListParam(const std::set<std::string>& values) const override;
  bool has_arrays() const override { return true; }
  // {"a","b\\"c"}: an array literal, each element quoted.
  std::string ArrayParam(const std::vector<std::string>& values) const override;

  // Gathered and sent in one statement before the batch's COMMIT.
  void Notify(absl::string_view channel, absl::string_view message) override;
  absl::Status FlushNotifications() override;
  void DropNotifications() override { notifications_.clear(); }
  // Prefixed to each notification's message, and a space.
  void set_origin(std::string origin) { origin_ = std::move(origin); }

  pg::Connection* db() const { return db_.get(); }

 private:
  class PgStatement;
  std::unique_ptr<pg::Connection> db_;
  int64_t changes_ = 0;
  std::string origin_;
  // (channel, message), each pair once.
  std::set<std::pair<std::string, std::string>> notifications_;
  std::map<std::string, std::unique_ptr<PgStatement>, std::less<>> cache_;
};

// The SQL with SQLite's ?N and ? parameters written as PostgreSQL's $N (string literals and
// quoted identifiers left alone); *count, when given, the highest parameter number.
std::string NumberedParameters(absl::string_view sql, int* count = nullptr);

}  // namespace parc::server::pg
