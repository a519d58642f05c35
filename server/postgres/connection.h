#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sqlite.h"

// A thin layer over libpq for the PostgreSQL store: statements with typed parameters,
// prepared once per connection, results read by row and column, and errors as absl::Status
// (errors of the storage itself carry common::kStorageErrorPayload, as SQLite's do).
namespace parc::server::pg {

// One parameter of a statement: text, an integer, a boolean, bytes (bytea) or NULL.
class Param {
 public:
  Param(std::nullopt_t) {}                          // NOLINT(google-explicit-constructor): NULL
  Param(int64_t v) : value_(std::to_string(v)) {}   // NOLINT
  Param(int v) : value_(std::to_string(v)) {}       // NOLINT
  Param(uint32_t v) : value_(std::to_string(v)) {}  // NOLINT
  Param(uint64_t v) : value_(std::to_string(v)) {}  // NOLINT
  Param(bool v) : value_(v ? "1" : "0") {}          // NOLINT: stored as integers 0/1
  Param(std::string v) : value_(std::move(v)) {}    // NOLINT
  Param(absl::string_view v) : value_(std::string(v)) {}  // NOLINT
  Param(const char* v) : value_(std::string(v)) {}        // NOLINT
  template <typename T>
  Param(const std::optional<T>& v) {  // NOLINT
    if (v.has_value()) *this = Param(*v);
  }
  // Bytes for a bytea column, sent as they are.
  static Param Bytes(std::string v) {
    Param p(std::move(v));
    p.binary_ = true;
    return p;
  }

 private:
  friend class Connection;
  std::optional<std::string> value_;
  bool binary_ = false;
};

// The rows of a statement's result (text format).
class Result {
 public:
  explicit Result(PGresult* res) : res_(res, &PQclear) {}
  int rows() const { return PQntuples(res_.get()); }
  int columns() const { return PQnfields(res_.get()); }
  bool IsNull(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
  std::string Text(int row, int col) const;
  int64_t Int(int row, int col) const;
  double Double(int row, int col) const;
  // A bytea column.
  std::string Bytes(int row, int col) const;
  // Rows changed by an INSERT, UPDATE or DELETE.
  int64_t affected() const;

 private:
  std::shared_ptr<PGresult> res_;
};

// One connection. Not thread-safe: each thread uses its own.
class Connection {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& conninfo);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one statement ($1, $2… for the parameters), prepared on first use and kept for the
  // connection's lifetime.
  [[nodiscard]] absl::StatusOr<Result> Exec(absl::string_view sql,
                                            const std::vector<Param>& params = {});
  // Runs SQL text without parameters, several statements allowed (migrations, BEGIN…).
  [[nodiscard]] absl::Status Run(absl::string_view sql);
  // False once the connection to the server was found lost (until Reset).
  bool connected() const { return !lost_ && PQstatus(conn_) == CONNECTION_OK; }
  // Reconnects after the server went away (prepared statements are prepared again).
  [[nodiscard]] absl::Status Reset();
  const std::string& where() const { return where_; }

  // For a connection that LISTENs: its socket (to poll for input), and the notifications that
  // arrived, each passed to handle(channel, payload). UNAVAILABLE once the connection is lost.
  int socket() const { return PQsocket(conn_); }
  [[nodiscard]] absl::Status ReadNotifications(
      const std::function<void(const std::string&, const std::string&)>& handle);

 private:
  Connection(PGconn* conn, std::string where) : conn_(conn), where_(std::move(where)) {}
  absl::Status Error(const PGresult* res, absl::string_view context) const;

  PGconn* conn_;
  std::string where_;
  // Set by Error when the server went away (libpq may still say CONNECTION_OK).
  mutable bool lost_ = false;
  std::map<std::string, std::string, std::less<>> prepared_;  // SQL → statement name
};

// Applies the migrations newer than the database's version (table parc_schema), each in its
// own transaction, holding an advisory lock so that nodes starting together migrate once.
// FAILED_PRECONDITION when the database comes from a newer program.
[[nodiscard]] absl::Status Migrate(Connection* db,
                                   const std::vector<common::Migration>& migrations);
[[nodiscard]] absl::StatusOr<int> SchemaVersion(Connection* db);

}  // namespace parc::server::pg
