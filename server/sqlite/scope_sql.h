#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "server/scope.h"

// How the SQLite store filters by a Scope: one SQL condition on a UAI column, reading one
// parameter. For example, with a département scope,
//   ScopeSql(scope, "d.uai", 3) == "d.uai IN (SELECT scope_e.uai FROM establishments scope_e
//                                   WHERE scope_e.departement IN (SELECT value FROM
//                                   json_each(?3)))"
// and ScopeParam(scope) == "[\"31\"]" is bound to ?3. Every form reads its parameter, so a
// statement binds the same parameters whatever the scope.
namespace parc::server::sqlite {

std::string ScopeSql(const Scope& scope, absl::string_view uai_column, int param);
std::string ScopeParam(const Scope& scope);

}  // namespace parc::server::sqlite
