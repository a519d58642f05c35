#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "parc/v1/inventory.pb.h"

namespace parc::common {

// Sorts packages by (name, architecture, version) and drops exact duplicates, so that equal
// sets have equal lists.
void CanonicalizeSoftware(parc::v1::SoftwareList* list);

// SHA-256 over the canonical list, one "name\tversion\tarchitecture\n" line per package.
// Independent of protobuf encoding. REQUIRES: list is canonical.
std::string SoftwareHash(const parc::v1::SoftwareList& list);

// Hash identifying a whole inventory: the hardware part and the software hash.
// Free space (system_free_bytes) is left out: it alone never makes an inventory be sent.
std::string InventoryHash(const parc::v1::Hardware& hardware, absl::string_view software_hash);
// The same hash from the hardware's deterministic encoding (EncodeHardware), for a caller that
// keeps the encoding (the server stores it: one serialization instead of two).
std::string InventoryHashOfEncoded(absl::string_view encoded_hardware,
                                   absl::string_view software_hash);
// The hardware's deterministic encoding (fields in number order), which InventoryHash hashes.
std::string EncodeHardware(const parc::v1::Hardware& hardware);

// Device kind names used on command lines, in tables and in config files:
// "laptop", "tablet", "display", "desktop", "other", "" for unspecified.
std::string KindName(parc::v1::DeviceKind kind);
[[nodiscard]] absl::StatusOr<parc::v1::DeviceKind> ParseKind(absl::string_view name);

// Maps an SMBIOS chassis type (DMTF DSP0134, 7.4.1) to a device kind.
parc::v1::DeviceKind KindFromChassisType(uint32_t chassis_type);

// Free space as inventoried: rounded down to a whole GiB.
inline uint64_t RoundDownToGiB(uint64_t bytes) { return bytes - bytes % (uint64_t{1} << 30); }

// A firmware release date as "YYYY-MM-DD", from SMBIOS's "MM/DD/YYYY" (Linux's
// /sys/class/dmi/id/bios_date) or a CIM datetime "YYYYMMDDhhmmss.ffffff+zzz" (Windows'
// Win32_BIOS.ReleaseDate); "" for anything else or an impossible date (years 1980-2099).
std::string FirmwareDate(absl::string_view text);

}  // namespace parc::common
