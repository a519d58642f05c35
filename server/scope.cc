#include "server/scope.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/uai.h"

namespace parc::server {
namespace {

absl::Status Bad(const std::string& text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "scope \"", text, "\": ", why,
      " (region, academie:NAME, departement:CODE, commune:CODE,…, uai:UAI,…, "
      "collectivite:region, collectivite:departement:CODE, collectivite:commune:CODE,…)"));
}

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != 'A' && c != 'B') return false;
  }
  return true;
}

}  // namespace

Scope Scope::Region() { return Scope(); }

Scope Scope::Uais(std::set<std::string> uais) {
  Scope s;
  s.kind_ = Kind::kUais;
  s.text_ = absl::StrCat("uai:", absl::StrJoin(uais, ","));
  s.values_ = std::move(uais);
  return s;
}

absl::StatusOr<Scope> Scope::Parse(const std::string& raw) {
  std::string text(absl::StripAsciiWhitespace(raw));
  Scope s;
  if (text.empty() || text == "region") return s;
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  auto list = [&](const std::string& values) {
    std::set<std::string> out;
    for (absl::string_view v : absl::StrSplit(values, ',', absl::SkipEmpty())) {
      out.insert(std::string(absl::StripAsciiWhitespace(v)));
    }
    return out;
  };
  if (parts.size() == 2 && parts[0] == "academie") {
    s.kind_ = Kind::kAcademie;
    s.values_ = {absl::AsciiStrToLower(parts[1])};
  } else if (parts.size() == 2 && parts[0] == "departement") {
    std::string dep = common::NormalizeDepartement(parts[1]);
    if (dep.empty()) return Bad(text, "not a département code");
    s.kind_ = Kind::kDepartement;
    s.values_ = {dep};
  } else if (parts.size() == 2 && parts[0] == "commune") {
    s.kind_ = Kind::kCommunes;
    s.values_ = list(parts[1]);
    for (const auto& c : s.values_) {
      if (!AllDigits(c)) return Bad(text, absl::StrCat("\"", c, "\" is not a commune code"));
    }
  } else if (parts.size() == 2 && parts[0] == "uai") {
    s.kind_ = Kind::kUais;
    for (const auto& u : list(parts[1])) {
      auto uai = common::NormalizeUai(u);
      if (!uai.ok()) return Bad(text, uai.status().message());
      s.values_.insert(*uai);
    }
  } else if (parts.size() == 2 && parts[0] == "collectivite" && parts[1] == "region") {
    s.kind_ = Kind::kCollectiviteRegion;
  } else if (parts.size() == 3 && parts[0] == "collectivite" && parts[1] == "departement") {
    std::string dep = common::NormalizeDepartement(parts[2]);
    if (dep.empty()) return Bad(text, "not a département code");
    s.kind_ = Kind::kCollectiviteDepartement;
    s.values_ = {dep};
  } else if (parts.size() == 3 && parts[0] == "collectivite" && parts[1] == "commune") {
    s.kind_ = Kind::kCollectiviteCommunes;
    s.values_ = list(parts[2]);
    for (const auto& c : s.values_) {
      if (!AllDigits(c)) return Bad(text, absl::StrCat("\"", c, "\" is not a commune code"));
    }
  } else {
    return Bad(text, "unknown form");
  }
  if (s.values_.empty() && s.kind_ != Kind::kCollectiviteRegion) return Bad(text, "no value");
  s.text_ = text;
  return s;
}

bool Scope::Contains(const parc::v1::Establishment& e) const {
  switch (kind_) {
    case Kind::kRegion:
      return true;
    case Kind::kAcademie:
      return values_.count(absl::AsciiStrToLower(e.academie())) > 0;
    case Kind::kDepartement:
      return values_.count(e.departement()) > 0;
    case Kind::kCommunes:
      return values_.count(e.commune_code()) > 0;
    case Kind::kUais:
      return values_.count(e.uai()) > 0;
    case Kind::kCollectiviteRegion:
      return e.collectivite_kind() == "region";
    case Kind::kCollectiviteDepartement:
      return e.collectivite_kind() == "departement" && values_.count(e.collectivite_code()) > 0;
    case Kind::kCollectiviteCommunes:
      return e.collectivite_kind() == "commune" && values_.count(e.collectivite_code()) > 0;
  }
  return false;
}

std::optional<std::set<std::string>> Scope::Resolve(
    const std::vector<parc::v1::Establishment>& all) const {
  if (kind_ == Kind::kRegion) return std::nullopt;
  std::set<std::string> out;
  for (const auto& e : all) {
    if (Contains(e)) out.insert(e.uai());
  }
  return out;
}

}  // namespace parc::server
