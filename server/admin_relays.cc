// AdminService: establishment relays.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "server/admin_service.h"
#include "server/relays.h"

namespace parc::server {
namespace {

constexpr std::initializer_list<absl::string_view> kRelayRoles = {kRoleAdmin, kRoleTechnician};

// The UAIs of a request, sorted, without repeats.
absl::StatusOr<std::vector<std::string>> RequestUais(
    const google::protobuf::RepeatedPtrField<std::string>& uais) {
  if (uais.size() > 1000) return absl::InvalidArgumentError("uais: more than 1000");
  std::vector<std::string> out(uais.begin(), uais.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::AddRelay(grpc::CallbackServerContext* context,
                                                     const parc::v1::AddRelayRequest* request,
                                                     parc::v1::AddRelayResponse* response) {
  return Handle(
      context, "AddRelay", kRelayRoles, [&](const Caller& op, UnaryCall& call) -> absl::Status {
        PARC_ASSIGN_OR_RETURN(std::string url, NormalizeRelayUrl(request->url()));
        PARC_ASSIGN_OR_RETURN(std::vector<std::string> uais, RequestUais(request->uais()));
        if (uais.empty()) {
          return absl::InvalidArgumentError("uais: name the establishments it serves");
        }
        // Only establishments the operator may act on.
        for (const auto& uai : uais) {
          PARC_RETURN_IF_ERROR(VisibleEstablishment(op, uai).status());
        }
        // The relay's own token, used only if the relay is new (or new_token): it lets
        // parc-relay-sync list what to prefetch and report the relay's health.
        PARC_ASSIGN_OR_RETURN(common::Credential credential, common::NewCredential("rl", 8));
        RelayCredential stored{credential.id, common::Sha256Hex(credential.secret)};
        const absl::Time now = clock_->Now();
        store_->AddRelay(std::move(url), std::move(uais), op.scope, std::move(stored),
                         request->new_token(), now,
                         [response, now, token = common::FormatCredential(credential),
                          done = call.Later()](absl::StatusOr<RelayRecord> r) {
                           if (r.ok()) {
                             *response->mutable_relay() = RelayProto(*r, now);
                             if (r->credential_stored) response->set_token(token);
                           }
                           done(r.status());
                         });
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListRelays(grpc::CallbackServerContext* context,
                                                       const parc::v1::ListRelaysRequest* request,
                                                       parc::v1::ListRelaysResponse* response) {
  return Handle(
      context, "ListRelays", kEveryRole, [&](const Caller& op, UnaryCall&) -> absl::Status {
        PARC_ASSIGN_OR_RETURN(
            std::vector<RelayRecord> relays,
            store_->ListRelays(request->uai(), op.scope, clock_->Now() - kRelayFaultWindow));
        for (const auto& r : relays) *response->add_relays() = RelayProto(r, clock_->Now());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RemoveRelay(grpc::CallbackServerContext* context,
                                                        const parc::v1::RemoveRelayRequest* request,
                                                        parc::v1::Relay* response) {
  return Handle(
      context, "RemoveRelay", kRelayRoles, [&](const Caller& op, UnaryCall& call) -> absl::Status {
        PARC_ASSIGN_OR_RETURN(std::string url, NormalizeRelayUrl(request->url()));
        PARC_ASSIGN_OR_RETURN(std::vector<std::string> uais, RequestUais(request->uais()));
        const absl::Time now = clock_->Now();
        store_->RemoveRelay(std::move(url), std::move(uais), op.scope, now,
                            [response, now, done = call.Later()](absl::StatusOr<RelayRecord> r) {
                              if (r.ok()) *response = RelayProto(*r, now);
                              done(r.status());
                            });
        return absl::OkStatus();
      });
}

}  // namespace parc::server
