#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "parc/v1/admin.pb.h"
#include "parc/v1/inventory.pb.h"

// Fleet health: the rules behind the indicators (docs/design.md, "Fleet health"), outside the
// store so that the store's SQL, the dashboard and the tests say the same thing.
namespace parc::server {

// Whether the hardware could run Windows 11: TPM 2.0, UEFI boot (Secure Boot on or off, not a
// legacy BIOS), at least 4 GB of memory (3.5 GiB seen by the system), a disk of at least 64 GB,
// and firmware from 2018 or later, which stands in for Microsoft's list of supported
// processors (8th-generation Intel Core and AMD Zen+ onwards, sold from 2018), which Parc does
// not check.
bool Windows11Capable(const parc::v1::Hardware& hw);

// The firmware's year, 0 when unknown.
int FirmwareYear(const parc::v1::Hardware& hw);

// Age bands, in years: the current UTC year minus the firmware's year.
inline constexpr int kAgeRecentMax = 3;  // 0-3 years
inline constexpr int kAgeMiddleMax = 7;  // 4-7 years; 8 and more beyond

// The free space of the system disk as the devices row keeps it: rounded down to 256 MiB, so
// that the few megabytes a disk gains or loses between two check-ins do not rewrite the row
// (the indicator compares it with a bundle's installed size, the dashboard shows whole GiB).
inline constexpr uint64_t kFreeBytesStep = uint64_t{1} << 28;
inline uint64_t RoundedFreeBytes(uint64_t free_bytes) {
  return free_bytes - free_bytes % kFreeBytesStep;
}

// Days without a check-in for a device to count as unseen.
inline constexpr int kUnseenDays = 30;

// Adds the establishments, devices and every indicator's count of r into to (totals, and the
// académies' rows as sums of their départements').
void AddHealthCounts(parc::v1::HealthReportRow* to, const parc::v1::HealthReportRow& r);

// The UTC day of t as YYYY-MM-DD, and its year.
std::string UtcDay(absl::Time t);
int UtcYear(absl::Time t);

}  // namespace parc::server
