#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store.h"

// What a rollout does next, decided from its record and its counts alone: the same rules
// whatever engine stores them (each store applies the decision in its own transaction).
namespace parc::server {

// The state an operator's action leads to: start (draft → running), pause (running →
// paused), resume (paused → running), cancel (draft, running or paused → cancelled);
// FAILED_PRECONDITION, naming the rollout and its state, for any other pair.
[[nodiscard]] absl::StatusOr<std::string> NextRolloutState(const RolloutRecord& rollout,
                                                           const std::string& action);

struct RolloutDecision {
  std::string state;
  std::string reason;
  uint32_t current_wave = 0;
  // False when nothing changes.
  bool changed = false;
};

// For a running rollout and its per-establishment counts (RolloutCounts, whole region):
// pauses it when the failures of the started waves reach max_failures_count or
// max_failures_percent (the reason names the most common error); otherwise starts each next
// wave once the current one reached success_percent installed, and completes the rollout when
// the last wave is started and every targeted device installed.
RolloutDecision DecideRollout(const RolloutRecord& rollout,
                              const std::vector<EstablishmentCounts>& counts);

}  // namespace parc::server
