#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "parc/v1/inventory.pb.h"

namespace parc::common {

// "1.5 GiB" (binary units) or "128.0 GB" (decimal units, as disk vendors count).
std::string HumanBytes(uint64_t bytes, bool decimal);
// "on", "off", "unsupported (legacy BIOS boot)", "unknown".
std::string SecureBootName(parc::v1::SecureBoot s);

// Multi-line human-readable rendering of an inventory (parc-agent inventory, parcctl devices
// show).
// With the software list's id: the first 12 hex digits of its hash, as the server shows it.
std::string FormatInventoryText(const parc::v1::Inventory& inventory);
// With list_id as given ("": none; the small parc-agent links no SHA-256).
std::string FormatInventoryText(const parc::v1::Inventory& inventory, absl::string_view list_id);

}  // namespace parc::common
