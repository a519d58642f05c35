#include "agent/core/grpc_web_transport.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/grpc_web_codec.h"

namespace parc::agent {

GrpcWebTransport::GrpcWebTransport(std::unique_ptr<HttpClient> http, TransportOptions options)
    : http_(std::move(http)), options_(std::move(options)) {
  base_url_ = std::string(absl::StripSuffix(options_.server, "/"));
}

bool GrpcWebTransport::IsGrpcWebAddress(const std::string& server) {
  return absl::StartsWith(server, "https://") || absl::StartsWith(server, "http://");
}

void GrpcWebTransport::CancelAll() { http_->CancelAll(); }

absl::StatusOr<std::string> GrpcWebTransport::Call(const char* method,
                                                   const std::string& credential,
                                                   const std::string& request,
                                                   absl::Duration timeout) {
  HttpPost post;
  post.url = absl::StrCat(base_url_, "/parc.v1.AgentService/", method);
  post.headers = {{"Content-Type", common::kGrpcWebContentType},
                  {"Accept", common::kGrpcWebContentType},
                  {"X-Grpc-Web", "1"},
                  {"grpc-timeout", absl::StrCat(absl::ToInt64Milliseconds(timeout), "m")}};
  if (!credential.empty()) post.headers.emplace_back("authorization", "Bearer " + credential);
  post.body = common::GrpcWebFrame(0, request);
  post.ca_pem = options_.insecure ? "" : options_.ca_pem;
  post.timeout = timeout;
  auto answer = http_->Post(post);
  if (!answer.ok()) {
    if (absl::IsCancelled(answer.status())) return answer.status();
    return absl::Status(answer.status().code(),
                        absl::StrCat("server ", base_url_, ": ", answer.status().message()));
  }
  auto type = answer->headers.find("content-type");
  const bool grpc_web =
      type != answer->headers.end() && absl::StartsWith(type->second, "application/grpc-web");
  if (!grpc_web) {
    // Trailers-only answers carry the status in the headers.
    if (answer->headers.count("grpc-status") > 0) {
      absl::Status s = common::GrpcWebStatus(answer->headers);
      if (!s.ok()) return s;
    }
    return absl::UnavailableError(absl::StrCat("server ", base_url_, ": HTTP ", answer->status,
                                               " without a gRPC-Web answer (a proxy in the way? "
                                               "the HTTPS port of parc-server?)"));
  }
  auto parsed = common::ParseGrpcWebResponse(answer->body);
  if (!parsed.ok()) return parsed.status();
  std::map<std::string, std::string> fields = parsed->trailers;
  if (fields.count("grpc-status") == 0) {
    for (const char* name : {"grpc-status", "grpc-message", "grpc-retry-pushback-ms"}) {
      auto it = answer->headers.find(name);
      if (it != answer->headers.end()) fields[name] = it->second;
    }
  }
  absl::Status status = common::GrpcWebStatus(fields);
  if (!status.ok()) return status;
  if (!parsed->has_message) return absl::InternalError("gRPC-Web answer OK without a message");
  return std::move(parsed->message);
}

template <typename Response>
absl::StatusOr<Response> GrpcWebTransport::Unary(const char* method, const std::string& credential,
                                                 const google::protobuf::MessageLite& request,
                                                 absl::Duration timeout) {
  auto bytes = Call(method, credential, request.SerializeAsString(), timeout);
  if (!bytes.ok()) return bytes.status();
  Response response;
  if (!response.ParseFromString(*bytes)) {
    return absl::InternalError(absl::StrCat("the server's ", method, " answer does not parse"));
  }
  return response;
}

absl::StatusOr<parc::v1::EnrollResponse> GrpcWebTransport::Enroll(
    const parc::v1::EnrollRequest& request) {
  return Unary<parc::v1::EnrollResponse>("Enroll", "", request, options_.enroll_timeout);
}

absl::StatusOr<parc::v1::CheckEnrollmentResponse> GrpcWebTransport::CheckEnrollment(
    const parc::v1::EnrollRequest& request) {
  return Unary<parc::v1::CheckEnrollmentResponse>("CheckEnrollment", "", request,
                                                  options_.enroll_timeout);
}

absl::StatusOr<parc::v1::CheckInResponse> GrpcWebTransport::CheckIn(
    const std::string& credential, const parc::v1::CheckInRequest& request) {
  return Unary<parc::v1::CheckInResponse>("CheckIn", credential, request, options_.checkin_timeout);
}

absl::Status GrpcWebTransport::ReportInventory(const std::string& credential,
                                               const parc::v1::ReportInventoryRequest& request) {
  return Unary<parc::v1::ReportInventoryResponse>("ReportInventory", credential, request,
                                                  options_.report_timeout)
      .status();
}

absl::Status GrpcWebTransport::ReportDeployment(const std::string& credential,
                                                const parc::v1::DeploymentReport& report) {
  return Unary<parc::v1::ReportDeploymentResponse>("ReportDeployment", credential, report,
                                                   options_.report_timeout)
      .status();
}

}  // namespace parc::agent
