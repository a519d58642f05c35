#pragma once

#include <bitset>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/health_indicators.h"
#include "parc/v1/admin.pb.h"
#include "parc/v1/agent.pb.h"
#include "parc/v1/inventory.pb.h"
#include "server/scope.h"

namespace parc::server {

// Inventories kept per device, whatever it sends (the retention job also drops old ones): a
// device's history is its newest kMaxInventoriesPerDevice. The older ones are deleted by
// batches of kHistoryTrimBatch, so that most inventories stored need not walk the history.
inline constexpr int kMaxInventoriesPerDevice = 50;
inline constexpr int kHistoryTrimBatch = 10;

template <typename T>
using StoreCallback = std::function<void(absl::StatusOr<T>)>;

struct ImportCounts {
  uint32_t inserted = 0;
  uint32_t updated = 0;
  uint32_t unchanged = 0;
  // Preassignment only: enrolled, unassigned devices placed by this import.
  uint32_t placed_devices = 0;
};

struct OperatorRecord {
  std::string id;
  std::string name;
  std::string secret_hash;
  std::string role;
  std::string scope;
  absl::Time created_at;
  std::optional<absl::Time> revoked_at;
};

struct EnrollmentTokenRecord {
  std::string id;
  std::string secret_hash;
  std::string uai;  // empty: region-wide
  absl::Time created_at;
  absl::Time expires_at;
  uint32_t max_uses = 0;
  uint32_t uses = 0;
  std::optional<absl::Time> revoked_at;
  std::string note;
  std::string created_by;
  // May re-key devices already enrolled in its establishment (any, for a region-wide token).
  bool reenroll = false;
};

struct Preassignment {
  uint32_t line = 0;
  std::string serial;
  std::string uai;
};

struct EnrollInput {
  std::string token_id;
  std::string token_secret_hash;
  // Hardware key the server matches re-enrollments on (see identity.h).
  std::string hw_key;
  std::string serial;
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
  bool kind_from_technician = false;
  std::string hostname;
  std::string agent_version;
  // Used when the hardware is new to the server.
  std::string new_device_id;
  // Hash of the newly issued secret; replaces the old one on re-enrollment.
  std::string secret_hash;
  // The credential the caller holds for this hardware, if any (id and SHA-256 of the secret).
  std::string current_device_id;
  std::string current_secret_hash;
  absl::Time now;
};

struct EnrollOutcome {
  std::string device_id;
  std::string uai;
  std::string establishment_name;
  bool reenrolled = false;
};

// What an agent call needs to authenticate and answer.
struct DeviceAuth {
  std::string id;
  std::string secret_hash;
  std::string uai;
  std::string inventory_hash;
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
  // What check-ins write on the devices row, as stored: the latest UTC day seen (days since
  // 1970), the agent version, the free space kept (-1: none). A check-in that brings the same
  // writes only its time (device_checkins).
  int64_t seen_day = 0;
  std::string agent_version;
  int64_t free_bytes = -1;
  // Where the database has row ids (SQLite's rowid): the devices row's, as read, for the
  // writer to find the row without the id's index (0: not known). Only a hint: the writer
  // checks that the row it finds there is still this device's.
  int64_t row = 0;
};

// How RecordCheckIn waits.
enum class Durability {
  // The callback runs once the check-in is on disk.
  kDurable,
  // The callback runs at once: the check-in joins the writer's next batch (within
  // milliseconds), so the answer does not wait for a disk flush. A crash loses at most the
  // check-ins of that batch; the agent's next check-in restores them. When too many check-ins
  // are already waiting, the store falls back to kDurable by itself.
  kBehind,
};

struct CheckInInput {
  std::string device_id;
  std::string agent_version;
  absl::Time now;
  // Free bytes of the system disk, when the agent sent them.
  std::optional<uint64_t> free_bytes;
  // Whether the devices row may need writing (the store's check-in cache decides; true when
  // it does not know).
  bool write_device = true;
};

struct InventoryInput {
  std::string device_id;
  std::string inventory_hash;
  std::string software_hash;
  parc::v1::Hardware hardware;
  // hardware's deterministic encoding (common::EncodeHardware), which the store keeps in the
  // history; empty: the store encodes hardware itself.
  std::string encoded_hardware;
  // Present when the agent sent the list; otherwise software_hash must already be stored.
  // Shared: the server parses a list onto an arena of its own (ParseSoftwareList), which
  // this pointer keeps alive, so that its thousand packages are freed at once.
  std::shared_ptr<const parc::v1::SoftwareList> software;
  absl::Time collected_at;
  absl::Time received_at;
  // The devices row's id where the database has them (DeviceAuth::row), 0: not known.
  int64_t device_row = 0;
};

struct DeviceFilter {
  explicit DeviceFilter(Scope within) : scope(std::move(within)) {}
  // The devices the caller may see.
  Scope scope;
  std::string uai;
  std::string departement;
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
  // Only devices whose last check-in (or enrollment) is before this time.
  std::optional<absl::Time> seen_before;
  bool unassigned = false;
  uint32_t limit = 1000;
  // Devices with id > after.
  std::string after;
};

struct DeviceDetails {
  parc::v1::Device device;
  std::vector<absl::Time> recent_checkins;
  // The days it checked in: bit i of seen_days is UTC day seen_day - i (days since 1970).
  uint32_t seen_days = 0;
  int64_t seen_day = 0;
  std::optional<parc::v1::Inventory> inventory;
  absl::Time inventory_received_at;
  uint32_t inventory_history = 0;
};

struct BundleRecord {
  int64_t id = 0;
  std::string name;
  std::string version;
  uint64_t sequence = 0;
  std::string manifest_sha256;
  // The SignedManifest exactly as published.
  std::string signed_manifest;
  absl::Time published_at;
  absl::Time expires_at;
  uint32_t package_count = 0;
  uint64_t total_bytes = 0;
  std::vector<std::string> signers;
  std::string published_by;
  // BundleManifest.requirements (0: not declared).
  uint64_t installed_bytes = 0;
  uint64_t min_ram_bytes = 0;
};

struct RolloutRecord {
  std::string id;
  int64_t bundle_id = 0;
  std::string bundle_name;
  std::string bundle_version;
  std::string target;
  std::vector<parc::v1::DeviceKind> kinds;
  std::vector<uint32_t> waves;
  std::vector<std::string> pilots;
  uint32_t success_percent = 95;
  uint32_t max_failures_percent = 0;
  uint32_t max_failures_count = 0;
  uint32_t window_start = 0;
  uint32_t window_end = 0;
  uint64_t rate_limit = 0;
  std::string state;  // draft, running, paused, completed, cancelled
  std::string state_reason;
  uint32_t current_wave = 0;
  uint32_t wave_count = 0;
  absl::Time created_at;
  std::optional<absl::Time> started_at;
  std::string created_by;
};

struct RolloutEstablishment {
  std::string uai;
  uint32_t wave = 0;
};

// Deployment counts of one establishment in one wave of a rollout.
struct EstablishmentCounts {
  uint32_t wave = 0;
  std::string uai;
  std::string name;
  uint32_t targeted = 0;
  uint32_t installed = 0;
  uint32_t in_progress = 0;
  uint32_t failed = 0;
  uint32_t not_seen = 0;
  struct Error {
    std::string reason;
    uint32_t devices = 0;
    std::string example;
  };
  std::vector<Error> errors;
};

struct ActiveAssignment {
  std::string rollout_id;
  std::string manifest_sha256;
  std::string signed_manifest;
  uint32_t window_start = 0;
  uint32_t window_end = 0;
  uint64_t rate_limit = 0;
  // The relays of the establishment, in the order the agent tries them.
  std::vector<std::string> relay_urls;
};

// How far back the faults agents reported about a relay count for its health.
inline constexpr absl::Duration kRelayFaultWindow = absl::Hours(7 * 24);

// An establishment relay and what the agents reported about it (parc.v1.Relay).
struct RelayRecord {
  std::string url;
  // Sorted; within the scope it was read for.
  std::vector<std::string> uais;
  absl::Time created_at = absl::InfinitePast();
  // Over the window ListRelays was asked for.
  uint64_t wrong_bytes = 0;
  uint64_t unreachable = 0;
  absl::Time last_fault_at = absl::InfinitePast();
  std::string last_fault;
  uint64_t bytes_served = 0;
  // Its own last report; InfinitePast when it never reported.
  absl::Time reported_at = absl::InfinitePast();
  uint64_t cache_bytes = 0;
  uint64_t cache_max_bytes = 0;
  uint32_t artifacts_missing = 0;
  // AddRelay: whether the credential given was stored (the relay was created, or the
  // credential replaced), so that its token may be shown.
  bool credential_stored = false;
};

// What an establishment's devices downloaded for one bundle's rollouts, and how much of it
// came from a relay of that establishment (dashboard: the share of the relay).
struct RelayShare {
  uint64_t bytes = 0;
  uint64_t relay_bytes = 0;
};

// A relay's credential as the store keeps it.
struct RelayCredential {
  std::string id;
  std::string token_hash;  // SHA-256 of the secret
};

// What a relay reports about itself.
struct RelayReport {
  uint64_t cache_bytes = 0;
  uint64_t cache_max_bytes = 0;
  uint32_t artifacts_missing = 0;
};

// An artifact a relay's establishments are assigned now, and the download window of the
// rollout assigning it (minutes since midnight, device-local; start == end: any time).
struct RelayArtifact {
  std::string sha256;
  uint64_t size = 0;
  uint32_t window_start = 0;
  uint32_t window_end = 0;
};

// Of the 30 UTC days up to now's (included), those on which the device checked in.
inline uint32_t DaysSeenInLast30(uint32_t seen_days, int64_t seen_day, absl::Time now) {
  constexpr uint32_t kMask = (uint32_t{1} << 30) - 1;
  const int64_t gap = absl::ToUnixSeconds(now) / 86400 - seen_day;
  if (gap >= 30) return 0;
  uint32_t bits = seen_days & kMask;
  if (gap > 0) bits = (bits << gap) & kMask;
  return static_cast<uint32_t>(std::bitset<32>(bits).count());
}

// A device with the facts behind the fleet health indicators (dashboard: an establishment's
// to-do list).
struct HealthDevice {
  std::string id;
  std::string hostname;
  std::string serial;
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
  std::string model;
  std::optional<int> battery_health;  // the most worn battery's, percent
  int firmware_year = 0;              // 0: unknown
  std::string os;                     // the label of its version, or what it reported
  std::string end_of_support;         // YYYY-MM-DD; empty: unknown
  bool windows11_capable = false;
  std::optional<uint64_t> free_bytes;
  uint64_t ram_bytes = 0;
  std::optional<absl::Time> last_seen;
  // Against the reference bundle (HealthReport).
  bool cannot_take_bundle = false;
};

// A device and where it stands with a bundle (dashboard establishment page).
struct DeviceState {
  parc::v1::Device device;
  parc::v1::DeploymentState state = parc::v1::DEPLOYMENT_STATE_UNSPECIFIED;
  std::string reason;
  std::string message;
};

// Which devices of an establishment's list, in which order: filtered, sorted and cut into
// pages by the store (the dashboard's device table).
struct DeviceStateQuery {
  explicit DeviceStateQuery(Scope within) : scope(std::move(within)) {}
  Scope scope;
  // The bundle whose state is shown: name, this sequence or later.
  std::string bundle_name;
  uint64_t min_sequence = 0;
  // Filters: a device kind (UNSPECIFIED: any) and a state group.
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
  enum class Group { kAny, kNotYet, kInProgress, kInstalled, kFailed };
  Group group = Group::kAny;
  enum class Sort { kKindModel, kName, kKind, kModel, kSerial, kLastSeen, kState, kError };
  Sort sort = Sort::kKindModel;
  bool descending = false;
  uint32_t offset = 0;
  uint32_t limit = 0;  // 0: every device
};

// Devices per kind and state (UNSPECIFIED: no report yet) in scope, for a summary.
struct DeviceStateCount {
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
  parc::v1::DeploymentState state = parc::v1::DEPLOYMENT_STATE_UNSPECIFIED;
  uint32_t devices = 0;
};

struct AuditRecord {
  absl::Time at;
  std::string operator_id;
  std::string operator_name;
  std::string action;
  std::string target;
  std::string outcome;
  std::string detail;
};

// Persistent state of parc-server. Methods taking a Scope filter by it inside the store (each
// backend turns it into its own SQL): out-of-scope rows do not exist for the caller
// (NOT_FOUND). Callers acting for the server itself pass Scope::Region(). Implementations are
// thread-safe.
//
// Writes are asynchronous: the callback runs once the write is durable (or has failed), on a
// thread owned by the store, and must not block. Reads are synchronous and never wait for
struct DashboardSession {
  std::string id_hash;
  std::string operator_id;
  std::string csrf;
  absl::Time expires_at;
};

// writes.
class Store {
 public:
  virtual ~Store() = default;

  // Operators (admin API credentials).
  virtual void CreateOperator(OperatorRecord op, StoreCallback<bool> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<OperatorRecord> GetOperator(const std::string& id) = 0;
  [[nodiscard]] virtual absl::StatusOr<int64_t> CountOperators() = 0;

  // Establishments: upsert by UAI, all rows in one transaction.
  virtual void UpsertEstablishments(std::vector<parc::v1::Establishment> rows, absl::Time now,
                                    StoreCallback<ImportCounts> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<parc::v1::Establishment>> ListEstablishments(
      const parc::v1::ListEstablishmentsRequest& filter, const Scope& scope) = 0;
  // NOT_FOUND when unknown.
  [[nodiscard]] virtual absl::StatusOr<parc::v1::Establishment> GetEstablishment(
      const std::string& uai) = 0;

  // Enrollment tokens.
  virtual void CreateEnrollmentToken(EnrollmentTokenRecord token, StoreCallback<bool> done) = 0;
  // Tokens of establishments in scope; region-wide tokens for a region scope only.
  [[nodiscard]] virtual absl::StatusOr<std::vector<EnrollmentTokenRecord>> ListEnrollmentTokens(
      const Scope& scope) = 0;
  // NOT_FOUND when unknown or not listed for the scope.
  virtual void RevokeEnrollmentToken(std::string id, Scope scope, absl::Time now,
                                     StoreCallback<EnrollmentTokenRecord> done) = 0;

  // Serial number → establishment, from supplier delivery lists. Every UAI must exist
  // (FAILED_PRECONDITION naming the line otherwise). Places unassigned devices whose serial
  // matches. Below the region, a row whose UAI is outside the scope, or whose serial is
  // already delivered to, or enrolled in, an establishment outside it, is refused
  // (FAILED_PRECONDITION naming the line): moving a device needs a scope covering both.
  virtual void UpsertPreassignments(std::vector<Preassignment> rows, absl::Time now, Scope scope,
                                    StoreCallback<ImportCounts> done) = 0;
  // The rows UpsertPreassignments would refuse for the scope, with the reason of each.
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>>
  PreassignmentsOutOfScope(const std::vector<Preassignment>& rows, const Scope& scope) = 0;

  // Validates the token (UNAUTHENTICATED when unknown, wrong secret, expired or revoked;
  // PERMISSION_DENIED when used up), counts its use, and creates the device or, when hw_key
  // is known, re-keys the existing one — atomically. Re-keying needs the device's current
  // credential or a re-enrollment token of the device's establishment (region-wide: any);
  // otherwise PERMISSION_DENIED and nothing changes. A re-keyed device keeps its
  // establishment (an unassigned one takes its delivery-list establishment).
  virtual void Enroll(EnrollInput input, StoreCallback<EnrollOutcome> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<DeviceAuth> GetDeviceAuth(const std::string& id) = 0;
  // The token if it could enroll a device now (same errors as Enroll); uses nothing.
  [[nodiscard]] virtual absl::StatusOr<EnrollmentTokenRecord> CheckEnrollmentToken(
      const std::string& id, const std::string& secret_hash, absl::Time now) = 0;
  // Deletes a device (by id or serial, within scope) with its inventories and reports.
  virtual void RetireDevice(std::string id_or_serial, Scope scope,
                            StoreCallback<parc::v1::Device> done) = 0;
  // Records a check-in (see Durability). A check-in of a device retired meanwhile is dropped.
  virtual void RecordCheckIn(CheckInInput input, Durability durability,
                             StoreCallback<bool> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<bool> HasSoftwareSet(const std::string& hash) = 0;
  // FAILED_PRECONDITION when software is absent and software_hash unknown. A device's history
  // is its newest kMaxInventoriesPerDevice inventories: the older ones go.
  virtual void StoreInventory(InventoryInput input, StoreCallback<bool> done) = 0;

  [[nodiscard]] virtual absl::StatusOr<std::vector<parc::v1::Device>> ListDevices(
      const DeviceFilter& filter) = 0;
  // By id, or by serial number. NOT_FOUND when neither matches within the scope.
  [[nodiscard]] virtual absl::StatusOr<DeviceDetails> GetDevice(const std::string& id_or_serial,
                                                                const Scope& scope) = 0;

  // Bundles. FAILED_PRECONDITION when name@version exists with other
  // content or when sequence is not above every published bundle of that name; publishing
  // the same manifest again is accepted (returns false: nothing new).
  virtual void InsertBundle(BundleRecord bundle, StoreCallback<bool> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<BundleRecord>> ListBundles(
      const std::string& name) = 0;
  // NOT_FOUND when unknown.
  [[nodiscard]] virtual absl::StatusOr<BundleRecord> GetBundle(const std::string& name,
                                                               const std::string& version) = 0;

  // Rollouts.
  virtual void CreateRollout(RolloutRecord rollout, std::vector<RolloutEstablishment> members,
                             StoreCallback<RolloutRecord> done) = 0;
  // Applies start, pause, resume or cancel; FAILED_PRECONDITION when the state does not allow
  // it. reason is recorded (e.g. "paused by admin").
  virtual void UpdateRolloutState(std::string id, std::string action, std::string reason,
                                  absl::Time now, StoreCallback<RolloutRecord> done) = 0;
  // A rollout is in scope when it targets at least one establishment of the scope (a region
  // scope: every rollout). NOT_FOUND when unknown or out of scope.
  [[nodiscard]] virtual absl::StatusOr<RolloutRecord> GetRollout(const std::string& id,
                                                                 const Scope& scope) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<RolloutRecord>> ListRollouts(
      const Scope& scope) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<EstablishmentCounts>> RolloutCounts(
      const std::string& id, const Scope& scope) = 0;
  // Advances waves whose success ratio is reached, pauses on too many failures, completes.
  virtual void EvaluateRollout(std::string id, absl::Time now,
                               StoreCallback<RolloutRecord> done) = 0;
  // The newest running rollout whose started waves include the device's establishment and
  // kind (as GetDeviceAuth gave them), or null.
  [[nodiscard]] virtual absl::StatusOr<std::shared_ptr<const ActiveAssignment>> AssignmentFor(
      const DeviceAuth& device) = 0;
  // Stores a device's latest deployment report: NOT_FOUND for a rollout that does not target
  // the device, INVALID_ARGUMENT for another bundle or a package not in the bundle.
  virtual void RecordDeployment(std::string device_id, parc::v1::DeploymentReport report,
                                absl::Time now, StoreCallback<bool> done) = 0;

  // Operators and the audit log.
  [[nodiscard]] virtual absl::StatusOr<std::vector<OperatorRecord>> ListOperators() = 0;
  // By id or name. NOT_FOUND when unknown.
  virtual void RevokeOperator(std::string id_or_name, absl::Time now,
                              StoreCallback<OperatorRecord> done) = 0;
  virtual void AppendAudit(AuditRecord entry, StoreCallback<bool> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<AuditRecord>> ListAudit(
      absl::Time since, const std::string& operator_name, uint32_t limit) = 0;

  // Reports, aggregated in SQL.
  [[nodiscard]] virtual absl::StatusOr<parc::v1::DeploymentReportResponse> DeploymentReport(
      const std::string& bundle_name, uint64_t min_sequence, const std::string& by,
      absl::Time stale_before, const Scope& scope) = 0;
  [[nodiscard]] virtual absl::StatusOr<parc::v1::InventoryReportResponse> InventoryReport(
      const std::string& by, const Scope& scope) = 0;

  // Fleet health (server/health.h): the indicators per group of establishments in scope
  // ("region", "academie", "departement", "commune" or "establishment"), on the UTC day of
  // now, against the newest published bundle that declares requirements.
  [[nodiscard]] virtual absl::StatusOr<parc::v1::HealthReportResponse> HealthReport(
      const std::string& by, absl::Time now, const Scope& scope) = 0;
  // The devices of an establishment in scope (none when out of scope) under an indicator
  // (all when none), by host name, with the same rules as HealthReport on the day of now.
  [[nodiscard]] virtual absl::StatusOr<std::vector<HealthDevice>> ListHealthDevices(
      const std::string& uai, std::optional<common::HealthIndicator> indicator, absl::Time now,
      const Scope& scope) = 0;
  // The operating system versions known (seeded, set by an admin, or reported by a device),
  // each with the devices in scope running it.
  [[nodiscard]] virtual absl::StatusOr<std::vector<parc::v1::OsVersion>> ListOsVersions(
      const Scope& scope) = 0;
  // Sets a version's end of support (empty: unknown) and, when given, its label; creates the
  // version when new.
  virtual void SetOsSupport(parc::v1::SetOsSupportRequest request, std::string operator_name,
                            absl::Time now, StoreCallback<parc::v1::OsVersion> done) = 0;

  // Devices in scope with their best state for the bundle (name, sequence or later), as the
  // query filters, sorts and pages them.
  [[nodiscard]] virtual absl::StatusOr<std::vector<DeviceState>> ListDeviceStates(
      const DeviceStateQuery& query) = 0;
  // How many devices in scope are in each (kind, best state) for the bundle.
  [[nodiscard]] virtual absl::StatusOr<std::vector<DeviceStateCount>> CountDeviceStates(
      const std::string& bundle_name, uint64_t min_sequence, const Scope& scope) = 0;
  // The package states of the device's most recent deployment report.
  [[nodiscard]] virtual absl::StatusOr<std::vector<parc::v1::PackageReport>> DevicePackages(
      const std::string& device_id) = 0;

  // Deletes inventories received before cutoff, except each device's latest, and software
  // sets no inventory refers to any more. Returns the number of inventories deleted. May read
  // on the calling thread before it returns (the SQLite store's sweep of the software sets):
  // call it from a thread that may wait, never from a store callback.
  virtual void PurgeInventoryHistory(absl::Time cutoff, StoreCallback<int64_t> done) = 0;

  // Health of the write path: false while writes fail for the storage itself (disk full, I/O
  // errors), until one succeeds again; the number of such failed batches; check-ins answered
  // before their write (write-behind) whose write then failed.
  virtual bool Writable() const = 0;
  virtual uint64_t FailedBatches() const = 0;
  virtual uint64_t UnrecordedCheckIns() const = 0;

  // Dashboard sessions, in the database so that every server node knows them. id_hash is
  // the SHA-256 of the cookie's value (the value itself is never stored). Creating one also
  // forgets the expired ones.
  virtual void CreateSession(DashboardSession session, absl::Time now,
                             StoreCallback<bool> done) = 0;
  // NOT_FOUND for an unknown or expired session.
  [[nodiscard]] virtual absl::StatusOr<DashboardSession> GetSession(const std::string& id_hash,
                                                                    absl::Time now) = 0;
  virtual void DeleteSession(std::string id_hash, StoreCallback<bool> done) = 0;

  // Establishment relays. AddRelay creates the relay or adds establishments to it (every UAI
  // must exist: NOT_FOUND naming it otherwise). RemoveRelay takes the given establishments
  // (all those in scope when empty) off the relay, and removes it once it serves none: NOT_FOUND
  // when it serves nothing in scope. Both return the relay as it stands after, within scope.
  // credential is stored when the relay is created, and replaces the relay's when
  // replace_credential.
  virtual void AddRelay(std::string url, std::vector<std::string> uais, Scope scope,
                        RelayCredential credential, bool replace_credential, absl::Time now,
                        StoreCallback<RelayRecord> done) = 0;
  virtual void RemoveRelay(std::string url, std::vector<std::string> uais, Scope scope,
                           absl::Time now, StoreCallback<RelayRecord> done) = 0;
  // Relays serving an establishment in scope (only uai's when uai is not empty), with the
  // faults reported since faults_since.
  [[nodiscard]] virtual absl::StatusOr<std::vector<RelayRecord>> ListRelays(
      const std::string& uai, const Scope& scope, absl::Time faults_since) = 0;
  // The relay whose credential id this is (its url, and the credential): NOT_FOUND when none.
  [[nodiscard]] virtual absl::StatusOr<std::pair<std::string, RelayCredential>> GetRelayCredential(
      const std::string& id) = 0;
  // The artifacts of the bundles assigned now (running or completed rollouts, started waves)
  // to the relay's establishments, each once, for every device kind.
  [[nodiscard]] virtual absl::StatusOr<std::vector<RelayArtifact>> RelayArtifacts(
      const std::string& url) = 0;
  virtual void RecordRelayReport(std::string url, RelayReport report, absl::Time now,
                                 StoreCallback<bool> done) = 0;
  // For each establishment given, the bytes its devices downloaded for the rollouts of the
  // bundle (by id) and the part a relay of that establishment served; establishments whose
  // devices downloaded nothing are absent.
  [[nodiscard]] virtual absl::StatusOr<std::map<std::string, RelayShare>> RelayShares(
      const std::vector<std::string>& uais, int64_t bundle_id) = 0;

  // Several server nodes on one database. The jobs that must run on one node at a time (the
  // rollout evaluation, the retention purge) run where LeadsJobs(): always with SQLite (one
  // process per file), on the node that holds the database's lease with PostgreSQL.
  virtual bool LeadsJobs() const = 0;
  // Has the leading node (this one when it leads) evaluate the rollout soon: the handler set
  // with set_rollout_handler runs there, on a thread of the store.
  virtual void RequestRolloutEvaluation(const std::string& id) = 0;
  virtual void set_rollout_handler(std::function<void(const std::string&)> handler) = 0;
};

}  // namespace parc::server
