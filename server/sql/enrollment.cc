#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

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
using sql::kTokenColumns;
using sql::TokenFromRow;
using sql::U32;
using sql::Unix;
using sql::UsableToken;

// ---------------------------------------------------------------------------------------------
// Enrollment tokens

void SqlStore::CreateEnrollmentToken(EnrollmentTokenRecord t, StoreCallback<bool> done) {
  SubmitFor<bool>(
      [t = std::move(t)](sql::Connection* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(
            Statement st,
            db->Prepare("INSERT INTO enrollment_tokens(id, secret_hash, uai, created_at, "
                        "expires_at, max_uses, note, created_by, reenroll) "
                        "VALUES (?, ?, nullif(?, ''), ?, ?, ?, ?, ?, ?)"));
        PARC_RETURN_IF_ERROR(st.BindAll(t.id, t.secret_hash, t.uai, Unix(t.created_at),
                                        Unix(t.expires_at), t.max_uses, t.note, t.created_by,
                                        t.reenroll)
                                 .Run());
        return true;
      },
      std::move(done));
}

namespace {

// Tokens of establishments in scope, and region-wide tokens (uai NULL) for the region scope.
std::string TokenInScope(const sql::Connection& db, const Scope& scope, int param) {
  return absl::StrCat("(", sql::ScopeSql(db, scope, "uai", param), " AND ",
                      scope.is_region() ? "TRUE" : "uai IS NOT NULL", ")");
}

}  // namespace

absl::StatusOr<std::vector<EnrollmentTokenRecord>> SqlStore::ListEnrollmentTokens(
    const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat("SELECT ", kTokenColumns, " FROM enrollment_tokens WHERE ",
                               TokenInScope(*db, scope, 1), " ORDER BY created_at, id")));
  st.Bind(1, sql::ScopeParam(*db, scope));
  return sql::CollectRows(st, TokenFromRow);
}

void SqlStore::RevokeEnrollmentToken(std::string id, Scope scope, absl::Time now,
                                     StoreCallback<EnrollmentTokenRecord> done) {
  SubmitFor<EnrollmentTokenRecord>(
      [id = std::move(id), scope = std::move(scope),
       now](sql::Connection* db) -> absl::StatusOr<EnrollmentTokenRecord> {
        PARC_ASSIGN_OR_RETURN(
            Statement visible,
            db->Prepare(absl::StrCat("SELECT 1 FROM enrollment_tokens WHERE id = ?1 AND ",
                                     TokenInScope(*db, scope, 2))));
        visible.BindAll(id, sql::ScopeParam(*db, scope));
        PARC_ASSIGN_OR_RETURN(bool found, visible.Step());
        if (!found) return absl::NotFoundError(absl::StrCat("no enrollment token with id ", id));
        PARC_ASSIGN_OR_RETURN(Statement up,
                              db->Prepare("UPDATE enrollment_tokens SET revoked_at = ? "
                                          "WHERE id = ? AND revoked_at IS NULL"));
        PARC_RETURN_IF_ERROR(up.BindAll(Unix(now), id).Run());
        PARC_ASSIGN_OR_RETURN(Statement sel,
                              db->Prepare(absl::StrCat("SELECT ", kTokenColumns,
                                                       " FROM enrollment_tokens WHERE id = ?")));
        sel.Bind(1, id);
        PARC_ASSIGN_OR_RETURN(bool row, sel.Step());
        if (!row) return absl::NotFoundError(absl::StrCat("no enrollment token with id ", id));
        return TokenFromRow(sel);
      },
      std::move(done));
}

// ---------------------------------------------------------------------------------------------
// Preassignment

namespace {

// Why a delivery-list row may not be applied with this scope ("" when it may): its
// establishment is outside the scope, or the serial is already delivered to, or enrolled in,
// an establishment the scope does not cover.
absl::StatusOr<std::string> PreassignmentScopeProblem(sql::Connection* db, const Preassignment& p,
                                                      const Scope& scope) {
  if (scope.is_region()) return std::string();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          "SELECT 'target' WHERE NOT ", sql::ScopeSql(*db, scope, "?3", 2),
          " UNION ALL SELECT 'delivered' FROM preassignments WHERE serial = ?1 AND NOT ",
          sql::ScopeSql(*db, scope, "uai", 2),
          " UNION ALL SELECT 'enrolled' FROM devices WHERE serial = ?1 AND uai IS NOT NULL AND "
          "NOT ",
          sql::ScopeSql(*db, scope, "uai", 2), " LIMIT 1")));
  st.BindAll(p.serial, sql::ScopeParam(*db, scope), p.uai);
  PARC_ASSIGN_OR_RETURN(bool found, st.Step());
  if (!found) return std::string();
  if (st.Text(0) == "target") {
    return absl::StrCat("the establishment ", p.uai, " is outside your scope");
  }
  return absl::StrCat("serial ", p.serial, " is ", st.Text(0),
                      " in an establishment outside your scope: only an operator whose scope "
                      "covers both establishments can move it");
}

// A region-wide delivery list on an engine with array parameters (PostgreSQL): the same
// outcome as the row-by-row path below, in a few statements per 5,000 rows instead of five
// round trips per row (a 300,000-line list took over a minute that way, holding the writer).
absl::StatusOr<ImportCounts> UpsertRegionPreassignments(sql::Connection* db,
                                                        const std::vector<Preassignment>& rows,
                                                        absl::Time now) {
  ImportCounts counts;
  // Every establishment must exist; the first row naming an unknown one is the error.
  std::set<std::string> uais;
  for (const auto& p : rows) uais.insert(p.uai);
  PARC_ASSIGN_OR_RETURN(Statement missing,
                        db->Prepare("SELECT u FROM unnest(CAST(?1 AS TEXT[])) AS t(u) WHERE NOT "
                                    "EXISTS (SELECT 1 FROM establishments e WHERE e.uai = t.u)"));
  missing.Bind(1, db->ListParam(uais));
  PARC_ASSIGN_OR_RETURN(std::vector<std::string> unknown,
                        sql::CollectRows(missing, [](const Statement& r) { return r.Text(0); }));
  if (!unknown.empty()) {
    const std::set<std::string> bad(unknown.begin(), unknown.end());
    for (const auto& p : rows) {
      if (bad.count(p.uai)) {
        return absl::FailedPreconditionError(
            absl::StrCat("line ", p.line, ": no establishment with UAI ", p.uai));
      }
    }
  }
  constexpr size_t kChunk = 5000;
  for (size_t start = 0; start < rows.size(); start += kChunk) {
    const size_t end = std::min(rows.size(), start + kChunk);
    std::vector<std::string> serials;
    for (size_t i = start; i < end; ++i) serials.push_back(rows[i].serial);
    PARC_ASSIGN_OR_RETURN(
        Statement cur,
        db->Prepare(
            "SELECT serial, uai FROM preassignments WHERE serial = ANY(CAST(?1 AS TEXT[]))"));
    cur.Bind(1, db->ArrayParam(serials));
    std::map<std::string, std::string> value;
    PARC_RETURN_IF_ERROR(
        sql::ForEachRow(cur, [&](const Statement& r) { value[r.Text(0)] = r.Text(1); }));
    // In file order, as the row-by-row path: the list ends with each serial's last line; a
    // device is placed by its serial's first line.
    std::map<std::string, std::string> written, placed;
    for (size_t i = start; i < end; ++i) {
      const Preassignment& p = rows[i];
      placed.emplace(p.serial, p.uai);
      auto it = value.find(p.serial);
      if (it != value.end() && it->second == p.uai) {
        ++counts.unchanged;
        continue;
      }
      ++(it != value.end() ? counts.updated : counts.inserted);
      value[p.serial] = p.uai;
      written[p.serial] = p.uai;
    }
    auto columns = [db](const std::map<std::string, std::string>& m) {
      std::vector<std::string> s, u;
      for (const auto& [serial, uai] : m) {
        s.push_back(serial);
        u.push_back(uai);
      }
      return std::make_pair(db->ArrayParam(s), db->ArrayParam(u));
    };
    if (!written.empty()) {
      auto [s, u] = columns(written);
      PARC_ASSIGN_OR_RETURN(
          Statement up,
          db->Prepare("INSERT INTO preassignments(serial, uai, updated_at) SELECT s, u, "
                      "CAST(?3 AS BIGINT) FROM unnest(CAST(?1 AS TEXT[]), CAST(?2 AS TEXT[])) "
                      "AS t(s, u) ON CONFLICT(serial) DO UPDATE SET uai = excluded.uai, "
                      "updated_at = excluded.updated_at"));
      PARC_RETURN_IF_ERROR(up.BindAll(s, u, Unix(now)).Run());
    }
    auto [s, u] = columns(placed);
    PARC_ASSIGN_OR_RETURN(
        Statement place,
        db->Prepare("UPDATE devices SET uai = t.u FROM unnest(CAST(?1 AS TEXT[]), "
                    "CAST(?2 AS TEXT[])) AS t(s, u) WHERE devices.serial = t.s AND "
                    "devices.uai IS NULL"));
    PARC_RETURN_IF_ERROR(place.BindAll(s, u).Run());
    counts.placed_devices += U32(db->Changes());
  }
  return counts;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>> SqlStore::PreassignmentsOutOfScope(
    const std::vector<Preassignment>& rows, const Scope& scope) {
  std::vector<std::pair<uint32_t, std::string>> out;
  if (scope.is_region()) return out;
  ReaderLease db = AcquireReader();
  for (const auto& p : rows) {
    PARC_ASSIGN_OR_RETURN(std::string problem, PreassignmentScopeProblem(db.get(), p, scope));
    if (!problem.empty()) out.emplace_back(p.line, std::move(problem));
  }
  return out;
}

void SqlStore::UpsertPreassignments(std::vector<Preassignment> rows, absl::Time now, Scope scope,
                                    StoreCallback<ImportCounts> done) {
  SubmitFor<ImportCounts>(
      [rows = std::move(rows), now,
       scope = std::move(scope)](sql::Connection* db) -> absl::StatusOr<ImportCounts> {
        ImportCounts counts;
        if (db->has_arrays() && scope.is_region()) {
          PARC_ASSIGN_OR_RETURN(counts, UpsertRegionPreassignments(db, rows, now));
          db->Notify(kCacheChannel, "devices");
          return counts;
        }
        for (const auto& p : rows) {
          PARC_ASSIGN_OR_RETURN(std::string problem, PreassignmentScopeProblem(db, p, scope));
          if (!problem.empty()) {
            return absl::FailedPreconditionError(absl::StrCat("line ", p.line, ": ", problem));
          }
          PARC_ASSIGN_OR_RETURN(Statement est,
                                db->Prepare("SELECT 1 FROM establishments WHERE uai = ?"));
          est.Bind(1, p.uai);
          PARC_ASSIGN_OR_RETURN(bool known, est.Step());
          if (!known) {
            return absl::FailedPreconditionError(
                absl::StrCat("line ", p.line, ": no establishment with UAI ", p.uai));
          }
          PARC_ASSIGN_OR_RETURN(Statement sel,
                                db->Prepare("SELECT uai FROM preassignments WHERE serial = ?"));
          sel.Bind(1, p.serial);
          PARC_ASSIGN_OR_RETURN(bool exists, sel.Step());
          if (exists && sel.Text(0) == p.uai) {
            ++counts.unchanged;
          } else {
            PARC_ASSIGN_OR_RETURN(
                Statement up,
                db->Prepare("INSERT INTO preassignments(serial, uai, updated_at) VALUES (?1, ?2, "
                            "?3) ON CONFLICT(serial) DO UPDATE SET uai = ?2, updated_at = ?3"));
            PARC_RETURN_IF_ERROR(up.BindAll(p.serial, p.uai, Unix(now)).Run());
            if (exists) {
              ++counts.updated;
            } else {
              ++counts.inserted;
            }
          }
          PARC_ASSIGN_OR_RETURN(
              Statement place,
              db->Prepare("UPDATE devices SET uai = ? WHERE serial = ? AND uai IS NULL"));
          PARC_RETURN_IF_ERROR(place.BindAll(p.uai, p.serial).Run());
          counts.placed_devices += U32(db->Changes());
        }
        db->Notify(kCacheChannel, "devices");
        return counts;
      },
      [this, done = std::move(done)](absl::StatusOr<ImportCounts> r) {
        cache_.InvalidateDevices();  // devices placed in an establishment
        done(std::move(r));
      });
}

// ---------------------------------------------------------------------------------------------
// Devices

void SqlStore::Enroll(EnrollInput in, StoreCallback<EnrollOutcome> done) {
  std::string current = in.current_device_id;
  SubmitFor<EnrollOutcome>(
      [in = std::move(in)](sql::Connection* db) -> absl::StatusOr<EnrollOutcome> {
        PARC_ASSIGN_OR_RETURN(EnrollmentTokenRecord token,
                              UsableToken(db, in.token_id, in.token_secret_hash, in.now));

        // Where a new device goes: the token's establishment, else the supplier's delivery
        // list.
        std::string uai = token.uai;
        std::string delivered_to;
        if (!in.serial.empty()) {
          PARC_ASSIGN_OR_RETURN(Statement pre,
                                db->Prepare("SELECT uai FROM preassignments WHERE serial = ?"));
          pre.Bind(1, in.serial);
          PARC_ASSIGN_OR_RETURN(bool has, pre.Step());
          if (has) delivered_to = pre.Text(0);
        }
        if (uai.empty()) uai = delivered_to;

        EnrollOutcome out;
        PARC_ASSIGN_OR_RETURN(
            Statement existing,
            db->Prepare("SELECT id, coalesce(uai, ''), kind_source, secret_hash FROM devices "
                        "WHERE hw_key = ?"));
        existing.Bind(1, in.hw_key);
        PARC_ASSIGN_OR_RETURN(bool known, existing.Step());
        const int64_t now = Unix(in.now);
        const std::string kind_source = in.kind_from_technician ? "technician" : "detected";
        if (known) {
          out.device_id = existing.Text(0);
          out.reenrolled = true;
          const std::string current_uai = existing.Text(1);
          // Re-keying an enrolled device locks its current agent out: only the device itself
          // (its credential) or a technician's re-enrollment token may do it.
          const bool holds_credential =
              in.current_device_id == out.device_id && !in.current_secret_hash.empty() &&
              common::ConstantTimeEquals(existing.Text(3), in.current_secret_hash);
          const bool approved = token.reenroll && (token.uai.empty() || token.uai == current_uai);
          if (!holds_credential && !approved) {
            return absl::PermissionDeniedError(absl::StrCat(
                "this hardware is already enrolled as device ", out.device_id,
                ": enrolling it again needs its current credential (the agent's state) or a "
                "re-enrollment token from a technician of its establishment (parcctl tokens "
                "create --uai <its UAI> --reenroll)"));
          }
          // A re-enrollment never moves a device: it stays where it is (delivery lists and
          // operators move devices). An unassigned device takes its delivery-list place.
          uai = current_uai.empty() ? delivered_to : current_uai;
          bool keep_kind = !in.kind_from_technician && existing.Text(2) == "technician";
          PARC_ASSIGN_OR_RETURN(
              Statement up,
              db->Prepare("UPDATE devices SET secret_hash = ?1, uai = nullif(?2, ''), "
                          "kind = CASE WHEN ?3 THEN kind ELSE ?4 END, "
                          "kind_source = CASE WHEN ?3 THEN kind_source ELSE ?5 END, "
                          "hostname = ?6, agent_version = ?7, last_enrolled_at = ?8, "
                          "enroll_count = enroll_count + 1, token_id = ?9, serial = ?10, "
                          "inventory_hash = '' WHERE id = ?11"));
          PARC_RETURN_IF_ERROR(up.BindAll(in.secret_hash, uai, keep_kind,
                                          static_cast<int64_t>(in.kind), kind_source, in.hostname,
                                          in.agent_version, now, token.id, in.serial, out.device_id)
                                   .Run());
        } else {
          out.device_id = in.new_device_id;
          // Where rows grow in their page, the row is born with room for its first inventory
          // (kDeviceRowRoom), which gives it back.
          static constexpr char kColumns[] =
              "INSERT INTO devices(id, secret_hash, hw_key, serial, uai, kind, kind_source, "
              "hostname, agent_version, enrolled_at, last_enrolled_at, token_id";
          static constexpr char kValues[] =
              ") VALUES (?1, ?2, ?3, ?4, nullif(?5, ''), ?6, ?7, ?8, ?9, ?10, ?10, ?11";
          static const std::string kInsert = absl::StrCat(kColumns, kValues, ")");
          static const std::string kInsertWithRoom =
              absl::StrCat(kColumns, ", room", kValues, ", zeroblob(?12))");
          const bool room = db->grows_rows_in_place();
          PARC_ASSIGN_OR_RETURN(Statement ins, db->Prepare(room ? kInsertWithRoom : kInsert));
          ins.BindAll(out.device_id, in.secret_hash, in.hw_key, in.serial, uai,
                      static_cast<int64_t>(in.kind), kind_source, in.hostname, in.agent_version,
                      now, token.id);
          if (room) ins.Bind(12, sql::kDeviceRowRoom);
          PARC_RETURN_IF_ERROR(ins.Run());
        }
        // Conditional: with several nodes, another one may have taken the last use since the
        // token was read (the row's lock orders the two; the second finds none left).
        PARC_ASSIGN_OR_RETURN(Statement use,
                              db->Prepare("UPDATE enrollment_tokens SET uses = uses + 1 "
                                          "WHERE id = ? AND (max_uses = 0 OR uses < max_uses)"));
        PARC_RETURN_IF_ERROR(use.Bind(1, token.id).Run());
        if (db->Changes() == 0) {
          return absl::PermissionDeniedError(absl::StrCat("enrollment token ", token.id,
                                                          " has already been used ", token.max_uses,
                                                          " times, its maximum"));
        }
        NotifyDeviceChanged(db, out.device_id);
        if (!in.current_device_id.empty()) NotifyDeviceChanged(db, in.current_device_id);
        out.uai = uai;
        if (!uai.empty()) {
          PARC_ASSIGN_OR_RETURN(Statement name,
                                db->Prepare("SELECT name FROM establishments WHERE uai = ?"));
          name.Bind(1, uai);
          PARC_ASSIGN_OR_RETURN(bool has, name.Step());
          if (has) out.establishment_name = name.Text(0);
        }
        return out;
      },
      [this, current = std::move(current),
       done = std::move(done)](absl::StatusOr<EnrollOutcome> outcome) {
        // A new secret, or a device placed: what check-ins read of it changed.
        if (outcome.ok()) cache_.InvalidateDevice(outcome->device_id);
        if (!current.empty()) cache_.InvalidateDevice(current);
        done(std::move(outcome));
      });
}

absl::StatusOr<EnrollmentTokenRecord> SqlStore::CheckEnrollmentToken(const std::string& id,
                                                                     const std::string& secret_hash,
                                                                     absl::Time now) {
  ReaderLease db = AcquireReader();
  return UsableToken(db.get(), id, secret_hash, now);
}

}  // namespace parc::server
