#include "server/operator_auth.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace parc::server {

bool Caller::HasRole(std::initializer_list<absl::string_view> roles) const {
  return std::find(roles.begin(), roles.end(), record.role) != roles.end();
}

absl::StatusOr<Caller> AuthenticateOperator(Store* store, absl::string_view token,
                                            std::initializer_list<absl::string_view> roles) {
  if (token.empty()) {
    return absl::UnauthenticatedError("missing operator token (authorization: Bearer ...)");
  }
  auto credential = common::ParseCredential(token);
  if (!credential.ok()) return absl::UnauthenticatedError("operator token not recognized");
  auto op = store->GetOperator(credential->id);
  if (absl::IsNotFound(op.status()) ||
      (op.ok() &&
       !common::ConstantTimeEquals(op->secret_hash, common::Sha256Hex(credential->secret)))) {
    return absl::UnauthenticatedError("operator token not recognized");
  }
  PARC_RETURN_IF_ERROR(op.status());
  if (op->revoked_at.has_value()) {
    return absl::UnauthenticatedError("operator token has been revoked");
  }
  Caller caller;
  caller.record = std::move(*op);
  if (roles.size() > 0 && !caller.HasRole(roles)) {
    return absl::PermissionDeniedError(
        absl::StrCat("operator \"", caller.record.name, "\" has role ", caller.record.role,
                     ", which may not do this (allowed: ", absl::StrJoin(roles, ", "), ")"));
  }
  auto scope = Scope::Parse(caller.record.scope);
  if (!scope.ok()) {
    return absl::InternalError(absl::StrCat("stored scope: ", scope.status().message()));
  }
  caller.scope = std::move(*scope);
  return caller;
}

absl::StatusOr<std::string> ScopeFilter(Store* store, const Caller& caller,
                                        const std::optional<std::set<std::string>>& within) {
  if (caller.scope.is_region() && !within.has_value()) return std::string();
  std::optional<std::set<std::string>> allowed;
  if (!caller.scope.is_region()) {
    PARC_ASSIGN_OR_RETURN(auto all, store->ListEstablishments({}));
    allowed = caller.scope.Resolve(all);
  }
  if (within.has_value()) {
    if (!allowed.has_value()) {
      allowed = within;
    } else {
      std::set<std::string> both;
      for (const auto& u : *within) {
        if (allowed->count(u) > 0) both.insert(u);
      }
      allowed = std::move(both);
    }
  }
  return ScopeFilterJson(allowed);
}

}  // namespace parc::server
