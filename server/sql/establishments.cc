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
using sql::EstablishmentFromRow;
using sql::kEstablishmentColumns;
using sql::U32;
using sql::Unix;

// ---------------------------------------------------------------------------------------------
// Establishments

void SqlStore::UpsertEstablishments(std::vector<parc::v1::Establishment> rows, absl::Time now,
                                    StoreCallback<ImportCounts> done) {
  SubmitFor<ImportCounts>(
      [rows = std::move(rows), now](sql::Connection* db) -> absl::StatusOr<ImportCounts> {
        ImportCounts counts;
        for (const auto& e : rows) {
          std::string tags = absl::StrJoin(e.tags(), ",");
          PARC_ASSIGN_OR_RETURN(Statement sel,
                                db->Prepare(absl::StrCat("SELECT ", kEstablishmentColumns,
                                                         " FROM establishments WHERE uai = ?")));
          sel.Bind(1, e.uai());
          PARC_ASSIGN_OR_RETURN(bool exists, sel.Step());
          if (exists) {
            parc::v1::Establishment old = EstablishmentFromRow(sel);
            if (old.SerializeAsString() == e.SerializeAsString()) {
              ++counts.unchanged;
              continue;
            }
          }
          PARC_ASSIGN_OR_RETURN(
              Statement up,
              db->Prepare(
                  "INSERT INTO establishments(uai, name, type, category, sector, commune_code, "
                  "commune_name, departement, academie, collectivite_kind, collectivite_code, "
                  "collectivite_name, tags, created_at, updated_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14) "
                  "ON CONFLICT(uai) DO UPDATE SET name = ?2, type = ?3, category = ?4, "
                  "sector = ?5, commune_code = ?6, commune_name = ?7, departement = ?8, "
                  "academie = ?9, collectivite_kind = ?10, collectivite_code = ?11, "
                  "collectivite_name = ?12, tags = ?13, updated_at = ?14"));
          PARC_RETURN_IF_ERROR(
              up.BindAll(e.uai(), e.name(), e.type(), e.category(), e.sector(), e.commune_code(),
                         e.commune_name(), e.departement(), e.academie(), e.collectivite_kind(),
                         e.collectivite_code(), e.collectivite_name(), tags, Unix(now))
                  .Run());
          if (exists) {
            ++counts.updated;
          } else {
            ++counts.inserted;
          }
        }
        return counts;
      },
      std::move(done));
}

absl::StatusOr<std::vector<parc::v1::Establishment>> SqlStore::ListEstablishments(
    const parc::v1::ListEstablishmentsRequest& filter, const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          "SELECT ", kEstablishmentColumns,
          ", (SELECT coalesce(sum(t.n), 0) FROM device_tally t WHERE t.uai = e.uai) FROM "
          "establishments e "
          "WHERE (?1 = '' OR departement = ?1) AND (?2 = '' OR lower(academie) = lower(?2)) "
          "AND (?3 = '' OR category = ?3) "
          "AND (?4 = '' OR commune_code = ?4 OR lower(commune_name) = lower(?4)) "
          "AND ",
          sql::ScopeSql(*db, scope, "e.uai", 5),
          " ORDER BY departement, commune_name, name, uai")));
  st.BindAll(filter.departement(), filter.academie(), filter.category(), filter.commune(),
             sql::ScopeParam(*db, scope));
  return sql::CollectRows(st, [](const Statement& row) {
    parc::v1::Establishment e = EstablishmentFromRow(row);
    e.set_device_count(U32(row.Int(13)));
    return e;
  });
}

absl::StatusOr<parc::v1::Establishment> SqlStore::GetEstablishment(const std::string& uai) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st, db->Prepare(absl::StrCat(
                        "SELECT ", kEstablishmentColumns,
                        ", (SELECT coalesce(sum(t.n), 0) FROM device_tally t WHERE t.uai = e.uai) "
                        "FROM establishments e WHERE uai = ?")));
  st.Bind(1, uai);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no establishment with UAI ", uai));
  parc::v1::Establishment e = EstablishmentFromRow(st);
  e.set_device_count(U32(st.Int(13)));
  return e;
}

}  // namespace parc::server
