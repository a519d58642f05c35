#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/metrics.h"

namespace parc::server {

// Finishes a unary call with status, counting it in metrics. Internal errors are logged in
// full and reach the client without their details (file paths, SQL).
void FinishRpc(grpc::ServerUnaryReactor* reactor, Metrics* metrics, absl::string_view method,
               const absl::Status& status);

// A reactor already finished with status: for handlers that answer without asynchronous work.
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, Metrics* metrics,
                                    absl::string_view method, const absl::Status& status);

}  // namespace parc::server
