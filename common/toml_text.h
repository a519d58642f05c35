#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace parc::common {

// TOML text rewritten in ASCII, for toml++. The toml++ of Debian 12 (3.3.0) reaches a
// __builtin_unreachable (undefined behaviour: a crash or worse) when it asks whether some
// non-ASCII characters (U+00A1–U+0499, U+2FFE–U+33F7: French accented letters among them) are
// whitespace, which it does in many places (found by fuzz/fuzz_agent_config.cc). Given ASCII
// only, it never asks. So: non-ASCII characters in basic strings become \uXXXX escapes (the
// same value once parsed), literal strings holding any become basic strings, comments lose
// them, and anywhere else (never valid TOML) the text is refused naming the line. Newlines are
// kept, so toml++'s line numbers stay right. Header-only: the small parc-agent links no Parc
// library.
inline absl::StatusOr<std::string> AsciiToml(absl::string_view text, absl::string_view name) {
  std::string out;
  out.reserve(text.size());
  size_t line = 1;
  auto fail = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(name, ":", line, ": ", what));
  };
  // Decodes the UTF-8 sequence at text[i] into *cp; its length, or 0 when it is not UTF-8.
  auto decode = [&](size_t i, uint32_t* cp) -> size_t {
    const auto b0 = static_cast<unsigned char>(text[i]);
    size_t len = b0 >= 0xF0 && b0 < 0xF5 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC2 && b0 < 0xE0 ? 2 : 0;
    if (len == 0 || b0 >= 0xF5 || i + len > text.size()) return 0;
    uint32_t v = b0 & (0x7Fu >> len);
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xC0) != 0x80) return 0;
      v = (v << 6) | (b & 0x3Fu);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF)) {
      return 0;
    }
    *cp = v;
    return len;
  };
  auto escape = [](uint32_t cp) {
    return cp <= 0xFFFF ? absl::StrFormat("\\u%04X", cp) : absl::StrFormat("\\U%08X", cp);
  };
  enum class State { kCode, kComment, kBasic, kMultiBasic, kMultiLiteral };
  State state = State::kCode;
  size_t i = 0;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") i = 3;  // a byte-order mark
  auto at = [&](absl::string_view s) { return text.substr(i, s.size()) == s; };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '\n') ++line;
    const bool ascii = (static_cast<unsigned char>(c) & 0x80) == 0;
    uint32_t cp = 0;
    size_t len = 1;
    if (!ascii) {
      len = decode(i, &cp);
      if (len == 0) return fail("the text is not UTF-8");
    }
    switch (state) {
      case State::kCode:
        if (!ascii) return fail("a non-ASCII character outside a string or a comment");
        if (c == '#') {
          state = State::kComment;
        } else if (at("\"\"\"")) {
          state = State::kMultiBasic;
          out += "\"\"";
          i += 2;
        } else if (at("'''")) {
          state = State::kMultiLiteral;
          out += "''";
          i += 2;
        } else if (c == '"') {
          state = State::kBasic;
        } else if (c == '\'') {
          // A literal string: kept as it is when ASCII, else rewritten as a basic string.
          size_t end = text.find_first_of("'\n", i + 1);
          if (end == absl::string_view::npos || text[end] != '\'') end = text.size();
          // Unterminated: the rest of the text (which toml++ then refuses).
          absl::string_view body = text.substr(i + 1, end - i - 1);
          bool plain = true;
          for (char b : body) plain = plain && (static_cast<unsigned char>(b) & 0x80) == 0;
          if (plain) {
            absl::StrAppend(&out, text.substr(i, std::min(end + 1, text.size()) - i));
            i = std::min(end + 1, text.size());
            continue;
          }
          if (end == text.size()) return fail("a non-ASCII character in an unterminated string");
          out += '"';
          for (size_t k = 0; k < body.size();) {
            uint32_t v = 0;
            const char b = body[k];
            if ((static_cast<unsigned char>(b) & 0x80) == 0) {
              if (b == '"' || b == '\\') out += '\\';
              out += b;
              ++k;
              continue;
            }
            const size_t n = decode(static_cast<size_t>(body.data() - text.data()) + k, &v);
            if (n == 0) return fail("the text is not UTF-8");
            out += escape(v);
            k += n;
          }
          out += '"';
          i = end + 1;
          continue;
        }
        break;
      case State::kComment:
        if (c == '\n') state = State::kCode;
        if (!ascii) {
          out += '?';
          i += len;
          continue;
        }
        break;
      case State::kBasic:
        if (!ascii) {
          out += escape(cp);
          i += len;
          continue;
        }
        if (c == '\\' && i + 1 < text.size()) {
          if ((static_cast<unsigned char>(text[i + 1]) & 0x80) != 0) {
            return fail("a backslash before a non-ASCII character");
          }
          absl::StrAppend(&out, text.substr(i, 2));
          i += 2;
          continue;
        }
        if (c == '"' || c == '\n') state = State::kCode;
        break;
      case State::kMultiBasic:
        if (!ascii) {
          out += escape(cp);
          i += len;
          continue;
        }
        if (c == '\\' && i + 1 < text.size() && text[i + 1] == '\\') {
          out += "\\\\";
          i += 2;
          continue;
        }
        if (at("\"\"\"")) {
          state = State::kCode;
          out += "\"\"";
          i += 2;
        }
        break;
      case State::kMultiLiteral:
        if (!ascii) return fail("a non-ASCII character in a multi-line literal string");
        if (at("'''")) {
          state = State::kCode;
          out += "''";
          i += 2;
        }
        break;
    }
    out += c;
    ++i;
  }
  return out;
}

}  // namespace parc::common
