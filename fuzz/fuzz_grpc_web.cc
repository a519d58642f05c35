// What reaches the HTTPS port's gRPC-Web routes (any body bytes, any message text the trailers
// must carry) and what reaches an agent's gRPC-Web transport (any answer).
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/grpc_web_codec.h"
#include "parc/v1/agent.pb.h"
#include "server/grpc_web_frames.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto message = parc::server::DecodeGrpcWebRequest(bytes, 1 << 16);
  if (message.ok()) {
    // Accepted: exactly one uncompressed frame holding the message.
    if (message->size() + 5 != bytes.size() || bytes[0] != 0) __builtin_trap();
    parc::v1::CheckInRequest checkin;
    (void)checkin.ParseFromArray(message->data(), static_cast<int>(message->size()));
  }
  // What an agent reads back: any bytes a server or a proxy sends.
  auto answer = parc::common::ParseGrpcWebResponse(bytes);
  if (answer.ok()) (void)parc::common::GrpcWebStatus(answer->trailers);
  if (parc::common::PercentDecodeGrpcMessage(parc::common::PercentEncodeGrpcMessage(bytes)) !=
      bytes) {
    __builtin_trap();
  }
  // Trailers stay one line per field, whatever the message holds.
  const std::string encoded = parc::server::PercentEncodeGrpcMessage(bytes);
  for (char c : encoded) {
    if (c == '\r' || c == '\n' || static_cast<unsigned char>(c) >= 0x7f) __builtin_trap();
  }
  const std::string response =
      parc::server::EncodeGrpcWebResponse(bytes, absl::InvalidArgumentError(bytes));
  if (response.size() < 5 || static_cast<unsigned char>(response[0]) != 0x80) __builtin_trap();
  return 0;
}
