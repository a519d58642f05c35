#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "common/clock.h"
#include "parc/v1/agent.grpc.pb.h"
#include "server/inventory_request.h"
#include "server/metrics.h"
#include "server/rpc_util.h"
#include "server/store.h"

namespace parc::server {

struct AgentServiceOptions {
  // Mean time between check-ins, spread by ±jitter (fraction).
  absl::Duration checkin_interval = absl::Hours(1);
  double checkin_jitter = 0.2;
  // An inventory larger than this is refused with RESOURCE_EXHAUSTED.
  size_t max_inventory_bytes = 4u << 20;
  int max_packages = 20000;
  // Where agents fetch artifacts: <artifact_base_url>/<sha256>.
  std::string artifact_base_url;
  // Check-ins are answered before their write commits (write-behind, see Store::
  // Durability::kBehind); false: each check-in waits for its write to be durable.
  bool checkin_write_behind = true;
  // Called after a deployment report was stored, to evaluate its rollout (may be empty).
  std::function<void(const std::string& rollout_id)> deployment_reported;
};

// Who made an agent call, as its transport carried it.
struct AgentCaller {
  // The device credential, from "authorization: Bearer <credential>" ("" when absent).
  std::string bearer;
};

// AgentService's handlers, whatever transport carried the call: gRPC (AgentServiceImpl) or
// gRPC-Web (grpc_web.h), so that both get the same authentication, validation, limits,
// metrics and store writes. Each validates, authenticates, reads from the store, and finishes
// the call (UnaryCall) when the store has made its write durable; none blocks on disk writes.
// The response must live until the call is finished.
class AgentCalls {
 public:
  AgentCalls(Store* store, const common::Clock* clock, Metrics* metrics,
             AgentServiceOptions options);

  absl::Status Enroll(const AgentCaller& caller, const parc::v1::EnrollRequest& request,
                      parc::v1::EnrollResponse* response, UnaryCall& call);
  absl::Status CheckEnrollment(const AgentCaller& caller, const parc::v1::EnrollRequest& request,
                               parc::v1::CheckEnrollmentResponse* response, UnaryCall& call);
  absl::Status CheckIn(const AgentCaller& caller, const parc::v1::CheckInRequest& request,
                       parc::v1::CheckInResponse* response, UnaryCall& call);
  // Takes the request's hardware (moved into the store's input, not copied).
  absl::Status ReportInventory(const AgentCaller& caller,
                               InventoryRequest& request,
                               parc::v1::ReportInventoryResponse* response, UnaryCall& call);
  absl::Status ReportDeployment(const AgentCaller& caller,
                                const parc::v1::DeploymentReport& request,
                                parc::v1::ReportDeploymentResponse* response, UnaryCall& call);

 private:
  // The device a call's credential belongs to; UNAUTHENTICATED otherwise.
  absl::StatusOr<DeviceAuth> Authenticate(const AgentCaller& caller);
  uint32_t NextCheckInSeconds();

  Store* store_;
  const common::Clock* clock_;
  Metrics* metrics_;
  AgentServiceOptions options_;
};

// AgentService on the gRPC callback API: each handler hands its call to AgentCalls.
// ReportInventory is served raw and read as an InventoryRequest (its software list read out
// and parsed only when the server does not hold it); the other methods are typed.
class AgentServiceImpl final : public parc::v1::AgentService::WithRawCallbackMethod_ReportInventory<
                                   parc::v1::AgentService::CallbackService> {
 public:
  AgentServiceImpl(Store* store, const common::Clock* clock, Metrics* metrics,
                   AgentServiceOptions options);

  // The handlers, for the other transports.
  AgentCalls* calls() { return &calls_; }

  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const parc::v1::EnrollRequest* request,
                                   parc::v1::EnrollResponse* response) override;
  grpc::ServerUnaryReactor* CheckEnrollment(grpc::CallbackServerContext* context,
                                            const parc::v1::EnrollRequest* request,
                                            parc::v1::CheckEnrollmentResponse* response) override;
  grpc::ServerUnaryReactor* CheckIn(grpc::CallbackServerContext* context,
                                    const parc::v1::CheckInRequest* request,
                                    parc::v1::CheckInResponse* response) override;
  using WithRawCallbackMethod_ReportInventory::ReportInventory;
  grpc::ServerUnaryReactor* ReportInventory(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ReportDeployment(grpc::CallbackServerContext* context,
                                             const parc::v1::DeploymentReport* request,
                                             parc::v1::ReportDeploymentResponse* response) override;

 private:
  Metrics* metrics_;
  AgentCalls calls_;
};

}  // namespace parc::server
