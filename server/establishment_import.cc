#include "server/establishment_import.h"

#include <array>
#include <map>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/csv.h"
#include "common/status_macros.h"
#include "common/uai.h"

namespace parc::server {
namespace {

enum Column {
  kUai,
  kName,
  kType,
  kSector,
  kCommuneCode,
  kCommuneName,
  kDepartement,
  kAcademie,
  kRegionCode,
  kRegionName,
  kTags,
  kColumnCount
};

struct ColumnSpec {
  Column column;
  absl::string_view label;
  std::vector<absl::string_view> aliases;  // normalized header names
};

const std::vector<ColumnSpec>& Specs() {
  static const auto* specs = new std::vector<ColumnSpec>{
      {kUai,
       "UAI",
       {"identifiant_de_l_etablissement", "uai", "numero_uai", "numero_d_uai", "code_uai",
        "uai_etablissement", "code_etablissement", "identifiant_uai"}},
      {kName,
       "name",
       {"nom_etablissement", "appellation_officielle", "nom", "denomination_principale",
        "nom_de_l_etablissement", "patronyme_uai", "libelle_etablissement"}},
      {kType,
       "type",
       {"type_etablissement", "nature_uai_libe", "type", "libelle_nature", "nature",
        "type_d_etablissement", "nature_uai_libelle"}},
      {kSector,
       "sector",
       {"statut_public_prive", "secteur_public_prive_libe", "secteur", "statut",
        "secteur_public_prive", "public_prive"}},
      {kCommuneCode,
       "commune code",
       {"code_commune", "code_insee_commune", "com_code", "code_commune_insee", "commune_code",
        "code_insee"}},
      {kCommuneName,
       "commune name",
       {"nom_commune", "libelle_commune", "commune", "com_nom", "nom_de_la_commune"}},
      {kDepartement,
       "departement",
       {"code_departement", "code_du_departement", "departement", "dep_code", "code_dep",
        "code_departement_insee"}},
      {kAcademie,
       "academie",
       {"libelle_academie", "academie", "nom_academie", "code_academie", "aca_nom"}},
      {kRegionCode, "region code", {"code_region", "reg_code"}},
      {kRegionName, "region name", {"libelle_region", "region", "nom_region"}},
      {kTags, "tags", {"tags", "etiquettes", "labels"}},
  };
  return *specs;
}

std::string Fold(absl::string_view s) { return common::NormalizeHeader(s); }

std::string Trimmed(absl::string_view s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::string AcademieName(absl::string_view raw) {
  std::string v = Trimmed(raw);
  // Numeric académie codes of the annuaire for Occitanie.
  if (v == "16") return "Toulouse";
  if (v == "11") return "Montpellier";
  std::string folded = Fold(v);
  if (folded == "toulouse") return "Toulouse";
  if (folded == "montpellier") return "Montpellier";
  return v;
}

std::string SectorOf(absl::string_view raw) {
  std::string f = Fold(raw);
  if (f.empty()) return "";
  if (absl::StartsWith(f, "pu")) return "public";
  if (absl::StartsWith(f, "pr")) return "prive";
  return f;
}

parc::v1::CsvRowError RowError(uint32_t line, absl::string_view field, std::string message) {
  parc::v1::CsvRowError e;
  e.set_line(line);
  e.set_field(std::string(field));
  e.set_message(std::move(message));
  return e;
}

}  // namespace

std::string CategoryOfType(absl::string_view type) {
  std::string t = Fold(type);
  if (t.empty()) return "";
  auto has = [&](absl::string_view word) { return absl::StrContains(t, word); };
  if (has("medico") || has("information_et_orientation") || has("service_administratif") ||
      t == "cio" || has("administratif")) {
    return "ignored";
  }
  if (t == "erea" || has("regional_d_enseignement_adapte")) return "erea";
  if (has("lycee") || t == "lp" || t == "lpo" || t == "legt" || t == "lgt" || has("eplefpa")) {
    return "lycee";
  }
  if (has("college") || t == "clg") return "college";
  if (has("ecole") || has("maternelle") || has("elementaire") || has("primaire")) return "ecole";
  return "";
}

absl::StatusOr<EstablishmentFile> ParseEstablishmentsCsv(absl::string_view content) {
  PARC_ASSIGN_OR_RETURN(common::CsvTable table, common::ParseCsv(content));
  if (table.records.empty()) return absl::InvalidArgumentError("the file is empty");
  const common::CsvRecord& header = table.records[0];
  if (!header.error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("line 1: ", header.error));
  }

  std::array<std::optional<size_t>, kColumnCount> index;
  for (size_t i = 0; i < header.fields.size(); ++i) {
    std::string name = Fold(header.fields[i]);
    for (const auto& spec : Specs()) {
      if (index[spec.column].has_value()) continue;
      for (absl::string_view alias : spec.aliases) {
        if (name == alias) {
          index[spec.column] = i;
          break;
        }
      }
    }
  }
  for (Column required : {kUai, kName, kType}) {
    if (!index[required].has_value()) {
      const ColumnSpec& spec = Specs()[required];
      return absl::InvalidArgumentError(absl::StrCat(
          "line 1: no ", spec.label,
          " column in the header (accepted names: ", absl::StrJoin(spec.aliases, ", "), ")"));
    }
  }

  EstablishmentFile out;
  absl::flat_hash_map<std::string, uint32_t> seen;
  const size_t expected_fields = header.fields.size();
  for (size_t r = 1; r < table.records.size(); ++r) {
    const common::CsvRecord& rec = table.records[r];
    const uint32_t line = rec.line;
    if (!rec.error.empty()) {
      out.errors.push_back(RowError(line, "", rec.error));
      continue;
    }
    if (rec.fields.size() != expected_fields) {
      out.errors.push_back(
          RowError(line, "",
                   absl::StrCat(rec.fields.size(), " fields where the header has ", expected_fields,
                                " (a delimiter inside an unquoted value?)")));
      continue;
    }
    auto field = [&](Column c) -> std::string {
      return index[c].has_value() ? Trimmed(rec.fields[*index[c]]) : std::string();
    };

    auto uai = common::NormalizeUai(field(kUai));
    if (!uai.ok()) {
      out.errors.push_back(RowError(line, "uai", std::string(uai.status().message())));
      continue;
    }
    std::string type = field(kType);
    std::string category = CategoryOfType(type);
    if (category == "ignored") {
      ++out.ignored;
      continue;
    }
    std::vector<parc::v1::CsvRowError> row_errors;
    if (category.empty()) {
      row_errors.push_back(
          RowError(line, "type",
                   type.empty() ? "type is empty"
                                : absl::StrCat("unknown establishment type \"", type,
                                               "\" (expected école, collège, lycée or EREA)")));
    }
    std::string name = field(kName);
    if (name.empty()) row_errors.push_back(RowError(line, "name", "name is empty"));

    std::string departement = common::DepartementFromUai(*uai);
    std::string dep_field = field(kDepartement);
    if (!dep_field.empty()) {
      std::string normalized = common::NormalizeDepartement(dep_field);
      if (normalized.empty()) {
        row_errors.push_back(RowError(
            line, "departement", absl::StrCat("\"", dep_field, "\" is not a département code")));
      } else {
        departement = normalized;
      }
    }
    std::string commune_code = field(kCommuneCode);
    std::string commune_name = field(kCommuneName);
    if (category == "ecole" && commune_code.empty()) {
      row_errors.push_back(RowError(
          line, "commune_code", "an école needs its commune code: the commune owns its equipment"));
    }
    auto it = seen.find(*uai);
    if (it != seen.end()) {
      row_errors.push_back(
          RowError(line, "uai", absl::StrCat("UAI ", *uai, " already on line ", it->second)));
    }
    if (!row_errors.empty()) {
      for (auto& e : row_errors) out.errors.push_back(std::move(e));
      continue;
    }
    seen.emplace(*uai, line);

    parc::v1::Establishment e;
    e.set_uai(*uai);
    e.set_name(name);
    e.set_type(type);
    e.set_category(category);
    e.set_sector(SectorOf(field(kSector)));
    e.set_commune_code(commune_code);
    e.set_commune_name(commune_name);
    e.set_departement(departement);
    std::string academie = AcademieName(field(kAcademie));
    if (academie.empty()) academie = common::AcademieForDepartement(departement);
    e.set_academie(academie);
    if (category == "lycee" || category == "erea") {
      std::string region_code = field(kRegionCode);
      std::string region_name = field(kRegionName);
      if (region_code.empty() && !common::AcademieForDepartement(departement).empty()) {
        region_code = "76";
        region_name = "Occitanie";
      }
      e.set_collectivite_kind("region");
      e.set_collectivite_code(region_code);
      e.set_collectivite_name(region_name.empty() ? "Région"
                                                  : absl::StrCat("Région ", region_name));
    } else if (category == "college") {
      e.set_collectivite_kind("departement");
      e.set_collectivite_code(departement);
      std::string dep_name = common::DepartementName(departement);
      e.set_collectivite_name(dep_name.empty()
                                  ? absl::StrCat("Département ", departement)
                                  : absl::StrCat("Département ", departement, " ", dep_name));
    } else {
      e.set_collectivite_kind("commune");
      e.set_collectivite_code(commune_code);
      e.set_collectivite_name(commune_name.empty() ? absl::StrCat("Commune ", commune_code)
                                                   : absl::StrCat("Commune de ", commune_name));
    }
    std::string tags = field(kTags);
    if (!tags.empty()) {
      std::vector<std::string> parts;
      for (absl::string_view t : absl::StrSplit(tags, absl::ByAnyChar(",|"), absl::SkipEmpty())) {
        std::string tag = absl::AsciiStrToLower(absl::StripAsciiWhitespace(t));
        if (!tag.empty()) e.add_tags(tag);
      }
    }
    out.rows.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<PreassignFile> ParsePreassignCsv(absl::string_view content) {
  PARC_ASSIGN_OR_RETURN(common::CsvTable table, common::ParseCsv(content));
  PreassignFile out;
  if (table.records.empty()) return absl::InvalidArgumentError("the file is empty");
  size_t serial_col = 0;
  size_t uai_col = 1;
  size_t first = 0;
  // A header line names its columns; a data line has a valid UAI in one of them.
  const auto& head = table.records[0].fields;
  bool has_header = true;
  for (const auto& f : head) {
    if (common::NormalizeUai(f).ok()) has_header = false;
  }
  if (has_header) {
    first = 1;
    std::optional<size_t> s, u;
    for (size_t i = 0; i < head.size(); ++i) {
      std::string n = common::NormalizeHeader(head[i]);
      if (n == "uai" || n == "numero_uai" || n == "etablissement" || n == "code_uai") u = i;
      if (n == "serial" || n == "serial_number" || n == "numero_de_serie" || n == "serie" ||
          n == "sn" || n == "num_serie") {
        s = i;
      }
    }
    if (!s.has_value() || !u.has_value()) {
      return absl::InvalidArgumentError(
          "line 1: expected a header naming a serial column (serial, numero_de_serie) and a "
          "uai column, or no header and two columns serial;uai");
    }
    serial_col = *s;
    uai_col = *u;
  }
  absl::flat_hash_map<std::string, uint32_t> seen;
  for (size_t r = first; r < table.records.size(); ++r) {
    const auto& rec = table.records[r];
    if (!rec.error.empty()) {
      out.errors.push_back(RowError(rec.line, "", rec.error));
      continue;
    }
    if (rec.fields.size() <= std::max(serial_col, uai_col)) {
      out.errors.push_back(RowError(
          rec.line, "",
          absl::StrCat(rec.fields.size(), " field(s); expected a serial number and a UAI")));
      continue;
    }
    std::string serial = Trimmed(rec.fields[serial_col]);
    if (serial.empty()) {
      out.errors.push_back(RowError(rec.line, "serial", "serial number is empty"));
      continue;
    }
    auto uai = common::NormalizeUai(rec.fields[uai_col]);
    if (!uai.ok()) {
      out.errors.push_back(RowError(rec.line, "uai", std::string(uai.status().message())));
      continue;
    }
    auto [it, inserted] = seen.emplace(serial, rec.line);
    if (!inserted) {
      out.errors.push_back(
          RowError(rec.line, "serial",
                   absl::StrCat("serial number ", serial, " already on line ", it->second)));
      continue;
    }
    out.rows.push_back({rec.line, serial, *uai});
  }
  return out;
}

}  // namespace parc::server
