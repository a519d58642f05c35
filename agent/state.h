#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sqlite.h"
#include "parc/v1/agent.pb.h"

namespace parc::agent {

// What enrollment gave this device.
struct Identity {
  std::string device_id;
  std::string secret;
  std::string server;
  std::string ca_pem;
  bool insecure = false;
  // Fingerprint of the hardware at enrollment (see collectors.h).
  std::string fingerprint;
  std::string uai;
  std::string establishment_name;
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
  absl::Time enrolled_at;
};

struct OutboxEntry {
  int64_t seq = 0;
  std::string kind;  // "inventory"
  std::string payload;
  absl::Time created_at;
};

// A package of a bundle as this device holds it (agent side of the install state machine).
struct PackageRecord {
  std::string bundle_name;
  std::string package_id;
  std::string version;
  parc::v1::PackageState state = parc::v1::PACKAGE_STATE_QUEUED;
  std::string reason;
  int exit_status = 0;
  std::string output_tail;
  std::string message;
  int attempts = 0;
  uint64_t bytes_downloaded = 0;
  // The package as the accepted manifest described it (needed to remove it later).
  parc::v1::PackageSpec spec;
};

// The bundle (per name) this device is installing or has installed.
struct BundleState {
  std::string name;
  std::string version;
  uint64_t sequence = 0;
  std::string rollout_id;
  // installing, installed, failed
  std::string state;
  parc::v1::BundleManifest manifest;
};

struct OutboxLimits {
  int max_entries = 100;
  int64_t max_bytes = 16 << 20;
};

// The agent's local state in <state_dir>/agent.db: identity, the outbox of reports not yet
// acknowledged by the server, and small status values. The state directory is created 0700.
// Not thread-safe: the daemon uses it from its event loop only.
class AgentState {
 public:
  // Opens (creates) <state_dir>/agent.db. A damaged database (not a database, or failing
  // SQLite's quick check) is moved aside to agent.db.damaged-<time> and a fresh one created:
  // recovered_from() then names the damaged copy.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<AgentState>> Open(
      const std::string& state_dir, OutboxLimits limits = {});
  const std::string& recovered_from() const { return recovered_from_; }
  // The device credential ("<id>.<secret>") kept beside the database, when its hardware
  // fingerprint is this one: after a damaged database, it lets the device enroll again under
  // its own record. Empty when there is none.
  std::string SpareCredential(const std::string& fingerprint) const;

  [[nodiscard]] absl::StatusOr<std::optional<Identity>> LoadIdentity();
  [[nodiscard]] absl::Status SaveIdentity(const Identity& identity);
  // Forgets the identity and every queued report (they belong to the old identity).
  [[nodiscard]] absl::Status ClearIdentity();

  // Appends a report. An inventory replaces any inventory still queued (only the latest
  // matters). When the outbox is over its limits the oldest entries are dropped and counted.
  [[nodiscard]] absl::Status Enqueue(const std::string& kind, const std::string& payload,
                                     absl::Time now);
  [[nodiscard]] absl::StatusOr<std::optional<OutboxEntry>> Oldest();
  [[nodiscard]] absl::StatusOr<std::vector<OutboxEntry>> QueuedOfKind(const std::string& kind);
  [[nodiscard]] absl::Status Remove(int64_t seq);
  [[nodiscard]] absl::StatusOr<int64_t> QueuedCount();
  [[nodiscard]] absl::StatusOr<uint64_t> DroppedCount();
  // Removes a report the server refused for good (resending cannot fix it), counting it
  // among the dropped and keeping the refusal for `parc-agent status`.
  [[nodiscard]] absl::Status DropRefused(int64_t seq, const absl::Status& refusal, absl::Time now);

  // The assignment from the latest check-in (the signed bundle and how to fetch it).
  [[nodiscard]] absl::StatusOr<std::optional<parc::v1::Assignment>> LoadAssignment();
  [[nodiscard]] absl::Status SaveAssignment(const parc::v1::Assignment& assignment);
  [[nodiscard]] absl::Status ClearAssignment();

  [[nodiscard]] absl::StatusOr<std::optional<BundleState>> LoadBundle(const std::string& name);
  [[nodiscard]] absl::StatusOr<std::vector<BundleState>> LoadBundles();
  [[nodiscard]] absl::Status SaveBundle(const BundleState& bundle);
  [[nodiscard]] absl::StatusOr<std::vector<PackageRecord>> LoadPackages(
      const std::string& bundle_name);
  // Persisted durably before the step it describes starts (crash recovery relies on it).
  [[nodiscard]] absl::Status SavePackage(const PackageRecord& package);
  [[nodiscard]] absl::Status DeletePackage(const std::string& bundle_name,
                                           const std::string& package_id);

  // Small named values (last check-in time, last error…).
  [[nodiscard]] absl::StatusOr<std::string> Get(const std::string& key);
  [[nodiscard]] absl::Status Set(const std::string& key, const std::string& value);

  const std::string& state_dir() const { return state_dir_; }

 private:
  AgentState(std::unique_ptr<common::Database> db, std::string dir, OutboxLimits limits)
      : db_(std::move(db)), state_dir_(std::move(dir)), limits_(limits) {}
  std::unique_ptr<common::Database> db_;
  std::string state_dir_;
  OutboxLimits limits_;
  std::string recovered_from_;
};

}  // namespace parc::agent
