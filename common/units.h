#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parc::common {

// "4MiB", "500KB", "1.5 GiB", "800000" (bytes) → bytes. Binary (KiB, MiB, GiB) and decimal
// (kB, MB, GB) units; a trailing "/s" is accepted.
[[nodiscard]] absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

struct DailyWindow {
  uint32_t start_minute = 0;
  uint32_t end_minute = 0;
};

// "18:00-07:00" → minutes since midnight (spanning midnight when start > end).
[[nodiscard]] absl::StatusOr<DailyWindow> ParseDailyWindow(absl::string_view text);
std::string FormatDailyWindow(uint32_t start_minute, uint32_t end_minute);

// True when minute_of_day falls in the window; start == end means always.
bool InDailyWindow(uint32_t start_minute, uint32_t end_minute, uint32_t minute_of_day);

}  // namespace parc::common
