#pragma once

#include <cstdint>
#include <string>

#include "parc/v1/inventory.pb.h"

namespace parc::common {

// "1.5 GiB" (binary units) or "128.0 GB" (decimal units, as disk vendors count).
std::string HumanBytes(uint64_t bytes, bool decimal);

// Multi-line human-readable rendering of an inventory (parc-agent inventory, parcctl devices
// show).
std::string FormatInventoryText(const parc::v1::Inventory& inventory);

}  // namespace parc::common
