#include "server/postgres/connection.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace parc::server::pg {

std::string Result::Text(int row, int col) const {
  return std::string(PQgetvalue(res_.get(), row, col),
                     static_cast<size_t>(PQgetlength(res_.get(), row, col)));
}

int64_t Result::Int(int row, int col) const {
  int64_t v = 0;
  const char* text = PQgetvalue(res_.get(), row, col);
  // Booleans come as "t"/"f".
  if (text[0] == 't' && text[1] == '\0') return 1;
  if (!absl::SimpleAtoi(text, &v)) {
    double d = 0;
    if (absl::SimpleAtod(text, &d)) return static_cast<int64_t>(d);
  }
  return v;
}

double Result::Double(int row, int col) const {
  double v = 0;
  (void)absl::SimpleAtod(PQgetvalue(res_.get(), row, col), &v);
  return v;
}

std::string Result::Bytes(int row, int col) const {
  size_t n = 0;
  unsigned char* raw =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(res_.get(), row, col)), &n);
  if (raw == nullptr) return std::string();
  std::string out(reinterpret_cast<const char*>(raw), n);
  PQfreemem(raw);
  return out;
}

int64_t Result::affected() const {
  int64_t n = 0;
  (void)absl::SimpleAtoi(PQcmdTuples(res_.get()), &n);
  return n;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("postgresql: out of memory");
  std::string where =
      absl::StrCat(PQuser(conn), "@", PQhost(conn), ":", PQport(conn), "/", PQdb(conn));
  if (PQstatus(conn) != CONNECTION_OK) {
    absl::Status status = absl::UnavailableError(absl::StrCat(
        "postgresql (", where,
        "): cannot connect: ", absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn))));
    status.SetPayload(common::kStorageErrorPayload, absl::Cord("connect"));
    PQfinish(conn);
    return status;
  }
  std::unique_ptr<Connection> c(new Connection(conn, std::move(where)));
  // Times in Unix seconds, text in UTF-8, no notices on the log for every IF NOT EXISTS.
  PARC_RETURN_IF_ERROR(
      c->Run("SET client_encoding = 'UTF8'; SET client_min_messages = warning; "
             "SET TIME ZONE 'UTC'"));
  return c;
}

Connection::~Connection() { PQfinish(conn_); }

absl::Status Connection::Reset() {
  PQreset(conn_);
  prepared_.clear();
  lost_ = false;
  if (PQstatus(conn_) != CONNECTION_OK) return Error(nullptr, "reconnect");
  return Run(
      "SET client_encoding = 'UTF8'; SET client_min_messages = warning; "
      "SET TIME ZONE 'UTC'");
}

absl::Status Connection::Error(const PGresult* res, absl::string_view context) const {
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  std::string message(
      absl::StripTrailingAsciiWhitespace(res ? PQresultErrorMessage(res) : PQerrorMessage(conn_)));
  if (message.empty()) message = PQerrorMessage(conn_);
  std::string msg = absl::StrCat("postgresql (", where_, "): ", message,
                                 sqlstate.empty() ? "" : absl::StrCat(" [", sqlstate, "]"),
                                 " in: ", context.substr(0, 200));
  absl::Status status;
  const std::string cls = sqlstate.substr(0, 2);
  if (cls == "23") return absl::FailedPreconditionError(msg);  // a constraint: the request
  if (sqlstate.empty() || PQstatus(conn_) != CONNECTION_OK || cls == "08" || cls == "57" ||
      cls == "40") {
    // Lost connection, server shutting down, serialization failure or deadlock: try again.
    status = absl::UnavailableError(msg);
    if (cls != "40") lost_ = true;
  } else if (cls == "53") {
    status = absl::ResourceExhaustedError(msg);  // disk full, out of memory, connections
  } else if (cls == "58") {
    status = absl::InternalError(msg);  // I/O error
  } else if (sqlstate == "XX001" || sqlstate == "XX002") {
    status = absl::DataLossError(msg);
  } else {
    return absl::InternalError(msg);  // the SQL itself
  }
  status.SetPayload(common::kStorageErrorPayload,
                    absl::Cord(sqlstate.empty() ? "connection" : sqlstate));
  return status;
}

absl::StatusOr<Result> Connection::Exec(absl::string_view sql, const std::vector<Param>& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = absl::StrCat("p", prepared_.size());
    std::string text(sql);
    PGresult* res =
        PQprepare(conn_, name.c_str(), text.c_str(), static_cast<int>(params.size()), nullptr);
    Result owner(res);
    if (res == nullptr || PQresultStatus(res) != PGRES_COMMAND_OK) return Error(res, sql);
    it = prepared_.emplace(std::move(text), std::move(name)).first;
  }
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size()), formats(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    values[i] = p.value_.has_value() ? p.value_->data() : nullptr;
    lengths[i] = p.value_.has_value() ? static_cast<int>(p.value_->size()) : 0;
    formats[i] = p.binary_ ? 1 : 0;
  }
  PGresult* res = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(params.size()),
                                 values.data(), lengths.data(), formats.data(), 0);
  Result result(res);
  if (res == nullptr) return Error(nullptr, sql);
  const auto rs = PQresultStatus(res);
  if (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK) return Error(res, sql);
  return result;
}

absl::Status Connection::Run(absl::string_view sql) {
  std::string text(sql);
  PGresult* res = PQexec(conn_, text.c_str());
  Result owner(res);
  if (res == nullptr) return Error(nullptr, sql);
  const auto rs = PQresultStatus(res);
  if (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK) return Error(res, sql);
  return absl::OkStatus();
}

absl::Status Connection::ReadNotifications(
    const std::function<void(const std::string&, const std::string&)>& handle) {
  if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK) {
    lost_ = true;
    return Error(nullptr, "waiting for notifications");
  }
  while (PGnotify* n = PQnotifies(conn_)) {
    std::string channel = n->relname, payload = n->extra;
    PQfreemem(n);
    handle(channel, payload);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> SchemaVersion(Connection* db) {
  PARC_RETURN_IF_ERROR(
      db->Run("CREATE TABLE IF NOT EXISTS parc_schema (version integer NOT NULL)"));
  PARC_ASSIGN_OR_RETURN(Result r, db->Exec("SELECT coalesce(max(version), 0) FROM parc_schema"));
  return static_cast<int>(r.Int(0, 0));
}

absl::Status Migrate(Connection* db, const std::vector<common::Migration>& migrations) {
  // One node migrates; the others wait on the lock, then find nothing left to do.
  PARC_RETURN_IF_ERROR(db->Run("SELECT pg_advisory_lock(7061726300)"));
  auto unlock = [db](absl::Status s) {
    (void)db->Run("SELECT pg_advisory_unlock(7061726300)");
    return s;
  };
  absl::StatusOr<int> current = SchemaVersion(db);
  if (!current.ok()) return unlock(current.status());
  const int newest = migrations.empty() ? 0 : migrations.back().version;
  if (*current > newest) {
    return unlock(absl::FailedPreconditionError(
        absl::StrCat("postgresql (", db->where(), "): schema version ", *current,
                     " is newer than this program's (", newest, "): use the newer parc-server")));
  }
  for (const auto& m : migrations) {
    if (m.version <= *current) continue;
    absl::Status s = db->Run(absl::StrCat("BEGIN;\n", m.sql, "\nINSERT INTO parc_schema VALUES (",
                                          m.version, ");\nCOMMIT;"));
    if (!s.ok()) {
      (void)db->Run("ROLLBACK");
      return unlock(
          absl::Status(s.code(), absl::StrCat("migration ", m.version, ": ", s.message())));
    }
  }
  return unlock(absl::OkStatus());
}

}  // namespace parc::server::pg
