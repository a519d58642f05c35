#pragma once

#include <memory>
#include <string>

#include "agent/core/platform.h"

namespace parc::agent {

// AgentService over gRPC-Web: each call is one HTTPS POST of a gRPC-Web frame to
// <base_url>/parc.v1.AgentService/<Method> (base_url: the server's HTTPS port,
// "https://parc.example.fr:8444"), through the platform's HttpClient. The answer's trailers
// give the call's status, with the same codes and retry pushback as over gRPC; an answer that
// is not gRPC-Web (a proxy's error page) is UNAVAILABLE naming the HTTP status.
class GrpcWebTransport final : public AgentTransport {
 public:
  GrpcWebTransport(std::unique_ptr<HttpClient> http, TransportOptions options);

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

  // Whether a server address names a gRPC-Web endpoint (an https:// or http:// URL) rather
  // than a gRPC one (HOST:PORT).
  static bool IsGrpcWebAddress(const std::string& server);

 private:
  // One call: the request's bytes in, the response's bytes out.
  absl::StatusOr<std::string> Call(const char* method, const std::string& credential,
                                   const std::string& request, absl::Duration timeout);
  template <typename Response>
  absl::StatusOr<Response> Unary(const char* method, const std::string& credential,
                                 const google::protobuf::MessageLite& request,
                                 absl::Duration timeout);

  std::unique_ptr<HttpClient> http_;
  TransportOptions options_;
  std::string base_url_;
};

}  // namespace parc::agent
