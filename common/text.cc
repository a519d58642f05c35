#include "common/text.h"

#include <cstdint>

namespace parc::common {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at text[i], or 0; *control tells a C1 control.
size_t Utf8SequenceLength(absl::string_view text, size_t i, bool* control) {
  *control = false;
  const auto b0 = static_cast<unsigned char>(text[i]);
  size_t len;
  uint32_t min;
  uint32_t cp;
  if (b0 < 0x80) return 1;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, min = 0x80, cp = b0 & 0x1Fu;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, min = 0x800, cp = b0 & 0x0Fu;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, cp = b0 & 0x07u;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  // C1 controls (U+0080–U+009F) act like ESC sequences on many terminals.
  *control = cp >= 0x80 && cp <= 0x9F;
  return len;
}

}  // namespace

std::string TerminalSafe(absl::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) {
      if (keep_newlines && (c == '\n' || c == '\t')) {
        out.push_back(static_cast<char>(c));
      } else {
        out += kReplacement;
      }
      ++i;
      continue;
    }
    bool control = false;
    size_t len = Utf8SequenceLength(text, i, &control);
    if (len == 0 || control) {
      out += kReplacement;
      i += len == 0 ? 1 : len;
      continue;
    }
    out.append(text.data() + i, len);
    i += len;
  }
  return out;
}

}  // namespace parc::common
