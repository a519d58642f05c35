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
  auto scope = Scope::Parse(op->scope);
  if (!scope.ok()) {
    return absl::InternalError(absl::StrCat("stored scope: ", scope.status().message()));
  }
  Caller caller{std::move(*op), std::move(*scope)};
  if (roles.size() > 0 && !caller.HasRole(roles)) {
    return absl::PermissionDeniedError(
        absl::StrCat("operator \"", caller.record.name, "\" has role ", caller.record.role,
                     ", which may not do this (allowed: ", absl::StrJoin(roles, ", "), ")"));
  }
  return caller;
}

}  // namespace parc::server
