#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "parc/v1/agent.pb.h"
#include "parc/v1/inventory.pb.h"
#include "server/inventory_request.h"

namespace parc::server {

// What devices send, checked before anything is read from or written to the store: pure
// functions over the request messages (fuzzed in fuzz/). Errors name the field at fault:
// INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for what is over the size limits.

inline constexpr size_t kMaxShortField = 256;
inline constexpr size_t kMaxLongField = 1024;
// Sizes of disks and memory beyond this (1 PiB) are refused: no school device has them, and
// the store keeps sizes as signed 64-bit integers.
inline constexpr uint64_t kMaxDiskBytes = uint64_t{1} << 50;

struct ReportLimits {
  // An inventory larger than this is refused with RESOURCE_EXHAUSTED.
  size_t max_inventory_bytes = 4u << 20;
  int max_packages = 20000;
};

// INVALID_ARGUMENT naming field when value is longer than max bytes.
[[nodiscard]] absl::Status CheckLength(absl::string_view field, absl::string_view value,
                                       size_t max);
// Both hashes must be SHA-256 digests in hex; empty ones pass when allow_empty.
[[nodiscard]] absl::Status CheckHashes(absl::string_view inventory_hash,
                                       absl::string_view software_hash, bool allow_empty);
[[nodiscard]] absl::Status ValidateHardware(const parc::v1::Hardware& hw);
// Field sizes and kinds of an enrollment (the token and the identity are checked later).
[[nodiscard]] absl::Status ValidateEnroll(const parc::v1::EnrollRequest& request);
// Size, package count, hashes and hardware fields of an inventory report. The software list
// stays encoded: its packages are counted as the request is read, not parsed. The count is
// also what refuses bytes that are not a software list when the server holds the list their
// hash names (it is then not parsed): keep it for every list, not only for those the server
// parses.
[[nodiscard]] absl::Status ValidateInventory(const InventoryRequest& request,
                                             const ReportLimits& limits);
// An encoded SoftwareList, parsed (INVALID_ARGUMENT naming inventory.software when it is not
// one, e.g. a string that is not UTF-8).
// The list lives on an arena of its own, which the pointer keeps alive: parsing a thousand
// packages and freeing them cost a few allocations instead of thousands.
[[nodiscard]] absl::StatusOr<std::shared_ptr<parc::v1::SoftwareList>> ParseSoftwareList(
    absl::string_view encoded);
// The software list sent with an inventory, canonicalized in place; an error unless every
// package is well-formed and it hashes to software_hash.
[[nodiscard]] absl::Status CheckSoftwareList(parc::v1::SoftwareList* software,
                                             absl::string_view software_hash);
// The inventory hash must cover the hardware (its deterministic encoding,
// common::EncodeHardware) and the software list's hash.
[[nodiscard]] absl::Status CheckInventoryHash(absl::string_view encoded_hardware,
                                              absl::string_view software_hash,
                                              absl::string_view inventory_hash);
// Sizes, states and counts of a deployment report (the rollout and its packages are checked
// against the store).
[[nodiscard]] absl::Status ValidateDeploymentReport(const parc::v1::DeploymentReport& report);

}  // namespace parc::server
