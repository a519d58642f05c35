#include "tools/parcctl/table.h"

#include <algorithm>

#include "common/text.h"

namespace parc::cli {

size_t DisplayWidth(const std::string& text) {
  size_t width = 0;
  for (char c : text) {
    // Count every byte that does not continue a multi-byte sequence.
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
  }
  return width;
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(header_.size(), 0);
  // Cells come from devices and operators: they are printed without control characters.
  auto cell = [](const std::vector<std::string>& row, size_t i) -> std::string {
    if (i >= row.size() || row[i].empty()) return "-";
    return common::TerminalSafe(row[i]);
  };
  for (size_t i = 0; i < header_.size(); ++i) {
    widths[i] = DisplayWidth(common::TerminalSafe(header_[i]));
    for (const auto& row : rows_) widths[i] = std::max(widths[i], DisplayWidth(cell(row, i)));
  }
  auto print_row = [&](const std::vector<std::string>& row, bool is_header) {
    std::string line;
    for (size_t i = 0; i < header_.size(); ++i) {
      std::string text = is_header ? common::TerminalSafe(header_[i]) : cell(row, i);
      line += text;
      if (i + 1 < header_.size()) line.append(widths[i] - DisplayWidth(text) + 2, ' ');
    }
    out << line << "\n";
  };
  print_row(header_, true);
  for (const auto& row : rows_) print_row(row, false);
}

}  // namespace parc::cli
