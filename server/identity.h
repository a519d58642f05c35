#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "parc/v1/agent.pb.h"

namespace parc::server {

// Firmware placeholder values that identify no device ("To Be Filled By O.E.M.", all-zero
// UUIDs…): treated as absent.
bool IsPlaceholderSerial(absl::string_view serial);
bool IsPlaceholderUuid(absl::string_view uuid);

// The key the server matches (re-)enrollments on. Hardware identity (DMI product UUID and
// serial number) when the firmware provides one, so a re-imaged device finds its record; the
// machine-id otherwise. INVALID_ARGUMENT when none is usable.
[[nodiscard]] absl::StatusOr<std::string> HardwareKey(const parc::v1::HardwareIdentity& id);

// The serial number to record, or "" for placeholders.
std::string UsableSerial(absl::string_view serial);

}  // namespace parc::server
