#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parc::common {

struct CsvRecord {
  // 1-based line number where the record starts in the file.
  uint32_t line = 0;
  std::vector<std::string> fields;
  // Non-empty when the record cannot be used as is (e.g. not valid UTF-8).
  std::string error;
};

struct CsvTable {
  char delimiter = ';';
  std::vector<CsvRecord> records;  // the header, if any, is records[0]
};

// Parses CSV text as exported by spreadsheets and open-data portals: UTF-8 with or without
// a byte-order mark, CRLF or LF line ends, fields optionally quoted with "" as the escaped
// quote (quoted fields may span lines). The delimiter (';', ',' or tab) is the one that occurs
// most often outside quotes on the first line. Blank lines are skipped. Fields are returned
// as written, without trimming. Fails only on an unterminated quote, naming its line.
[[nodiscard]] absl::StatusOr<CsvTable> ParseCsv(absl::string_view content);

// Normalizes a column header for alias matching: ASCII lower case, French accents folded
// ("é" → "e"), every run of other characters replaced by one '_', trimmed of '_'.
// "Identifiant de l'établissement" → "identifiant_de_l_etablissement".
std::string NormalizeHeader(absl::string_view header);

// CSV for spreadsheets as French users open them: fields separated by ';', quoted when
// needed, CRLF line ends. A file starts with kCsvBom so that Excel reads it as UTF-8.
inline constexpr char kCsvBom[] = "\xEF\xBB\xBF";
std::string CsvRow(const std::vector<std::string>& fields);

// A cell of an exported file as spreadsheet software should read it: text that LibreOffice
// Calc or Excel would take for a formula (it starts with '=', '+', '-', '@', a tab or a carriage
// return) gets a leading apostrophe, so that it is shown as text and never evaluated; plain
// numbers ("-3", "+2.5") are left as they are. Exports of device- or operator-supplied text
// (dashboard CSV, parcctl --format csv) go through it.
std::string NeutralizeFormula(absl::string_view cell);
// CsvRow of the cells after NeutralizeFormula.
std::string CsvExportRow(const std::vector<std::string>& fields);

// True when text is well-formed UTF-8.
bool IsValidUtf8(absl::string_view text);

}  // namespace parc::common
