#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/retry.h"

namespace parc::common {

// Reads the pushback of a failed client call into the status.
absl::Status WithServerPushback(absl::Status status, const grpc::ClientContext& context);

// Converts between Abseil and gRPC statuses (same numeric codes, message kept).
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// True for addresses of the loopback interface ("127.0.0.1:8443", "localhost:1", "[::1]:2").
bool IsLoopbackAddress(absl::string_view host_port);

// How a client reaches parc-server.
struct ChannelOptions {
  std::string target;  // host:port
  // PEM of the CA that signed the server certificate. Required unless insecure.
  std::string ca_pem;
  // Plaintext; refused unless target is a loopback address (tests and benchmarks).
  bool insecure = false;
  int max_receive_bytes = 64 << 20;
  int max_send_bytes = 64 << 20;
};

[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const ChannelOptions& options);

// Adds "authorization: Bearer <token>" to a client call.
void SetBearer(grpc::ClientContext* context, absl::string_view token);
void SetDeadline(grpc::ClientContext* context, absl::Duration timeout);

// The bearer token of a server call, or "" when absent or malformed.
std::string BearerToken(const grpc::ServerContextBase& context);
// The token of an HTTP "authorization: Bearer <token>" header value; "" for any other value.
std::string BearerFromHeader(absl::string_view authorization);

// Human-readable status code name ("UNAUTHENTICATED").
std::string StatusCodeName(grpc::StatusCode code);

}  // namespace parc::common
