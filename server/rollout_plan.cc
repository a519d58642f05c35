#include "server/rollout_plan.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "common/uai.h"

namespace parc::server {

absl::StatusOr<std::vector<parc::v1::Establishment>> SelectEstablishments(
    const std::string& target, const std::vector<parc::v1::Establishment>& all) {
  std::string kind = target, value;
  size_t colon = target.find(':');
  if (colon != std::string::npos) {
    kind = target.substr(0, colon);
    value = std::string(absl::StripAsciiWhitespace(target.substr(colon + 1)));
  }
  kind = absl::AsciiStrToLower(absl::StripAsciiWhitespace(kind));
  std::vector<parc::v1::Establishment> out;
  if (kind == "all" && value.empty()) return all;
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target \"", target,
        "\": expected all, academie:NAME, departement:CODE, commune:CODE, uai:UAI,… or tag:TAG"));
  }
  if (kind == "uai") {
    std::set<std::string> wanted;
    for (absl::string_view u : absl::StrSplit(value, ',', absl::SkipEmpty())) {
      auto uai = common::NormalizeUai(u);
      if (!uai.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("target: ", uai.status().message()));
      }
      wanted.insert(*uai);
    }
    for (const auto& e : all) {
      if (wanted.erase(e.uai()) > 0) out.push_back(e);
    }
    if (!wanted.empty()) {
      return absl::NotFoundError(
          absl::StrCat("target: no establishment with UAI ", *wanted.begin()));
    }
    return out;
  }
  std::string dep = kind == "departement" ? common::NormalizeDepartement(value) : "";
  if (kind == "departement" && dep.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("target: \"", value, "\" is not a département code"));
  }
  for (const auto& e : all) {
    bool match = false;
    if (kind == "academie") {
      match = absl::EqualsIgnoreCase(e.academie(), value);
    } else if (kind == "departement") {
      match = e.departement() == dep;
    } else if (kind == "commune") {
      match = e.commune_code() == value || absl::EqualsIgnoreCase(e.commune_name(), value);
    } else if (kind == "tag") {
      std::string tag = absl::AsciiStrToLower(value);
      match = std::find(e.tags().begin(), e.tags().end(), tag) != e.tags().end();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "target \"", target,
          "\": expected all, academie:NAME, departement:CODE, commune:CODE, uai:UAI,… or "
          "tag:TAG"));
    }
    if (match) out.push_back(e);
  }
  return out;
}

absl::StatusOr<std::vector<RolloutEstablishment>> PlanWaves(
    const std::string& rollout_id, const std::vector<parc::v1::Establishment>& selected,
    const std::vector<std::string>& pilots, const std::vector<uint32_t>& percentages,
    uint32_t* wave_count) {
  if (percentages.empty() || percentages.back() != 100) {
    return absl::InvalidArgumentError("waves: cumulative percentages must end at 100");
  }
  for (size_t i = 0; i < percentages.size(); ++i) {
    if (percentages[i] == 0 || percentages[i] > 100 ||
        (i > 0 && percentages[i] <= percentages[i - 1])) {
      return absl::InvalidArgumentError(
          "waves: percentages must increase strictly, from 1 to 100 (e.g. 5,25,100)");
    }
  }
  std::set<std::string> selected_uais;
  for (const auto& e : selected) selected_uais.insert(e.uai());
  std::set<std::string> pilot_set;
  for (const auto& raw : pilots) {
    auto uai = common::NormalizeUai(raw);
    if (!uai.ok())
      return absl::InvalidArgumentError(absl::StrCat("pilot: ", uai.status().message()));
    if (selected_uais.count(*uai) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("pilot ", *uai, " is not among the establishments the target selects"));
    }
    pilot_set.insert(*uai);
  }
  std::vector<RolloutEstablishment> members;
  uint32_t wave = 0;
  for (const auto& uai : pilot_set) members.push_back({uai, 0});
  if (!pilot_set.empty()) wave = 1;

  std::vector<std::pair<std::string, std::string>> rest;  // (order key, uai)
  for (const auto& uai : selected_uais) {
    if (pilot_set.count(uai) == 0) {
      rest.emplace_back(common::Sha256Hex(absl::StrCat(rollout_id, "/", uai)), uai);
    }
  }
  std::sort(rest.begin(), rest.end());
  size_t placed = 0;
  for (uint32_t pct : percentages) {
    size_t upto = static_cast<size_t>(
        std::ceil(static_cast<double>(rest.size()) * static_cast<double>(pct) / 100.0));
    upto = std::max(upto, std::min(rest.size(), placed + 1));
    if (upto <= placed) continue;
    for (; placed < upto; ++placed) members.push_back({rest[placed].second, wave});
    ++wave;
  }
  *wave_count = std::max<uint32_t>(wave, 1);
  return members;
}

}  // namespace parc::server
