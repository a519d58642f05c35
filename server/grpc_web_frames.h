#pragma once
// gRPC-Web framing of AgentService calls on the HTTPS port (server/grpc_web.h serves them):
// what comes in from any client, so it needs no store nor service (and is fuzzed alone).

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/grpc_web_codec.h"

namespace parc::server {

// The message of a request body, or INVALID_ARGUMENT (not one whole data frame, trailing
// bytes, a length beyond the body), UNIMPLEMENTED (a compressed frame: no compression was
// negotiated) or RESOURCE_EXHAUSTED (a message over max_message_bytes).
[[nodiscard]] absl::StatusOr<absl::string_view> DecodeGrpcWebRequest(absl::string_view body,
                                                                     size_t max_message_bytes);

using common::GrpcWebFrame;              // one frame (common/grpc_web_codec.h)
using common::PercentEncodeGrpcMessage;  // grpc-message's encoding

// A response body: the message's data frame when status is OK, then the trailer frame.
std::string EncodeGrpcWebResponse(absl::string_view message, const absl::Status& status);

}  // namespace parc::server
