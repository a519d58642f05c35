#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/store.h"

namespace parc::testing {

// The store in memory, for unit tests of the services (tests/agent_service_test.cc): what the
// agent service reads and writes (tokens, enrollment and re-keying, credentials, check-ins,
// inventories, assignments, deployment reports), operators, establishments and dashboard
// sessions, with the contract store.h states for them, plus what a test needs to steer it:
// storage failures on demand, the assignment of an (establishment, kind), what was written.
// Reports, rollouts, bundles, device listings and the audit are SQL work: the fake answers
// UNIMPLEMENTED for them, and their tests run on SqlStore (both engines).
//
// Callbacks run at once, on the caller's thread. Thread-safe.
class FakeStore final : public server::Store {
 public:
  // Every write from now on fails with status (a storage error unless given otherwise) and
  // changes nothing; OkStatus() to stop.
  void FailWrites(absl::Status status);
  // The assignment check-ins of devices of (uai, kind) get; nullptr for none.
  void Assign(const std::string& uai, parc::v1::DeviceKind kind,
              std::shared_ptr<const server::ActiveAssignment> assignment);
  struct DeviceRow {
    server::DeviceAuth auth;
    std::string hw_key, serial, hostname, agent_version;
    std::optional<absl::Time> last_seen;
    std::vector<server::InventoryInput> inventories;
    std::vector<parc::v1::DeploymentReport> deployments;
  };
  std::optional<DeviceRow> device(const std::string& id) const;
  size_t device_count() const;
  std::optional<server::EnrollmentTokenRecord> token(const std::string& id) const;
  // A storage error, as the real engines report one (UNAVAILABLE with the storage payload).
  static absl::Status StorageError(const std::string& what);

  void CreateOperator(server::OperatorRecord op, server::StoreCallback<bool> done) override;
  absl::StatusOr<server::OperatorRecord> GetOperator(const std::string& id) override;
  absl::StatusOr<int64_t> CountOperators() override;
  absl::StatusOr<std::vector<server::OperatorRecord>> ListOperators() override;
  void RevokeOperator(std::string id_or_name, absl::Time now,
                      server::StoreCallback<server::OperatorRecord> done) override;

  void UpsertEstablishments(std::vector<parc::v1::Establishment> rows, absl::Time now,
                            server::StoreCallback<server::ImportCounts> done) override;
  absl::StatusOr<std::vector<parc::v1::Establishment>> ListEstablishments(
      const parc::v1::ListEstablishmentsRequest& filter, const server::Scope& scope) override;
  absl::StatusOr<parc::v1::Establishment> GetEstablishment(const std::string& uai) override;

  void CreateEnrollmentToken(server::EnrollmentTokenRecord token,
                             server::StoreCallback<bool> done) override;
  absl::StatusOr<std::vector<server::EnrollmentTokenRecord>> ListEnrollmentTokens(
      const server::Scope& scope) override;
  void RevokeEnrollmentToken(std::string id, server::Scope scope, absl::Time now,
                             server::StoreCallback<server::EnrollmentTokenRecord> done) override;
  void UpsertPreassignments(std::vector<server::Preassignment> rows, absl::Time now,
                            server::Scope scope,
                            server::StoreCallback<server::ImportCounts> done) override;
  absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>> PreassignmentsOutOfScope(
      const std::vector<server::Preassignment>& rows, const server::Scope& scope) override;

  void Enroll(server::EnrollInput input,
              server::StoreCallback<server::EnrollOutcome> done) override;
  absl::StatusOr<server::DeviceAuth> GetDeviceAuth(const std::string& id) override;
  absl::StatusOr<server::EnrollmentTokenRecord> CheckEnrollmentToken(const std::string& id,
                                                                     const std::string& secret_hash,
                                                                     absl::Time now) override;
  void RetireDevice(std::string id_or_serial, server::Scope scope,
                    server::StoreCallback<parc::v1::Device> done) override;
  void RecordCheckIn(server::CheckInInput input, server::Durability durability,
                     server::StoreCallback<bool> done) override;
  absl::StatusOr<bool> HasSoftwareSet(const std::string& hash) override;
  void StoreInventory(server::InventoryInput input, server::StoreCallback<bool> done) override;
  absl::StatusOr<std::vector<parc::v1::Device>> ListDevices(
      const server::DeviceFilter& filter) override;
  absl::StatusOr<server::DeviceDetails> GetDevice(const std::string& id_or_serial,
                                                  const server::Scope& scope) override;

  void InsertBundle(server::BundleRecord bundle, server::StoreCallback<bool> done) override;
  absl::StatusOr<std::vector<server::BundleRecord>> ListBundles(const std::string& name) override;
  absl::StatusOr<server::BundleRecord> GetBundle(const std::string& name,
                                                 const std::string& version) override;
  void CreateRollout(server::RolloutRecord rollout,
                     std::vector<server::RolloutEstablishment> members,
                     server::StoreCallback<server::RolloutRecord> done) override;
  void UpdateRolloutState(std::string id, std::string action, std::string reason, absl::Time now,
                          server::StoreCallback<server::RolloutRecord> done) override;
  absl::StatusOr<server::RolloutRecord> GetRollout(const std::string& id,
                                                   const server::Scope& scope) override;
  absl::StatusOr<std::vector<server::RolloutRecord>> ListRollouts(
      const server::Scope& scope) override;
  absl::StatusOr<std::vector<server::EstablishmentCounts>> RolloutCounts(
      const std::string& id, const server::Scope& scope) override;
  void EvaluateRollout(std::string id, absl::Time now,
                       server::StoreCallback<server::RolloutRecord> done) override;
  absl::StatusOr<std::shared_ptr<const server::ActiveAssignment>> AssignmentFor(
      const server::DeviceAuth& device) override;
  void RecordDeployment(std::string device_id, parc::v1::DeploymentReport report, absl::Time now,
                        server::StoreCallback<bool> done) override;

  void AppendAudit(server::AuditRecord entry, server::StoreCallback<bool> done) override;
  absl::StatusOr<std::vector<server::AuditRecord>> ListAudit(absl::Time since,
                                                             const std::string& operator_name,
                                                             uint32_t limit) override;
  absl::StatusOr<parc::v1::DeploymentReportResponse> DeploymentReport(
      const std::string& bundle_name, uint64_t min_sequence, const std::string& by,
      absl::Time stale_before, const server::Scope& scope) override;
  absl::StatusOr<parc::v1::InventoryReportResponse> InventoryReport(
      const std::string& by, const server::Scope& scope) override;
  absl::StatusOr<std::vector<server::DeviceState>> ListDeviceStates(
      const server::DeviceStateQuery& query) override;
  absl::StatusOr<std::vector<server::DeviceStateCount>> CountDeviceStates(
      const std::string& bundle_name, uint64_t min_sequence, const server::Scope& scope) override;
  absl::StatusOr<std::vector<parc::v1::PackageReport>> DevicePackages(
      const std::string& device_id) override;
  void PurgeInventoryHistory(absl::Time cutoff, server::StoreCallback<int64_t> done) override;

  bool Writable() const override;
  uint64_t FailedBatches() const override;
  uint64_t UnrecordedCheckIns() const override { return 0; }

  void CreateSession(server::DashboardSession session, absl::Time now,
                     server::StoreCallback<bool> done) override;
  absl::StatusOr<server::DashboardSession> GetSession(const std::string& id_hash,
                                                      absl::Time now) override;
  void DeleteSession(std::string id_hash, server::StoreCallback<bool> done) override;

  void AddRelay(std::string url, std::vector<std::string> uais, server::Scope scope,
                server::RelayCredential credential, bool replace_credential, absl::Time now,
                server::StoreCallback<server::RelayRecord> done) override;
  void RemoveRelay(std::string url, std::vector<std::string> uais, server::Scope scope,
                   absl::Time now, server::StoreCallback<server::RelayRecord> done) override;
  absl::StatusOr<std::vector<server::RelayRecord>> ListRelays(const std::string& uai,
                                                              const server::Scope& scope,
                                                              absl::Time faults_since) override;
  absl::StatusOr<std::pair<std::string, server::RelayCredential>> GetRelayCredential(
      const std::string& id) override;
  absl::StatusOr<std::vector<server::RelayArtifact>> RelayArtifacts(
      const std::string& url) override;
  absl::StatusOr<parc::v1::HealthReportResponse> HealthReport(const std::string& by, absl::Time now,
                                                              const server::Scope& scope) override;
  absl::StatusOr<std::vector<server::HealthDevice>> ListHealthDevices(
      const std::string& uai, std::optional<common::HealthIndicator> indicator, absl::Time now,
      const server::Scope& scope) override;
  absl::StatusOr<std::vector<parc::v1::OsVersion>> ListOsVersions(
      const server::Scope& scope) override;
  void SetOsSupport(parc::v1::SetOsSupportRequest request, std::string operator_name,
                    absl::Time now, server::StoreCallback<parc::v1::OsVersion> done) override;
  absl::StatusOr<std::map<std::string, server::RelayShare>> RelayShares(
      const std::vector<std::string>& uais, int64_t bundle_id) override;
  void RecordRelayReport(std::string url, server::RelayReport report, absl::Time now,
                         server::StoreCallback<bool> done) override;

  bool LeadsJobs() const override { return true; }
  void RequestRolloutEvaluation(const std::string& id) override;
  void set_rollout_handler(std::function<void(const std::string&)> handler) override;

 private:
  // The status a write gets now (OK: go ahead), counting failures.
  absl::Status WriteAllowed();
  absl::StatusOr<server::EnrollmentTokenRecord> UsableToken(const std::string& id,
                                                            const std::string& secret_hash,
                                                            absl::Time now) const;

  mutable std::mutex mu_;
  absl::Status fail_writes_;
  uint64_t failed_writes_ = 0;
  std::map<std::string, server::OperatorRecord> operators_;
  std::map<std::string, parc::v1::Establishment> establishments_;
  std::map<std::string, server::EnrollmentTokenRecord> tokens_;
  std::map<std::string, std::string> preassigned_;  // serial -> uai
  std::map<std::string, DeviceRow> devices_;
  std::map<std::string, bool> software_sets_;
  std::map<std::pair<std::string, int>, std::shared_ptr<const server::ActiveAssignment>>
      assignments_;
  std::map<std::string, server::DashboardSession> sessions_;
  std::function<void(const std::string&)> rollout_handler_;
};

}  // namespace parc::testing
