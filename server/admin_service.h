#pragma once

#include <initializer_list>

#include "common/bundle_trust.h"
#include "common/clock.h"
#include "parc/v1/admin.grpc.pb.h"
#include "server/artifact_store.h"
#include "server/metrics.h"
#include "server/operator_auth.h"
#include "server/rollout_actions.h"
#include "server/rpc_util.h"
#include "server/scope.h"
#include "server/store.h"

namespace parc::server {

// What the bundle and rollout calls need beyond the store.
struct BundleConfig {
  ArtifactStore* artifacts = nullptr;
  // Publisher keys the server checks manifests against, and how many must have signed.
  std::vector<common::PublicKey> publisher_keys;
  int signature_threshold = 1;
  // Who sees and changes rollouts, and asks for their evaluation after a change (shared with
  // the dashboard). Required.
  RolloutActions* rollouts = nullptr;
};

// AdminService on the gRPC callback API. Every call is authenticated with an operator token
// and checked against the roles allowed for it.
class AdminServiceImpl final : public parc::v1::AdminService::CallbackService {
 public:
  AdminServiceImpl(Store* store, const common::Clock* clock, Metrics* metrics,
                   BundleConfig bundles);

  grpc::ServerUnaryReactor* ImportEstablishments(
      grpc::CallbackServerContext* context, const parc::v1::ImportCsvRequest* request,
      parc::v1::ImportEstablishmentsResponse* response) override;
  grpc::ServerUnaryReactor* ListEstablishments(
      grpc::CallbackServerContext* context, const parc::v1::ListEstablishmentsRequest* request,
      parc::v1::ListEstablishmentsResponse* response) override;
  grpc::ServerUnaryReactor* CreateEnrollmentToken(
      grpc::CallbackServerContext* context, const parc::v1::CreateEnrollmentTokenRequest* request,
      parc::v1::CreateEnrollmentTokenResponse* response) override;
  grpc::ServerUnaryReactor* ListEnrollmentTokens(
      grpc::CallbackServerContext* context, const parc::v1::ListEnrollmentTokensRequest* request,
      parc::v1::ListEnrollmentTokensResponse* response) override;
  grpc::ServerUnaryReactor* RevokeEnrollmentToken(
      grpc::CallbackServerContext* context, const parc::v1::RevokeEnrollmentTokenRequest* request,
      parc::v1::EnrollmentToken* response) override;
  grpc::ServerUnaryReactor* PreassignDevices(grpc::CallbackServerContext* context,
                                             const parc::v1::ImportCsvRequest* request,
                                             parc::v1::PreassignDevicesResponse* response) override;
  grpc::ServerUnaryReactor* ListDevices(grpc::CallbackServerContext* context,
                                        const parc::v1::ListDevicesRequest* request,
                                        parc::v1::ListDevicesResponse* response) override;
  grpc::ServerUnaryReactor* RetireDevice(grpc::CallbackServerContext* context,
                                         const parc::v1::GetDeviceRequest* request,
                                         parc::v1::Device* response) override;
  grpc::ServerUnaryReactor* GetDevice(grpc::CallbackServerContext* context,
                                      const parc::v1::GetDeviceRequest* request,
                                      parc::v1::GetDeviceResponse* response) override;

  grpc::ServerUnaryReactor* MissingArtifacts(grpc::CallbackServerContext* context,
                                             const parc::v1::MissingArtifactsRequest* request,
                                             parc::v1::MissingArtifactsResponse* response) override;
  grpc::ServerReadReactor<parc::v1::ArtifactChunk>* UploadArtifact(
      grpc::CallbackServerContext* context, parc::v1::UploadArtifactResponse* response) override;
  grpc::ServerUnaryReactor* PublishBundle(grpc::CallbackServerContext* context,
                                          const parc::v1::PublishBundleRequest* request,
                                          parc::v1::BundleSummary* response) override;
  grpc::ServerUnaryReactor* ListBundles(grpc::CallbackServerContext* context,
                                        const parc::v1::ListBundlesRequest* request,
                                        parc::v1::ListBundlesResponse* response) override;
  grpc::ServerUnaryReactor* CreateRollout(grpc::CallbackServerContext* context,
                                          const parc::v1::CreateRolloutRequest* request,
                                          parc::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* UpdateRollout(grpc::CallbackServerContext* context,
                                          const parc::v1::UpdateRolloutRequest* request,
                                          parc::v1::Rollout* response) override;
  grpc::ServerUnaryReactor* GetRolloutStatus(grpc::CallbackServerContext* context,
                                             const parc::v1::GetRolloutStatusRequest* request,
                                             parc::v1::RolloutStatus* response) override;
  grpc::ServerUnaryReactor* ListRollouts(grpc::CallbackServerContext* context,
                                         const parc::v1::ListRolloutsRequest* request,
                                         parc::v1::ListRolloutsResponse* response) override;

  grpc::ServerUnaryReactor* CreateOperator(grpc::CallbackServerContext* context,
                                           const parc::v1::CreateOperatorRequest* request,
                                           parc::v1::CreateOperatorResponse* response) override;
  grpc::ServerUnaryReactor* ListOperators(grpc::CallbackServerContext* context,
                                          const parc::v1::ListOperatorsRequest* request,
                                          parc::v1::ListOperatorsResponse* response) override;
  grpc::ServerUnaryReactor* RevokeOperator(grpc::CallbackServerContext* context,
                                           const parc::v1::RevokeOperatorRequest* request,
                                           parc::v1::Operator* response) override;
  grpc::ServerUnaryReactor* ListAudit(grpc::CallbackServerContext* context,
                                      const parc::v1::ListAuditRequest* request,
                                      parc::v1::ListAuditResponse* response) override;
  grpc::ServerUnaryReactor* GetDeploymentReport(
      grpc::CallbackServerContext* context, const parc::v1::DeploymentReportRequest* request,
      parc::v1::DeploymentReportResponse* response) override;
  grpc::ServerUnaryReactor* GetInventoryReport(
      grpc::CallbackServerContext* context, const parc::v1::InventoryReportRequest* request,
      parc::v1::InventoryReportResponse* response) override;

  grpc::ServerUnaryReactor* GetHealthReport(grpc::CallbackServerContext* context,
                                            const parc::v1::HealthReportRequest* request,
                                            parc::v1::HealthReportResponse* response) override;
  grpc::ServerUnaryReactor* ListOsVersions(grpc::CallbackServerContext* context,
                                           const parc::v1::ListOsVersionsRequest* request,
                                           parc::v1::ListOsVersionsResponse* response) override;
  grpc::ServerUnaryReactor* SetOsSupport(grpc::CallbackServerContext* context,
                                         const parc::v1::SetOsSupportRequest* request,
                                         parc::v1::OsVersion* response) override;

  grpc::ServerUnaryReactor* AddRelay(grpc::CallbackServerContext* context,
                                     const parc::v1::AddRelayRequest* request,
                                     parc::v1::AddRelayResponse* response) override;
  grpc::ServerUnaryReactor* ListRelays(grpc::CallbackServerContext* context,
                                       const parc::v1::ListRelaysRequest* request,
                                       parc::v1::ListRelaysResponse* response) override;
  grpc::ServerUnaryReactor* RemoveRelay(grpc::CallbackServerContext* context,
                                        const parc::v1::RemoveRelayRequest* request,
                                        parc::v1::Relay* response) override;

 private:
  // Runs a handler body, absl::Status(const Caller&, UnaryCall&), for an operator holding one
  // of roles (UNAUTHENTICATED / PERMISSION_DENIED otherwise), and finishes the call with
  // what it returns (see HandleUnary).
  template <typename Body>
  grpc::ServerUnaryReactor* Handle(grpc::CallbackServerContext* context, absl::string_view method,
                                   std::initializer_list<absl::string_view> roles, Body&& body) {
    return HandleUnary(context, metrics_, method, [&](UnaryCall& call) -> absl::Status {
      absl::StatusOr<Caller> caller = Authorize(*context, roles);
      if (!caller.ok()) return caller.status();
      return body(*caller, call);
    });
  }

  // The operator behind the call's token: UNAUTHENTICATED without a valid one,
  // PERMISSION_DENIED when its role is not among roles.
  absl::StatusOr<Caller> Authorize(const grpc::CallbackServerContext& context,
                                   std::initializer_list<absl::string_view> roles);
  // The operators whose scope lies within the caller's (all for a region-wide caller).
  absl::StatusOr<std::vector<OperatorRecord>> VisibleOperators(const Caller& caller);
  // NOT_FOUND unless the establishment exists and is in the caller's scope.
  absl::StatusOr<parc::v1::Establishment> VisibleEstablishment(const Caller& caller,
                                                               const std::string& uai);

  Store* store_;
  const common::Clock* clock_;
  Metrics* metrics_;
  BundleConfig bundles_;
};

// Proto form of a rollout record.
parc::v1::Rollout RolloutProto(const RolloutRecord& r);

}  // namespace parc::server
