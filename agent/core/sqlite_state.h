#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/core/state.h"
#include "common/sqlite.h"

namespace parc::agent {

// The agent's state in <state_dir>/agent.db (SQLite, FULL sync: acknowledged state survives a
// power loss), with the spare credential in <state_dir>/credential. The state directory is
// created 0700.
class SqliteAgentState final : public AgentState {
 public:
  // Opens (creates) <state_dir>/agent.db. A damaged database (not a database, or failing
  // SQLite's quick check) is moved aside to agent.db.damaged-<time> and a fresh one created:
  // recovered_from() then names the damaged copy.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<AgentState>> Open(
      const std::string& state_dir, OutboxLimits limits = {});

  absl::StatusOr<std::unique_ptr<AgentState>> OpenAnother() const override;
  const std::string& recovered_from() const override { return recovered_from_; }
  std::string SpareCredential(const std::string& fingerprint) const override;

  absl::StatusOr<std::optional<Identity>> LoadIdentity() override;
  absl::Status SaveIdentity(const Identity& identity) override;
  absl::Status ClearIdentity() override;

  absl::Status Enqueue(const std::string& kind, const std::string& payload,
                       absl::Time now) override;
  absl::StatusOr<std::optional<OutboxEntry>> Oldest() override;
  absl::StatusOr<std::vector<OutboxEntry>> QueuedOfKind(const std::string& kind) override;
  absl::Status Remove(int64_t seq) override;
  absl::StatusOr<int64_t> QueuedCount() override;
  absl::StatusOr<uint64_t> DroppedCount() override;
  absl::Status DropRefused(int64_t seq, const absl::Status& refusal, absl::Time now) override;

  absl::StatusOr<std::optional<parc::v1::Assignment>> LoadAssignment() override;
  absl::Status SaveAssignment(const parc::v1::Assignment& assignment) override;
  absl::Status ClearAssignment() override;

  absl::StatusOr<std::optional<BundleState>> LoadBundle(const std::string& name) override;
  absl::StatusOr<std::vector<BundleState>> LoadBundles() override;
  absl::Status SaveBundle(const BundleState& bundle) override;
  absl::StatusOr<std::vector<PackageRecord>> LoadPackages(const std::string& bundle_name) override;
  absl::Status SavePackage(const PackageRecord& package) override;
  absl::Status DeletePackage(const std::string& bundle_name,
                             const std::string& package_id) override;

  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::Status Set(const std::string& key, const std::string& value) override;

 private:
  SqliteAgentState(std::unique_ptr<common::Database> db, std::string dir, OutboxLimits limits)
      : db_(std::move(db)), state_dir_(std::move(dir)), limits_(limits) {}
  std::unique_ptr<common::Database> db_;
  std::string state_dir_;
  OutboxLimits limits_;
  std::string recovered_from_;
};

}  // namespace parc::agent
