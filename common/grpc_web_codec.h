#pragma once

// gRPC-Web framing (application/grpc-web+proto), shared by the server's gRPC-Web route and the
// agents' gRPC-Web transport. No gRPC library involved: a frame is a flags byte (0x00 data,
// 0x80 trailers, 0x01 compressed), a 4-byte big-endian length and the payload.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parc::common {

inline constexpr unsigned char kGrpcWebTrailerFlag = 0x80;
inline constexpr unsigned char kGrpcWebCompressedFlag = 0x01;
inline constexpr char kGrpcWebContentType[] = "application/grpc-web+proto";
inline constexpr size_t kGrpcWebFrameHeader = 5;

// The header at the start of bytes: false when fewer than 5 bytes are there.
bool ReadGrpcWebFrameHeader(absl::string_view bytes, unsigned char* flags, uint32_t* length);

// One frame: flags, big-endian length, payload.
std::string GrpcWebFrame(unsigned char flags, absl::string_view payload);

// grpc-message's encoding: bytes outside printable ASCII, and '%', as %XX; and back.
std::string PercentEncodeGrpcMessage(absl::string_view message);
std::string PercentDecodeGrpcMessage(absl::string_view message);

// A response body as a client reads it: the message of its data frame (if any) and the
// fields of its trailer frame (names lower-cased).
struct GrpcWebResponse {
  bool has_message = false;
  std::string message;
  std::map<std::string, std::string> trailers;
};
// INTERNAL when the body is not data frames then one trailer frame (truncated, compressed,
// more than one message).
[[nodiscard]] absl::StatusOr<GrpcWebResponse> ParseGrpcWebResponse(absl::string_view body);

// The call's status from grpc-status and grpc-message (trailers or headers); a
// grpc-retry-pushback-ms becomes a RetryLater. UNKNOWN when grpc-status is missing.
absl::Status GrpcWebStatus(const std::map<std::string, std::string>& fields);

}  // namespace parc::common
