#include "server/sqlite/scope_sql.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace parc::server::sqlite {
namespace {

// "column IN (SELECT scope_e.uai FROM establishments scope_e WHERE where)".
std::string Establishments(absl::string_view uai_column, absl::string_view where) {
  return absl::StrCat(uai_column, " IN (SELECT scope_e.uai FROM establishments scope_e WHERE ",
                      where, ")");
}

std::string Values(int param) {
  return absl::StrCat("(SELECT value FROM json_each(?", param, "))");
}

}  // namespace

std::string ScopeSql(const Scope& scope, absl::string_view uai_column, int param) {
  using Kind = Scope::Kind;
  std::string sql;
  switch (scope.kind()) {
    case Kind::kRegion:
      sql = absl::StrCat("?", param, " IS NOT NULL");
      break;
    case Kind::kUais:
      sql = absl::StrCat(uai_column, " IN ", Values(param));
      break;
    case Kind::kAcademie:
      sql = Establishments(uai_column, absl::StrCat("lower(scope_e.academie) IN ", Values(param)));
      break;
    case Kind::kDepartement:
      sql = Establishments(uai_column, absl::StrCat("scope_e.departement IN ", Values(param)));
      break;
    case Kind::kCommunes:
      sql = Establishments(uai_column, absl::StrCat("scope_e.commune_code IN ", Values(param)));
      break;
    case Kind::kCollectiviteRegion:
      sql = Establishments(uai_column, absl::StrCat("scope_e.collectivite_kind = 'region' AND ?",
                                                    param, " IS NOT NULL"));
      break;
    case Kind::kCollectiviteDepartement:
      sql = Establishments(uai_column, absl::StrCat("scope_e.collectivite_kind = 'departement' AND "
                                                    "scope_e.collectivite_code IN ",
                                                    Values(param)));
      break;
    case Kind::kCollectiviteCommunes:
      sql = Establishments(uai_column, absl::StrCat("scope_e.collectivite_kind = 'commune' AND "
                                                    "scope_e.collectivite_code IN ",
                                                    Values(param)));
      break;
  }
  return absl::StrCat("(", sql, ")");
}

std::string ScopeParam(const Scope& scope) {
  // Values are validated by Scope::Parse (digits, UAIs, a lower-case académie name); quotes
  // and backslashes are escaped all the same.
  std::vector<std::string> quoted;
  for (const auto& v : scope.values()) {
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
