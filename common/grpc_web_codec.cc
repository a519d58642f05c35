#include "common/grpc_web_codec.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/retry.h"

namespace parc::common {

std::string GrpcWebFrame(unsigned char flags, absl::string_view payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  std::string out;
  out.reserve(5 + payload.size());
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  out.append(payload.data(), payload.size());
  return out;
}

bool ReadGrpcWebFrameHeader(absl::string_view bytes, unsigned char* flags, uint32_t* length) {
  if (bytes.size() < kGrpcWebFrameHeader) return false;
  *flags = static_cast<unsigned char>(bytes[0]);
  *length = 0;
  for (size_t i = 1; i < kGrpcWebFrameHeader; ++i) {
    *length = (*length << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return true;
}

std::string PercentEncodeGrpcMessage(absl::string_view message) {
  std::string out;
  for (char c : message) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u <= 0x7e && c != '%') {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "%%%02X", u);
    }
  }
  return out;
}

std::string PercentDecodeGrpcMessage(absl::string_view message) {
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    int v = 0;
    if (message[i] == '%' && i + 2 < message.size() &&
        absl::SimpleHexAtoi(message.substr(i + 1, 2), &v)) {
      out.push_back(static_cast<char>(v));
      i += 2;
    } else {
      out.push_back(message[i]);
    }
  }
  return out;
}

absl::StatusOr<GrpcWebResponse> ParseGrpcWebResponse(absl::string_view body) {
  GrpcWebResponse r;
  bool trailers_seen = false;
  while (!body.empty()) {
    unsigned char flags = 0;
    uint32_t n = 0;
    if (!ReadGrpcWebFrameHeader(body, &flags, &n)) {
      return absl::InternalError(
          absl::StrCat("gRPC-Web response ends inside a frame header (", body.size(), " bytes)"));
    }
    if (body.size() - 5 < n) {
      return absl::InternalError(
          absl::StrCat("gRPC-Web response frame declares ", n, " bytes, holds ", body.size() - 5));
    }
    absl::string_view payload = body.substr(5, n);
    body.remove_prefix(5 + n);
    if (trailers_seen) return absl::InternalError("gRPC-Web response continues after trailers");
    if (flags & kGrpcWebCompressedFlag) {
      return absl::InternalError("compressed gRPC-Web response (none was asked for)");
    }
    if (flags & kGrpcWebTrailerFlag) {
      trailers_seen = true;
      for (absl::string_view line : absl::StrSplit(payload, "\r\n", absl::SkipEmpty())) {
        const size_t colon = line.find(':');
        if (colon == absl::string_view::npos) continue;
        r.trailers[absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)))] =
            std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
      continue;
    }
    if (r.has_message) return absl::InternalError("gRPC-Web response holds two messages");
    r.has_message = true;
    r.message = std::string(payload);
  }
  return r;
}

absl::Status GrpcWebStatus(const std::map<std::string, std::string>& fields) {
  auto it = fields.find("grpc-status");
  int code = 0;
  if (it == fields.end() || !absl::SimpleAtoi(it->second, &code) || code < 0 || code > 16) {
    return absl::UnknownError("gRPC-Web response without a valid grpc-status");
  }
  if (code == 0) return absl::OkStatus();
  auto message = fields.find("grpc-message");
  absl::Status status(static_cast<absl::StatusCode>(code),
                      message == fields.end() ? "" : PercentDecodeGrpcMessage(message->second));
  auto pushback = fields.find("grpc-retry-pushback-ms");
  int64_t ms = 0;
  if (pushback != fields.end() && absl::SimpleAtoi(pushback->second, &ms) && ms >= 0) {
    status = RetryLater(std::move(status), absl::Milliseconds(ms));
  }
  return status;
}

}  // namespace parc::common
