#include "agent/linux/grpc_transport.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/status_macros.h"

namespace parc::agent {
namespace {

// Adds the server address to transport errors so a technician sees where it failed.
absl::Status Annotate(const grpc::Status& status, const std::string& server) {
  absl::Status s = common::FromGrpcStatus(status);
  if (s.code() == absl::StatusCode::kUnavailable ||
      s.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::Status(s.code(), absl::StrCat("server ", server, ": ", s.message()));
  }
  return s;
}

// Keeps a call registered for cancellation while it runs.
class CallScope {
 public:
  CallScope(std::function<void()> leave) : leave_(std::move(leave)) {}
  ~CallScope() { leave_(); }

 private:
  std::function<void()> leave_;
};

absl::Status Cancelled() { return absl::CancelledError("agent is stopping"); }

}  // namespace

bool GrpcTransport::Track(grpc::ClientContext* ctx) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return false;
  active_.insert(ctx);
  return true;
}

void GrpcTransport::Untrack(grpc::ClientContext* ctx) {
  std::lock_guard<std::mutex> lock(mu_);
  active_.erase(ctx);
}

void GrpcTransport::CancelAll() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  for (grpc::ClientContext* ctx : active_) ctx->TryCancel();
}

absl::StatusOr<std::unique_ptr<AgentTransport>> GrpcTransportFactory::Connect(
    const TransportOptions& options) const {
  PARC_ASSIGN_OR_RETURN(auto transport, GrpcTransport::Connect(options));
  return std::unique_ptr<AgentTransport>(std::move(transport));
}

absl::StatusOr<std::unique_ptr<GrpcTransport>> GrpcTransport::Connect(
    const TransportOptions& options) {
  common::ChannelOptions channel;
  channel.target = options.server;
  channel.ca_pem = options.ca_pem;
  channel.insecure = options.insecure;
  channel.max_send_bytes = 8 << 20;
  channel.max_receive_bytes = 4 << 20;
  PARC_ASSIGN_OR_RETURN(auto ch, common::MakeChannel(channel));
  std::unique_ptr<GrpcTransport> client(new GrpcTransport(options));
  client->stub_ = parc::v1::AgentService::NewStub(ch);
  return client;
}

absl::StatusOr<parc::v1::EnrollResponse> GrpcTransport::Enroll(
    const parc::v1::EnrollRequest& request) {
  grpc::ClientContext ctx;
  if (!Track(&ctx)) return Cancelled();
  CallScope scope([&] { Untrack(&ctx); });
  common::SetDeadline(&ctx, options_.enroll_timeout);
  parc::v1::EnrollResponse response;
  grpc::Status s = stub_->Enroll(&ctx, request, &response);
  if (!s.ok()) return common::WithServerPushback(Annotate(s, options_.server), ctx);
  return response;
}

absl::StatusOr<parc::v1::CheckEnrollmentResponse> GrpcTransport::CheckEnrollment(
    const parc::v1::EnrollRequest& request) {
  grpc::ClientContext ctx;
  if (!Track(&ctx)) return Cancelled();
  CallScope scope([&] { Untrack(&ctx); });
  common::SetDeadline(&ctx, options_.enroll_timeout);
  parc::v1::CheckEnrollmentResponse response;
  grpc::Status s = stub_->CheckEnrollment(&ctx, request, &response);
  if (!s.ok()) return common::WithServerPushback(Annotate(s, options_.server), ctx);
  return response;
}

absl::StatusOr<parc::v1::CheckInResponse> GrpcTransport::CheckIn(
    const std::string& credential, const parc::v1::CheckInRequest& request) {
  grpc::ClientContext ctx;
  if (!Track(&ctx)) return Cancelled();
  CallScope scope([&] { Untrack(&ctx); });
  common::SetDeadline(&ctx, options_.checkin_timeout);
  common::SetBearer(&ctx, credential);
  parc::v1::CheckInResponse response;
  grpc::Status s = stub_->CheckIn(&ctx, request, &response);
  if (!s.ok()) return common::WithServerPushback(Annotate(s, options_.server), ctx);
  return response;
}

absl::Status GrpcTransport::ReportInventory(const std::string& credential,
                                            const parc::v1::ReportInventoryRequest& request) {
  grpc::ClientContext ctx;
  if (!Track(&ctx)) return Cancelled();
  CallScope scope([&] { Untrack(&ctx); });
  common::SetDeadline(&ctx, options_.report_timeout);
  common::SetBearer(&ctx, credential);
  parc::v1::ReportInventoryResponse response;
  grpc::Status s = stub_->ReportInventory(&ctx, request, &response);
  if (!s.ok()) return common::WithServerPushback(Annotate(s, options_.server), ctx);
  return absl::OkStatus();
}

absl::Status GrpcTransport::ReportDeployment(const std::string& credential,
                                             const parc::v1::DeploymentReport& report) {
  grpc::ClientContext ctx;
  if (!Track(&ctx)) return Cancelled();
  CallScope scope([&] { Untrack(&ctx); });
  common::SetDeadline(&ctx, options_.report_timeout);
  common::SetBearer(&ctx, credential);
  parc::v1::ReportDeploymentResponse response;
  grpc::Status s = stub_->ReportDeployment(&ctx, report, &response);
  if (!s.ok()) return common::WithServerPushback(Annotate(s, options_.server), ctx);
  return absl::OkStatus();
}

}  // namespace parc::agent
