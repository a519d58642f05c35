#include "common/csv.h"

#include <array>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace parc::common {
namespace {

char DetectDelimiter(absl::string_view content) {
  std::array<std::pair<char, int>, 3> counts = {{{';', 0}, {',', 0}, {'\t', 0}}};
  bool quoted = false;
  for (char c : content) {
    if (c == '"') quoted = !quoted;
    if (!quoted && (c == '\n' || c == '\r')) break;
    if (quoted) continue;
    for (auto& [d, n] : counts) {
      if (c == d) ++n;
    }
  }
  char best = ';';
  int best_count = 0;
  for (const auto& [d, n] : counts) {
    if (n > best_count) {
      best = d;
      best_count = n;
    }
  }
  return best;
}

bool IsBlank(const std::vector<std::string>& fields) {
  for (const auto& f : fields) {
    if (!absl::StripAsciiWhitespace(f).empty()) return false;
  }
  return true;
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    // Reject overlong forms, surrogates and out-of-range code points.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

absl::StatusOr<CsvTable> ParseCsv(absl::string_view content) {
  if (content.substr(0, 3) == "\xEF\xBB\xBF") content.remove_prefix(3);
  CsvTable table;
  table.delimiter = DetectDelimiter(content);
  const char delim = table.delimiter;

  uint32_t line = 1;
  size_t i = 0;
  const size_t n = content.size();
  while (i < n) {
    CsvRecord record;
    record.line = line;
    size_t record_start = i;
    std::string field;
    bool at_field_start = true;
    bool in_quotes = false;
    uint32_t quote_line = 0;
    bool done = false;
    while (!done) {
      if (i >= n) {
        if (in_quotes) {
          return absl::InvalidArgumentError(
              absl::StrCat("line ", quote_line, ": quoted field is never closed"));
        }
        record.fields.push_back(std::move(field));
        break;
      }
      char c = content[i];
      if (in_quotes) {
        if (c == '"') {
          if (i + 1 < n && content[i + 1] == '"') {
            field.push_back('"');
            i += 2;
          } else {
            in_quotes = false;
            ++i;
          }
        } else {
          if (c == '\n') ++line;
          field.push_back(c);
          ++i;
        }
        continue;
      }
      if (c == '"' && at_field_start) {
        in_quotes = true;
        quote_line = line;
        at_field_start = false;
        ++i;
      } else if (c == delim) {
        record.fields.push_back(std::move(field));
        field.clear();
        at_field_start = true;
        ++i;
      } else if (c == '\r' || c == '\n') {
        record.fields.push_back(std::move(field));
        if (c == '\r' && i + 1 < n && content[i + 1] == '\n') ++i;
        ++i;
        ++line;
        done = true;
      } else {
        field.push_back(c);
        at_field_start = false;
        ++i;
      }
    }
    if (IsBlank(record.fields)) continue;
    if (!IsValidUtf8(content.substr(record_start, i - record_start))) {
      record.error = "not valid UTF-8 (save the file as UTF-8)";
    }
    table.records.push_back(std::move(record));
  }
  return table;
}

std::string NormalizeHeader(absl::string_view header) {
  // Fold the accented letters found in French headers (UTF-8, two bytes each).
  static const std::array<std::pair<absl::string_view, char>, 20> kFolds = {{
      {"\xC3\xA0", 'a'}, {"\xC3\xA2", 'a'}, {"\xC3\xA4", 'a'}, {"\xC3\xA7", 'c'}, {"\xC3\xA8", 'e'},
      {"\xC3\xA9", 'e'}, {"\xC3\xAA", 'e'}, {"\xC3\xAB", 'e'}, {"\xC3\xAE", 'i'}, {"\xC3\xAF", 'i'},
      {"\xC3\xB4", 'o'}, {"\xC3\xB6", 'o'}, {"\xC3\xB9", 'u'}, {"\xC3\xBB", 'u'}, {"\xC3\xBC", 'u'},
      {"\xC3\x89", 'e'}, {"\xC3\x88", 'e'}, {"\xC3\x80", 'a'}, {"\xC3\x87", 'c'}, {"\xC3\x8E", 'i'},
  }};
  std::string out;
  bool pending_sep = false;
  size_t i = 0;
  while (i < header.size()) {
    char mapped = 0;
    size_t consumed = 1;
    for (const auto& [utf8, ascii] : kFolds) {
      if (header.substr(i, utf8.size()) == utf8) {
        mapped = ascii;
        consumed = utf8.size();
        break;
      }
    }
    if (mapped == 0) {
      auto c = static_cast<unsigned char>(header[i]);
      if (absl::ascii_isalnum(c)) mapped = absl::ascii_tolower(c);
    }
    if (mapped != 0) {
      if (pending_sep && !out.empty()) out.push_back('_');
      pending_sep = false;
      out.push_back(mapped);
    } else {
      pending_sep = true;
    }
    i += consumed;
  }
  return out;
}

std::string CsvRow(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out.push_back(';');
    const std::string& f = fields[i];
    if (f.find_first_of(";\"\r\n") == std::string::npos) {
      out += f;
      continue;
    }
    out.push_back('"');
    for (char c : f) {
      if (c == '"') out.push_back('"');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out += "\r\n";
  return out;
}

std::string NeutralizeFormula(absl::string_view cell) {
  if (cell.empty()) return "";
  const char first = cell[0];
  if (first != '=' && first != '+' && first != '-' && first != '@' && first != '\t' &&
      first != '\r') {
    return std::string(cell);
  }
  // A signed decimal number is data, not a formula.
  if (first == '+' || first == '-') {
    bool digits = false, number = true;
    bool dot = false;
    for (size_t i = 1; i < cell.size() && number; ++i) {
      char c = cell[i];
      if (c >= '0' && c <= '9') {
        digits = true;
      } else if ((c == '.' || c == ',') && !dot) {
        dot = true;
      } else {
        number = false;
      }
    }
    if (number && digits) return std::string(cell);
  }
  return absl::StrCat("'", cell);
}

std::string CsvExportRow(const std::vector<std::string>& fields) {
  std::vector<std::string> safe;
  safe.reserve(fields.size());
  for (const auto& f : fields) safe.push_back(NeutralizeFormula(f));
  return CsvRow(safe);
}

}  // namespace parc::common
