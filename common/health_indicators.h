#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parc/v1/admin.pb.h"

// The fleet health indicators by name, as parcctl's --indicator, the dashboard's filters and
// their column headers say them (the rules behind each: server/health.h).
namespace parc::common {

enum class HealthIndicator {
  kCannotTakeBundle,
  kBatteryBelow60,
  kBatteryBelow40,
  kAge8Plus,
  kAgeUnknown,
  kOsUnsupported,
  kToWindows11,
  kLinuxCandidate,
  kOsSupportUnknown,
  kUnseen30Days,
};

struct HealthIndicatorInfo {
  HealthIndicator indicator;
  const char* name;    // "battery-60"
  const char* header;  // parcctl's column: "BATTERY < 60%"
  const char* label;   // the dashboard's: "Batterie < 60 %"
  uint32_t (*count)(const parc::v1::HealthReportRow& row);
};

const std::vector<HealthIndicatorInfo>& HealthIndicators();
// INVALID_ARGUMENT listing the names when unknown.
absl::StatusOr<HealthIndicator> ParseHealthIndicator(const std::string& name);
const HealthIndicatorInfo& InfoOf(HealthIndicator indicator);

}  // namespace parc::common
