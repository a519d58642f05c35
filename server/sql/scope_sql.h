#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "server/scope.h"
#include "server/sql/sql.h"

// How the store filters by a Scope: one SQL condition on a UAI column, reading one parameter.
// For example, with a département scope on SQLite,
//   ScopeSql(db, scope, "d.uai", 3) == "(d.uai IN (SELECT scope_e.uai FROM establishments
//       scope_e WHERE scope_e.departement IN (SELECT value FROM json_each(?3))))"
// and ScopeParam(db, scope) == "[\"31\"]" is bound to ?3; on PostgreSQL the list is
// "= ANY(CAST(?3 AS TEXT[]))" and its parameter "{\"31\"}". Every form reads its parameter,
// so a statement binds the same parameters whatever the scope.
namespace parc::server::sql {

std::string ScopeSql(const Connection& db, const Scope& scope, absl::string_view uai_column,
                     int param);
std::string ScopeParam(const Connection& db, const Scope& scope);

}  // namespace parc::server::sql
