#include "server/health.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace parc::server {

bool Windows11Capable(const parc::v1::Hardware& hw) {
  constexpr uint64_t kMinRam = uint64_t{7} << 29;  // 3.5 GiB
  constexpr uint64_t kMinDisk = 64'000'000'000;
  uint64_t largest_disk = 0;
  for (const auto& d : hw.disks()) largest_disk = std::max(largest_disk, d.size_bytes());
  const bool uefi = hw.secure_boot() == parc::v1::SECURE_BOOT_ENABLED ||
                    hw.secure_boot() == parc::v1::SECURE_BOOT_DISABLED;
  return hw.tpm_version() == "2.0" && uefi && hw.ram_bytes() >= kMinRam &&
         largest_disk >= kMinDisk && FirmwareYear(hw) >= 2018;
}

int FirmwareYear(const parc::v1::Hardware& hw) {
  int year = 0;
  if (hw.firmware_date().size() < 4 || !absl::SimpleAtoi(hw.firmware_date().substr(0, 4), &year)) {
    return 0;
  }
  return year;
}

void AddHealthCounts(parc::v1::HealthReportRow* to, const parc::v1::HealthReportRow& r) {
  to->set_establishments(to->establishments() + r.establishments());
  to->set_devices(to->devices() + r.devices());
  to->set_cannot_take_bundle(to->cannot_take_bundle() + r.cannot_take_bundle());
  to->set_battery_below_60(to->battery_below_60() + r.battery_below_60());
  to->set_battery_below_40(to->battery_below_40() + r.battery_below_40());
  to->set_age_0_3(to->age_0_3() + r.age_0_3());
  to->set_age_4_7(to->age_4_7() + r.age_4_7());
  to->set_age_8_plus(to->age_8_plus() + r.age_8_plus());
  to->set_age_unknown(to->age_unknown() + r.age_unknown());
  to->set_os_unsupported(to->os_unsupported() + r.os_unsupported());
  to->set_to_windows11(to->to_windows11() + r.to_windows11());
  to->set_linux_candidates(to->linux_candidates() + r.linux_candidates());
  to->set_os_support_unknown(to->os_support_unknown() + r.os_support_unknown());
  to->set_unseen_30_days(to->unseen_30_days() + r.unseen_30_days());
}

std::string UtcDay(absl::Time t) { return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()); }

int UtcYear(absl::Time t) {
  return static_cast<int>(absl::ToCivilYear(t, absl::UTCTimeZone()).year());
}

}  // namespace parc::server
