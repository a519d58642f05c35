#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "agent/core/platform.h"
#include "parc/v1/agent.grpc.pb.h"

namespace parc::agent {

// AgentService over gRPC (HTTP/2, TLS against the pinned CA): one channel, a deadline on every
// call, the device credential as a bearer token. Thread-safe.
class GrpcTransport final : public AgentTransport {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<GrpcTransport>> Connect(
      const TransportOptions& options);

  absl::StatusOr<parc::v1::EnrollResponse> Enroll(const parc::v1::EnrollRequest& request) override;
  absl::StatusOr<parc::v1::CheckEnrollmentResponse> CheckEnrollment(
      const parc::v1::EnrollRequest& request) override;
  absl::StatusOr<parc::v1::CheckInResponse> CheckIn(
      const std::string& credential, const parc::v1::CheckInRequest& request) override;
  absl::Status ReportInventory(const std::string& credential,
                               const parc::v1::ReportInventoryRequest& request) override;
  absl::Status ReportDeployment(const std::string& credential,
                                const parc::v1::DeploymentReport& report) override;
  void CancelAll() override;

 private:
  explicit GrpcTransport(TransportOptions options) : options_(std::move(options)) {}
  // Registers a call's context for CancelAll; false once cancelled.
  bool Track(grpc::ClientContext* ctx);
  void Untrack(grpc::ClientContext* ctx);

  TransportOptions options_;
  std::mutex mu_;
  std::set<grpc::ClientContext*> active_;
  bool cancelled_ = false;
  std::unique_ptr<parc::v1::AgentService::Stub> stub_;
};

class GrpcTransportFactory final : public TransportFactory {
 public:
  absl::StatusOr<std::unique_ptr<AgentTransport>> Connect(
      const TransportOptions& options) const override;
};

}  // namespace parc::agent
