#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parc/v1/agent.grpc.pb.h"

namespace parc::agent {

// The agent's side of AgentService: one channel, a deadline on every call, the device
// credential in metadata. Thread-safe.
class AgentClient {
 public:
  struct Options {
    std::string server;
    std::string ca_pem;
    bool insecure = false;
    absl::Duration enroll_timeout = absl::Seconds(30);
    absl::Duration checkin_timeout = absl::Seconds(20);
    absl::Duration report_timeout = absl::Seconds(60);
  };

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<AgentClient>> Connect(const Options& options);

  [[nodiscard]] absl::StatusOr<parc::v1::EnrollResponse> Enroll(
      const parc::v1::EnrollRequest& request);
  [[nodiscard]] absl::StatusOr<parc::v1::CheckEnrollmentResponse> CheckEnrollment(
      const parc::v1::EnrollRequest& request);
  // credential: "<device_id>.<secret>".
  [[nodiscard]] absl::StatusOr<parc::v1::CheckInResponse> CheckIn(
      const std::string& credential, const parc::v1::CheckInRequest& request);
  [[nodiscard]] absl::Status ReportInventory(const std::string& credential,
                                             const parc::v1::ReportInventoryRequest& request);

  [[nodiscard]] absl::Status ReportDeployment(const std::string& credential,
                                              const parc::v1::DeploymentReport& report);

  // Cancels the calls in flight and makes later calls fail with CANCELLED (shutdown).
  void CancelAll();

 private:
  explicit AgentClient(Options options) : options_(std::move(options)) {}
  // Registers a call's context for CancelAll; false once cancelled.
  bool Track(grpc::ClientContext* ctx);
  void Untrack(grpc::ClientContext* ctx);

  Options options_;
  std::mutex mu_;
  std::set<grpc::ClientContext*> active_;
  bool cancelled_ = false;
  std::unique_ptr<parc::v1::AgentService::Stub> stub_;
};

}  // namespace parc::agent
