#include "tests/agent_fakes.h"

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/bundle_trust.h"
#include "common/crypto.h"

namespace parc::testing {

// ---------------------------------------------------------------------------------------------
// MemoryAgentState

MemoryAgentState::MemoryAgentState(agent::OutboxLimits limits) : data_(std::make_shared<Data>()) {
  data_->limits = limits;
}

void MemoryAgentState::FailWrites(bool fail) {
  std::lock_guard<std::mutex> lock(data_->mu);
  data_->fail_writes = fail;
}

absl::Status MemoryAgentState::CheckWritable() const {
  if (data_->fail_writes) return absl::UnavailableError("state: disk I/O error (test)");
  return absl::OkStatus();
}

void MemoryAgentState::AddToMeta(const std::string& key, int64_t delta) {
  int64_t value = 0;
  (void)absl::SimpleAtoi(data_->meta[key], &value);
  data_->meta[key] = absl::StrCat(value + delta);
}

absl::StatusOr<std::unique_ptr<agent::AgentState>> MemoryAgentState::OpenAnother() const {
  return std::unique_ptr<agent::AgentState>(new MemoryAgentState(data_));
}

std::string MemoryAgentState::SpareCredential(const std::string& fingerprint) const {
  std::lock_guard<std::mutex> lock(data_->mu);
  const size_t nl = data_->spare.find('\n');
  if (nl == std::string::npos || data_->spare.substr(nl + 1) != fingerprint) return "";
  return data_->spare.substr(0, nl);
}

absl::StatusOr<std::optional<agent::Identity>> MemoryAgentState::LoadIdentity() {
  std::lock_guard<std::mutex> lock(data_->mu);
  return data_->identity;
}

absl::Status MemoryAgentState::SaveIdentity(const agent::Identity& identity) {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->identity = identity;
  data_->meta.erase("inventory_hash_queued");
  data_->spare = absl::StrCat(identity.device_id, ".", identity.secret, "\n", identity.fingerprint);
  return absl::OkStatus();
}

absl::Status MemoryAgentState::ClearIdentity() {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->identity.reset();
  data_->spare.clear();
  data_->outbox.clear();
  data_->meta.erase("inventory_hash_queued");
  data_->meta.erase("last_checkin_at");
  return absl::OkStatus();
}

absl::Status MemoryAgentState::Enqueue(const std::string& kind, const std::string& payload,
                                       absl::Time now) {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  auto& outbox = data_->outbox;
  if (kind == "inventory" || kind == "deployment") {
    for (auto it = outbox.begin(); it != outbox.end();) {
      it = it->second.kind == kind ? outbox.erase(it) : std::next(it);
    }
  }
  agent::OutboxEntry e;
  e.seq = data_->next_seq++;
  e.kind = kind;
  e.payload = payload;
  e.created_at = absl::FromUnixSeconds(absl::ToUnixSeconds(now));
  outbox[e.seq] = e;
  int64_t dropped = 0;
  while (outbox.size() > 1) {
    int64_t bytes = 0;
    for (const auto& [seq, entry] : outbox) bytes += static_cast<int64_t>(entry.payload.size());
    if (static_cast<int64_t>(outbox.size()) <= data_->limits.max_entries &&
        bytes <= data_->limits.max_bytes) {
      break;
    }
    outbox.erase(outbox.begin());
    ++dropped;
  }
  if (dropped > 0) AddToMeta("dropped_reports", dropped);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<agent::OutboxEntry>> MemoryAgentState::Oldest() {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (data_->outbox.empty()) return std::optional<agent::OutboxEntry>();
  return std::optional<agent::OutboxEntry>(data_->outbox.begin()->second);
}

absl::StatusOr<std::vector<agent::OutboxEntry>> MemoryAgentState::QueuedOfKind(
    const std::string& kind) {
  std::lock_guard<std::mutex> lock(data_->mu);
  std::vector<agent::OutboxEntry> out;
  for (const auto& [seq, e] : data_->outbox) {
    if (e.kind == kind) out.push_back(e);
  }
  return out;
}

absl::Status MemoryAgentState::Remove(int64_t seq) {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->outbox.erase(seq);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MemoryAgentState::QueuedCount() {
  std::lock_guard<std::mutex> lock(data_->mu);
  return static_cast<int64_t>(data_->outbox.size());
}

absl::StatusOr<uint64_t> MemoryAgentState::DroppedCount() {
  std::lock_guard<std::mutex> lock(data_->mu);
  uint64_t n = 0;
  return absl::SimpleAtoi(data_->meta["dropped_reports"], &n) ? n : 0;
}

absl::Status MemoryAgentState::DropRefused(int64_t seq, const absl::Status& refusal,
                                           absl::Time now) {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->outbox.erase(seq);
  AddToMeta("dropped_reports", 1);
  data_->meta["last_refused"] = absl::StrCat(
      absl::FormatTime("%Y-%m-%d %H:%M UTC", now, absl::UTCTimeZone()), ": ", refusal.ToString());
  return absl::OkStatus();
}

absl::StatusOr<std::optional<parc::v1::Assignment>> MemoryAgentState::LoadAssignment() {
  std::lock_guard<std::mutex> lock(data_->mu);
  return data_->assignment;
}

absl::Status MemoryAgentState::SaveAssignment(const parc::v1::Assignment& assignment) {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->assignment = assignment;
  return absl::OkStatus();
}

absl::Status MemoryAgentState::ClearAssignment() {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->assignment.reset();
  return absl::OkStatus();
}

absl::StatusOr<std::optional<agent::BundleState>> MemoryAgentState::LoadBundle(
    const std::string& name) {
  std::lock_guard<std::mutex> lock(data_->mu);
  auto it = data_->bundles.find(name);
  if (it == data_->bundles.end()) return std::optional<agent::BundleState>();
  return std::optional<agent::BundleState>(it->second);
}

absl::StatusOr<std::vector<agent::BundleState>> MemoryAgentState::LoadBundles() {
  std::lock_guard<std::mutex> lock(data_->mu);
  std::vector<agent::BundleState> out;
  for (const auto& [name, b] : data_->bundles) out.push_back(b);
  return out;
}

absl::Status MemoryAgentState::SaveBundle(const agent::BundleState& bundle) {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->bundles[bundle.name] = bundle;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<agent::PackageRecord>> MemoryAgentState::LoadPackages(
    const std::string& bundle_name) {
  std::lock_guard<std::mutex> lock(data_->mu);
  std::vector<agent::PackageRecord> out;
  for (const auto& [key, p] : data_->packages) {
    if (key.first == bundle_name) out.push_back(p);
  }
  return out;
}

absl::Status MemoryAgentState::SavePackage(const agent::PackageRecord& package) {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->packages[{package.bundle_name, package.package_id}] = package;
  return absl::OkStatus();
}

absl::Status MemoryAgentState::DeletePackage(const std::string& bundle_name,
                                             const std::string& package_id) {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->packages.erase({bundle_name, package_id});
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryAgentState::Get(const std::string& key) {
  std::lock_guard<std::mutex> lock(data_->mu);
  auto it = data_->meta.find(key);
  return it == data_->meta.end() ? std::string() : it->second;
}

absl::Status MemoryAgentState::Set(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lock(data_->mu);
  if (auto s = CheckWritable(); !s.ok()) return s;
  data_->meta[key] = value;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// FakeInventorySource

FakeInventorySource::FakeInventorySource() {
  auto* hw = inventory_.mutable_hardware();
  hw->set_manufacturer("LENOVO");
  hw->set_model("ThinkPad L13 Yoga Gen 4");
  hw->set_serial("PF4ABCDE");
  hw->set_hostname("lordi-0042");
  hw->set_detected_kind(parc::v1::DEVICE_KIND_LAPTOP);
  auto* sw = inventory_.mutable_software()->add_packages();
  sw->set_name("geogebra");
  sw->set_version("6.0.800");
  identity_.set_product_uuid("4c4c4544-0042-3510-8052-b2c04f4a4e31");
  identity_.set_serial("PF4ABCDE");
  identity_.set_machine_id("0f3c6a2e9b5d4c1e8a7f6b5c4d3e2f10");
}

parc::v1::Inventory FakeInventorySource::CollectInventory() const {
  std::lock_guard<std::mutex> lock(mu_);
  ++collections_;
  return inventory_;
}

parc::v1::Hardware FakeInventorySource::CollectHardware() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inventory_.hardware();
}

parc::v1::HardwareIdentity FakeInventorySource::CollectIdentity() const {
  std::lock_guard<std::mutex> lock(mu_);
  return identity_;
}

void FakeInventorySource::Set(parc::v1::Inventory inventory, parc::v1::HardwareIdentity identity) {
  std::lock_guard<std::mutex> lock(mu_);
  inventory_ = std::move(inventory);
  identity_ = std::move(identity);
}

int FakeInventorySource::collections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return collections_;
}

// ---------------------------------------------------------------------------------------------
// FakeTransportFactory

namespace {

class FakeTransport final : public agent::AgentTransport {
 public:
  explicit FakeTransport(FakeServer* server) : server_(server) {}

  absl::StatusOr<parc::v1::EnrollResponse> Enroll(const parc::v1::EnrollRequest& request) override {
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->enrolls.push_back(request);
    if (auto e = Next(server_->enroll_errors); !e.ok()) return e;
    return server_->enroll_response;
  }
  absl::StatusOr<parc::v1::CheckEnrollmentResponse> CheckEnrollment(
      const parc::v1::EnrollRequest&) override {
    return parc::v1::CheckEnrollmentResponse();
  }
  absl::StatusOr<parc::v1::CheckInResponse> CheckIn(
      const std::string& credential, const parc::v1::CheckInRequest& request) override {
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->checkins.emplace_back(credential, request);
    if (auto e = Next(server_->checkin_errors); !e.ok()) return e;
    return server_->checkin_response;
  }
  absl::Status ReportInventory(const std::string& credential,
                               const parc::v1::ReportInventoryRequest& request) override {
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->inventories.emplace_back(credential, request);
    return Next(server_->inventory_errors);
  }
  absl::Status ReportDeployment(const std::string&,
                                const parc::v1::DeploymentReport& report) override {
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->deployments.push_back(report);
    return Next(server_->deployment_errors);
  }
  void CancelAll() override {}

 private:
  static absl::Status Next(std::deque<absl::Status>& errors) {
    if (errors.empty()) return absl::OkStatus();
    absl::Status s = errors.front();
    errors.pop_front();
    return s;
  }
  FakeServer* server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<agent::AgentTransport>> FakeTransportFactory::Connect(
    const agent::TransportOptions& options) const {
  std::lock_guard<std::mutex> lock(server_->mu);
  server_->connections.push_back(options);
  return std::unique_ptr<agent::AgentTransport>(new FakeTransport(server_));
}

// ---------------------------------------------------------------------------------------------
// FakePackages

bool FakePackages::Handles(const parc::v1::PackageSpec& spec) const {
  std::lock_guard<std::mutex> lock(mu_);
  return handled_.empty() || handled_.count(spec.install_case()) > 0;
}

void FakePackages::HandleOnly(std::set<parc::v1::PackageSpec::InstallCase> types) {
  std::lock_guard<std::mutex> lock(mu_);
  handled_ = std::move(types);
}

agent::InstallOutcome FakePackages::Install(const parc::v1::PackageSpec& spec,
                                            const std::string& artifact_path) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.push_back(absl::StrCat("install ", spec.id(), " ", spec.version()));
  auto f = failures_.find(spec.id());
  if (f != failures_.end() && f->second.second > 0) {
    --f->second.second;
    // A scripted success (a reboot pending) installs all the same.
    if (f->second.first.ok) installed_[spec.id()] = spec.version();
    return f->second.first;
  }
  agent::InstallOutcome o;
  std::ifstream in(artifact_path, std::ios::binary);
  if (!in) {
    o.reason = "install_failed";
    o.message = absl::StrCat("no artifact at ", artifact_path);
    return o;
  }
  installed_[spec.id()] = spec.version();
  o.ok = true;
  return o;
}

agent::InstallOutcome FakePackages::Remove(const parc::v1::PackageSpec& spec) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.push_back(absl::StrCat("remove ", spec.id(), " ", spec.version()));
  installed_.erase(spec.id());
  agent::InstallOutcome o;
  o.ok = true;
  return o;
}

std::optional<bool> FakePackages::Detect(const parc::v1::PackageSpec& spec) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.push_back(absl::StrCat("detect ", spec.id()));
  auto it = installed_.find(spec.id());
  return it != installed_.end() && it->second == spec.version();
}

void FakePackages::FailInstalls(const std::string& package_id, agent::InstallOutcome outcome,
                                int times) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_[package_id] = {std::move(outcome), times};
}

void FakePackages::Preinstall(const std::string& package_id, const std::string& version) {
  std::lock_guard<std::mutex> lock(mu_);
  installed_[package_id] = version;
}

std::map<std::string, std::string> FakePackages::installed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return installed_;
}

std::vector<std::string> FakePackages::calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

int FakePackages::installs(const std::string& package_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& c : calls_) {
    if (c.rfind(absl::StrCat("install ", package_id, " "), 0) == 0) ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// FakeFetcher

void FakeFetcher::Add(const std::string& bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  artifacts_[common::Sha256Hex(bytes)] = bytes;
}

void FakeFetcher::FailNext(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.push_back(std::move(status));
}

absl::StatusOr<agent::DownloadResult> FakeFetcher::Fetch(const agent::DownloadRequest& request,
                                                         const std::string& part_path,
                                                         const std::string& final_path) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_.push_back(request);
  if (!failures_.empty()) {
    absl::Status s = failures_.front();
    failures_.pop_front();
    return s;
  }
  auto it = artifacts_.find(request.sha256);
  if (it == artifacts_.end()) {
    return common::WithReason(absl::UnavailableError(absl::StrCat("HTTP 404 for ", request.url)),
                              "download_failed");
  }
  if (it->second.size() != request.size) {
    return common::WithReason(absl::DataLossError("the artifact is not its declared size"),
                              "artifact_size_mismatch");
  }
  {
    std::ofstream out(part_path, std::ios::binary | std::ios::trunc);
    out << it->second;
  }
  if (std::rename(part_path.c_str(), final_path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", part_path));
  }
  agent::DownloadResult r;
  r.bytes_transferred = it->second.size();
  return r;
}

std::vector<agent::DownloadRequest> FakeFetcher::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

// ---------------------------------------------------------------------------------------------
// FakeProcessRunner

void FakeProcessRunner::Answer(const std::string& program, agent::CommandResult result) {
  std::lock_guard<std::mutex> lock(mu_);
  answers_[program] = std::move(result);
}

absl::StatusOr<agent::CommandResult> FakeProcessRunner::Run(const std::vector<std::string>& argv,
                                                            absl::Duration, size_t) const {
  std::lock_guard<std::mutex> lock(mu_);
  runs_.push_back(argv);
  auto it = argv.empty() ? answers_.end() : answers_.find(argv[0]);
  if (it == answers_.end()) {
    return absl::NotFoundError(absl::StrCat(argv.empty() ? "" : argv[0], ": no such program"));
  }
  return it->second;
}

std::vector<std::vector<std::string>> FakeProcessRunner::runs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return runs_;
}

}  // namespace parc::testing
