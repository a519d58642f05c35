#include "tests/fake_store.h"

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/sqlite.h"

namespace parc::testing {

using server::StoreCallback;

namespace {

absl::Status NotKept(const char* what) {
  return absl::UnimplementedError(
      absl::StrCat("FakeStore keeps no ", what, ": test this on SqlStore"));
}

}  // namespace

absl::Status FakeStore::StorageError(const std::string& what) {
  absl::Status s = absl::UnavailableError(absl::StrCat("storage: ", what));
  s.SetPayload(common::kStorageErrorPayload, absl::Cord("fake"));
  return s;
}

void FakeStore::FailWrites(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_writes_ = std::move(status);
}

absl::Status FakeStore::WriteAllowed() {
  if (fail_writes_.ok()) return absl::OkStatus();
  ++failed_writes_;
  return fail_writes_;
}

void FakeStore::Assign(const std::string& uai, parc::v1::DeviceKind kind,
                       std::shared_ptr<const server::ActiveAssignment> assignment) {
  std::lock_guard<std::mutex> lock(mu_);
  assignments_[{uai, static_cast<int>(kind)}] = std::move(assignment);
}

std::optional<FakeStore::DeviceRow> FakeStore::device(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = devices_.find(id);
  if (it == devices_.end()) return std::nullopt;
  return it->second;
}

size_t FakeStore::device_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return devices_.size();
}

std::optional<server::EnrollmentTokenRecord> FakeStore::token(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_.find(id);
  if (it == tokens_.end()) return std::nullopt;
  return it->second;
}

bool FakeStore::Writable() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fail_writes_.ok() || !common::IsStorageError(fail_writes_);
}

uint64_t FakeStore::FailedBatches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_writes_;
}

// ---------------------------------------------------------------------------------------------
// Operators, establishments

void FakeStore::CreateOperator(server::OperatorRecord op, StoreCallback<bool> done) {
  absl::Status s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s = WriteAllowed();
    for (const auto& [id, o] : operators_) {
      if (s.ok() && (id == op.id || o.name == op.name)) {
        s = absl::AlreadyExistsError(absl::StrCat("operator ", op.name, " exists"));
      }
    }
    if (s.ok()) operators_[op.id] = op;
  }
  if (!s.ok()) return done(s);
  done(true);
}

absl::StatusOr<server::OperatorRecord> FakeStore::GetOperator(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = operators_.find(id);
  if (it == operators_.end()) return absl::NotFoundError("unknown operator");
  return it->second;
}

absl::StatusOr<int64_t> FakeStore::CountOperators() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(operators_.size());
}

absl::StatusOr<std::vector<server::OperatorRecord>> FakeStore::ListOperators() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<server::OperatorRecord> out;
  for (const auto& [id, op] : operators_) out.push_back(op);
  return out;
}

void FakeStore::RevokeOperator(std::string id_or_name, absl::Time now,
                               StoreCallback<server::OperatorRecord> done) {
  absl::StatusOr<server::OperatorRecord> r = absl::NotFoundError("unknown operator");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = WriteAllowed(); !s.ok()) {
      r = s;
    } else {
      for (auto& [id, op] : operators_) {
        if (id != id_or_name && op.name != id_or_name) continue;
        if (!op.revoked_at.has_value()) op.revoked_at = now;
        r = op;
      }
    }
  }
  done(std::move(r));
}

void FakeStore::UpsertEstablishments(std::vector<parc::v1::Establishment> rows, absl::Time,
                                     StoreCallback<server::ImportCounts> done) {
  server::ImportCounts counts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = WriteAllowed(); !s.ok()) return done(s);
    for (auto& e : rows) {
      auto it = establishments_.find(e.uai());
      if (it == establishments_.end()) {
        ++counts.inserted;
      } else if (it->second.SerializeAsString() == e.SerializeAsString()) {
        ++counts.unchanged;
      } else {
        ++counts.updated;
      }
      establishments_[e.uai()] = std::move(e);
    }
  }
  done(counts);
}

absl::StatusOr<std::vector<parc::v1::Establishment>> FakeStore::ListEstablishments(
    const parc::v1::ListEstablishmentsRequest&, const server::Scope&) {
  return NotKept("establishment listings");
}

absl::StatusOr<parc::v1::Establishment> FakeStore::GetEstablishment(const std::string& uai) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = establishments_.find(uai);
  if (it == establishments_.end()) return absl::NotFoundError("unknown establishment");
  return it->second;
}

// ---------------------------------------------------------------------------------------------
// Enrollment

void FakeStore::CreateEnrollmentToken(server::EnrollmentTokenRecord token,
                                      StoreCallback<bool> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = WriteAllowed(); !s.ok()) return done(s);
    if (tokens_.count(token.id)) return done(absl::AlreadyExistsError("token exists"));
    tokens_[token.id] = std::move(token);
  }
  done(true);
}

absl::StatusOr<std::vector<server::EnrollmentTokenRecord>> FakeStore::ListEnrollmentTokens(
    const server::Scope&) {
  return NotKept("token listings by scope");
}

void FakeStore::RevokeEnrollmentToken(std::string id, server::Scope, absl::Time now,
                                      StoreCallback<server::EnrollmentTokenRecord> done) {
  absl::StatusOr<server::EnrollmentTokenRecord> r = absl::NotFoundError("unknown token");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = WriteAllowed(); !s.ok()) {
      r = s;
    } else if (auto it = tokens_.find(id); it != tokens_.end()) {
      it->second.revoked_at = now;
      r = it->second;
    }
  }
  done(std::move(r));
}

void FakeStore::UpsertPreassignments(std::vector<server::Preassignment> rows, absl::Time,
                                     server::Scope, StoreCallback<server::ImportCounts> done) {
  server::ImportCounts counts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = WriteAllowed(); !s.ok()) return done(s);
    for (const auto& p : rows) {
      auto [it, inserted] = preassigned_.insert_or_assign(p.serial, p.uai);
      ++(inserted ? counts.inserted : counts.updated);
      for (auto& [id, d] : devices_) {
        if (d.serial == p.serial && d.auth.uai.empty()) {
          d.auth.uai = p.uai;
          ++counts.placed_devices;
        }
      }
    }
  }
  done(counts);
}

absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>> FakeStore::PreassignmentsOutOfScope(
    const std::vector<server::Preassignment>&, const server::Scope&) {
  return NotKept("scope checks of delivery lists");
}

absl::StatusOr<server::EnrollmentTokenRecord> FakeStore::UsableToken(const std::string& id,
                                                                     const std::string& secret_hash,
                                                                     absl::Time now) const {
  auto it = tokens_.find(id);
  if (it == tokens_.end() || !common::ConstantTimeEquals(it->second.secret_hash, secret_hash)) {
    return absl::UnauthenticatedError("enrollment token not recognized");
  }
  const server::EnrollmentTokenRecord& t = it->second;
  if (t.revoked_at.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat("enrollment token ", t.id, " was revoked"));
  }
  if (now >= t.expires_at) {
    return absl::UnauthenticatedError(absl::StrCat("enrollment token ", t.id, " expired"));
  }
  if (t.max_uses > 0 && t.uses >= t.max_uses) {
    return absl::PermissionDeniedError(
        absl::StrCat("enrollment token ", t.id, " has already been used ", t.uses, " times"));
  }
  return t;
}

absl::StatusOr<server::EnrollmentTokenRecord> FakeStore::CheckEnrollmentToken(
    const std::string& id, const std::string& secret_hash, absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  return UsableToken(id, secret_hash, now);
}

void FakeStore::Enroll(server::EnrollInput in, StoreCallback<server::EnrollOutcome> done) {
  absl::StatusOr<server::EnrollOutcome> result;
  {
    std::lock_guard<std::mutex> lock(mu_);
    result = [&]() -> absl::StatusOr<server::EnrollOutcome> {
      if (absl::Status s = WriteAllowed(); !s.ok()) return s;
      auto token = UsableToken(in.token_id, in.token_secret_hash, in.now);
      if (!token.ok()) return token.status();
      std::string delivered_to;
      if (auto p = preassigned_.find(in.serial); !in.serial.empty() && p != preassigned_.end()) {
        delivered_to = p->second;
      }
      server::EnrollOutcome out;
      DeviceRow* existing = nullptr;
      for (auto& [id, d] : devices_) {
        if (d.hw_key == in.hw_key) existing = &d;
      }
      if (existing != nullptr) {
        out.device_id = existing->auth.id;
        out.reenrolled = true;
        const bool holds_credential =
            in.current_device_id == out.device_id && !in.current_secret_hash.empty() &&
            common::ConstantTimeEquals(existing->auth.secret_hash, in.current_secret_hash);
        const bool approved =
            token->reenroll && (token->uai.empty() || token->uai == existing->auth.uai);
        if (!holds_credential && !approved) {
          return absl::PermissionDeniedError(
              absl::StrCat("this hardware is already enrolled as device ", out.device_id));
        }
        if (existing->auth.uai.empty()) existing->auth.uai = delivered_to;
        existing->auth.secret_hash = in.secret_hash;
        existing->auth.inventory_hash.clear();
        existing->auth.kind = in.kind;
        existing->serial = in.serial;
        existing->hostname = in.hostname;
        existing->agent_version = in.agent_version;
        out.uai = existing->auth.uai;
      } else {
        DeviceRow d;
        d.auth.id = in.new_device_id;
        d.auth.secret_hash = in.secret_hash;
        d.auth.uai = token->uai.empty() ? delivered_to : token->uai;
        d.auth.kind = in.kind;
        d.hw_key = in.hw_key;
        d.serial = in.serial;
        d.hostname = in.hostname;
        d.agent_version = in.agent_version;
        out.device_id = d.auth.id;
        out.uai = d.auth.uai;
        devices_[d.auth.id] = std::move(d);
      }
      ++tokens_[token->id].uses;
      if (auto e = establishments_.find(out.uai); e != establishments_.end()) {
        out.establishment_name = e->second.name();
      }
      return out;
    }();
  }
  done(std::move(result));
}

absl::StatusOr<server::DeviceAuth> FakeStore::GetDeviceAuth(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = devices_.find(id);
  if (it == devices_.end()) return absl::NotFoundError("unknown device");
  return it->second.auth;
}

void FakeStore::RetireDevice(std::string id_or_serial, server::Scope scope,
                             StoreCallback<parc::v1::Device> done) {
  absl::StatusOr<parc::v1::Device> r = absl::NotFoundError("unknown device");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = WriteAllowed(); !s.ok()) {
      r = s;
    } else {
      for (auto it = devices_.begin(); it != devices_.end(); ++it) {
        const DeviceRow& d = it->second;
        if (d.auth.id != id_or_serial && (d.serial.empty() || d.serial != id_or_serial)) continue;
        parc::v1::Establishment where;
        if (auto e = establishments_.find(d.auth.uai); e != establishments_.end()) {
          where = e->second;
        }
        if (!scope.is_region() && !scope.Contains(where)) continue;
        parc::v1::Device device;
        device.set_id(d.auth.id);
        device.set_serial(d.serial);
        device.set_uai(d.auth.uai);
        r = device;
        devices_.erase(it);
        break;
      }
    }
  }
  done(std::move(r));
}

void FakeStore::RecordCheckIn(server::CheckInInput in, server::Durability,
                              StoreCallback<bool> done) {
  absl::StatusOr<bool> r = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = WriteAllowed(); !s.ok()) {
      r = s;
    } else if (auto it = devices_.find(in.device_id); it != devices_.end()) {
      it->second.last_seen = in.now;
      it->second.agent_version = in.agent_version;
    }  // a device retired meanwhile: dropped
  }
  done(std::move(r));
}

absl::StatusOr<bool> FakeStore::HasSoftwareSet(const std::string& hash) {
  std::lock_guard<std::mutex> lock(mu_);
  return software_sets_.count(hash) > 0;
}

void FakeStore::StoreInventory(server::InventoryInput in, StoreCallback<bool> done) {
  absl::StatusOr<bool> r = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = devices_.find(in.device_id);
    if (absl::Status s = WriteAllowed(); !s.ok()) {
      r = s;
    } else if (it == devices_.end()) {
      r = absl::NotFoundError("unknown device");
    } else if (in.software == nullptr && !software_sets_.count(in.software_hash)) {
      r = absl::FailedPreconditionError("software list unknown: send it");
    } else {
      software_sets_[in.software_hash] = true;
      it->second.auth.inventory_hash = in.inventory_hash;
      it->second.inventories.push_back(std::move(in));
      auto& kept = it->second.inventories;
      if (kept.size() > static_cast<size_t>(server::kMaxInventoriesPerDevice)) {
        kept.erase(kept.begin());
      }
    }
  }
  done(std::move(r));
}

absl::StatusOr<std::vector<parc::v1::Device>> FakeStore::ListDevices(const server::DeviceFilter&) {
  return NotKept("device listings");
}

absl::StatusOr<server::DeviceDetails> FakeStore::GetDevice(const std::string&,
                                                           const server::Scope&) {
  return NotKept("device details");
}

// ---------------------------------------------------------------------------------------------
// Bundles and rollouts: the agent side only (assignments, deployment reports).

void FakeStore::InsertBundle(server::BundleRecord, StoreCallback<bool> done) {
  done(NotKept("bundles"));
}
absl::StatusOr<std::vector<server::BundleRecord>> FakeStore::ListBundles(const std::string&) {
  return NotKept("bundles");
}
absl::StatusOr<server::BundleRecord> FakeStore::GetBundle(const std::string&, const std::string&) {
  return NotKept("bundles");
}
void FakeStore::CreateRollout(server::RolloutRecord, std::vector<server::RolloutEstablishment>,
                              StoreCallback<server::RolloutRecord> done) {
  done(NotKept("rollouts (FakeStore::Assign sets what check-ins get)"));
}
void FakeStore::UpdateRolloutState(std::string, std::string, std::string, absl::Time,
                                   StoreCallback<server::RolloutRecord> done) {
  done(NotKept("rollouts"));
}
absl::StatusOr<server::RolloutRecord> FakeStore::GetRollout(const std::string&,
                                                            const server::Scope&) {
  return NotKept("rollouts");
}
absl::StatusOr<std::vector<server::RolloutRecord>> FakeStore::ListRollouts(const server::Scope&) {
  return NotKept("rollouts");
}
absl::StatusOr<std::vector<server::EstablishmentCounts>> FakeStore::RolloutCounts(
    const std::string&, const server::Scope&) {
  return NotKept("rollout counts");
}
void FakeStore::EvaluateRollout(std::string, absl::Time,
                                StoreCallback<server::RolloutRecord> done) {
  done(NotKept("rollouts"));
}

absl::StatusOr<std::shared_ptr<const server::ActiveAssignment>> FakeStore::AssignmentFor(
    const server::DeviceAuth& device) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = assignments_.find({device.uai, static_cast<int>(device.kind)});
  if (it == assignments_.end()) return std::shared_ptr<const server::ActiveAssignment>();
  return it->second;
}

void FakeStore::RecordDeployment(std::string device_id, parc::v1::DeploymentReport report,
                                 absl::Time, StoreCallback<bool> done) {
  absl::StatusOr<bool> r = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = devices_.find(device_id);
    if (absl::Status s = WriteAllowed(); !s.ok()) {
      r = s;
    } else if (it == devices_.end()) {
      r = absl::NotFoundError("unknown device");
    } else {
      it->second.deployments.push_back(std::move(report));
    }
  }
  done(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// Audit and reports: SQL work.

void FakeStore::AppendAudit(server::AuditRecord, StoreCallback<bool> done) {
  done(NotKept("audit"));
}
absl::StatusOr<std::vector<server::AuditRecord>> FakeStore::ListAudit(absl::Time,
                                                                      const std::string&,
                                                                      uint32_t) {
  return NotKept("audit");
}
absl::StatusOr<parc::v1::DeploymentReportResponse> FakeStore::DeploymentReport(
    const std::string&, uint64_t, const std::string&, absl::Time, const server::Scope&) {
  return NotKept("reports");
}
absl::StatusOr<parc::v1::InventoryReportResponse> FakeStore::InventoryReport(const std::string&,
                                                                             const server::Scope&) {
  return NotKept("reports");
}
absl::StatusOr<std::vector<server::DeviceState>> FakeStore::ListDeviceStates(
    const server::DeviceStateQuery&) {
  return NotKept("device states");
}
absl::StatusOr<std::vector<server::DeviceStateCount>> FakeStore::CountDeviceStates(
    const std::string&, uint64_t, const server::Scope&) {
  return NotKept("device states");
}
absl::StatusOr<std::vector<parc::v1::PackageReport>> FakeStore::DevicePackages(const std::string&) {
  return NotKept("package states");
}
void FakeStore::PurgeInventoryHistory(absl::Time, StoreCallback<int64_t> done) {
  done(NotKept("inventory history"));
}

// ---------------------------------------------------------------------------------------------
// Sessions, jobs

void FakeStore::CreateSession(server::DashboardSession session, absl::Time now,
                              StoreCallback<bool> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = WriteAllowed(); !s.ok()) return done(s);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      it = it->second.expires_at <= now ? sessions_.erase(it) : std::next(it);
    }
    sessions_[session.id_hash] = std::move(session);
  }
  done(true);
}

absl::StatusOr<server::DashboardSession> FakeStore::GetSession(const std::string& id_hash,
                                                               absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id_hash);
  if (it == sessions_.end() || it->second.expires_at <= now) {
    return absl::NotFoundError("no such session");
  }
  return it->second;
}

void FakeStore::DeleteSession(std::string id_hash, StoreCallback<bool> done) {
  bool erased = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = WriteAllowed(); !s.ok()) return done(s);
    erased = sessions_.erase(id_hash) > 0;
  }
  done(erased);
}

void FakeStore::RequestRolloutEvaluation(const std::string& id) {
  std::function<void(const std::string&)> handler;
  {
    std::lock_guard<std::mutex> lock(mu_);
    handler = rollout_handler_;
  }
  if (handler) handler(id);
}

void FakeStore::set_rollout_handler(std::function<void(const std::string&)> handler) {
  std::lock_guard<std::mutex> lock(mu_);
  rollout_handler_ = std::move(handler);
}

// ---------------------------------------------------------------------------------------------
// Relays: SQL work (assignments come from what the test sets).

void FakeStore::AddRelay(std::string, std::vector<std::string>, server::Scope,
                         server::RelayCredential, bool, absl::Time,
                         StoreCallback<server::RelayRecord> done) {
  done(NotKept("relays"));
}

void FakeStore::RemoveRelay(std::string, std::vector<std::string>, server::Scope, absl::Time,
                            StoreCallback<server::RelayRecord> done) {
  done(NotKept("relays"));
}

// It keeps no relay: none to list, nothing served by one.
absl::StatusOr<std::vector<server::RelayRecord>> FakeStore::ListRelays(const std::string&,
                                                                       const server::Scope&,
                                                                       absl::Time) {
  return std::vector<server::RelayRecord>{};
}

absl::StatusOr<parc::v1::HealthReportResponse> FakeStore::HealthReport(const std::string&,
                                                                       absl::Time,
                                                                       const server::Scope&) {
  return NotKept("reports");
}
absl::StatusOr<std::vector<server::HealthDevice>> FakeStore::ListHealthDevices(
    const std::string&, std::optional<common::HealthIndicator>, absl::Time, const server::Scope&) {
  return NotKept("reports");
}
absl::StatusOr<std::vector<parc::v1::OsVersion>> FakeStore::ListOsVersions(const server::Scope&) {
  return NotKept("operating system versions");
}
void FakeStore::SetOsSupport(parc::v1::SetOsSupportRequest, std::string, absl::Time,
                             StoreCallback<parc::v1::OsVersion> done) {
  done(NotKept("operating system versions"));
}

absl::StatusOr<std::map<std::string, server::RelayShare>> FakeStore::RelayShares(
    const std::vector<std::string>&, int64_t) {
  return std::map<std::string, server::RelayShare>{};
}

absl::StatusOr<std::pair<std::string, server::RelayCredential>> FakeStore::GetRelayCredential(
    const std::string&) {
  return NotKept("relays");
}

absl::StatusOr<std::vector<server::RelayArtifact>> FakeStore::RelayArtifacts(const std::string&) {
  return NotKept("relays");
}

void FakeStore::RecordRelayReport(std::string, server::RelayReport, absl::Time,
                                  StoreCallback<bool> done) {
  done(NotKept("relays"));
}

}  // namespace parc::testing
