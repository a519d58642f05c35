#include "server/report_validation.h"

#include <google/protobuf/arena.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/inventory_util.h"
#include "common/status_macros.h"

namespace parc::server {
namespace {

bool IsHexHash(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::Status CheckHashes(absl::string_view inventory_hash, absl::string_view software_hash,
                         bool allow_empty) {
  for (absl::string_view h : {inventory_hash, software_hash}) {
    if ((allow_empty && h.empty()) || IsHexHash(h)) continue;
    return absl::InvalidArgumentError(
        "inventory_hash and software_hash must be SHA-256 digests in hex");
  }
  return absl::OkStatus();
}

absl::Status CheckLength(absl::string_view field, absl::string_view value, size_t max) {
  if (value.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(), " bytes, more than the limit of ", max));
  }
  return absl::OkStatus();
}

absl::Status ValidateHardware(const parc::v1::Hardware& hw) {
  PARC_RETURN_IF_ERROR(CheckLength("hardware.manufacturer", hw.manufacturer(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.model", hw.model(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.serial", hw.serial(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.bios_version", hw.bios_version(), kMaxShortField));
  // The agents normalise both; anything else is not theirs.
  const std::string& date = hw.firmware_date();
  if (!date.empty() && (date.size() != 10 || date[4] != '-' || date[7] != '-' ||
                        common::FirmwareDate(absl::StrCat(date.substr(0, 4), date.substr(5, 2),
                                                          date.substr(8, 2))) != date)) {
    return absl::InvalidArgumentError(
        absl::StrCat("hardware.firmware_date: \"", date.substr(0, 16), "\" is not YYYY-MM-DD"));
  }
  if (!hw.tpm_version().empty() && hw.tpm_version() != "2.0" && hw.tpm_version() != "1.2") {
    return absl::InvalidArgumentError(absl::StrCat(
        "hardware.tpm_version: \"", hw.tpm_version().substr(0, 16), "\" is neither 2.0 nor 1.2"));
  }
  if (hw.system_free_bytes() > kMaxDiskBytes || hw.ram_bytes() > kMaxDiskBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        hw.ram_bytes() > kMaxDiskBytes ? "hardware.ram_bytes: " : "hardware.system_free_bytes: ",
        std::max(hw.ram_bytes(), hw.system_free_bytes()), " is more than any device holds"));
  }
  PARC_RETURN_IF_ERROR(CheckLength("hardware.cpu_model", hw.cpu_model(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.os_name", hw.os_name(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.os_version", hw.os_version(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.os_pretty_name", hw.os_pretty_name(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.kernel", hw.kernel(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.hostname", hw.hostname(), kMaxShortField));
  if (hw.disks_size() > 64 || hw.batteries_size() > 8 || hw.network_interfaces_size() > 64) {
    return absl::InvalidArgumentError(
        "hardware lists more than 64 disks, 8 batteries or 64 network interfaces");
  }
  if (!parc::v1::DeviceKind_IsValid(hw.detected_kind())) {
    return absl::InvalidArgumentError("hardware.detected_kind is not a known device kind");
  }
  return absl::OkStatus();
}

absl::Status ValidateEnroll(const parc::v1::EnrollRequest& request) {
  for (auto [field, value] :
       {std::pair<absl::string_view, absl::string_view>{"hostname", request.hostname()},
        {"agent_version", request.agent_version()},
        {"identity.serial", request.identity().serial()},
        {"identity.product_uuid", request.identity().product_uuid()},
        {"identity.machine_id", request.identity().machine_id()},
        {"device_credential", request.device_credential()}}) {
    PARC_RETURN_IF_ERROR(CheckLength(field, value, kMaxShortField));
  }
  if (!parc::v1::DeviceKind_IsValid(request.kind()) ||
      !parc::v1::DeviceKind_IsValid(request.detected_kind())) {
    return absl::InvalidArgumentError("kind is not a known device kind");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<parc::v1::SoftwareList>> ParseSoftwareList(
    absl::string_view encoded) {
  // Its first block sized for the list (its parsed form takes a few times its encoding), so
  // that a thousand packages take a few blocks.
  google::protobuf::ArenaOptions options;
  options.start_block_size = std::clamp<size_t>(encoded.size() * 4, 4096, size_t{1} << 20);
  options.max_block_size = size_t{1} << 20;
  auto arena = std::make_shared<google::protobuf::Arena>(options);
  auto* list = google::protobuf::Arena::CreateMessage<parc::v1::SoftwareList>(arena.get());
  if (!list->ParseFromArray(encoded.data(), static_cast<int>(encoded.size()))) {
    return absl::InvalidArgumentError(
        "inventory.software: not a valid software list (broken encoding or text not in UTF-8)");
  }
  return std::shared_ptr<parc::v1::SoftwareList>(std::move(arena), list);
}

absl::Status ValidateInventory(const InventoryRequest& request, const ReportLimits& limits) {
  const size_t size = request.encoded_size();
  if (size > limits.max_inventory_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("inventory is ", size,
                                                     " bytes, more than the server's limit of ",
                                                     limits.max_inventory_bytes));
  }
  const std::optional<int> packages = request.software_packages();
  if (!packages.has_value()) {
    return absl::InvalidArgumentError("inventory.software: not an encoded software list");
  }
  if (*packages > limits.max_packages) {
    return absl::ResourceExhaustedError(absl::StrCat("inventory lists ", *packages,
                                                     " packages, more than the server's limit of ",
                                                     limits.max_packages));
  }
  PARC_RETURN_IF_ERROR(
      CheckHashes(request.inventory_hash(), request.software_hash(), /*allow_empty=*/false));
  return ValidateHardware(request.hardware());
}

absl::Status CheckSoftwareList(parc::v1::SoftwareList* software, absl::string_view software_hash) {
  for (const auto& p : software->packages()) {
    if (p.name().empty() || p.name().size() > kMaxShortField ||
        p.version().size() > kMaxShortField || p.architecture().size() > 64 ||
        p.publisher().size() > kMaxShortField) {
      return absl::InvalidArgumentError(
          absl::StrCat("software package \"", p.name().substr(0, 64),
                       "\" has an empty or over-long name, version, architecture or publisher"));
    }
  }
  common::CanonicalizeSoftware(software);
  if (common::SoftwareHash(*software) != software_hash) {
    return absl::InvalidArgumentError(
        "software_hash does not match the software list sent with it");
  }
  return absl::OkStatus();
}

absl::Status CheckInventoryHash(absl::string_view encoded_hardware, absl::string_view software_hash,
                                absl::string_view inventory_hash) {
  if (common::InventoryHashOfEncoded(encoded_hardware, software_hash) != inventory_hash) {
    return absl::InvalidArgumentError("inventory_hash does not match the inventory");
  }
  return absl::OkStatus();
}

namespace {
// Relay and artifact base URLs (as parcctl relays add allows them).
constexpr size_t kMaxSourceUrl = 512;
}  // namespace

absl::Status ValidateDeploymentReport(const parc::v1::DeploymentReport& report) {
  if (report.rollout_id().empty() || report.rollout_id().size() > 64) {
    return absl::InvalidArgumentError("rollout_id: empty or too long");
  }
  if (report.packages_size() > 1000 || report.ByteSizeLong() > (1u << 20)) {
    return absl::ResourceExhaustedError("deployment report over 1000 packages or 1 MiB");
  }
  if (!parc::v1::DeploymentState_IsValid(report.state())) {
    return absl::InvalidArgumentError("state: unknown deployment state");
  }
  for (auto [field, value, max] :
       {std::tuple<absl::string_view, absl::string_view, size_t>{"reason", report.reason(), 64},
        {"bundle_name", report.bundle_name(), 64},
        {"bundle_version", report.bundle_version(), 64}}) {
    PARC_RETURN_IF_ERROR(CheckLength(field, value, max));
  }
  for (const auto& p : report.packages()) {
    for (auto [field, value] :
         {std::pair<absl::string_view, absl::string_view>{"packages.package_id", p.package_id()},
          {"packages.version", p.version()},
          {"packages.reason", p.reason()}}) {
      PARC_RETURN_IF_ERROR(CheckLength(field, value, 128));
    }
    if (!parc::v1::PackageState_IsValid(p.state())) {
      return absl::InvalidArgumentError(
          absl::StrCat("package ", p.package_id().substr(0, 64), ": unknown package state"));
    }
    PARC_RETURN_IF_ERROR(CheckLength("packages.source", p.source(), kMaxSourceUrl));
    // One entry per source and reason: a handful of relays and the centre.
    if (p.source_faults_size() > 16) {
      return absl::InvalidArgumentError(
          absl::StrCat("package ", p.package_id().substr(0, 64), ": more than 16 source_faults"));
    }
    for (const auto& f : p.source_faults()) {
      PARC_RETURN_IF_ERROR(CheckLength("packages.source_faults.url", f.url(), kMaxSourceUrl));
      if (f.reason() != "artifact_hash_mismatch" && f.reason() != "artifact_size_mismatch" &&
          f.reason() != "download_failed") {
        return absl::InvalidArgumentError(absl::StrCat("package ", p.package_id().substr(0, 64),
                                                       ": source_faults.reason \"",
                                                       f.reason().substr(0, 64), "\" is unknown"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace parc::server
