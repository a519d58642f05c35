#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "parc/v1/admin.pb.h"

namespace parc::server {

struct EstablishmentFile {
  std::vector<parc::v1::Establishment> rows;
  // Every bad row, with its line number, field and reason.
  std::vector<parc::v1::CsvRowError> errors;
  // Rows of establishment types Parc does not serve.
  uint32_t ignored = 0;
};

// Parses an export of the "annuaire de l'éducation" (or any CSV with the same columns under
// one of their common names). Required columns: UAI, name, type. Optional: sector, commune
// code and name, département (else taken from the UAI), académie (else derived from the
// département in Occitanie), region code and name, tags. Derives the category (école,
// collège, lycée, EREA) and the collectivité that owns the equipment.
//
// INVALID_ARGUMENT for problems with the whole file (no header, missing required column,
// unterminated quote); problems with rows go to errors.
[[nodiscard]] absl::StatusOr<EstablishmentFile> ParseEstablishmentsCsv(absl::string_view content);

struct PreassignFile {
  struct Row {
    uint32_t line;
    std::string serial;
    std::string uai;
  };
  std::vector<Row> rows;
  std::vector<parc::v1::CsvRowError> errors;
};

// Parses a supplier delivery list: two columns, serial number and UAI, with or without a
// header line. The same serial twice is an error on the second line.
[[nodiscard]] absl::StatusOr<PreassignFile> ParsePreassignCsv(absl::string_view content);

// Category of an establishment type as written in the annuaire ("Lycée", "COLLEGE",
// "ECOLE ELEMENTAIRE PUBLIQUE", "EREA"…): "lycee", "college", "ecole", "erea", "ignored" for
// types Parc does not serve, "" when unrecognized.
std::string CategoryOfType(absl::string_view type);

}  // namespace parc::server
