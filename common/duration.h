#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace parc::common {

// Parses durations as operators write them: a number followed by a unit among s, m, h, d, w
// ("30d", "12h", "90s"), or a sequence of them ("1d12h"). A bare number means seconds.
[[nodiscard]] absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text);

// Short human form: "3d", "5h", "12m", "40s" (largest whole unit, truncated).
std::string FormatDurationShort(absl::Duration d);

}  // namespace parc::common
