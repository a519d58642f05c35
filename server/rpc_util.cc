#include "server/rpc_util.h"

#include "common/grpc_util.h"
#include "common/logging.h"

namespace parc::server {

void FinishRpc(grpc::ServerUnaryReactor* reactor, Metrics* metrics, absl::string_view method,
               const absl::Status& status) {
  absl::Status sent = status;
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnknown:
      spdlog::error("{}: {}", std::string(method), status.ToString());
      sent = absl::Status(status.code(), "internal server error (details in the server log)");
      break;
    case absl::StatusCode::kUnavailable:
      spdlog::warn("{}: {}", std::string(method), status.ToString());
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
  FinishRpc(reactor, metrics, method, status);
  return reactor;
}

}  // namespace parc::server
