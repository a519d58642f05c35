#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Propagates a non-OK absl::Status out of the calling function.
#define PARC_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status parc_status_ = (expr);        \
    if (!parc_status_.ok()) return parc_status_; \
  } while (false)

#define PARC_CONCAT_INNER_(a, b) a##b
#define PARC_CONCAT_(a, b) PARC_CONCAT_INNER_(a, b)

// ASSIGN_OR_RETURN(lhs, expr): evaluates expr (an absl::StatusOr<T>); on error returns its
// status, otherwise moves the value into lhs (which may be a declaration).
#define PARC_ASSIGN_OR_RETURN(lhs, expr) \
  PARC_ASSIGN_OR_RETURN_IMPL_(PARC_CONCAT_(parc_statusor_, __LINE__), lhs, expr)

#define PARC_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)   \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
