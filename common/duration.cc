#include "common/duration.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace parc::common {

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view raw) {
  absl::string_view text = absl::StripAsciiWhitespace(raw);
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("duration \"", raw, "\": ", why, " (examples: 30d, 12h, 15m, 90s)"));
  };
  if (text.empty()) return bad("empty");
  absl::Duration total = absl::ZeroDuration();
  size_t i = 0;
  while (i < text.size()) {
    int64_t value = 0;
    size_t digits = 0;
    while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
      if (value > 1'000'000'000) return bad("too large");
      value = value * 10 + (text[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0) return bad("expected a number");
    if (i == text.size()) {
      if (total == absl::ZeroDuration() && digits == text.size()) return absl::Seconds(value);
      return bad("missing unit after the last number");
    }
    switch (absl::ascii_tolower(static_cast<unsigned char>(text[i]))) {
      case 's':
        total += absl::Seconds(value);
        break;
      case 'm':
        total += absl::Minutes(value);
        break;
      case 'h':
        total += absl::Hours(value);
        break;
      case 'd':
        total += absl::Hours(24 * value);
        break;
      case 'w':
        total += absl::Hours(24 * 7 * value);
        break;
      default:
        return bad(absl::StrCat("unknown unit '", std::string(1, text[i]), "'"));
    }
    ++i;
  }
  return total;
}

std::string FormatDurationShort(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  int64_t s = absl::ToInt64Seconds(d);
  if (s >= 86400) return absl::StrCat(s / 86400, "d");
  if (s >= 3600) return absl::StrCat(s / 3600, "h");
  if (s >= 60) return absl::StrCat(s / 60, "m");
  return absl::StrCat(s, "s");
}

}  // namespace parc::common
