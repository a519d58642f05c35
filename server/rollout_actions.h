#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "server/operator_auth.h"
#include "server/store.h"

namespace parc::server {

// Who may see and change a rollout, and the change itself: one domain action that the gRPC
// service (parcctl) and the dashboard both call, so that both doors give the same answers.
//  - See: a region-wide operator sees every rollout; a scoped one, the rollouts that target at
//    least one establishment of its scope. Others do not exist for it (NOT_FOUND).
//  - Change (start, pause, resume, cancel): admins and publishers; region-wide ones any
//    rollout, scoped ones the rollouts they created (which reach only their scope). Seeing a
//    rollout it may not change, an operator is told why (PERMISSION_DENIED with the reason).
// Thread-safe (the store is).
class RolloutActions {
 public:
  RolloutActions(Store* store, const common::Clock* clock,
                 std::function<void(const std::string& id)> changed)
      : store_(store), clock_(clock), changed_(std::move(changed)) {}

  [[nodiscard]] absl::StatusOr<RolloutRecord> Visible(const Caller& caller, const std::string& id);
  [[nodiscard]] absl::StatusOr<std::vector<RolloutRecord>> ListVisible(const Caller& caller);
  // Why the caller may not change this visible rollout, or OK.
  [[nodiscard]] absl::Status MayChange(const Caller& caller, const RolloutRecord& rollout) const;
  // Applies action ("start", "pause", "resume", "cancel") and asks for an evaluation.
  void Apply(const Caller& caller, const std::string& id, const std::string& action,
             StoreCallback<RolloutRecord> done);

 private:
  Store* store_;
  const common::Clock* clock_;
  std::function<void(const std::string& id)> changed_;
};

}  // namespace parc::server
