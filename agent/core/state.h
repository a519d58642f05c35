#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
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
  // The base URL the artifact came from, and the sources (relays, the centre) that failed for
  // this version: reported to the server, which flags relays serving wrong bytes.
  std::string source;
  std::vector<parc::v1::SourceFault> source_faults;
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

// The agent's local state: identity, the outbox of reports not yet acknowledged by the server,
// the bundle install state and small status values. SqliteAgentState (sqlite_state.h) keeps it
// in <state_dir>/agent.db on every platform; tests use an in-memory one. Not thread-safe: each
// thread uses its own handle (OpenAnother).
class AgentState {
 public:
  virtual ~AgentState() = default;

  // Another handle on the same state, for another thread (the daemon's deploy thread).
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<AgentState>> OpenAnother() const = 0;
  // When a damaged state was moved aside and a fresh one started: where the damaged copy is.
  virtual const std::string& recovered_from() const = 0;
  // The device credential ("<id>.<secret>") kept apart from the state, when its hardware
  // fingerprint is this one: after a damaged state, it lets the device enroll again under its
  // own record. Empty when there is none.
  virtual std::string SpareCredential(const std::string& fingerprint) const = 0;

  [[nodiscard]] virtual absl::StatusOr<std::optional<Identity>> LoadIdentity() = 0;
  // Also keeps the spare credential, and forgets which inventory was queued (key
  // "inventory_hash_queued"): a new identity starts with a new inventory.
  [[nodiscard]] virtual absl::Status SaveIdentity(const Identity& identity) = 0;
  // Forgets the identity, its spare credential, every queued report (they belong to the old
  // identity), the queued inventory's hash and the last check-in time.
  [[nodiscard]] virtual absl::Status ClearIdentity() = 0;

  // Appends a report. An inventory or a deployment report replaces any of its kind still
  // queued (both are cumulative: only the latest matters). When the outbox is over its limits
  // the oldest entries are dropped and counted, never the one just added.
  [[nodiscard]] virtual absl::Status Enqueue(const std::string& kind, const std::string& payload,
                                             absl::Time now) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::optional<OutboxEntry>> Oldest() = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<OutboxEntry>> QueuedOfKind(
      const std::string& kind) = 0;
  [[nodiscard]] virtual absl::Status Remove(int64_t seq) = 0;
  [[nodiscard]] virtual absl::StatusOr<int64_t> QueuedCount() = 0;
  [[nodiscard]] virtual absl::StatusOr<uint64_t> DroppedCount() = 0;
  // Removes a report the server refused for good (resending cannot fix it), counting it
  // among the dropped and keeping the refusal (key "last_refused") for `parc-agent status`.
  [[nodiscard]] virtual absl::Status DropRefused(int64_t seq, const absl::Status& refusal,
                                                 absl::Time now) = 0;

  // The assignment from the latest check-in (the signed bundle and how to fetch it).
  [[nodiscard]] virtual absl::StatusOr<std::optional<parc::v1::Assignment>> LoadAssignment() = 0;
  [[nodiscard]] virtual absl::Status SaveAssignment(const parc::v1::Assignment& assignment) = 0;
  [[nodiscard]] virtual absl::Status ClearAssignment() = 0;

  [[nodiscard]] virtual absl::StatusOr<std::optional<BundleState>> LoadBundle(
      const std::string& name) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<BundleState>> LoadBundles() = 0;
  [[nodiscard]] virtual absl::Status SaveBundle(const BundleState& bundle) = 0;
  // In package id order.
  [[nodiscard]] virtual absl::StatusOr<std::vector<PackageRecord>> LoadPackages(
      const std::string& bundle_name) = 0;
  // Persisted durably before the step it describes starts (crash recovery relies on it).
  [[nodiscard]] virtual absl::Status SavePackage(const PackageRecord& package) = 0;
  [[nodiscard]] virtual absl::Status DeletePackage(const std::string& bundle_name,
                                                   const std::string& package_id) = 0;

  // Small named values (last check-in time, last error…); "" when unset.
  [[nodiscard]] virtual absl::StatusOr<std::string> Get(const std::string& key) = 0;
  [[nodiscard]] virtual absl::Status Set(const std::string& key, const std::string& value) = 0;
};

}  // namespace parc::agent
