#include "server/rollout_policy.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace parc::server {

absl::StatusOr<std::string> NextRolloutState(const RolloutRecord& r, const std::string& action) {
  if (action == "start" && r.state == "draft") return std::string("running");
  if (action == "pause" && r.state == "running") return std::string("paused");
  if (action == "resume" && r.state == "paused") return std::string("running");
  if (action == "cancel" && (r.state == "draft" || r.state == "running" || r.state == "paused")) {
    return std::string("cancelled");
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cannot ", action, " rollout ", r.id, ": it is ", r.state));
}

RolloutDecision DecideRollout(const RolloutRecord& r,
                              const std::vector<EstablishmentCounts>& counts) {
  std::vector<EstablishmentCounts> waves(r.wave_count);
  std::map<std::string, std::pair<uint32_t, std::string>> errors;
  for (const auto& c : counts) {
    if (c.wave >= waves.size()) continue;
    auto& w = waves[c.wave];
    w.targeted += c.targeted;
    w.installed += c.installed;
    w.failed += c.failed;
    if (c.wave <= r.current_wave) {
      for (const auto& e : c.errors) {
        errors[e.reason].first += e.devices;
        errors[e.reason].second = e.example;
      }
    }
  }
  uint32_t started_targeted = 0, started_failed = 0;
  for (uint32_t w = 0; w <= r.current_wave && w < waves.size(); ++w) {
    started_targeted += waves[w].targeted;
    started_failed += waves[w].failed;
  }
  std::string next_state = r.state, reason = r.state_reason;
  uint32_t wave = r.current_wave;
  bool too_many =
      started_failed > 0 &&
      ((r.max_failures_count > 0 && started_failed >= r.max_failures_count) ||
       (r.max_failures_percent > 0 &&
        uint64_t{started_failed} * 100 > uint64_t{r.max_failures_percent} * started_targeted));
  if (too_many) {
    auto worst = std::max_element(errors.begin(), errors.end(), [](const auto& a, const auto& b) {
      return a.second.first < b.second.first;
    });
    next_state = "paused";
    reason = absl::StrCat(
        "paused automatically: ", started_failed, " of ", started_targeted,
        " devices of the started waves failed, over the limit of ",
        r.max_failures_count > 0 ? absl::StrCat(r.max_failures_count, " devices")
                                 : absl::StrCat(r.max_failures_percent, "%"),
        worst == errors.end()
            ? ""
            : absl::StrCat("; most common error: ", worst->first, " (", worst->second.first,
                           " devices), e.g. ", worst->second.second));
  } else {
    auto reached = [&](const EstablishmentCounts& w) {
      return uint64_t{w.installed} * 100 >= uint64_t{r.success_percent} * w.targeted;
    };
    while (wave + 1 < r.wave_count && reached(waves[wave])) ++wave;
    uint32_t targeted = 0, installed = 0;
    for (const auto& w : waves) {
      targeted += w.targeted;
      installed += w.installed;
    }
    if (wave + 1 == r.wave_count && installed == targeted) {
      next_state = "completed";
      reason = absl::StrCat("every targeted device (", targeted, ") installed");
    }
  }
  RolloutDecision d;
  d.state = next_state;
  d.reason = reason;
  d.current_wave = wave;
  d.changed = next_state != r.state || wave != r.current_wave;
  return d;
}

}  // namespace parc::server
