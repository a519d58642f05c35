#include "server/rollout_actions.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace parc::server {

absl::StatusOr<RolloutRecord> RolloutActions::Visible(const Caller& caller, const std::string& id) {
  auto rollout = store_->GetRollout(id);
  if (absl::IsNotFound(rollout.status())) {
    return absl::NotFoundError(absl::StrCat("no rollout with id ", id));
  }
  PARC_RETURN_IF_ERROR(rollout.status());
  if (caller.scope.is_region()) return rollout;
  PARC_ASSIGN_OR_RETURN(std::string scope, ScopeFilter(store_, caller));
  PARC_ASSIGN_OR_RETURN(bool in_scope, store_->RolloutInScope(id, scope));
  if (!in_scope) return absl::NotFoundError(absl::StrCat("no rollout with id ", id));
  return rollout;
}

absl::StatusOr<std::vector<RolloutRecord>> RolloutActions::ListVisible(const Caller& caller) {
  PARC_ASSIGN_OR_RETURN(std::vector<RolloutRecord> all, store_->ListRollouts());
  if (caller.scope.is_region()) return all;
  PARC_ASSIGN_OR_RETURN(std::string scope, ScopeFilter(store_, caller));
  std::vector<RolloutRecord> out;
  for (auto& r : all) {
    PARC_ASSIGN_OR_RETURN(bool in_scope, store_->RolloutInScope(r.id, scope));
    if (in_scope) out.push_back(std::move(r));
  }
  return out;
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
