#include "server/agent_service.h"

#include <tuple>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/inventory_util.h"
#include "common/status_macros.h"
#include "server/identity.h"
#include "server/rpc_util.h"

namespace parc::server {
namespace {

using parc::v1::CheckInRequest;
using parc::v1::CheckInResponse;
using parc::v1::EnrollRequest;
using parc::v1::EnrollResponse;
using parc::v1::ReportInventoryRequest;
using parc::v1::ReportInventoryResponse;

constexpr size_t kMaxShortField = 256;
constexpr size_t kMaxLongField = 1024;

bool IsHexHash(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Both hashes must be SHA-256 digests in hex; empty ones pass when allow_empty.
absl::Status CheckHashes(absl::string_view inventory_hash, absl::string_view software_hash,
                         bool allow_empty) {
  for (absl::string_view h : {inventory_hash, software_hash}) {
    if ((allow_empty && h.empty()) || IsHexHash(h)) continue;
    return absl::InvalidArgumentError(
        "inventory_hash and software_hash must be SHA-256 digests in hex");
  }
  return absl::OkStatus();
}

absl::Status CheckLength(absl::string_view field, absl::string_view value, size_t max) {
  if (value.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(), " bytes, more than the limit of ", max));
  }
  return absl::OkStatus();
}

absl::Status ValidateHardware(const parc::v1::Hardware& hw) {
  PARC_RETURN_IF_ERROR(CheckLength("hardware.manufacturer", hw.manufacturer(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.model", hw.model(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.serial", hw.serial(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.bios_version", hw.bios_version(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.cpu_model", hw.cpu_model(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.os_name", hw.os_name(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.os_version", hw.os_version(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.os_pretty_name", hw.os_pretty_name(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.kernel", hw.kernel(), kMaxShortField));
  PARC_RETURN_IF_ERROR(CheckLength("hardware.hostname", hw.hostname(), kMaxShortField));
  if (hw.disks_size() > 64 || hw.batteries_size() > 8 || hw.network_interfaces_size() > 64) {
    return absl::InvalidArgumentError(
        "hardware lists more than 64 disks, 8 batteries or 64 network interfaces");
  }
  if (!parc::v1::DeviceKind_IsValid(hw.detected_kind())) {
    return absl::InvalidArgumentError("hardware.detected_kind is not a known device kind");
  }
  return absl::OkStatus();
}

}  // namespace

AgentServiceImpl::AgentServiceImpl(Store* store, const common::Clock* clock, Metrics* metrics,
                                   AgentServiceOptions options)
    : store_(store), clock_(clock), metrics_(metrics), options_(options) {}

uint32_t AgentServiceImpl::NextCheckInSeconds() {
  thread_local absl::BitGen gen;
  double base = absl::ToDoubleSeconds(options_.checkin_interval);
  double factor = absl::Uniform(gen, 1.0 - options_.checkin_jitter, 1.0 + options_.checkin_jitter);
  double seconds = base * factor;
  return seconds < 1.0 ? 1u : static_cast<uint32_t>(seconds);
}

absl::StatusOr<DeviceAuth> AgentServiceImpl::Authenticate(
    const grpc::CallbackServerContext& context) {
  std::string bearer = common::BearerToken(context);
  if (bearer.empty()) {
    return absl::UnauthenticatedError("missing device credential (authorization: Bearer ...)");
  }
  auto credential = common::ParseCredential(bearer);
  if (!credential.ok()) return absl::UnauthenticatedError("malformed device credential");
  auto auth = store_->GetDeviceAuth(credential->id);
  if (absl::IsNotFound(auth.status())) {
    return absl::UnauthenticatedError("unknown device: enroll again");
  }
  PARC_RETURN_IF_ERROR(auth.status());
  if (!common::ConstantTimeEquals(auth->secret_hash, common::Sha256Hex(credential->secret))) {
    return absl::UnauthenticatedError(
        "device credential rejected (the device was enrolled again since): enroll again");
  }
  return auth;
}

grpc::ServerUnaryReactor* AgentServiceImpl::Enroll(grpc::CallbackServerContext* context,
                                                   const EnrollRequest* request,
                                                   EnrollResponse* response) {
  constexpr absl::string_view kMethod = "Enroll";
  if (request->token().empty()) {
    return FinishNow(context, metrics_, kMethod,
                     absl::UnauthenticatedError("no enrollment token given"));
  }
  auto token = common::ParseCredential(request->token());
  if (!token.ok()) {
    return FinishNow(context, metrics_, kMethod,
                     absl::UnauthenticatedError("enrollment token not recognized"));
  }
  for (auto [field, value] :
       {std::pair<absl::string_view, absl::string_view>{"hostname", request->hostname()},
        {"agent_version", request->agent_version()},
        {"identity.serial", request->identity().serial()},
        {"identity.product_uuid", request->identity().product_uuid()},
        {"identity.machine_id", request->identity().machine_id()},
        {"device_credential", request->device_credential()}}) {
    absl::Status s = CheckLength(field, value, kMaxShortField);
    if (!s.ok()) return FinishNow(context, metrics_, kMethod, s);
  }
  if (!parc::v1::DeviceKind_IsValid(request->kind()) ||
      !parc::v1::DeviceKind_IsValid(request->detected_kind())) {
    return FinishNow(context, metrics_, kMethod,
                     absl::InvalidArgumentError("kind is not a known device kind"));
  }
  auto hw_key = HardwareKey(request->identity());
  if (!hw_key.ok()) return FinishNow(context, metrics_, kMethod, hw_key.status());
  // An unknown, expired or used-up token is refused from a read: a flood of bogus
  // enrollments costs no write. The write checks the token again.
  auto usable =
      store_->CheckEnrollmentToken(token->id, common::Sha256Hex(token->secret), clock_->Now());
  if (!usable.ok()) return FinishNow(context, metrics_, kMethod, usable.status());
  auto device_id = common::RandomHex(8);
  auto secret = common::RandomHex(32);
  if (!device_id.ok() || !secret.ok()) {
    return FinishNow(context, metrics_, kMethod, absl::InternalError("random generator failed"));
  }

  EnrollInput in;
  in.token_id = token->id;
  in.token_secret_hash = common::Sha256Hex(token->secret);
  in.hw_key = *hw_key;
  in.serial = UsableSerial(request->identity().serial());
  in.kind_from_technician = request->kind() != parc::v1::DEVICE_KIND_UNSPECIFIED;
  in.kind = in.kind_from_technician ? request->kind() : request->detected_kind();
  in.hostname = request->hostname();
  in.agent_version = request->agent_version();
  in.new_device_id = absl::StrCat("d", *device_id);
  in.secret_hash = common::Sha256Hex(*secret);
  if (!request->device_credential().empty()) {
    auto current = common::ParseCredential(request->device_credential());
    if (!current.ok()) {
      return FinishNow(context, metrics_, kMethod,
                       absl::InvalidArgumentError("device_credential is malformed"));
    }
    in.current_device_id = current->id;
    in.current_secret_hash = common::Sha256Hex(current->secret);
  }
  in.now = clock_->Now();

  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  store_->Enroll(std::move(in), [this, reactor, context, response,
                                 secret = *secret](absl::StatusOr<EnrollOutcome> outcome) {
    if (outcome.ok()) {
      response->set_device_id(outcome->device_id);
      response->set_device_secret(secret);
      response->set_uai(outcome->uai);
      response->set_establishment_name(outcome->establishment_name);
      response->set_reenrolled(outcome->reenrolled);
      response->set_checkin_interval_seconds(
          static_cast<uint32_t>(absl::ToInt64Seconds(options_.checkin_interval)));
    }
    FinishRpc(reactor, metrics_, "Enroll", outcome.status(), context);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::CheckEnrollment(
    grpc::CallbackServerContext* context, const EnrollRequest* request,
    parc::v1::CheckEnrollmentResponse* response) {
  constexpr absl::string_view kMethod = "CheckEnrollment";
  auto token = common::ParseCredential(request->token());
  if (!token.ok()) {
    return FinishNow(
        context, metrics_, kMethod,
        absl::UnauthenticatedError(request->token().empty() ? "no enrollment token given"
                                                            : "enrollment token not recognized"));
  }
  const absl::Time now = clock_->Now();
  auto record = store_->CheckEnrollmentToken(token->id, common::Sha256Hex(token->secret), now);
  if (!record.ok()) return FinishNow(context, metrics_, kMethod, record.status());
  // The hardware must be identifiable for Enroll to succeed later.
  auto hw_key = HardwareKey(request->identity());
  if (!hw_key.ok()) return FinishNow(context, metrics_, kMethod, hw_key.status());
  response->set_uai(record->uai);
  if (!record->uai.empty()) {
    auto est = store_->GetEstablishment(record->uai);
    if (est.ok()) response->set_establishment_name(est->name());
  }
  response->set_expires_in_seconds(absl::ToInt64Seconds(record->expires_at - now));
  response->set_uses_left(record->max_uses == 0 ? 0 : record->max_uses - record->uses);
  return FinishNow(context, metrics_, kMethod, absl::OkStatus());
}

grpc::ServerUnaryReactor* AgentServiceImpl::CheckIn(grpc::CallbackServerContext* context,
                                                    const CheckInRequest* request,
                                                    CheckInResponse* response) {
  constexpr absl::string_view kMethod = "CheckIn";
  auto auth = Authenticate(*context);
  if (!auth.ok()) return FinishNow(context, metrics_, kMethod, auth.status());
  absl::Status hashes =
      CheckHashes(request->inventory_hash(), request->software_hash(), /*allow_empty=*/true);
  if (!hashes.ok()) return FinishNow(context, metrics_, kMethod, hashes);
  absl::Status s = CheckLength("agent_version", request->agent_version(), kMaxShortField);
  if (!s.ok()) return FinishNow(context, metrics_, kMethod, s);

  bool send_inventory = request->inventory_hash() != auth->inventory_hash;
  bool send_software = false;
  if (send_inventory) {
    auto known = request->software_hash().empty()
                     ? absl::StatusOr<bool>(false)
                     : store_->HasSoftwareSet(request->software_hash());
    if (!known.ok()) return FinishNow(context, metrics_, kMethod, known.status());
    send_software = !*known;
  }
  response->set_send_inventory(send_inventory);
  response->set_send_software(send_software);
  response->set_uai(auth->uai);
  response->set_next_checkin_seconds(NextCheckInSeconds());
  auto assignment = store_->AssignmentFor(auth->id);
  if (!assignment.ok()) return FinishNow(context, metrics_, kMethod, assignment.status());
  if (assignment->has_value()) {
    const ActiveAssignment& a = **assignment;
    auto* out = response->mutable_assignment();
    out->set_rollout_id(a.rollout_id);
    out->set_manifest_sha256(a.manifest_sha256);
    out->set_artifact_base_url(options_.artifact_base_url);
    out->mutable_window()->set_start_minute(a.window_start);
    out->mutable_window()->set_end_minute(a.window_end);
    out->set_rate_limit_bytes_per_second(a.rate_limit);
    // The manifest travels only when the agent does not hold it yet.
    if (request->assignment_manifest_sha256() != a.manifest_sha256 &&
        !out->mutable_bundle()->ParseFromString(a.signed_manifest)) {
      return FinishNow(context, metrics_, kMethod,
                       absl::DataLossError("stored signed manifest is unreadable"));
    }
  }

  CheckInInput checkin{auth->id, request->agent_version(), clock_->Now()};
  // While the storage fails, a check-in waits for its write, so that the device is told the
  // truth rather than an answer that is then not recorded.
  if (options_.checkin_write_behind && store_->Writable() && store_->RecordCheckInBehind(checkin)) {
    return FinishNow(context, metrics_, kMethod, absl::OkStatus());
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  store_->RecordCheckIn(std::move(checkin), [this, reactor, context](absl::StatusOr<bool> done) {
    FinishRpc(reactor, metrics_, "CheckIn", done.status(), context);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::ReportInventory(grpc::CallbackServerContext* context,
                                                            const ReportInventoryRequest* request,
                                                            ReportInventoryResponse* response) {
  constexpr absl::string_view kMethod = "ReportInventory";
  auto auth = Authenticate(*context);
  if (!auth.ok()) return FinishNow(context, metrics_, kMethod, auth.status());
  size_t size = request->ByteSizeLong();
  if (size > options_.max_inventory_bytes) {
    return FinishNow(context, metrics_, kMethod,
                     absl::ResourceExhaustedError(absl::StrCat(
                         "inventory is ", size, " bytes, more than the server's limit of ",
                         options_.max_inventory_bytes)));
  }
  const auto& inventory = request->inventory();
  if (inventory.software().packages_size() > options_.max_packages) {
    return FinishNow(context, metrics_, kMethod,
                     absl::ResourceExhaustedError(absl::StrCat(
                         "inventory lists ", inventory.software().packages_size(),
                         " packages, more than the server's limit of ", options_.max_packages)));
  }
  absl::Status hashes =
      CheckHashes(request->inventory_hash(), request->software_hash(), /*allow_empty=*/false);
  if (!hashes.ok()) return FinishNow(context, metrics_, kMethod, hashes);
  absl::Status valid = ValidateHardware(inventory.hardware());
  if (!valid.ok()) return FinishNow(context, metrics_, kMethod, valid);

  InventoryInput in;
  in.device_id = auth->id;
  in.inventory_hash = request->inventory_hash();
  in.software_hash = request->software_hash();
  in.hardware = inventory.hardware();
  static const std::string kEmptySoftwareHash = common::SoftwareHash(parc::v1::SoftwareList());
  bool with_list =
      inventory.software().packages_size() > 0 || in.software_hash == kEmptySoftwareHash;
  if (with_list) {
    // A list the server already holds (another clone of the same image sent it) is neither
    // verified nor copied: nothing of it would be stored.
    auto known = store_->HasSoftwareSet(in.software_hash);
    if (!known.ok()) return FinishNow(context, metrics_, kMethod, known.status());
    with_list = !*known;
  }
  if (with_list) {
    parc::v1::SoftwareList software = inventory.software();
    for (const auto& p : software.packages()) {
      if (p.name().empty() || p.name().size() > kMaxShortField ||
          p.version().size() > kMaxShortField || p.architecture().size() > 64) {
        return FinishNow(context, metrics_, kMethod,
                         absl::InvalidArgumentError(absl::StrCat(
                             "software package \"", p.name().substr(0, 64),
                             "\" has an empty or over-long name, version or architecture")));
      }
    }
    common::CanonicalizeSoftware(&software);
    if (common::SoftwareHash(software) != request->software_hash()) {
      return FinishNow(context, metrics_, kMethod,
                       absl::InvalidArgumentError(
                           "software_hash does not match the software list sent with it"));
    }
    in.software = std::move(software);
  }
  if (common::InventoryHash(in.hardware, in.software_hash) != in.inventory_hash) {
    return FinishNow(context, metrics_, kMethod,
                     absl::InvalidArgumentError("inventory_hash does not match the inventory"));
  }
  in.received_at = clock_->Now();
  in.collected_at =
      request->collected_at() > 0 ? absl::FromUnixSeconds(request->collected_at()) : in.received_at;

  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool with_software = in.software.has_value();
  store_->StoreInventory(
      std::move(in), [this, reactor, context, response, with_software](absl::StatusOr<bool> done) {
        response->set_stored(done.ok());
        if (done.ok()) metrics_->RecordInventory(with_software);
        FinishRpc(reactor, metrics_, "ReportInventory", done.status(), context);
      });
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::ReportDeployment(
    grpc::CallbackServerContext* context, const parc::v1::DeploymentReport* request,
    parc::v1::ReportDeploymentResponse* /*response*/) {
  constexpr absl::string_view kMethod = "ReportDeployment";
  auto auth = Authenticate(*context);
  if (!auth.ok()) return FinishNow(context, metrics_, kMethod, auth.status());
  if (request->rollout_id().empty() || request->rollout_id().size() > 64) {
    return FinishNow(context, metrics_, kMethod,
                     absl::InvalidArgumentError("rollout_id: empty or too long"));
  }
  if (request->packages_size() > 1000 || request->ByteSizeLong() > (1u << 20)) {
    return FinishNow(context, metrics_, kMethod,
                     absl::ResourceExhaustedError("deployment report over 1000 packages or 1 MiB"));
  }
  if (!parc::v1::DeploymentState_IsValid(request->state())) {
    return FinishNow(context, metrics_, kMethod,
                     absl::InvalidArgumentError("state: unknown deployment state"));
  }
  for (auto [field, value, max] :
       {std::tuple<absl::string_view, absl::string_view, size_t>{"reason", request->reason(), 64},
        {"bundle_name", request->bundle_name(), 64},
        {"bundle_version", request->bundle_version(), 64}}) {
    absl::Status s = CheckLength(field, value, max);
    if (!s.ok()) return FinishNow(context, metrics_, kMethod, s);
  }
  for (const auto& p : request->packages()) {
    for (auto [field, value] :
         {std::pair<absl::string_view, absl::string_view>{"packages.package_id", p.package_id()},
          {"packages.version", p.version()},
          {"packages.reason", p.reason()}}) {
      absl::Status s = CheckLength(field, value, 128);
      if (!s.ok()) return FinishNow(context, metrics_, kMethod, s);
    }
    if (!parc::v1::PackageState_IsValid(p.state())) {
      return FinishNow(context, metrics_, kMethod,
                       absl::InvalidArgumentError(absl::StrCat(
                           "package ", p.package_id().substr(0, 64), ": unknown package state")));
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::string rollout_id = request->rollout_id();
  store_->RecordDeployment(auth->id, *request, clock_->Now(),
                           [this, reactor, context, rollout_id](absl::StatusOr<bool> done) {
                             if (done.ok() && options_.deployment_reported) {
                               options_.deployment_reported(rollout_id);
                             }
                             FinishRpc(reactor, metrics_, "ReportDeployment", done.status(),
                                       context);
                           });
  return reactor;
}

}  // namespace parc::server
