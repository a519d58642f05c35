#include "server/sql/scope_sql.h"

#include "absl/strings/str_cat.h"

namespace parc::server::sql {
namespace {

// "column IN (SELECT scope_e.uai FROM establishments scope_e WHERE where)".
std::string Establishments(absl::string_view uai_column, absl::string_view where) {
  return absl::StrCat(uai_column, " IN (SELECT scope_e.uai FROM establishments scope_e WHERE ",
                      where, ")");
}

}  // namespace

std::string ScopeSql(const Connection& db, const Scope& scope, absl::string_view uai_column,
                     int param) {
  using Kind = Scope::Kind;
  const std::string always = absl::StrCat("CAST(?", param, " AS TEXT) IS NOT NULL");
  std::string sql;
  switch (scope.kind()) {
    case Kind::kRegion:
      sql = always;
      break;
    case Kind::kUais:
      sql = db.InList(uai_column, param);
      break;
    case Kind::kAcademie:
      sql = Establishments(uai_column, db.InList("lower(scope_e.academie)", param));
      break;
    case Kind::kDepartement:
      sql = Establishments(uai_column, db.InList("scope_e.departement", param));
      break;
    case Kind::kCommunes:
      sql = Establishments(uai_column, db.InList("scope_e.commune_code", param));
      break;
    case Kind::kCollectiviteRegion:
      sql = Establishments(uai_column,
                           absl::StrCat("scope_e.collectivite_kind = 'region' AND ", always));
      break;
    case Kind::kCollectiviteDepartement:
      sql =
          Establishments(uai_column, absl::StrCat("scope_e.collectivite_kind = 'departement' AND ",
                                                  db.InList("scope_e.collectivite_code", param)));
      break;
    case Kind::kCollectiviteCommunes:
      sql = Establishments(uai_column, absl::StrCat("scope_e.collectivite_kind = 'commune' AND ",
                                                    db.InList("scope_e.collectivite_code", param)));
      break;
  }
  return absl::StrCat("(", sql, ")");
}

std::string ScopeParam(const Connection& db, const Scope& scope) {
  return db.ListParam(scope.values());
}

}  // namespace parc::server::sql
