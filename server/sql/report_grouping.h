#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/uai.h"

// How the store's reports group establishments (e: the establishments row), shared by the
// deployment and fleet health reports.
namespace parc::server::sql {

struct ReportGrouping {
  std::string group;  // SQL expression of the group key
  std::string label;  // SQL expression of its label
};

// by: region, academie, departement, commune, establishment, and kind when with_kind (t.kind).
inline absl::StatusOr<ReportGrouping> GroupingFor(const std::string& by, bool with_kind) {
  if (by == "region") return ReportGrouping{"'region'", "'Région académique Occitanie'"};
  if (by == "academie") return ReportGrouping{"e.academie", "e.academie"};
  if (by == "departement") return ReportGrouping{"e.departement", "e.departement"};
  if (by == "commune") return ReportGrouping{"e.commune_code", "e.commune_name"};
  if (by == "establishment") return ReportGrouping{"e.uai", "e.name"};
  if (with_kind && by == "kind") return ReportGrouping{"t.kind", "t.kind"};
  return absl::InvalidArgumentError(
      absl::StrCat("by \"", by.substr(0, 32), "\": region, academie, departement, commune, ",
                   with_kind ? "establishment or kind" : "or establishment"));
}

// "31 Haute-Garonne" for "31".
inline std::string DepartementLabel(const std::string& code) {
  std::string name = common::DepartementName(code);
  return name.empty() ? code : absl::StrCat(code, " ", name);
}

}  // namespace parc::server::sql
