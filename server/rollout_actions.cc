#include "server/rollout_actions.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace parc::server {

absl::StatusOr<RolloutRecord> RolloutActions::Visible(const Caller& caller, const std::string& id) {
  return store_->GetRollout(id, caller.scope);
}

absl::StatusOr<std::vector<RolloutRecord>> RolloutActions::ListVisible(const Caller& caller) {
  return store_->ListRollouts(caller.scope);
}

absl::Status RolloutActions::MayChange(const Caller& caller, const RolloutRecord& rollout) const {
  if (!caller.HasRole({kRoleAdmin, kRolePublisher})) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the role ", caller.record.role, " cannot change rollouts: ask an admin or a publisher"));
  }
  if (!caller.scope.is_region() && rollout.created_by != caller.record.name) {
    return absl::PermissionDeniedError(
        absl::StrCat("rollout ", rollout.id, " was created by ", rollout.created_by,
                     " and reaches beyond your scope (", caller.scope.text(),
                     "): only its creator or a region-wide admin or publisher can change it"));
  }
  return absl::OkStatus();
}

void RolloutActions::Apply(const Caller& caller, const std::string& id, const std::string& action,
                           StoreCallback<RolloutRecord> done) {
  if (action != "start" && action != "pause" && action != "resume" && action != "cancel") {
    return done(absl::InvalidArgumentError("action: start, pause, resume or cancel"));
  }
  auto rollout = Visible(caller, id);
  if (!rollout.ok()) return done(rollout.status());
  absl::Status allowed = MayChange(caller, *rollout);
  if (!allowed.ok()) return done(allowed);
  std::string reason;
  if (action == "pause") reason = absl::StrCat("paused by ", caller.record.name);
  if (action == "cancel") reason = absl::StrCat("cancelled by ", caller.record.name);
  store_->UpdateRolloutState(id, action, reason, clock_->Now(),
                             [this, done = std::move(done)](absl::StatusOr<RolloutRecord> r) {
                               if (r.ok() && changed_) changed_(r->id);
                               done(std::move(r));
                             });
}

}  // namespace parc::server
