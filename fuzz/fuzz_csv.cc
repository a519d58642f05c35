// The annuaire and delivery-list CSV files operators import (from open data and suppliers).
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "common/csv.h"
#include "server/establishment_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parc::common::ParseCsv(text);
  auto establishments = parc::server::ParseEstablishmentsCsv(text);
  if (establishments.ok()) {
    // Every accepted row has a valid UAI; every refused one names its line.
    for (const auto& e : establishments->errors) {
      if (e.line() == 0) __builtin_trap();
    }
  }
  auto deliveries = parc::server::ParsePreassignCsv(text);
  if (deliveries.ok()) {
    for (const auto& r : deliveries->rows) {
      if (r.serial.empty() || r.uai.size() != 8) __builtin_trap();
    }
  }
  return 0;
}
