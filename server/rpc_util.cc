#include "server/rpc_util.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/sampled_log.h"
#include "common/sqlite.h"

namespace parc::server {

namespace {

common::SampledLog& StorageLog() {
  static common::SampledLog log(std::chrono::seconds(10));
  return log;
}

common::SampledLog& RefusalLog() {
  static common::SampledLog log(std::chrono::seconds(10));
  return log;
}

}  // namespace

absl::Status StorageUnavailable() {
  return common::RetryLater(
      absl::UnavailableError(
          "storage unavailable: the server could not record this now; retry later"),
      absl::Seconds(30));
}

absl::Status ClientStatus(Metrics* metrics, absl::string_view method, const absl::Status& status) {
  absl::Status sent = status;
  if (common::IsStorageError(status)) {
    uint64_t suppressed = 0;
    if (StorageLog().Take(&suppressed)) {
      spdlog::error("{}: storage failure: {} ({} more storage failures not logged)",
                    std::string(method), status.ToString(), suppressed);
    }
    if (metrics != nullptr) metrics->RecordStorageFailure();
    sent = StorageUnavailable();
  } else if (status.code() == absl::StatusCode::kUnauthenticated) {
    uint64_t suppressed = 0;
    if (RefusalLog().Take(&suppressed)) {
      spdlog::info("{}: refused: {} ({} more refusals not logged)", std::string(method),
                   status.message(), suppressed);
    }
  }
  switch (sent.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnknown:
      spdlog::error("{}: {}", std::string(method), status.ToString());
      sent = absl::Status(status.code(), "internal server error (details in the server log)");
      break;
    default:
      break;
  }
  if (metrics != nullptr) {
    metrics->RecordRpc(method, static_cast<grpc::StatusCode>(static_cast<int>(sent.code())));
  }
  return sent;
}

void SendGrpcStatus(grpc::ServerUnaryReactor* reactor, grpc::CallbackServerContext* context,
                    const absl::Status& client_status) {
  if (context != nullptr && common::IsRetryLater(client_status)) {
    context->AddTrailingMetadata(
        common::kRetryPushbackHeader,
        std::to_string(absl::ToInt64Milliseconds(common::RetryAfter(client_status))));
  }
  reactor->Finish(common::ToGrpcStatus(client_status));
}

void FinishRpc(grpc::ServerUnaryReactor* reactor, Metrics* metrics, absl::string_view method,
               const absl::Status& status, grpc::CallbackServerContext* context) {
  SendGrpcStatus(reactor, context, ClientStatus(metrics, method, status));
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, Metrics* metrics,
                                    absl::string_view method, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  FinishRpc(reactor, metrics, method, status, context);
  return reactor;
}

UnaryCall::UnaryCall(Metrics* metrics, absl::string_view method, Deliver deliver)
    : shared_(std::make_shared<Shared>()) {
  shared_->metrics = metrics;
  shared_->method = std::string(method);
  shared_->deliver = std::move(deliver);
}

void UnaryCall::Shared::Send(const absl::Status& status) {
  if (finished.exchange(true)) return;
  deliver(ClientStatus(metrics, method, status));
}

UnaryCall::Done UnaryCall::Later() {
  deferred_ = true;
  return [shared = shared_](const absl::Status& status) { shared->Send(status); };
}

void UnaryCall::Finish(const absl::Status& status) {
  if (!deferred_ || !status.ok()) shared_->Send(status);
}

}  // namespace parc::server
