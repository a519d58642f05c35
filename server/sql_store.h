#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "server/checkin_cache.h"
#include "server/postgres/coordinator.h"
#include "server/software_sets.h"
#include "server/sql/engine.h"
#include "server/sqlite/engine.h"
#include "server/store.h"

namespace parc::server {

// The store on SQL, on either engine: SQLite (one file in WAL mode, the embedded default) or
// PostgreSQL. The parts:
//   - the engine (server/sql/engine.h: one writer with group commit, a pool of readers), with
//     each engine's own connection, schema and migrations (server/sqlite/, server/postgres/);
//   - the SQL of each aggregate, written once for both engines (server/sql/*.cc: operators
//     and audit, establishments, enrollment, devices, bundles and rollouts, reports);
//   - this class, which holds what spans them: the check-in cache and the queue of check-ins
//     written behind.
class SqlStore final : public Store {
 public:
  struct Options {
    // SQLite: the database file.
    std::string path;
    // PostgreSQL instead, when set: a libpq connection string or URI
    // (postgresql://parc@db.example/parc).
    std::string postgres;
    int readers = sql::kDefaultReaders;
    size_t max_batch = sql::kDefaultMaxBatch;
    // SQLite: WAL growth (pages of 4 KiB) that starts a background checkpoint (16 MiB,
    // sqlite/engine.h says why).
    int checkpoint_pages = sqlite::kDefaultCheckpointPages;
    // SQLite: WAL size from which the writer completes a checkpoint so that the WAL restarts.
    int wal_restart_pages = sqlite::kDefaultWalRestartPages;
    // Check-ins waiting for their flush (Durability::kBehind) beyond which check-ins wait for
    // their own write.
    size_t max_pending_checkins = 100000;
    // Check-ins written behind that change nothing on their devices row (the same day, agent
    // version and free space as stored) wait up to this long (or until checkin_flush_size are
    // waiting), then are written sorted by device: the check-ins of many devices then share
    // the database pages they rewrite. The others (a device's first of the day, which the
    // reports count) are written as soon as the writer is free, with those waiting. Zero:
    // all at once; at most a day.
    absl::Duration checkin_flush_interval = absl::Seconds(1);
    size_t checkin_flush_size = 32768;
    // Check-ins per write of a flush (other writes go between two).
    size_t checkin_write_chunk = 4096;
    // Writes waiting for the writer beyond which new ones are refused (RESOURCE_EXHAUSTED,
    // retry later): memory stays bounded when the disk cannot keep up.
    size_t max_queued_writes = sql::kDefaultMaxQueuedWrites;
    // Device credential records kept in memory for check-ins (CheckInCache).
    size_t max_cached_devices = 400000;
    // Tests: called by the SQLite retention purge between its read of the unused software sets
    // and their delete.
    std::function<void()> before_software_sweep;
  };

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SqlStore>> Open(const Options& options);
  // Drains queued writes, then closes.
  ~SqlStore() override;

  // "sqlite" or "postgresql".
  const char* engine_name() const { return postgres_ ? "postgresql" : "sqlite"; }

  bool Writable() const override { return engine_->Writable(); }
  uint64_t FailedBatches() const override { return engine_->FailedBatches(); }
  uint64_t UnrecordedCheckIns() const override { return unrecorded_checkins_.load(); }
  // Check-ins answered and waiting for their flush (Durability::kBehind).
  size_t WaitingCheckIns() {
    std::lock_guard<std::mutex> lock(checkins_mu_);
    return pending_checkins_.size();
  }

  // Batches committed and writes applied so far (for metrics and tests).
  uint64_t batches_committed() const { return engine_->batches_committed(); }
  uint64_t writes_applied() const { return engine_->writes_applied(); }
  // Writes run again after a lock conflict with another node (sql::Engine).
  uint64_t conflict_retries() const { return engine_->conflict_retries(); }
  // Background checkpoints run so far.
  uint64_t checkpoints() const { return engine_->checkpoints(); }

  void CreateOperator(OperatorRecord op, StoreCallback<bool> done) override;
  absl::StatusOr<OperatorRecord> GetOperator(const std::string& id) override;
  absl::StatusOr<int64_t> CountOperators() override;

  void UpsertEstablishments(std::vector<parc::v1::Establishment> rows, absl::Time now,
                            StoreCallback<ImportCounts> done) override;
  absl::StatusOr<std::vector<parc::v1::Establishment>> ListEstablishments(
      const parc::v1::ListEstablishmentsRequest& filter, const Scope& scope) override;
  absl::StatusOr<parc::v1::Establishment> GetEstablishment(const std::string& uai) override;

  void CreateEnrollmentToken(EnrollmentTokenRecord token, StoreCallback<bool> done) override;
  absl::StatusOr<std::vector<EnrollmentTokenRecord>> ListEnrollmentTokens(
      const Scope& scope) override;
  void RevokeEnrollmentToken(std::string id, Scope scope, absl::Time now,
                             StoreCallback<EnrollmentTokenRecord> done) override;

  void UpsertPreassignments(std::vector<Preassignment> rows, absl::Time now, Scope scope,
                            StoreCallback<ImportCounts> done) override;
  absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>> PreassignmentsOutOfScope(
      const std::vector<Preassignment>& rows, const Scope& scope) override;

  void Enroll(EnrollInput input, StoreCallback<EnrollOutcome> done) override;
  absl::StatusOr<DeviceAuth> GetDeviceAuth(const std::string& id) override;
  absl::StatusOr<EnrollmentTokenRecord> CheckEnrollmentToken(const std::string& id,
                                                             const std::string& secret_hash,
                                                             absl::Time now) override;
  void RetireDevice(std::string id_or_serial, Scope scope,
                    StoreCallback<parc::v1::Device> done) override;
  void RecordCheckIn(CheckInInput input, Durability durability, StoreCallback<bool> done) override;
  absl::StatusOr<bool> HasSoftwareSet(const std::string& hash) override;
  void StoreInventory(InventoryInput input, StoreCallback<bool> done) override;

  absl::StatusOr<std::vector<parc::v1::Device>> ListDevices(const DeviceFilter& filter) override;
  absl::StatusOr<DeviceDetails> GetDevice(const std::string& id_or_serial,
                                          const Scope& scope) override;

  void InsertBundle(BundleRecord bundle, StoreCallback<bool> done) override;
  absl::StatusOr<std::vector<BundleRecord>> ListBundles(const std::string& name) override;
  absl::StatusOr<BundleRecord> GetBundle(const std::string& name,
                                         const std::string& version) override;
  void CreateRollout(RolloutRecord rollout, std::vector<RolloutEstablishment> members,
                     StoreCallback<RolloutRecord> done) override;
  void UpdateRolloutState(std::string id, std::string action, std::string reason, absl::Time now,
                          StoreCallback<RolloutRecord> done) override;
  absl::StatusOr<RolloutRecord> GetRollout(const std::string& id, const Scope& scope) override;
  absl::StatusOr<std::vector<RolloutRecord>> ListRollouts(const Scope& scope) override;
  absl::StatusOr<std::vector<EstablishmentCounts>> RolloutCounts(const std::string& id,
                                                                 const Scope& scope) override;
  // RolloutCounts from the devices and deployments themselves rather than the counts the
  // triggers keep: the reference those counts are tested against.
  absl::StatusOr<std::vector<EstablishmentCounts>> RolloutCountsByScan(const std::string& id,
                                                                       const Scope& scope);
  void EvaluateRollout(std::string id, absl::Time now, StoreCallback<RolloutRecord> done) override;
  absl::StatusOr<std::shared_ptr<const ActiveAssignment>> AssignmentFor(
      const DeviceAuth& device) override;
  // What the check-in cache saved (metrics, tests).
  const CheckInCache& checkin_cache() const { return cache_; }
  void RecordDeployment(std::string device_id, parc::v1::DeploymentReport report, absl::Time now,
                        StoreCallback<bool> done) override;

  absl::StatusOr<std::vector<OperatorRecord>> ListOperators() override;
  void RevokeOperator(std::string id_or_name, absl::Time now,
                      StoreCallback<OperatorRecord> done) override;
  void AppendAudit(AuditRecord entry, StoreCallback<bool> done) override;
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(absl::Time since,
                                                     const std::string& operator_name,
                                                     uint32_t limit) override;
  absl::StatusOr<parc::v1::DeploymentReportResponse> DeploymentReport(
      const std::string& bundle_name, uint64_t min_sequence, const std::string& by,
      absl::Time stale_before, const Scope& scope) override;
  absl::StatusOr<parc::v1::InventoryReportResponse> InventoryReport(const std::string& by,
                                                                    const Scope& scope) override;
  // The deployment report computed from the devices and deployments themselves rather than the
  // counts the triggers keep: the reference the counts are tested against, and the path for a
  // report spanning several bundles.
  absl::StatusOr<parc::v1::DeploymentReportResponse> DeploymentReportByScan(
      const std::string& bundle_name, uint64_t min_sequence, const std::string& by,
      absl::Time stale_before, const Scope& scope);

  absl::StatusOr<parc::v1::HealthReportResponse> HealthReport(const std::string& by, absl::Time now,
                                                              const Scope& scope) override;
  absl::StatusOr<std::vector<HealthDevice>> ListHealthDevices(
      const std::string& uai, std::optional<common::HealthIndicator> indicator, absl::Time now,
      const Scope& scope) override;
  absl::StatusOr<std::vector<parc::v1::OsVersion>> ListOsVersions(const Scope& scope) override;
  void SetOsSupport(parc::v1::SetOsSupportRequest request, std::string operator_name,
                    absl::Time now, StoreCallback<parc::v1::OsVersion> done) override;
  absl::StatusOr<std::vector<DeviceState>> ListDeviceStates(const DeviceStateQuery& query) override;
  absl::StatusOr<std::vector<DeviceStateCount>> CountDeviceStates(const std::string& bundle_name,
                                                                  uint64_t min_sequence,
                                                                  const Scope& scope) override;
  absl::StatusOr<std::vector<parc::v1::PackageReport>> DevicePackages(
      const std::string& device_id) override;
  // Observer of each committed batch (duration, number of writes), for metrics. Set before
  // use; called on the writer thread.
  void set_commit_observer(std::function<void(absl::Duration, size_t)> observer) {
    engine_->set_commit_observer(std::move(observer));
  }

  void PurgeInventoryHistory(absl::Time cutoff, StoreCallback<int64_t> done) override;

  void CreateSession(DashboardSession session, absl::Time now, StoreCallback<bool> done) override;
  absl::StatusOr<DashboardSession> GetSession(const std::string& id_hash, absl::Time now) override;
  void DeleteSession(std::string id_hash, StoreCallback<bool> done) override;

  void AddRelay(std::string url, std::vector<std::string> uais, Scope scope,
                RelayCredential credential, bool replace_credential, absl::Time now,
                StoreCallback<RelayRecord> done) override;
  void RemoveRelay(std::string url, std::vector<std::string> uais, Scope scope, absl::Time now,
                   StoreCallback<RelayRecord> done) override;
  absl::StatusOr<std::vector<RelayRecord>> ListRelays(const std::string& uai, const Scope& scope,
                                                      absl::Time faults_since) override;
  absl::StatusOr<std::pair<std::string, RelayCredential>> GetRelayCredential(
      const std::string& id) override;
  absl::StatusOr<std::vector<RelayArtifact>> RelayArtifacts(const std::string& url) override;
  void RecordRelayReport(std::string url, RelayReport report, absl::Time now,
                         StoreCallback<bool> done) override;
  absl::StatusOr<std::map<std::string, RelayShare>> RelayShares(
      const std::vector<std::string>& uais, int64_t bundle_id) override;

  bool LeadsJobs() const override { return coordinator_ == nullptr || coordinator_->leads(); }
  void RequestRolloutEvaluation(const std::string& id) override;
  void set_rollout_handler(std::function<void(const std::string&)> handler) override;

  // The channel on which the writes that change what check-ins cache are announced to every
  // node ("device <id>", "devices", "assignments", "software_sets"), and the one on which a
  // node asks the leading node to evaluate a rollout.
  static constexpr char kCacheChannel[] = "parc_cache";
  static constexpr char kRolloutChannel[] = "parc_rollout";

 private:
  using ReaderLease = sql::Engine::ReaderLease;

  SqlStore(std::unique_ptr<sql::Engine> engine, const Options& options);

  void Submit(sql::Engine::WriteOp op, sql::Engine::WriteDone done) {
    engine_->Submit(std::move(op), std::move(done));
  }
  template <typename T>
  void SubmitFor(std::function<absl::StatusOr<T>(sql::Connection*)> fn, StoreCallback<T> done) {
    engine_->SubmitFor<T>(std::move(fn), std::move(done));
  }
  ReaderLease AcquireReader() { return engine_->AcquireReader(); }
  // Inside a write: tells every node, once it commits, that what check-ins cache of the device
  // changed (this node's cache is emptied by the write's callback).
  static void NotifyDeviceChanged(sql::Connection* db, const std::string& device_id) {
    db->Notify(kCacheChannel, "device " + device_id);
  }
  // A notification from any node (the coordinator's thread).
  void OnNotification(const std::string& channel, const std::string& message);
  absl::StatusOr<parc::v1::DeploymentReportResponse> DeploymentReportByScan(
      sql::Connection* db, const std::string& bundle_name, uint64_t min_sequence,
      const std::string& by, absl::Time stale_before, const Scope& scope);
  // Stores a software list once: as a delta against a close full list when there is one.
  // Writer thread only.
  absl::Status InsertSoftwareSet(sql::Connection* db, const std::string& hash,
                                 const parc::v1::SoftwareList& list, absl::Time now);
  // Queues a check-in for the next flush (Durability::kBehind), taking it; false, leaving it,
  // when too many are waiting already or the store is closing.
  bool QueueCheckIn(CheckInInput& in);
  // The flusher thread: writes the queued check-ins once the oldest has waited
  // checkin_flush_interval (or checkin_flush_size are waiting, or one changes its devices row,
  // or the store closes).
  void FlushCheckInsLoop();
  // Writes check-ins sorted by device, checkin_write_chunk at a time, each write once the one
  // before has committed; returns when the last has.
  void WriteCheckIns(std::vector<CheckInInput> checkins);
  // Once check-ins committed: the check-in cache follows what they wrote on the devices rows.
  void CheckInStored(const std::vector<CheckInInput>& checkins);
  // done, after emptying the check-in cache's assignments (once a rollout write committed).
  StoreCallback<RolloutRecord> AfterRolloutWrite(StoreCallback<RolloutRecord> done);
  // done, after emptying the check-in cache's assignments (which carry the relays).
  StoreCallback<RelayRecord> AfterRelayWrite(StoreCallback<RelayRecord> done);

  // SQLite: the software sets of the inventories stored while a retention sweep runs (one set
  // per sweep), which it keeps whatever its snapshot said.
  using SoftwareWatch = std::shared_ptr<absl::flat_hash_set<std::string>>;
  SoftwareWatch WatchSoftwareSets();
  void UnwatchSoftwareSets(const SoftwareWatch& watch);
  // Writer thread: an inventory stored refers to this software set.
  void SoftwareSetUsed(const std::string& hash);
  // SQLite's purge: the writer deletes old inventories; a reader finds the sets then unused;
  // the writer deletes those no inventory took up since. Reads on the calling thread.
  void PurgeInventoryHistorySqlite(absl::Time cutoff, StoreCallback<int64_t> done);

  std::unique_ptr<sql::Engine> engine_;
  bool postgres_ = false;
  std::function<void()> before_software_sweep_;
  std::mutex software_watches_mu_;
  std::vector<SoftwareWatch> software_watches_;  // guarded by software_watches_mu_
  std::atomic<bool> software_watched_{false};
  // Recent full software lists (writer thread only).
  SoftwareBases bases_;
  std::atomic<uint64_t> unrecorded_checkins_{0};

  // os_versions ids by "name\0version", of rows committed (they are never deleted): an
  // inventory of a known system reads and writes nothing of that table.
  std::mutex os_ids_mu_;
  std::unordered_map<std::string, int64_t> os_ids_;  // guarded by os_ids_mu_

  // Check-ins recorded behind (Durability::kBehind), waiting for the flusher.
  std::mutex checkins_mu_;
  std::condition_variable checkins_cv_;
  std::vector<CheckInInput> pending_checkins_;            // guarded by checkins_mu_
  std::chrono::steady_clock::time_point oldest_pending_;  // guarded by checkins_mu_
  bool closing_ = false;                                  // guarded by checkins_mu_
  // A waiting check-in changes its devices row: flush now.
  bool flush_now_ = false;  // guarded by checkins_mu_
  size_t max_pending_checkins_ = 100000;
  std::chrono::steady_clock::duration checkin_flush_interval_;
  size_t checkin_flush_size_ = 32768;
  size_t checkin_write_chunk_ = 4096;
  std::thread checkin_flusher_;

  // Credentials and assignments for check-ins; emptied by the writes that change them.
  CheckInCache cache_;

  // PostgreSQL: the link to the other nodes (notifications, the jobs' lease).
  std::unique_ptr<pg::Coordinator> coordinator_;
  std::mutex handler_mu_;
  std::function<void(const std::string&)> rollout_handler_;
};

}  // namespace parc::server
