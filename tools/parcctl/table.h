#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace parc::cli {

// Number of characters (code points) of UTF-8 text, as a terminal lays them out.
size_t DisplayWidth(const std::string& text);

// A text table with a header row, columns padded to their widest cell. Empty cells show "-".
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size(); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace parc::cli
