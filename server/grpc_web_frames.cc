#include "server/grpc_web_frames.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/retry.h"

namespace parc::server {
namespace {

using common::kGrpcWebCompressedFlag;
using common::kGrpcWebFrameHeader;
using common::kGrpcWebTrailerFlag;

std::string Trailers(const absl::Status& status) {
  std::string t = absl::StrCat("grpc-status:", static_cast<int>(status.code()), "\r\n");
  if (!status.message().empty()) {
    absl::StrAppend(&t, "grpc-message:", PercentEncodeGrpcMessage(status.message()), "\r\n");
  }
  if (common::IsRetryLater(status)) {
    absl::StrAppend(&t, common::kRetryPushbackHeader, ":",
                    absl::ToInt64Milliseconds(common::RetryAfter(status)), "\r\n");
  }
  return t;
}

}  // namespace

absl::StatusOr<absl::string_view> DecodeGrpcWebRequest(absl::string_view body,
                                                       size_t max_message_bytes) {
  unsigned char flags = 0;
  uint32_t length = 0;
  if (!common::ReadGrpcWebFrameHeader(body, &flags, &length)) {
    return absl::InvalidArgumentError(absl::StrCat("gRPC-Web request body of ", body.size(),
                                                   " bytes: one data frame (5-byte header and "
                                                   "message) was expected"));
  }
  if ((flags & kGrpcWebTrailerFlag) != 0) {
    return absl::InvalidArgumentError("gRPC-Web request starts with a trailer frame (flags 0x80)");
  }
  if (flags & kGrpcWebCompressedFlag) {
    return absl::UnimplementedError(
        "compressed gRPC-Web message: this server accepts uncompressed messages only");
  }
  if (flags != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("gRPC-Web frame with unknown flags 0x%02x", flags));
  }
  if (length > max_message_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "gRPC-Web message of ", length, " bytes is over the limit of ", max_message_bytes));
  }
  if (body.size() - kGrpcWebFrameHeader != length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gRPC-Web frame declares ", length, " bytes but the body holds ",
        body.size() - kGrpcWebFrameHeader, " after its header (one message per call)"));
  }
  return body.substr(kGrpcWebFrameHeader);
}

std::string EncodeGrpcWebResponse(absl::string_view message, const absl::Status& status) {
  std::string out;
  if (status.ok()) out = GrpcWebFrame(0, message);
  out += GrpcWebFrame(kGrpcWebTrailerFlag, Trailers(status));
  return out;
}

}  // namespace parc::server
