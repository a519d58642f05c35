#pragma once

// In-memory implementations of the agent's platform interfaces (agent/core/platform.h) and of
// its state, for unit tests of the agent's core: the cycle, the deployer and the command steps
// run against them without a server, a network, a package manager or a file system of their
// own (artifacts still land in a temp directory: the deployer hashes what it installs).

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/core/platform.h"
#include "agent/core/state.h"

namespace parc::testing {

// The agent's state in memory. Handles from OpenAnother share it (as SQLite handles share the
// file). FailWrites makes every write fail with UNAVAILABLE (a full or failing disk).
class MemoryAgentState final : public agent::AgentState {
 public:
  explicit MemoryAgentState(agent::OutboxLimits limits = {});

  void FailWrites(bool fail);

  absl::StatusOr<std::unique_ptr<agent::AgentState>> OpenAnother() const override;
  const std::string& recovered_from() const override { return data_->recovered_from; }
  std::string SpareCredential(const std::string& fingerprint) const override;

  absl::StatusOr<std::optional<agent::Identity>> LoadIdentity() override;
  absl::Status SaveIdentity(const agent::Identity& identity) override;
  absl::Status ClearIdentity() override;

  absl::Status Enqueue(const std::string& kind, const std::string& payload,
                       absl::Time now) override;
  absl::StatusOr<std::optional<agent::OutboxEntry>> Oldest() override;
  absl::StatusOr<std::vector<agent::OutboxEntry>> QueuedOfKind(const std::string& kind) override;
  absl::Status Remove(int64_t seq) override;
  absl::StatusOr<int64_t> QueuedCount() override;
  absl::StatusOr<uint64_t> DroppedCount() override;
  absl::Status DropRefused(int64_t seq, const absl::Status& refusal, absl::Time now) override;

  absl::StatusOr<std::optional<parc::v1::Assignment>> LoadAssignment() override;
  absl::Status SaveAssignment(const parc::v1::Assignment& assignment) override;
  absl::Status ClearAssignment() override;

  absl::StatusOr<std::optional<agent::BundleState>> LoadBundle(const std::string& name) override;
  absl::StatusOr<std::vector<agent::BundleState>> LoadBundles() override;
  absl::Status SaveBundle(const agent::BundleState& bundle) override;
  absl::StatusOr<std::vector<agent::PackageRecord>> LoadPackages(
      const std::string& bundle_name) override;
  absl::Status SavePackage(const agent::PackageRecord& package) override;
  absl::Status DeletePackage(const std::string& bundle_name,
                             const std::string& package_id) override;

  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::Status Set(const std::string& key, const std::string& value) override;

 private:
  struct Data {
    std::mutex mu;
    bool fail_writes = false;
    agent::OutboxLimits limits;
    std::string recovered_from;
    std::optional<agent::Identity> identity;
    std::string spare;  // "<credential>\n<fingerprint>"
    int64_t next_seq = 1;
    std::map<int64_t, agent::OutboxEntry> outbox;
    std::optional<parc::v1::Assignment> assignment;
    std::map<std::string, agent::BundleState> bundles;
    std::map<std::pair<std::string, std::string>, agent::PackageRecord> packages;
    std::map<std::string, std::string> meta;
  };
  explicit MemoryAgentState(std::shared_ptr<Data> data) : data_(std::move(data)) {}
  absl::Status CheckWritable() const;
  void AddToMeta(const std::string& key, int64_t delta);
  std::shared_ptr<Data> data_;
};

// System facts set by the test (a laptop by default).
class FakeInventorySource final : public agent::InventorySource {
 public:
  FakeInventorySource();
  parc::v1::Inventory CollectInventory() const override;
  parc::v1::Hardware CollectHardware() const override;
  parc::v1::HardwareIdentity CollectIdentity() const override;
  // Changed between cycles by tests (thread-safe).
  void Set(parc::v1::Inventory inventory, parc::v1::HardwareIdentity identity);
  int collections() const;

 private:
  mutable std::mutex mu_;
  parc::v1::Inventory inventory_;
  parc::v1::HardwareIdentity identity_;
  mutable int collections_ = 0;
};

// The server as the agent sees it through its transport: answers each call with the canned
// response, or with the next error queued for that call; records what it received.
struct FakeServer {
  std::mutex mu;
  parc::v1::EnrollResponse enroll_response;
  parc::v1::CheckInResponse checkin_response;
  std::deque<absl::Status> enroll_errors, checkin_errors, inventory_errors, deployment_errors;
  std::vector<parc::v1::EnrollRequest> enrolls;
  std::vector<std::pair<std::string, parc::v1::CheckInRequest>> checkins;
  std::vector<std::pair<std::string, parc::v1::ReportInventoryRequest>> inventories;
  std::vector<parc::v1::DeploymentReport> deployments;
  std::vector<agent::TransportOptions> connections;
};

class FakeTransportFactory final : public agent::TransportFactory {
 public:
  explicit FakeTransportFactory(FakeServer* server) : server_(server) {}
  absl::StatusOr<std::unique_ptr<agent::AgentTransport>> Connect(
      const agent::TransportOptions& options) const override;

 private:
  FakeServer* server_;
};

// Installs by remembering: a package is present once installed, until removed. Outcomes can
// be scripted per package id; every call is recorded.
class FakePackages final : public agent::PackageBackend {
 public:
  // Every type unless told otherwise.
  bool Handles(const parc::v1::PackageSpec& spec) const override;
  void HandleOnly(std::set<parc::v1::PackageSpec::InstallCase> types);
  agent::InstallOutcome Install(const parc::v1::PackageSpec& spec,
                                const std::string& artifact_path) override;
  agent::InstallOutcome Remove(const parc::v1::PackageSpec& spec) override;
  std::optional<bool> Detect(const parc::v1::PackageSpec& spec) override;

  // The next installs of this package end with this outcome (a failure, or a success with a
  // reboot pending).
  void FailInstalls(const std::string& package_id, agent::InstallOutcome outcome, int times);
  // Present before any install (installed by hand, or by the disk image).
  void Preinstall(const std::string& package_id, const std::string& version);
  std::map<std::string, std::string> installed() const;
  std::vector<std::string> calls() const;  // "install app 2", "remove old 1", "detect app"
  int installs(const std::string& package_id) const;

 private:
  mutable std::mutex mu_;
  std::set<parc::v1::PackageSpec::InstallCase> handled_;
  std::map<std::string, std::string> installed_;
  std::map<std::string, std::pair<agent::InstallOutcome, int>> failures_;
  std::vector<std::string> calls_;
};

// Serves artifacts from memory by SHA-256 into the real files the deployer names; checks size
// and hash like the real fetchers. Failures can be queued.
class FakeFetcher final : public agent::ArtifactFetcher {
 public:
  void Add(const std::string& bytes);  // by its SHA-256
  void FailNext(absl::Status status);
  absl::StatusOr<agent::DownloadResult> Fetch(const agent::DownloadRequest& request,
                                              const std::string& part_path,
                                              const std::string& final_path) override;
  std::vector<agent::DownloadRequest> requests() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> artifacts_;
  std::deque<absl::Status> failures_;
  std::vector<agent::DownloadRequest> requests_;
};

// Answers by program name (argv[0]); unknown programs are NOT_FOUND.
class FakeProcessRunner final : public agent::ProcessRunner {
 public:
  void Answer(const std::string& program, agent::CommandResult result);
  absl::StatusOr<agent::CommandResult> Run(const std::vector<std::string>& argv,
                                           absl::Duration timeout,
                                           size_t tail_bytes) const override;
  std::vector<std::vector<std::string>> runs() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, agent::CommandResult> answers_;
  mutable std::vector<std::vector<std::string>> runs_;
};

// A supervisor that records when it was asked to start the next cycle.
class FakeServiceHost final : public agent::ServiceHost {
 public:
  explicit FakeServiceHost(bool supervised) : supervised_(supervised) {}
  void Watch(asio::io_context&, std::function<void()>, std::function<void()>) override {}
  void Unwatch() override {}
  void Supervise(const std::vector<std::string>&, absl::Duration, absl::Duration,
                 std::ostream&) override {}
  bool supervised() const override { return supervised_; }
  void NextCycleIn(absl::Duration delay) override { next_cycles.push_back(delay); }
  std::vector<absl::Duration> next_cycles;

 private:
  bool supervised_;
};

}  // namespace parc::testing
