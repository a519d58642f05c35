#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/metrics.h"

namespace parc::server {

// Finishes a unary call with status, counting it in metrics. Internal errors are logged in
// full and reach the client without their details (file paths, SQL). Failures of the storage
// (common::IsStorageError: disk full, I/O error, database locked) reach it as UNAVAILABLE
// "storage unavailable" with a retry pushback, counted in metrics and logged at most every
// 10 s. A RetryLater status sends its pushback ("grpc-retry-pushback-ms") when context is
// given. Refusals of credentials are logged at most every 10 s too.
void FinishRpc(grpc::ServerUnaryReactor* reactor, Metrics* metrics, absl::string_view method,
               const absl::Status& status, grpc::CallbackServerContext* context = nullptr);

// What a storage failure becomes for the client.
absl::Status StorageUnavailable();

// A reactor already finished with status: for handlers that answer without asynchronous work.
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, Metrics* metrics,
                                    absl::string_view method, const absl::Status& status);

}  // namespace parc::server
