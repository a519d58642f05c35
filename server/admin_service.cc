#include "server/admin_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/status_macros.h"
#include "common/uai.h"
#include "server/establishment_import.h"
#include "server/rpc_util.h"
#include "server/scope.h"

namespace parc::server {
namespace {

using google::protobuf::RepeatedPtrField;

constexpr int kMaxErrorsInMessage = 50;
constexpr absl::Duration kDefaultTokenLifetime = absl::Hours(24 * 30);
constexpr absl::Duration kMaxTokenLifetime = absl::Hours(24 * 3650);
// A region-wide token enrolls anywhere: it sits in master images and on USB keys, so it is
// always limited in time and in uses.
constexpr absl::Duration kMaxRegionTokenLifetime = absl::Hours(24 * 365);
constexpr uint32_t kDefaultRegionTokenUses = 500;
constexpr uint32_t kMaxRegionTokenUses = 1000000;

std::string DescribeRowErrors(const std::vector<parc::v1::CsvRowError>& errors,
                              absl::string_view filename) {
  std::string msg = absl::StrCat(errors.size(), " invalid row", errors.size() == 1 ? "" : "s",
                                 filename.empty() ? "" : absl::StrCat(" in ", filename),
                                 "; nothing was imported (use --skip-invalid to import the "
                                 "valid rows):");
  int shown = 0;
  for (const auto& e : errors) {
    if (shown++ == kMaxErrorsInMessage) {
      absl::StrAppend(&msg, "\n  … and ", errors.size() - kMaxErrorsInMessage, " more");
      break;
    }
    absl::StrAppend(&msg, "\n  line ", e.line(),
                    e.field().empty() ? "" : absl::StrCat(" (", e.field(), ")"), ": ", e.message());
  }
  return msg;
}

std::string TokenState(const EnrollmentTokenRecord& t, absl::Time now) {
  if (t.revoked_at.has_value()) return "revoked";
  if (now >= t.expires_at) return "expired";
  if (t.max_uses > 0 && t.uses >= t.max_uses) return "used up";
  return "active";
}

parc::v1::EnrollmentToken TokenProto(const EnrollmentTokenRecord& t, absl::Time now) {
  parc::v1::EnrollmentToken p;
  p.set_id(t.id);
  p.set_uai(t.uai);
  p.mutable_created_at()->set_seconds(absl::ToUnixSeconds(t.created_at));
  p.mutable_expires_at()->set_seconds(absl::ToUnixSeconds(t.expires_at));
  p.set_max_uses(t.max_uses);
  p.set_uses(t.uses);
  if (t.revoked_at.has_value()) {
    p.mutable_revoked_at()->set_seconds(absl::ToUnixSeconds(*t.revoked_at));
  }
  p.set_note(t.note);
  p.set_reenroll(t.reenroll);
  p.set_state(TokenState(t, now));
  return p;
}

template <typename T>
void CopyErrors(const std::vector<parc::v1::CsvRowError>& errors, T* response) {
  for (const auto& e : errors) *response->add_errors() = e;
}

}  // namespace

AdminServiceImpl::AdminServiceImpl(Store* store, const common::Clock* clock, Metrics* metrics,
                                   BundleConfig bundles)
    : store_(store), clock_(clock), metrics_(metrics), bundles_(std::move(bundles)) {}

absl::StatusOr<Caller> AdminServiceImpl::Authorize(const grpc::CallbackServerContext& context,
                                                   std::initializer_list<absl::string_view> roles) {
  return AuthenticateOperator(store_, common::BearerToken(context), roles);
}

absl::StatusOr<parc::v1::Establishment> AdminServiceImpl::VisibleEstablishment(
    const Caller& caller, const std::string& uai) {
  auto est = store_->GetEstablishment(uai);
  if (est.ok() && !caller.scope.Contains(*est)) {
    return absl::NotFoundError(absl::StrCat("no establishment with UAI ", uai));
  }
  return est;
}

namespace {

constexpr std::initializer_list<absl::string_view> kDeviceRoles = {kRoleAdmin, kRoleTechnician};

absl::Status InvalidCsv(const parc::v1::ImportCsvRequest& request, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat(
      request.filename().empty() ? "" : absl::StrCat(request.filename(), ": "), status.message()));
}

absl::StatusOr<std::string> DepartementArg(const std::string& value) {
  std::string dep = common::NormalizeDepartement(value);
  if (dep.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("departement: \"", value, "\" is not a département code"));
  }
  return dep;
}

absl::StatusOr<std::string> UaiArg(const std::string& value) {
  auto uai = common::NormalizeUai(value);
  if (!uai.ok()) return absl::InvalidArgumentError(absl::StrCat("uai: ", uai.status().message()));
  return uai;
}

absl::Status DeviceArg(const std::string& value) {
  if (value.empty())
    return absl::InvalidArgumentError("device: give a device id or a serial number");
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::ImportEstablishments(
    grpc::CallbackServerContext* context, const parc::v1::ImportCsvRequest* request,
    parc::v1::ImportEstablishmentsResponse* response) {
  return Handle(
      context, "ImportEstablishments", {kRoleAdmin},
      [&](const Caller& op, UnaryCall& call) -> absl::Status {
        if (!op.scope.is_region()) {
          return absl::PermissionDeniedError("importing the annuaire needs a region-wide operator");
        }
        auto parsed = ParseEstablishmentsCsv(request->content());
        if (!parsed.ok()) return InvalidCsv(*request, parsed.status());
        response->set_ignored(parsed->ignored);
        CopyErrors(parsed->errors, response);
        if (request->dry_run()) {
          response->set_inserted(static_cast<uint32_t>(parsed->rows.size()));
          return absl::OkStatus();
        }
        if (!parsed->errors.empty() && !request->skip_invalid()) {
          return absl::InvalidArgumentError(DescribeRowErrors(parsed->errors, request->filename()));
        }
        store_->UpsertEstablishments(
            std::move(parsed->rows), clock_->Now(),
            [response, done = call.Later()](absl::StatusOr<ImportCounts> c) {
              if (c.ok()) {
                response->set_inserted(c->inserted);
                response->set_updated(c->updated);
                response->set_unchanged(c->unchanged);
                response->set_committed(true);
              }
              done(c.status());
            });
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListEstablishments(
    grpc::CallbackServerContext* context, const parc::v1::ListEstablishmentsRequest* request,
    parc::v1::ListEstablishmentsResponse* response) {
  return Handle(context, "ListEstablishments", kEveryRole,
                [&](const Caller& op, UnaryCall&) -> absl::Status {
                  parc::v1::ListEstablishmentsRequest filter = *request;
                  if (!filter.departement().empty()) {
                    PARC_ASSIGN_OR_RETURN(std::string dep, DepartementArg(filter.departement()));
                    filter.set_departement(dep);
                  }
                  PARC_ASSIGN_OR_RETURN(auto rows, store_->ListEstablishments(filter, op.scope));
                  for (auto& e : rows) *response->add_establishments() = std::move(e);
                  return absl::OkStatus();
                });
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateEnrollmentToken(
    grpc::CallbackServerContext* context, const parc::v1::CreateEnrollmentTokenRequest* request,
    parc::v1::CreateEnrollmentTokenResponse* response) {
  return Handle(
      context, "CreateEnrollmentToken", kDeviceRoles,
      [&](const Caller& op, UnaryCall& call) -> absl::Status {
        if (request->region() == !request->uai().empty()) {
          return absl::InvalidArgumentError(
              "give exactly one of uai (one establishment) and region (region-wide)");
        }
        if (request->region() && !op.scope.is_region()) {
          return absl::PermissionDeniedError(
              absl::StrCat("a region-wide token needs a region-wide operator; this one's scope is ",
                           op.scope.text()));
        }
        EnrollmentTokenRecord t;
        if (!request->uai().empty()) {
          PARC_ASSIGN_OR_RETURN(t.uai, UaiArg(request->uai()));
          auto est = VisibleEstablishment(op, t.uai);
          if (absl::IsNotFound(est.status())) {
            return absl::NotFoundError(
                absl::StrCat("no establishment with UAI ", t.uai, ": import the annuaire first"));
          }
          PARC_RETURN_IF_ERROR(est.status());
        }
        absl::Duration lifetime = request->expires_in_seconds() == 0
                                      ? kDefaultTokenLifetime
                                      : absl::Seconds(request->expires_in_seconds());
        if (lifetime > kMaxTokenLifetime) {
          return absl::InvalidArgumentError("expires_in_seconds: at most 10 years");
        }
        uint32_t max_uses = request->max_uses();
        if (request->region()) {
          if (lifetime > kMaxRegionTokenLifetime) {
            return absl::InvalidArgumentError(
                "expires_in_seconds: a region-wide token lives at most 365 days");
          }
          if (max_uses == 0) max_uses = kDefaultRegionTokenUses;
          if (max_uses > kMaxRegionTokenUses) {
            return absl::InvalidArgumentError(
                "max_uses: a region-wide token enrolls at most 1,000,000 devices");
          }
        }
        if (request->note().size() > 256)
          return absl::InvalidArgumentError("note: at most 256 bytes");
        PARC_ASSIGN_OR_RETURN(common::Credential credential, common::NewCredential("e", 6));
        t.id = credential.id;
        t.secret_hash = common::Sha256Hex(credential.secret);
        t.created_at = clock_->Now();
        t.expires_at = t.created_at + lifetime;
        t.max_uses = max_uses;
        t.reenroll = request->reenroll();
        t.note = request->note();
        t.created_by = op.record.name;
        response->set_token(common::FormatCredential(credential));
        *response->mutable_info() = TokenProto(t, t.created_at);
        store_->CreateEnrollmentToken(std::move(t),
                                      [response, done = call.Later()](absl::StatusOr<bool> r) {
                                        if (!r.ok()) response->clear_token();
                                        done(r.status());
                                      });
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListEnrollmentTokens(
    grpc::CallbackServerContext* context, const parc::v1::ListEnrollmentTokensRequest* request,
    parc::v1::ListEnrollmentTokensResponse* response) {
  return Handle(context, "ListEnrollmentTokens", kDeviceRoles,
                [&](const Caller& op, UnaryCall&) -> absl::Status {
                  PARC_ASSIGN_OR_RETURN(auto tokens, store_->ListEnrollmentTokens(op.scope));
                  absl::Time now = clock_->Now();
                  for (const auto& t : tokens) {
                    parc::v1::EnrollmentToken p = TokenProto(t, now);
                    if (request->include_inactive() || p.state() == "active") {
                      *response->add_tokens() = std::move(p);
                    }
                  }
                  return absl::OkStatus();
                });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeEnrollmentToken(
    grpc::CallbackServerContext* context, const parc::v1::RevokeEnrollmentTokenRequest* request,
    parc::v1::EnrollmentToken* response) {
  return Handle(context, "RevokeEnrollmentToken", kDeviceRoles,
                [&](const Caller& op, UnaryCall& call) -> absl::Status {
                  // Accept the whole token as well as its id.
                  std::string id = request->id();
                  auto credential = common::ParseCredential(id);
                  if (credential.ok()) id = credential->id;
                  if (id.empty()) return absl::InvalidArgumentError("id is empty");
                  store_->RevokeEnrollmentToken(id, op.scope, clock_->Now(),
                                                [this, response, done = call.Later()](
                                                    absl::StatusOr<EnrollmentTokenRecord> t) {
                                                  if (t.ok())
                                                    *response = TokenProto(*t, clock_->Now());
                                                  done(t.status());
                                                });
                  return absl::OkStatus();
                });
}

grpc::ServerUnaryReactor* AdminServiceImpl::PreassignDevices(
    grpc::CallbackServerContext* context, const parc::v1::ImportCsvRequest* request,
    parc::v1::PreassignDevicesResponse* response) {
  return Handle(
      context, "PreassignDevices", kDeviceRoles,
      [&](const Caller& op, UnaryCall& call) -> absl::Status {
        auto parsed = ParsePreassignCsv(request->content());
        if (!parsed.ok()) return InvalidCsv(*request, parsed.status());
        // Every UAI must be a known establishment.
        std::vector<Preassignment> rows;
        std::vector<parc::v1::CsvRowError> errors = parsed->errors;
        for (auto& r : parsed->rows) {
          auto est = VisibleEstablishment(op, r.uai);
          if (absl::IsNotFound(est.status())) {
            parc::v1::CsvRowError e;
            e.set_line(r.line);
            e.set_field("uai");
            e.set_message(absl::StrCat("no establishment with UAI ", r.uai));
            errors.push_back(std::move(e));
            continue;
          }
          PARC_RETURN_IF_ERROR(est.status());
          rows.push_back({r.line, std::move(r.serial), std::move(r.uai)});
        }
        // Both ends of a move must be in scope: the new establishment (checked above) and wherever
        // the serial is delivered or enrolled now.
        PARC_ASSIGN_OR_RETURN(auto out_of_scope, store_->PreassignmentsOutOfScope(rows, op.scope));
        for (const auto& [line, message] : out_of_scope) {
          parc::v1::CsvRowError e;
          e.set_line(line);
          e.set_field("serial");
          e.set_message(message);
          errors.push_back(std::move(e));
          rows.erase(
              std::remove_if(rows.begin(), rows.end(),
                             [line = line](const Preassignment& p) { return p.line == line; }),
              rows.end());
        }
        std::sort(errors.begin(), errors.end(),
                  [](const auto& a, const auto& b) { return a.line() < b.line(); });
        CopyErrors(errors, response);
        if (request->dry_run()) {
          response->set_inserted(static_cast<uint32_t>(rows.size()));
          return absl::OkStatus();
        }
        if (!errors.empty() && !request->skip_invalid()) {
          return absl::InvalidArgumentError(DescribeRowErrors(errors, request->filename()));
        }
        store_->UpsertPreassignments(
            std::move(rows), clock_->Now(), op.scope,
            [response, done = call.Later()](absl::StatusOr<ImportCounts> c) {
              if (c.ok()) {
                response->set_inserted(c->inserted);
                response->set_updated(c->updated);
                response->set_unchanged(c->unchanged);
                response->set_placed_devices(c->placed_devices);
                response->set_committed(true);
              }
              done(c.status());
            });
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListDevices(grpc::CallbackServerContext* context,
                                                        const parc::v1::ListDevicesRequest* request,
                                                        parc::v1::ListDevicesResponse* response) {
  return Handle(
      context, "ListDevices", kEveryRole, [&](const Caller& op, UnaryCall&) -> absl::Status {
        DeviceFilter f(op.scope);
        if (!request->uai().empty()) {
          PARC_ASSIGN_OR_RETURN(f.uai, UaiArg(request->uai()));
        }
        if (!request->departement().empty()) {
          PARC_ASSIGN_OR_RETURN(f.departement, DepartementArg(request->departement()));
        }
        if (!parc::v1::DeviceKind_IsValid(request->kind())) {
          return absl::InvalidArgumentError("kind is not a known device kind");
        }
        f.kind = request->kind();
        if (request->stale_seconds() > 0) {
          f.seen_before = clock_->Now() - absl::Seconds(request->stale_seconds());
        }
        f.unassigned = request->unassigned();
        f.limit = request->page_size() == 0 ? 1000u : std::min(request->page_size(), 10000u);
        f.after = request->page_token();
        PARC_ASSIGN_OR_RETURN(auto devices, store_->ListDevices(f));
        for (auto& d : devices) *response->add_devices() = std::move(d);
        if (devices.size() == f.limit) response->set_next_page_token(devices.back().id());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RetireDevice(grpc::CallbackServerContext* context,
                                                         const parc::v1::GetDeviceRequest* request,
                                                         parc::v1::Device* response) {
  return Handle(context, "RetireDevice", kDeviceRoles,
                [&](const Caller& op, UnaryCall& call) -> absl::Status {
                  PARC_RETURN_IF_ERROR(DeviceArg(request->device()));
                  store_->RetireDevice(
                      request->device(), op.scope,
                      [response, done = call.Later()](absl::StatusOr<parc::v1::Device> d) {
                        if (d.ok()) *response = std::move(*d);
                        done(d.status());
                      });
                  return absl::OkStatus();
                });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetDevice(grpc::CallbackServerContext* context,
                                                      const parc::v1::GetDeviceRequest* request,
                                                      parc::v1::GetDeviceResponse* response) {
  return Handle(context, "GetDevice", kEveryRole,
                [&](const Caller& op, UnaryCall&) -> absl::Status {
                  PARC_RETURN_IF_ERROR(DeviceArg(request->device()));
                  PARC_ASSIGN_OR_RETURN(DeviceDetails details,
                                        store_->GetDevice(request->device(), op.scope));
                  *response->mutable_device() = std::move(details.device);
                  for (absl::Time t : details.recent_checkins) {
                    response->add_recent_checkins()->set_seconds(absl::ToUnixSeconds(t));
                  }
                  response->set_days_seen_last_30(
                      DaysSeenInLast30(details.seen_days, details.seen_day, clock_->Now()));
                  if (details.inventory.has_value()) {
                    *response->mutable_inventory() = std::move(*details.inventory);
                    response->mutable_inventory_received_at()->set_seconds(
                        absl::ToUnixSeconds(details.inventory_received_at));
                    response->set_inventory_history(details.inventory_history);
                  }
                  return absl::OkStatus();
                });
}

}  // namespace parc::server
