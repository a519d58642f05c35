#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "common/clock.h"
#include "parc/v1/agent.grpc.pb.h"
#include "server/metrics.h"
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

// AgentService on the gRPC callback API. Handlers authenticate, validate, read from the
// store, and finish when the store has made their write durable; they never block on disk
// writes.
class AgentServiceImpl final : public parc::v1::AgentService::CallbackService {
 public:
  AgentServiceImpl(Store* store, const common::Clock* clock, Metrics* metrics,
                   AgentServiceOptions options);

  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const parc::v1::EnrollRequest* request,
                                   parc::v1::EnrollResponse* response) override;
  grpc::ServerUnaryReactor* CheckEnrollment(grpc::CallbackServerContext* context,
                                            const parc::v1::EnrollRequest* request,
                                            parc::v1::CheckEnrollmentResponse* response) override;
  grpc::ServerUnaryReactor* CheckIn(grpc::CallbackServerContext* context,
                                    const parc::v1::CheckInRequest* request,
                                    parc::v1::CheckInResponse* response) override;
  grpc::ServerUnaryReactor* ReportInventory(grpc::CallbackServerContext* context,
                                            const parc::v1::ReportInventoryRequest* request,
                                            parc::v1::ReportInventoryResponse* response) override;
  grpc::ServerUnaryReactor* ReportDeployment(grpc::CallbackServerContext* context,
                                             const parc::v1::DeploymentReport* request,
                                             parc::v1::ReportDeploymentResponse* response) override;

 private:
  // The device a call's credential belongs to; UNAUTHENTICATED otherwise.
  absl::StatusOr<DeviceAuth> Authenticate(const grpc::CallbackServerContext& context);
  uint32_t NextCheckInSeconds();

  Store* store_;
  const common::Clock* clock_;
  Metrics* metrics_;
  AgentServiceOptions options_;
};

}  // namespace parc::server
