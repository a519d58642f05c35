#pragma once

#include <google/protobuf/message_lite.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <atomic>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/metrics.h"

namespace parc::server {

// What a handler's status becomes for the client, whatever the transport (gRPC, gRPC-Web):
// counted in metrics by method and code. Internal errors are logged in full and reach the
// client without their details (file paths, SQL). Failures of the storage
// (common::IsStorageError: disk full, I/O error, database locked) reach it as UNAVAILABLE
// "storage unavailable" with a retry pushback (common::RetryLater), counted in metrics and
// logged at most every 10 s. Refusals of credentials are logged at most every 10 s too.
absl::Status ClientStatus(Metrics* metrics, absl::string_view method, const absl::Status& status);

// Finishes a gRPC call with ClientStatus(status); a RetryLater status sends its pushback
// ("grpc-retry-pushback-ms") when context is given.
void FinishRpc(grpc::ServerUnaryReactor* reactor, Metrics* metrics, absl::string_view method,
               const absl::Status& status, grpc::CallbackServerContext* context = nullptr);

// What a storage failure becomes for the client.
absl::Status StorageUnavailable();

// A reactor already finished with status: for handlers that answer without asynchronous work.
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, Metrics* metrics,
                                    absl::string_view method, const absl::Status& status);

// Finishes a gRPC call with a status ClientStatus already mapped (and its pushback, if any).
void SendGrpcStatus(grpc::ServerUnaryReactor* reactor, grpc::CallbackServerContext* context,
                    const absl::Status& client_status);

// One unary call in the hands of its handler's body (see HandleUnary), whatever transport
// carried it: the transport gives the function that sends the client's status
// (ClientStatus of the body's) and, when OK, the response the body filled.
class UnaryCall {
 public:
  // Finishes the call later with a status (the callback of an asynchronous store write).
  using Done = std::function<void(const absl::Status&)>;
  using Deliver = std::function<void(const absl::Status& client_status)>;

  UnaryCall(Metrics* metrics, absl::string_view method, Deliver deliver);

  // Hands the answer to whoever calls the returned function, once; the body then returns OK.
  // A body that fails after taking it still finishes the call at once with its error, and the
  // late answer is dropped.
  Done Later();

  // Finishes the call with the body's status unless it is deferred.
  void Finish(const absl::Status& status);

 private:
  struct Shared {
    Metrics* metrics;
    std::string method;
    Deliver deliver;
    std::atomic<bool> finished{false};
    void Send(const absl::Status& status);
  };
  std::shared_ptr<Shared> shared_;
  bool deferred_ = false;
};

// Runs a handler body, absl::Status(UnaryCall&), and finishes the gRPC call with what it
// returns, or leaves it to the callback the body took with call.Later(). Every unary handler
// then reads as validate → authorize → call the store → return the status.
template <typename Body>
grpc::ServerUnaryReactor* HandleUnary(grpc::CallbackServerContext* context, Metrics* metrics,
                                      absl::string_view method, Body&& body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  UnaryCall call(metrics, method, [context, reactor](const absl::Status& client_status) {
    SendGrpcStatus(reactor, context, client_status);
  });
  call.Finish(body(call));
  return reactor;
}

// HandleUnary for a method served raw (request and response as bytes): the body fills a
// Response, serialized into raw_response when the call ends well.
template <typename Response, typename Body>
grpc::ServerUnaryReactor* HandleRawUnary(grpc::CallbackServerContext* context, Metrics* metrics,
                                         absl::string_view method, grpc::ByteBuffer* raw_response,
                                         Body&& body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto response = std::make_shared<Response>();
  UnaryCall call(metrics, method,
                 [context, reactor, response, raw_response](const absl::Status& client_status) {
                   if (client_status.ok()) {
                     bool own_buffer = false;
                     grpc::Status s = grpc::SerializationTraits<Response>::Serialize(
                         *response, raw_response, &own_buffer);
                     if (!s.ok()) {
                       reactor->Finish(s);
                       return;
                     }
                   }
                   SendGrpcStatus(reactor, context, client_status);
                 });
  call.Finish(body(call, response.get()));
  return reactor;
}

}  // namespace parc::server
