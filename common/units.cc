#include "common/units.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace parc::common {

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view raw) {
  absl::string_view text = absl::StripAsciiWhitespace(raw);
  absl::ConsumeSuffix(&text, "/s");
  size_t i = 0;
  while (i < text.size() &&
         (absl::ascii_isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  double value = 0;
  if (i == 0 || !absl::SimpleAtod(text.substr(0, i), &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", raw, "\" is not a size (examples: 4MiB, 500kB, 1GiB)"));
  }
  std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text.substr(i)));
  double mult = 1;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else if (unit == "k" || unit == "kb") {
    mult = 1e3;
  } else if (unit == "m" || unit == "mb") {
    mult = 1e6;
  } else if (unit == "g" || unit == "gb") {
    mult = 1e9;
  } else if (unit == "kib") {
    mult = 1024.0;
  } else if (unit == "mib") {
    mult = 1024.0 * 1024;
  } else if (unit == "gib") {
    mult = 1024.0 * 1024 * 1024;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", raw, "\": unknown unit (B, kB, MB, GB, KiB, MiB, GiB)"));
  }
  return static_cast<uint64_t>(std::llround(value * mult));
}

absl::StatusOr<DailyWindow> ParseDailyWindow(absl::string_view text) {
  auto bad = absl::InvalidArgumentError(
      absl::StrCat("window \"", text, "\": expected HH:MM-HH:MM, e.g. 18:00-07:00"));
  size_t dash = text.find('-');
  if (dash == absl::string_view::npos) return bad;
  auto parse = [](absl::string_view hm, uint32_t* minutes) {
    hm = absl::StripAsciiWhitespace(hm);
    size_t colon = hm.find(':');
    uint32_t h = 0, m = 0;
    if (colon == absl::string_view::npos || !absl::SimpleAtoi(hm.substr(0, colon), &h) ||
        !absl::SimpleAtoi(hm.substr(colon + 1), &m) || h > 23 || m > 59) {
      return false;
    }
    *minutes = h * 60 + m;
    return true;
  };
  DailyWindow w;
  if (!parse(text.substr(0, dash), &w.start_minute) ||
      !parse(text.substr(dash + 1), &w.end_minute)) {
    return bad;
  }
  return w;
}

std::string FormatDailyWindow(uint32_t start, uint32_t end) {
  if (start == end) return "any time";
  return absl::StrFormat("%02d:%02d-%02d:%02d", start / 60, start % 60, end / 60, end % 60);
}

bool InDailyWindow(uint32_t start, uint32_t end, uint32_t minute) {
  if (start == end) return true;
  if (start < end) return minute >= start && minute < end;
  return minute >= start || minute < end;
}

}  // namespace parc::common
