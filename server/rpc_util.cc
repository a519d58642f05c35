#include "server/rpc_util.h"

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

void FinishRpc(grpc::ServerUnaryReactor* reactor, Metrics* metrics, absl::string_view method,
               const absl::Status& status, grpc::CallbackServerContext* context) {
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
  if (context != nullptr && common::IsRetryLater(sent)) {
    context->AddTrailingMetadata(
        common::kRetryPushbackHeader,
        std::to_string(absl::ToInt64Milliseconds(common::RetryAfter(sent))));
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
  grpc::Status g = common::ToGrpcStatus(sent);
  if (metrics != nullptr) metrics->RecordRpc(method, g.error_code());
  reactor->Finish(g);
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, Metrics* metrics,
                                    absl::string_view method, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  FinishRpc(reactor, metrics, method, status, context);
  return reactor;
}

UnaryCall::Done UnaryCall::Later() {
  reactor_ = context_->DefaultReactor();
  finished_ = std::make_shared<std::atomic<bool>>(false);
  return [context = context_, reactor = reactor_, metrics = metrics_, method = method_,
          finished = finished_](const absl::Status& status) {
    if (finished->exchange(true)) return;
    FinishRpc(reactor, metrics, method, status, context);
  };
}

grpc::ServerUnaryReactor* UnaryCall::Finish(const absl::Status& status) {
  if (finished_ == nullptr) return FinishNow(context_, metrics_, method_, status);
  if (!status.ok() && !finished_->exchange(true)) {
    FinishRpc(reactor_, metrics_, method_, status, context_);
  }
  return reactor_;
}

}  // namespace parc::server
