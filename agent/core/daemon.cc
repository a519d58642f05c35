#include "agent/core/daemon.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/inventory_util.h"
#include "common/logging.h"
#include "common/retry.h"

namespace parc::agent {
namespace {

constexpr char kInventory[] = "inventory";

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(d));
}

}  // namespace

absl::Duration BackoffDelay(absl::Duration base, absl::Duration max, int attempt,
                            std::mt19937_64& rng) {
  absl::Duration cap = base;
  for (int i = 0; i < attempt && cap < max; ++i) cap *= 2;
  cap = std::min(cap, max);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  return cap * uniform(rng);
}

absl::Duration ClampCheckInInterval(uint32_t server_seconds) {
  return std::clamp(absl::Seconds(server_seconds), absl::Seconds(1), absl::Hours(24 * 7));
}

Daemon::Daemon(asio::io_context& io, Platform* platform, AgentState* state, DaemonOptions options,
               const common::Clock* clock)
    : io_(io),
      timer_(io),
      platform_(platform),
      state_(state),
      options_(std::move(options)),
      clock_(clock),
      rng_(std::random_device{}()) {}

Daemon::~Daemon() {
  Stop();
  pool_.join();
  deploy_pool_.join();
}

template <typename Result>
void Daemon::Offload(std::function<Result()> work, std::function<void(Result)> then,
                     asio::thread_pool* pool) {
  // The loop has work while the pool does: without it, io.run() would return mid-cycle when
  // nothing else (a signal set, a timer) is registered.
  asio::post(pool != nullptr ? *pool : pool_,
             [this, guard = asio::make_work_guard(io_), work = std::move(work),
              then = std::move(then)]() mutable {
               auto result = std::make_shared<Result>(work());
               asio::post(io_, [this, then = std::move(then), result]() mutable {
                 if (stopping_) return;
                 then(std::move(*result));
               });
             });
}

void Daemon::Start() {
  if (options_.once) {
    auto attempt = state_->Get("retry_attempt");
    int value = 0;
    if (attempt.ok() && absl::SimpleAtoi(*attempt, &value) && value >= 0) attempt_ = value;
  }
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  ScheduleCycle(options_.once ? absl::ZeroDuration() : options_.initial_splay * uniform(rng_));
}

void Daemon::Stop() {
  if (stopping_) return;
  stopping_ = true;
  timer_.cancel();
  if (client_) client_->CancelAll();
  if (options_.on_stop) options_.on_stop();
}

void Daemon::TriggerNow() {
  if (!in_cycle_ && !stopping_) ScheduleCycle(absl::ZeroDuration());
}

void Daemon::ScheduleCycle(absl::Duration delay) {
  if (stopping_) return;
  timer_.expires_after(ToChrono(delay));
  timer_.async_wait([this](const asio::error_code& ec) {
    if (!ec && !stopping_) BeginCycle();
  });
}

void Daemon::BeginCycle() {
  in_cycle_ = true;
  const InventorySource* system = platform_->inventory.get();
  Offload<std::shared_ptr<Snapshot>>(
      [system] {
        auto snap = std::make_shared<Snapshot>();
        snap->inventory = system->CollectInventory();
        snap->software_hash = common::SoftwareHash(snap->inventory.software());
        snap->inventory_hash =
            common::InventoryHash(snap->inventory.hardware(), snap->software_hash);
        snap->identity = system->CollectIdentity();
        snap->fingerprint = Fingerprint(snap->identity);
        return snap;
      },
      [this](std::shared_ptr<Snapshot> snap) { OnSnapshot(std::move(snap)); });
}

absl::Status Daemon::EnsureClient(const Identity& identity) {
  if (client_ && client_server_ == identity.server) return absl::OkStatus();
  TransportOptions o;
  o.server = identity.server;
  o.ca_pem = identity.ca_pem;
  o.insecure = identity.insecure;
  auto client = platform_->transport->Connect(o);
  if (!client.ok()) return client.status();
  client_ = std::move(*client);
  client_server_ = identity.server;
  return absl::OkStatus();
}

bool Daemon::supervised() const {
  return options_.once && platform_->host != nullptr && platform_->host->supervised();
}

void Daemon::OnSnapshot(std::shared_ptr<Snapshot> snap) {
  auto loaded = state_->LoadIdentity();
  if (!loaded.ok()) return EndCycle(loaded.status());
  identity_ = *loaded;
  if (identity_.has_value() && identity_->fingerprint != snap->fingerprint) {
    spdlog::warn(
        "hardware identity differs from the one enrolled as device {} (state copied from a "
        "master image or another machine?): enrolling as a new device",
        identity_->device_id);
    absl::Status cleared = state_->ClearIdentity();
    if (!cleared.ok()) return EndCycle(cleared);
    identity_.reset();
  }
  if (identity_.has_value()) return CheckIn(std::move(snap));

  if (!options_.enroll.has_value()) {
    if (!state_->recovered_from().empty()) {
      spdlog::critical(
          "the agent's state database was damaged and moved aside to {}; the configuration "
          "holds no enrollment token, so this device stays silent until a technician runs "
          "`parc-agent enroll`",
          state_->recovered_from());
    }
    return EndCycle(absl::FailedPreconditionError(
        "not enrolled: run `parc-agent enroll`, or set server, ca and enrollment_token in the "
        "agent configuration"));
  }
  if (!options_.image_fingerprint.empty() && options_.image_fingerprint == snap->fingerprint) {
    return EndCycle(absl::FailedPreconditionError(
        "this machine is the master image's (image_fingerprint in the configuration): it does "
        "not enroll; the devices cloned from the image enroll at their first boot"));
  }
  const EnrollParams params = *options_.enroll;
  Identity target;
  target.server = params.server;
  target.ca_pem = params.ca_pem;
  target.insecure = params.insecure;
  absl::Status connected = EnsureClient(target);
  if (!connected.ok()) return EndCycle(connected);
  parc::v1::EnrollRequest request = MakeEnrollRequest(*platform_->inventory, params);
  // After a damaged state database, the spare credential proves this is the enrolled device:
  // it enrolls again under its own record.
  const std::string spare = state_->SpareCredential(snap->fingerprint);
  if (!spare.empty()) {
    if (!state_->recovered_from().empty()) {
      spdlog::warn(
          "the agent's state database was damaged and moved aside to {}; enrolling "
          "again as the same device",
          state_->recovered_from());
    }
    request.set_device_credential(spare);
  }
  AgentTransport* client = client_.get();
  Offload<absl::StatusOr<parc::v1::EnrollResponse>>(
      [client, request] { return client->Enroll(request); },
      [this, snap](absl::StatusOr<parc::v1::EnrollResponse> r) { OnEnrolled(snap, std::move(r)); });
}

void Daemon::OnEnrolled(std::shared_ptr<Snapshot> snap,
                        absl::StatusOr<parc::v1::EnrollResponse> response) {
  if (!response.ok()) {
    return EndCycle(absl::Status(response.status().code(),
                                 absl::StrCat("enrollment failed: ", response.status().message())));
  }
  Identity id =
      IdentityFromEnrollment(*options_.enroll, *response, snap->fingerprint, clock_->Now());
  absl::Status saved = state_->SaveIdentity(id);
  if (!saved.ok()) return EndCycle(saved);
  spdlog::info("enrolled as device {}{}", id.device_id,
               id.uai.empty() ? " (not yet assigned to an establishment)"
                              : absl::StrCat(" in ", id.uai, " ", id.establishment_name));
  identity_ = std::move(id);
  CheckIn(std::move(snap));
}

void Daemon::CheckIn(std::shared_ptr<Snapshot> snap) {
  auto queued_hash = state_->Get("inventory_hash_queued");
  if (!queued_hash.ok()) return EndCycle(queued_hash.status());
  if (*queued_hash != snap->inventory_hash) {
    parc::v1::ReportInventoryRequest report;
    report.set_inventory_hash(snap->inventory_hash);
    report.set_software_hash(snap->software_hash);
    *report.mutable_inventory() = snap->inventory;
    report.set_collected_at(absl::ToUnixSeconds(clock_->Now()));
    absl::Status s = state_->Enqueue(kInventory, report.SerializeAsString(), clock_->Now());
    if (s.ok()) s = state_->Set("inventory_hash_queued", snap->inventory_hash);
    if (!s.ok()) return EndCycle(s);
  }
  absl::Status connected = EnsureClient(*identity_);
  if (!connected.ok()) return EndCycle(connected);

  parc::v1::CheckInRequest request;
  request.set_agent_version(kAgentVersion);
  request.set_inventory_hash(snap->inventory_hash);
  request.set_software_hash(snap->software_hash);
  // Left out of the inventory hash, so sent with every check-in (fleet health).
  if (snap->inventory.hardware().has_system_free_bytes()) {
    request.set_system_free_bytes(snap->inventory.hardware().system_free_bytes());
  }
  auto queued = state_->QueuedCount();
  auto dropped = state_->DroppedCount();
  request.set_queued_reports(queued.ok() ? static_cast<uint32_t>(*queued) : 0);
  request.set_dropped_reports(dropped.ok() ? *dropped : 0);
  auto held = state_->LoadAssignment();
  if (held.ok() && held->has_value()) {
    request.set_assignment_rollout_id((*held)->rollout_id());
    request.set_assignment_manifest_sha256((*held)->manifest_sha256());
  }
  device_kind_ = identity_->kind != parc::v1::DEVICE_KIND_UNSPECIFIED
                     ? identity_->kind
                     : snap->inventory.hardware().detected_kind();
  AgentTransport* client = client_.get();
  std::string credential = CredentialOf(*identity_);
  Offload<absl::StatusOr<parc::v1::CheckInResponse>>(
      [client, credential, request] { return client->CheckIn(credential, request); },
      [this, snap](absl::StatusOr<parc::v1::CheckInResponse> r) { OnCheckIn(snap, std::move(r)); });
}

void Daemon::OnCheckIn(std::shared_ptr<Snapshot> snap,
                       absl::StatusOr<parc::v1::CheckInResponse> response) {
  if (absl::IsUnauthenticated(response.status())) return OnCredentialRejected(response.status());
  if (!response.ok()) return EndCycle(response.status());
  absl::Status s = state_->Set("last_checkin_at", absl::StrCat(absl::ToUnixSeconds(clock_->Now())));
  if (!s.ok()) return EndCycle(s);
  if (response->uai() != identity_->uai) {
    identity_->uai = response->uai();
    (void)state_->SaveIdentity(*identity_);
  }
  next_interval_ = ClampCheckInInterval(response->next_checkin_seconds());

  auto queued = state_->QueuedOfKind(kInventory);
  if (!queued.ok()) return EndCycle(queued.status());
  if (!response->send_inventory()) {
    // The server already holds this inventory: nothing to deliver.
    for (const auto& entry : *queued) {
      parc::v1::ReportInventoryRequest report;
      if (report.ParseFromString(entry.payload) &&
          report.inventory_hash() == snap->inventory_hash) {
        s = state_->Remove(entry.seq);
        if (!s.ok()) return EndCycle(s);
      }
    }
  } else if (queued->empty()) {
    // The server lost or never got it (e.g. re-enrolled elsewhere): queue it again.
    parc::v1::ReportInventoryRequest report;
    report.set_inventory_hash(snap->inventory_hash);
    report.set_software_hash(snap->software_hash);
    *report.mutable_inventory() = snap->inventory;
    report.set_collected_at(absl::ToUnixSeconds(clock_->Now()));
    s = state_->Enqueue(kInventory, report.SerializeAsString(), clock_->Now());
    if (!s.ok()) return EndCycle(s);
  }
  send_software_ = response->send_software();
  software_hash_ = snap->software_hash;
  if (response->has_assignment()) {
    parc::v1::Assignment assignment = response->assignment();
    if (!assignment.has_bundle()) {
      // Unchanged manifest: keep the one held, take the rest (window, rate, URL) as sent.
      auto held = state_->LoadAssignment();
      if (held.ok() && held->has_value()) {
        *assignment.mutable_bundle() = (*held)->bundle();
      }
    }
    s = assignment.has_bundle() ? state_->SaveAssignment(assignment) : absl::OkStatus();
  } else {
    // Not (or no longer) in a started wave of a running rollout: start nothing new.
    s = state_->ClearAssignment();
  }
  if (!s.ok()) return EndCycle(s);
  DeliverNext();
}

void Daemon::DeliverNext() {
  auto entry = state_->Oldest();
  if (!entry.ok()) return EndCycle(entry.status());
  if (!entry->has_value()) {
    if (!deployed_) return Deploy();
    return EndCycle(absl::OkStatus());
  }
  const OutboxEntry& e = **entry;
  if (e.kind == "deployment") {
    parc::v1::DeploymentReport report;
    if (!report.ParseFromString(e.payload)) {
      absl::Status s = state_->Remove(e.seq);
      if (!s.ok()) return EndCycle(s);
      return DeliverNext();
    }
    AgentTransport* client = client_.get();
    std::string credential = CredentialOf(*identity_);
    int64_t seq = e.seq;
    Offload<absl::Status>(
        [client, credential, report] { return client->ReportDeployment(credential, report); },
        [this, seq](absl::Status s) { OnDelivered(seq, false, std::move(s)); });
    return;
  }
  if (e.kind != kInventory) {
    // Unknown kinds come from a newer agent's state: they cannot be delivered by this one.
    spdlog::warn("dropping queued report of unknown kind {}", e.kind);
    absl::Status s = state_->Remove(e.seq);
    if (!s.ok()) return EndCycle(s);
    return DeliverNext();
  }
  parc::v1::ReportInventoryRequest report;
  if (!report.ParseFromString(e.payload)) {
    spdlog::warn("dropping unreadable queued inventory #{}", e.seq);
    absl::Status s = state_->Remove(e.seq);
    if (!s.ok()) return EndCycle(s);
    return DeliverNext();
  }
  bool stripped = false;
  if (!send_software_ && report.software_hash() == software_hash_) {
    // Devices cloned from the same image share a software list: the server has it already.
    report.mutable_inventory()->clear_software();
    stripped = true;
  }
  AgentTransport* client = client_.get();
  std::string credential = CredentialOf(*identity_);
  int64_t seq = e.seq;
  Offload<absl::Status>(
      [client, credential, report] { return client->ReportInventory(credential, report); },
      [this, seq, stripped](absl::Status s) { OnDelivered(seq, stripped, std::move(s)); });
}

void Daemon::Deploy() {
  deployed_ = true;
  auto held = state_->LoadAssignment();
  if (!held.ok()) return EndCycle(held.status());
  if (!held->has_value()) return EndCycle(absl::OkStatus());
  DeployerOptions options = options_.deploy;
  options.kind = device_kind_;
  options.ca_pem = identity_->ca_pem;
  options.allow_http = identity_->insecure;
  Offload<DeployOutcome>(
      [this, options]() {
        // The deploy thread's own handle on the state.
        if (!deploy_state_) {
          auto opened = state_->OpenAnother();
          if (!opened.ok()) {
            spdlog::error("deploy: {}", opened.status().ToString());
            DeployOutcome failed;
            failed.retry = true;
            return failed;
          }
          deploy_state_ = std::move(*opened);
        }
        Deployer deployer(deploy_state_.get(), clock_, options, platform_->packages.get(),
                          platform_->fetcher.get());
        return deployer.Run();
      },
      [this](DeployOutcome outcome) { OnDeployed(outcome); }, &deploy_pool_);
}

void Daemon::OnDeployed(DeployOutcome outcome) {
  deploy_outcome_ = outcome;
  DeliverNext();  // the reports the deployer queued
}

void Daemon::OnDelivered(int64_t seq, bool stripped_software, absl::Status status) {
  if (status.ok()) {
    absl::Status s = state_->Remove(seq);
    if (!s.ok()) return EndCycle(s);
    return DeliverNext();
  }
  if (absl::IsFailedPrecondition(status) && stripped_software) {
    send_software_ = true;  // the server no longer holds the list: send it in full
    return DeliverNext();
  }
  if (absl::IsUnauthenticated(status)) return OnCredentialRejected(status);
  if (IsFinalRefusal(status)) {
    // The server will never accept this report; keeping it would block the outbox forever.
    spdlog::error("server refused queued report #{}: {}; dropping it", seq, status.ToString());
    absl::Status s = state_->DropRefused(seq, status, clock_->Now());
    if (!s.ok()) return EndCycle(s);
    return DeliverNext();
  }
  // The server is busy, its storage failing, or the network down: the report stays queued
  // and is sent again next cycle, until it is acknowledged.
  EndCycle(status);
}

bool IsFinalRefusal(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kUnimplemented:
      return true;
    case absl::StatusCode::kResourceExhausted:
      // Too large for the server, unless it said to come back later (busy).
      return !common::IsRetryLater(status);
    default:
      return false;
  }
}

void Daemon::OnCredentialRejected(const absl::Status& status) {
  spdlog::error("server rejected this device's credential: {}", status.message());
  absl::Status s = state_->ClearIdentity();
  identity_.reset();
  EndCycle(s.ok() ? status : s);
}

void Daemon::EndCycle(absl::Status status) {
  in_cycle_ = false;
  ++cycles_;
  last_status_ = status;
  if (status.ok()) {
    attempt_ = 0;
    (void)state_->Set("last_error", "");
  } else {
    spdlog::warn("cycle failed: {}", status.ToString());
    (void)state_->Set("last_error", status.ToString());
  }
  const DeployOutcome deployed = deploy_outcome_;
  deployed_ = false;
  deploy_outcome_ = DeployOutcome();
  if (options_.once && !supervised()) {
    Stop();
    return;
  }
  absl::Duration delay = next_interval_;
  if (!status.ok()) {
    delay = BackoffDelay(options_.retry_base, options_.retry_max, attempt_++, rng_);
  } else if (deployed.retry) {
    delay =
        std::min(delay, BackoffDelay(options_.retry_base, options_.retry_max, attempt_++, rng_));
  } else if (deployed.waiting_for_window) {
    delay = std::min(delay, deployed.window_opens_in + absl::Seconds(1));
  }
  (void)state_->Set("next_checkin_at", absl::StrCat(absl::ToUnixSeconds(clock_->Now() + delay)));
  if (options_.once) {
    // One cycle of parc-agentd: the supervisor waits, this process ends.
    (void)state_->Set("retry_attempt", absl::StrCat(attempt_));
    platform_->host->NextCycleIn(delay);
    Stop();
    return;
  }
  // Between cycles the agent holds no connection: gRPC's threads and timers end with its last
  // channel, so an idle agent sleeps until its next check-in (P7 of docs/performance.md), and the
  // memory they used goes back to the system. A check-in an hour costs one TLS handshake.
  client_.reset();
  client_server_.clear();
  if (platform_->host != nullptr) platform_->host->ReleaseMemory();
  ScheduleCycle(delay);
}

}  // namespace parc::agent
