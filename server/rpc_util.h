#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>

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

// One unary call in the hands of its handler's body (see HandleUnary).
class UnaryCall {
 public:
  // Finishes the call later with a status (the callback of an asynchronous store write).
  using Done = std::function<void(const absl::Status&)>;

  UnaryCall(grpc::CallbackServerContext* context, Metrics* metrics, absl::string_view method)
      : context_(context), metrics_(metrics), method_(method) {}

  // Hands the answer to whoever calls the returned function, once; the body then returns OK.
  // A body that fails after taking it still finishes the call at once with its error, and the
  // late answer is dropped.
  Done Later();

  // Used by HandleUnary: finishes the call with the body's status unless it is deferred.
  grpc::ServerUnaryReactor* Finish(const absl::Status& status);

 private:
  grpc::CallbackServerContext* context_;
  Metrics* metrics_;
  std::string method_;
  grpc::ServerUnaryReactor* reactor_ = nullptr;
  std::shared_ptr<std::atomic<bool>> finished_;
};

// Runs a handler body, absl::Status(UnaryCall&), and finishes the call with what it returns
// (FinishRpc's mapping), or leaves it to the callback the body took with call.Later(). Every
// unary handler then reads as validate → authorize → call the store → return the status.
template <typename Body>
grpc::ServerUnaryReactor* HandleUnary(grpc::CallbackServerContext* context, Metrics* metrics,
                                      absl::string_view method, Body&& body) {
  UnaryCall call(context, metrics, method);
  absl::Status status = body(call);
  return call.Finish(status);
}

}  // namespace parc::server
