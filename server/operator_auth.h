#pragma once

#include <initializer_list>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/scope.h"
#include "server/store.h"

namespace parc::server {

// Operator roles, from most to least powerful.
inline constexpr absl::string_view kRoleAdmin = "admin";
inline constexpr absl::string_view kRolePublisher = "publisher";
inline constexpr absl::string_view kRoleTechnician = "technician";
inline constexpr absl::string_view kRoleViewer = "viewer";
inline constexpr std::initializer_list<absl::string_view> kEveryRole = {
    kRoleAdmin, kRolePublisher, kRoleTechnician, kRoleViewer};

// Who is calling: the operator and what it may see.
struct Caller {
  OperatorRecord record;
  Scope scope;
  bool HasRole(std::initializer_list<absl::string_view> roles) const;
};

// The operator a token belongs to: UNAUTHENTICATED for a missing, unknown, wrong or revoked
// token (compared in constant time), PERMISSION_DENIED when its role is not among roles
// (an empty list allows every role).
[[nodiscard]] absl::StatusOr<Caller> AuthenticateOperator(
    Store* store, absl::string_view token, std::initializer_list<absl::string_view> roles);

}  // namespace parc::server
