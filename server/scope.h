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
//
// The store receives a Scope with every call that lists or touches devices and establishments,
// and each backend turns kind() and values() into its own SQL (server/sqlite/scope_sql.h):
// there is no "empty means everything"; the whole region is Scope::Region(), said explicitly.
class Scope {
 public:
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

  [[nodiscard]] static absl::StatusOr<Scope> Parse(const std::string& text);
  static Scope Region();
  // Exactly these establishments (e.g. one establishment a caller already may see).
  static Scope Uais(std::set<std::string> uais);

  bool is_region() const { return kind_ == Kind::kRegion; }
  bool Contains(const parc::v1::Establishment& e) const;
  const std::string& text() const { return text_; }
  Kind kind() const { return kind_; }
  // Académies (lower case), départements, commune codes or UAIs, as kind() says; empty for
  // kRegion and kCollectiviteRegion.
  const std::set<std::string>& values() const { return values_; }

  // The UAIs in scope among all, or nullopt for the whole region (no filter).
  std::optional<std::set<std::string>> Resolve(
      const std::vector<parc::v1::Establishment>& all) const;

 private:
  Scope() = default;

  Kind kind_ = Kind::kRegion;
  std::set<std::string> values_;
  std::string text_ = "region";
};

}  // namespace parc::server
