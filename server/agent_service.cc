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
#include "server/report_validation.h"
#include "server/rpc_util.h"

namespace parc::server {
namespace {

using parc::v1::CheckInRequest;
using parc::v1::CheckInResponse;
using parc::v1::EnrollRequest;
using parc::v1::EnrollResponse;
using parc::v1::ReportInventoryResponse;

}  // namespace

AgentCalls::AgentCalls(Store* store, const common::Clock* clock, Metrics* metrics,
                       AgentServiceOptions options)
    : store_(store), clock_(clock), metrics_(metrics), options_(std::move(options)) {}

uint32_t AgentCalls::NextCheckInSeconds() {
  thread_local absl::BitGen gen;
  double base = absl::ToDoubleSeconds(options_.checkin_interval);
  double factor = absl::Uniform(gen, 1.0 - options_.checkin_jitter, 1.0 + options_.checkin_jitter);
  double seconds = base * factor;
  return seconds < 1.0 ? 1u : static_cast<uint32_t>(seconds);
}

absl::StatusOr<DeviceAuth> AgentCalls::Authenticate(const AgentCaller& caller) {
  const std::string& bearer = caller.bearer;
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

absl::Status AgentCalls::Enroll(const AgentCaller& /*caller*/, const EnrollRequest& request,
                                EnrollResponse* response, UnaryCall& call) {
  if (request.token().empty()) return absl::UnauthenticatedError("no enrollment token given");
  auto token = common::ParseCredential(request.token());
  if (!token.ok()) return absl::UnauthenticatedError("enrollment token not recognized");
  PARC_RETURN_IF_ERROR(ValidateEnroll(request));
  PARC_ASSIGN_OR_RETURN(std::string hw_key, HardwareKey(request.identity()));
  // An unknown, expired or used-up token is refused from a read: a flood of bogus
  // enrollments costs no write. The write checks the token again.
  PARC_RETURN_IF_ERROR(
      store_->CheckEnrollmentToken(token->id, common::Sha256Hex(token->secret), clock_->Now())
          .status());
  auto device_id = common::RandomHex(8);
  auto secret = common::RandomHex(32);
  if (!device_id.ok() || !secret.ok()) return absl::InternalError("random generator failed");

  EnrollInput in;
  in.token_id = token->id;
  in.token_secret_hash = common::Sha256Hex(token->secret);
  in.hw_key = std::move(hw_key);
  in.serial = UsableSerial(request.identity().serial());
  in.kind_from_technician = request.kind() != parc::v1::DEVICE_KIND_UNSPECIFIED;
  in.kind = in.kind_from_technician ? request.kind() : request.detected_kind();
  in.hostname = request.hostname();
  in.agent_version = request.agent_version();
  in.new_device_id = absl::StrCat("d", *device_id);
  in.secret_hash = common::Sha256Hex(*secret);
  if (!request.device_credential().empty()) {
    auto current = common::ParseCredential(request.device_credential());
    if (!current.ok()) return absl::InvalidArgumentError("device_credential is malformed");
    in.current_device_id = current->id;
    in.current_secret_hash = common::Sha256Hex(current->secret);
  }
  in.now = clock_->Now();
  store_->Enroll(std::move(in), [this, response, secret = *secret,
                                 done = call.Later()](absl::StatusOr<EnrollOutcome> outcome) {
    if (outcome.ok()) {
      response->set_device_id(outcome->device_id);
      response->set_device_secret(secret);
      response->set_uai(outcome->uai);
      response->set_establishment_name(outcome->establishment_name);
      response->set_reenrolled(outcome->reenrolled);
      response->set_checkin_interval_seconds(
          static_cast<uint32_t>(absl::ToInt64Seconds(options_.checkin_interval)));
    }
    done(outcome.status());
  });
  return absl::OkStatus();
}

absl::Status AgentCalls::CheckEnrollment(const AgentCaller& /*caller*/,
                                         const EnrollRequest& request,
                                         parc::v1::CheckEnrollmentResponse* response,
                                         UnaryCall& /*call*/) {
  auto token = common::ParseCredential(request.token());
  if (!token.ok()) {
    return absl::UnauthenticatedError(request.token().empty() ? "no enrollment token given"
                                                              : "enrollment token not recognized");
  }
  const absl::Time now = clock_->Now();
  PARC_ASSIGN_OR_RETURN(
      EnrollmentTokenRecord record,
      store_->CheckEnrollmentToken(token->id, common::Sha256Hex(token->secret), now));
  // The hardware must be identifiable for Enroll to succeed later.
  PARC_RETURN_IF_ERROR(HardwareKey(request.identity()).status());
  response->set_uai(record.uai);
  if (!record.uai.empty()) {
    auto est = store_->GetEstablishment(record.uai);
    if (est.ok()) response->set_establishment_name(est->name());
  }
  response->set_expires_in_seconds(absl::ToInt64Seconds(record.expires_at - now));
  response->set_uses_left(record.max_uses == 0 ? 0 : record.max_uses - record.uses);
  return absl::OkStatus();
}

absl::Status AgentCalls::CheckIn(const AgentCaller& caller, const CheckInRequest& request,
                                 CheckInResponse* response, UnaryCall& call) {
  PARC_ASSIGN_OR_RETURN(DeviceAuth auth, Authenticate(caller));
  PARC_RETURN_IF_ERROR(
      CheckHashes(request.inventory_hash(), request.software_hash(), /*allow_empty=*/true));
  PARC_RETURN_IF_ERROR(CheckLength("agent_version", request.agent_version(), kMaxShortField));
  if (request.has_system_free_bytes() && request.system_free_bytes() > kMaxDiskBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "system_free_bytes: ", request.system_free_bytes(), " is more than any disk holds"));
  }

  bool send_inventory = request.inventory_hash() != auth.inventory_hash;
  bool send_software = false;
  if (send_inventory && !request.software_hash().empty()) {
    PARC_ASSIGN_OR_RETURN(bool known, store_->HasSoftwareSet(request.software_hash()));
    send_software = !known;
  }
  response->set_send_inventory(send_inventory);
  response->set_send_software(send_software);
  response->set_uai(auth.uai);
  response->set_next_checkin_seconds(NextCheckInSeconds());
  PARC_ASSIGN_OR_RETURN(std::shared_ptr<const ActiveAssignment> assignment,
                        store_->AssignmentFor(auth));
  if (assignment != nullptr) {
    const ActiveAssignment& a = *assignment;
    auto* out = response->mutable_assignment();
    out->set_rollout_id(a.rollout_id);
    out->set_manifest_sha256(a.manifest_sha256);
    out->set_artifact_base_url(options_.artifact_base_url);
    out->mutable_window()->set_start_minute(a.window_start);
    out->mutable_window()->set_end_minute(a.window_end);
    out->set_rate_limit_bytes_per_second(a.rate_limit);
    for (const auto& url : a.relay_urls) out->add_relay_urls(url);
    // The manifest travels only when the agent does not hold it yet.
    if (request.assignment_manifest_sha256() != a.manifest_sha256 &&
        !out->mutable_bundle()->ParseFromString(a.signed_manifest)) {
      return absl::DataLossError("stored signed manifest is unreadable");
    }
  }

  CheckInInput checkin{auth.id, request.agent_version(), clock_->Now(), std::nullopt};
  if (request.has_system_free_bytes()) checkin.free_bytes = request.system_free_bytes();
  store_->RecordCheckIn(std::move(checkin),
                        options_.checkin_write_behind ? Durability::kBehind : Durability::kDurable,
                        [done = call.Later()](absl::StatusOr<bool> r) { done(r.status()); });
  return absl::OkStatus();
}

absl::Status AgentCalls::ReportInventory(const AgentCaller& caller, InventoryRequest& request,
                                         ReportInventoryResponse* response, UnaryCall& call) {
  PARC_ASSIGN_OR_RETURN(DeviceAuth auth, Authenticate(caller));
  ReportLimits limits;
  limits.max_inventory_bytes = options_.max_inventory_bytes;
  limits.max_packages = options_.max_packages;
  PARC_RETURN_IF_ERROR(ValidateInventory(request, limits));

  InventoryInput in;
  in.device_id = auth.id;
  in.device_row = auth.row;
  in.inventory_hash = request.inventory_hash();
  in.software_hash = request.software_hash();
  in.hardware = std::move(*request.mutable_hardware());
  static const std::string kEmptySoftwareHash = common::SoftwareHash(parc::v1::SoftwareList());
  bool with_list = request.software_size() > 0 || in.software_hash == kEmptySoftwareHash;
  if (with_list) {
    // A list the server already holds (another clone of the same image sent it) is neither
    // copied out of the request, parsed nor verified: nothing of it would be stored.
    PARC_ASSIGN_OR_RETURN(bool known, store_->HasSoftwareSet(in.software_hash));
    with_list = !known;
  }
  if (with_list) {
    PARC_ASSIGN_OR_RETURN(std::string encoded, request.SoftwareBytes());
    PARC_ASSIGN_OR_RETURN(std::shared_ptr<parc::v1::SoftwareList> list, ParseSoftwareList(encoded));
    PARC_RETURN_IF_ERROR(CheckSoftwareList(list.get(), request.software_hash()));
    in.software = std::move(list);
  }
  // Encoded once: hashed here, stored as it is by the writer.
  in.encoded_hardware = common::EncodeHardware(in.hardware);
  PARC_RETURN_IF_ERROR(
      CheckInventoryHash(in.encoded_hardware, in.software_hash, in.inventory_hash));
  in.received_at = clock_->Now();
  in.collected_at =
      request.collected_at() > 0 ? absl::FromUnixSeconds(request.collected_at()) : in.received_at;
  const bool with_software = in.software != nullptr;
  store_->StoreInventory(
      std::move(in), [this, response, with_software, done = call.Later()](absl::StatusOr<bool> r) {
        response->set_stored(r.ok());
        if (r.ok()) metrics_->RecordInventory(with_software);
        done(r.status());
      });
  return absl::OkStatus();
}

absl::Status AgentCalls::ReportDeployment(const AgentCaller& caller,
                                          const parc::v1::DeploymentReport& request,
                                          parc::v1::ReportDeploymentResponse* /*response*/,
                                          UnaryCall& call) {
  PARC_ASSIGN_OR_RETURN(DeviceAuth auth, Authenticate(caller));
  PARC_RETURN_IF_ERROR(ValidateDeploymentReport(request));
  store_->RecordDeployment(
      auth.id, request, clock_->Now(),
      [this, rollout_id = request.rollout_id(), done = call.Later()](absl::StatusOr<bool> r) {
        if (r.ok() && options_.deployment_reported) {
          options_.deployment_reported(rollout_id);
        }
        done(r.status());
      });
  return absl::OkStatus();
}

AgentServiceImpl::AgentServiceImpl(Store* store, const common::Clock* clock, Metrics* metrics,
                                   AgentServiceOptions options)
    : metrics_(metrics), calls_(store, clock, metrics, std::move(options)) {}

namespace {

AgentCaller CallerOf(const grpc::CallbackServerContext& context) {
  return AgentCaller{common::BearerToken(context)};
}

}  // namespace

grpc::ServerUnaryReactor* AgentServiceImpl::Enroll(grpc::CallbackServerContext* context,
                                                   const EnrollRequest* request,
                                                   EnrollResponse* response) {
  return HandleUnary(context, metrics_, "Enroll", [&](UnaryCall& call) {
    return calls_.Enroll(CallerOf(*context), *request, response, call);
  });
}

grpc::ServerUnaryReactor* AgentServiceImpl::CheckEnrollment(
    grpc::CallbackServerContext* context, const EnrollRequest* request,
    parc::v1::CheckEnrollmentResponse* response) {
  return HandleUnary(context, metrics_, "CheckEnrollment", [&](UnaryCall& call) {
    return calls_.CheckEnrollment(CallerOf(*context), *request, response, call);
  });
}

grpc::ServerUnaryReactor* AgentServiceImpl::CheckIn(grpc::CallbackServerContext* context,
                                                    const CheckInRequest* request,
                                                    CheckInResponse* response) {
  return HandleUnary(context, metrics_, "CheckIn", [&](UnaryCall& call) {
    return calls_.CheckIn(CallerOf(*context), *request, response, call);
  });
}

grpc::ServerUnaryReactor* AgentServiceImpl::ReportInventory(grpc::CallbackServerContext* context,
                                                            const grpc::ByteBuffer* request,
                                                            grpc::ByteBuffer* response) {
  return HandleRawUnary<parc::v1::ReportInventoryResponse>(
      context, metrics_, "ReportInventory", response,
      [&](UnaryCall& call, parc::v1::ReportInventoryResponse* answer) {
        InventoryRequest inventory;
        if (!inventory.Parse(*request)) {
          metrics_->RecordUnparseable("ReportInventory");
          return absl::InvalidArgumentError("the request is not a valid ReportInventory message");
        }
        return calls_.ReportInventory(CallerOf(*context), inventory, answer, call);
      });
}

grpc::ServerUnaryReactor* AgentServiceImpl::ReportDeployment(
    grpc::CallbackServerContext* context, const parc::v1::DeploymentReport* request,
    parc::v1::ReportDeploymentResponse* response) {
  return HandleUnary(context, metrics_, "ReportDeployment", [&](UnaryCall& call) {
    return calls_.ReportDeployment(CallerOf(*context), *request, response, call);
  });
}

}  // namespace parc::server
