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

std::string UtcDay(absl::Time t) { return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()); }

int UtcYear(absl::Time t) {
  return static_cast<int>(absl::ToCivilYear(t, absl::UTCTimeZone()).year());
}

}  // namespace parc::server
