#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/uai.h"
#include "server/scope.h"
#include "server/sql/sql.h"

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

// The establishments in scope, grouped: each group's key, greatest label and parent (as a
// scan's max()) and number of establishments (with or without devices), and the group of
// each UAI. The reports sum their tallies' rows into per-group counts indexed like `groups`.
struct EstablishmentGroups {
  struct Group {
    std::string key, label, parent;
    int64_t establishments = 0;
  };
  std::vector<Group> groups;                          // in the order first read
  absl::flat_hash_map<std::string, size_t> group_of;  // UAI -> index in groups

  // The index of the UAI's group, or nullptr for an establishment out of scope or unknown.
  const size_t* Find(const std::string& uai) const {
    auto it = group_of.find(uai);
    return it == group_of.end() ? nullptr : &it->second;
  }
  // The indexes of `groups` in the byte order of their keys (the order of the reports' rows).
  std::vector<size_t> ByKey() const;
};

// Reads the establishments (e) in scope, grouped by the SQL expressions `group` with `label`
// and `parent` (each may be a constant, such as '').
absl::StatusOr<EstablishmentGroups> ReadEstablishmentGroups(Connection& db,
                                                            const std::string& group,
                                                            const std::string& label,
                                                            const std::string& parent,
                                                            const Scope& scope);

}  // namespace parc::server::sql
