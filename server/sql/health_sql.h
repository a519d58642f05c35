#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

// Fleet health (docs/design.md, "Fleet health"): what each device contributes to the
// indicators, as SQL over a devices row, shared by both engines' schemas (the health_tally
// triggers) and by the store's queries, so that the counts and the device lists agree.
//
// health_tally(uai, family, value, n) counts the devices of each establishment by one value per
// family; every device has exactly one value in each family, so the devices of an
// establishment are the sum of any one family. What depends on the day (age, end of support,
// 30 days unseen) or on the reference bundle is decided when the report reads the tally.
namespace parc::server::sql {

enum HealthFamily : int {
  // 0 no battery, 1 health ≥ 60 %, 2 from 40 % to 59 %, 3 below 40 % (the most worn battery).
  kHealthBattery = 1,
  // The firmware's year (0: unknown).
  kHealthFirmwareYear = 2,
  // os_versions.id × 2 + 1 when the device could run Windows 11 (0: operating system unknown).
  kHealthOs = 3,
  // 1 when the device cannot take the reference bundle (health_target), 0 otherwise.
  kHealthBundle = 4,
};

// The value of a family for the devices row called row ("new", "old", "d"…).
inline std::string HealthValue(HealthFamily family, const std::string& row) {
  switch (family) {
    case kHealthBattery:
      return absl::StrCat("CASE WHEN ", row, ".battery_health IS NULL THEN 0 WHEN ", row,
                          ".battery_health < 40 THEN 3 WHEN ", row,
                          ".battery_health < 60 THEN 2 ELSE 1 END");
    case kHealthFirmwareYear:
      return absl::StrCat(row, ".firmware_year");
    case kHealthOs:
      return absl::StrCat("(", row, ".os_id * 2 + ", row, ".win11)");
    case kHealthBundle:
      // Unknown free space or memory never counts as too little.
      return absl::StrCat("CASE WHEN ", row,
                          ".free_bytes < (SELECT installed_bytes FROM health_target) OR (", row,
                          ".ram_bytes > 0 AND ", row,
                          ".ram_bytes < (SELECT min_ram_bytes FROM health_target)) THEN 1 ELSE 0 "
                          "END");
  }
  return "0";
}

inline constexpr HealthFamily kHealthFamilies[] = {kHealthBattery, kHealthFirmwareYear, kHealthOs,
                                                   kHealthBundle};
// The families only an inventory writes, in this order. SQLite keeps their counts in memory
// rather than in health_tally (health_counts.h); PostgreSQL keeps every family in health_tally.
inline constexpr HealthFamily kInventoryHealthFamilies[] = {kHealthBattery, kHealthFirmwareYear,
                                                            kHealthOs};

// The devices columns each family reads.
inline const char* HealthColumns(HealthFamily family) {
  switch (family) {
    case kHealthBattery:
      return "battery_health";
    case kHealthFirmwareYear:
      return "firmware_year";
    case kHealthOs:
      return "os_id, win11";
    case kHealthBundle:
      return "free_bytes, ram_bytes";
  }
  return "";
}

// True when a devices UPDATE changed a column the family reads (old and new rows).
inline std::string HealthColumnsChanged(HealthFamily family) {
  std::string out;
  for (absl::string_view c : absl::StrSplit(HealthColumns(family), ", ")) {
    absl::StrAppend(&out, out.empty() ? "" : " OR ", "old.", c, " IS DISTINCT FROM new.", c);
  }
  return absl::StrCat("(", out, ")");
}

// Counts the bundle family again from every device (the reference bundle changed).
inline std::string RebuildHealthBundleSql() {
  return absl::StrCat("DELETE FROM health_tally WHERE family = ", static_cast<int>(kHealthBundle),
                      "; INSERT INTO health_tally SELECT coalesce(d.uai, ''), ",
                      static_cast<int>(kHealthBundle), ", ", HealthValue(kHealthBundle, "d"),
                      ", count(*) FROM devices d GROUP BY 1, 3");
}

// The operating system versions and their end of support the server starts with (Windows:
// the Education and Enterprise editions' servicing ends; Debian and Ubuntu: the end of their
// long-term support). Admins correct and extend them with `parcctl os-support set`.
inline constexpr char kOsVersionsSeed[] = R"sql(
INSERT INTO os_versions(os_name, os_version, label, end_of_support) VALUES
  ('Windows', '10.0.19042', 'Windows 10 20H2', '2023-05-09'),
  ('Windows', '10.0.19043', 'Windows 10 21H1', '2022-12-13'),
  ('Windows', '10.0.19044', 'Windows 10 21H2', '2024-06-11'),
  ('Windows', '10.0.19045', 'Windows 10 22H2', '2025-10-14'),
  ('Windows', '10.0.22000', 'Windows 11 21H2', '2024-10-08'),
  ('Windows', '10.0.22621', 'Windows 11 22H2', '2025-10-14'),
  ('Windows', '10.0.22631', 'Windows 11 23H2', '2026-11-10'),
  ('Windows', '10.0.26100', 'Windows 11 24H2', '2027-10-12'),
  ('Windows', '10.0.26200', 'Windows 11 25H2', '2028-10-10'),
  ('Debian GNU/Linux', '10', 'Debian 10', '2024-06-30'),
  ('Debian GNU/Linux', '11', 'Debian 11', '2026-08-31'),
  ('Debian GNU/Linux', '12', 'Debian 12', '2028-06-30'),
  ('Debian GNU/Linux', '13', 'Debian 13', '2030-06-30'),
  ('Ubuntu', '20.04', 'Ubuntu 20.04 LTS', '2025-05-31'),
  ('Ubuntu', '22.04', 'Ubuntu 22.04 LTS', '2027-06-30'),
  ('Ubuntu', '24.04', 'Ubuntu 24.04 LTS', '2029-05-31');
)sql";

}  // namespace parc::server::sql
