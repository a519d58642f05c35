#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parc/v1/admin.pb.h"

namespace parc::server {

// What part of the territory an operator may see. Written as:
//   region                    everything (the académies' and the Région's IT teams)
//   academie:Toulouse         the establishments of an académie
//   departement:31            the establishments of a département (all types)
//   commune:31555[,31069…]    the establishments of communes (a commune, or an EPCI's list)
//   uai:0310036W[,…]          a list of establishments
// and, following who owns the equipment (docs/design.md, "Operators: roles, scopes, audit"):
//   collectivite:region               the lycées and EREA (the Conseil régional)
//   collectivite:departement:31       the collèges of département 31 (its Conseil départemental)
//   collectivite:commune:31555[,…]    the écoles of communes (a commune or EPCI)
class Scope {
 public:
  [[nodiscard]] static absl::StatusOr<Scope> Parse(const std::string& text);
  static Scope Region();

  bool is_region() const { return kind_ == Kind::kRegion; }
  bool Contains(const parc::v1::Establishment& e) const;
  const std::string& text() const { return text_; }

  // The UAIs in scope among all, or nullopt for the whole region (no filter).
  std::optional<std::set<std::string>> Resolve(
      const std::vector<parc::v1::Establishment>& all) const;

 private:
  enum class Kind {
    kRegion,
    kAcademie,
    kDepartement,
    kCommunes,
    kUais,
    kCollectiviteRegion,
    kCollectiviteDepartement,
    kCollectiviteCommunes
  };
  Kind kind_ = Kind::kRegion;
  std::set<std::string> values_;
  std::string text_ = "region";
};

// JSON array of the UAIs ("[\"0310036W\",…]") for SQL filters (json_each), "" for no filter.
std::string ScopeFilterJson(const std::optional<std::set<std::string>>& uais);

}  // namespace parc::server
