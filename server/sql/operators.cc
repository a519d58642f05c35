#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/software_sets.h"
#include "server/sql/rows.h"
#include "server/sql/scope_sql.h"
#include "server/sql/time_util.h"
#include "server/sql_store.h"

namespace parc::server {

using Statement = sql::Stmt;
using sql::FromUnix;
using sql::Unix;

namespace {

constexpr char kOperatorSelect[] =
    "SELECT id, name, secret_hash, role, scope, created_at, revoked_at FROM operators ";

OperatorRecord OperatorFromRow(const Statement& st) {
  OperatorRecord op;
  op.id = st.Text(0);
  op.name = st.Text(1);
  op.secret_hash = st.Text(2);
  op.role = st.Text(3);
  op.scope = st.Text(4);
  op.created_at = FromUnix(st.Int(5));
  if (!st.IsNull(6)) op.revoked_at = FromUnix(st.Int(6));
  return op;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Operators

void SqlStore::CreateOperator(OperatorRecord op, StoreCallback<bool> done) {
  SubmitFor<bool>(
      [op = std::move(op)](sql::Connection* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(
            Statement st,
            db->Prepare("INSERT INTO operators(id, name, secret_hash, role, scope, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)"));
        absl::Status s =
            st.BindAll(op.id, op.name, op.secret_hash, op.role, op.scope, Unix(op.created_at))
                .Run();
        if (absl::IsFailedPrecondition(s)) {
          return absl::AlreadyExistsError(
              absl::StrCat("an operator named \"", op.name, "\" already exists"));
        }
        PARC_RETURN_IF_ERROR(s);
        return true;
      },
      std::move(done));
}

absl::StatusOr<OperatorRecord> SqlStore::GetOperator(const std::string& id) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare(absl::StrCat(kOperatorSelect, "WHERE id = ?")));
  st.Bind(1, id);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError("operator not found");
  return OperatorFromRow(st);
}

absl::StatusOr<int64_t> SqlStore::CountOperators() {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare("SELECT count(*) FROM operators"));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : 0;
}

absl::StatusOr<std::vector<OperatorRecord>> SqlStore::ListOperators() {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st,
                        db->Prepare(absl::StrCat(kOperatorSelect, "ORDER BY created_at, name")));
  return sql::CollectRows(st, OperatorFromRow);
}

void SqlStore::RevokeOperator(std::string id_or_name, absl::Time now,
                              StoreCallback<OperatorRecord> done) {
  SubmitFor<OperatorRecord>(
      [id_or_name = std::move(id_or_name),
       now](sql::Connection* db) -> absl::StatusOr<OperatorRecord> {
        PARC_ASSIGN_OR_RETURN(
            Statement up, db->Prepare("UPDATE operators SET revoked_at = coalesce(revoked_at, ?1) "
                                      "WHERE id = ?2 OR name = ?2"));
        PARC_RETURN_IF_ERROR(up.BindAll(Unix(now), id_or_name).Run());
        PARC_ASSIGN_OR_RETURN(
            Statement st, db->Prepare(absl::StrCat(kOperatorSelect, "WHERE id = ?1 OR name = ?1")));
        st.Bind(1, id_or_name);
        PARC_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) return absl::NotFoundError(absl::StrCat("no operator \"", id_or_name, "\""));
        return OperatorFromRow(st);
      },
      std::move(done));
}

void SqlStore::AppendAudit(AuditRecord e, StoreCallback<bool> done) {
  SubmitFor<bool>(
      [e = std::move(e)](sql::Connection* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(
            Statement st,
            db->Prepare("INSERT INTO audit(at, operator_id, operator_name, action, target, "
                        "outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"));
        PARC_RETURN_IF_ERROR(st.BindAll(Unix(e.at), e.operator_id, e.operator_name, e.action,
                                        e.target, e.outcome, e.detail.substr(0, 1024))
                                 .Run());
        return true;
      },
      std::move(done));
}

absl::StatusOr<std::vector<AuditRecord>> SqlStore::ListAudit(absl::Time since,
                                                             const std::string& operator_name,
                                                             uint32_t limit) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare("SELECT at, operator_id, operator_name, action, target, outcome, detail "
                  "FROM audit WHERE at >= ?1 AND (?2 = '' OR operator_name = ?2) "
                  "ORDER BY id DESC LIMIT ?3"));
  st.BindAll(Unix(since), operator_name, limit);
  return sql::CollectRows(st, [](const Statement& row) {
    return AuditRecord{FromUnix(row.Int(0)), row.Text(1), row.Text(2), row.Text(3),
                       row.Text(4),          row.Text(5), row.Text(6)};
  });
}

// ---------------------------------------------------------------------------------------------
// Dashboard sessions

void SqlStore::CreateSession(DashboardSession session, absl::Time now, StoreCallback<bool> done) {
  SubmitFor<bool>(
      [session = std::move(session), now](sql::Connection* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(Statement expired,
                              db->Prepare("DELETE FROM dashboard_sessions WHERE expires_at <= ?"));
        PARC_RETURN_IF_ERROR(expired.Bind(1, Unix(now)).Run());
        PARC_ASSIGN_OR_RETURN(
            Statement ins,
            db->Prepare("INSERT INTO dashboard_sessions(id_hash, operator_id, csrf, expires_at) "
                        "VALUES (?, ?, ?, ?)"));
        PARC_RETURN_IF_ERROR(ins.BindAll(session.id_hash, session.operator_id, session.csrf,
                                         Unix(session.expires_at))
                                 .Run());
        return true;
      },
      std::move(done));
}

absl::StatusOr<DashboardSession> SqlStore::GetSession(const std::string& id_hash, absl::Time now) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st,
                        db->Prepare("SELECT operator_id, csrf, expires_at FROM dashboard_sessions "
                                    "WHERE id_hash = ? AND expires_at > ?"));
  st.BindAll(id_hash, Unix(now));
  PARC_ASSIGN_OR_RETURN(bool found, st.Step());
  if (!found) return absl::NotFoundError("no such session");
  return DashboardSession{id_hash, st.Text(0), st.Text(1), FromUnix(st.Int(2))};
}

void SqlStore::DeleteSession(std::string id_hash, StoreCallback<bool> done) {
  SubmitFor<bool>(
      [id_hash = std::move(id_hash)](sql::Connection* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(Statement del,
                              db->Prepare("DELETE FROM dashboard_sessions WHERE id_hash = ?"));
        PARC_RETURN_IF_ERROR(del.Bind(1, id_hash).Run());
        return db->Changes() > 0;
      },
      std::move(done));
}

}  // namespace parc::server
