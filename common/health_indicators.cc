#include "common/health_indicators.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace parc::common {

using Row = parc::v1::HealthReportRow;

const std::vector<HealthIndicatorInfo>& HealthIndicators() {
  static const std::vector<HealthIndicatorInfo> kAll = {
      {HealthIndicator::kCannotTakeBundle, "bundle", "CANNOT TAKE BUNDLE",
       "Ne peut pas recevoir le lot", [](const Row& r) { return r.cannot_take_bundle(); }},
      {HealthIndicator::kBatteryBelow60, "battery-60", "BATTERY < 60%", "Batterie < 60 %",
       [](const Row& r) { return r.battery_below_60(); }},
      {HealthIndicator::kBatteryBelow40, "battery-40", "BATTERY < 40%", "Batterie < 40 %",
       [](const Row& r) { return r.battery_below_40(); }},
      {HealthIndicator::kAge8Plus, "age-8", "8+ YEARS", "8 ans et plus",
       [](const Row& r) { return r.age_8_plus(); }},
      {HealthIndicator::kAgeUnknown, "age-unknown", "AGE UNKNOWN", "Âge inconnu",
       [](const Row& r) { return r.age_unknown(); }},
      {HealthIndicator::kOsUnsupported, "os-unsupported", "OS OUT OF SUPPORT",
       "Système hors support", [](const Row& r) { return r.os_unsupported(); }},
      {HealthIndicator::kToWindows11, "windows11", "TO WINDOWS 11", "Peut passer à Windows 11",
       [](const Row& r) { return r.to_windows11(); }},
      {HealthIndicator::kLinuxCandidate, "linux", "LINUX CANDIDATE", "Candidat Linux",
       [](const Row& r) { return r.linux_candidates(); }},
      {HealthIndicator::kOsSupportUnknown, "os-unknown", "OS SUPPORT UNKNOWN",
       "Fin de support inconnue", [](const Row& r) { return r.os_support_unknown(); }},
      {HealthIndicator::kUnseen30Days, "unseen-30", "UNSEEN 30 DAYS", "Non vu depuis 30 jours",
       [](const Row& r) { return r.unseen_30_days(); }},
  };
  return kAll;
}

absl::StatusOr<HealthIndicator> ParseHealthIndicator(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& i : HealthIndicators()) {
    if (name == i.name) return i.indicator;
    names.push_back(i.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("indicator \"", name.substr(0, 32), "\": one of ", absl::StrJoin(names, ", ")));
}

const HealthIndicatorInfo& InfoOf(HealthIndicator indicator) {
  for (const auto& i : HealthIndicators()) {
    if (i.indicator == indicator) return i;
  }
  return HealthIndicators().front();
}

}  // namespace parc::common
