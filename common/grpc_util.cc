#include "common/grpc_util.h"

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace parc::common {

absl::Status WithServerPushback(absl::Status status, const grpc::ClientContext& context) {
  if (status.ok()) return status;
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(kRetryPushbackHeader);
  int64_t ms = 0;
  if (it == trailers.end() ||
      !absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms)) {
    return status;
  }
  return RetryLater(std::move(status), absl::Milliseconds(ms));
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

bool IsLoopbackAddress(absl::string_view host_port) {
  absl::string_view host = host_port;
  size_t colon = host_port.rfind(':');
  if (colon != absl::string_view::npos && !absl::EndsWith(host_port, "]")) {
    host = host_port.substr(0, colon);
  }
  if (host == "[::1]" || host == "::1" || host == "localhost") return true;
  return absl::StartsWith(host, "127.");
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("no server address given");
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.insecure && !IsLoopbackAddress(options.target)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--insecure sends tokens and secrets in clear: it is only for a server on this machine "
        "(127.0.0.1, [::1], localhost), not ",
        options.target));
  }
  if (options.insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    if (options.ca_pem.empty()) {
      return absl::InvalidArgumentError(
          "no CA certificate given to verify the server (use --ca, or --insecure for a "
          "plaintext test server)");
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.ca_pem;
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_bytes);
  args.SetMaxSendMessageSize(options.max_send_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  return grpc::CreateCustomChannel(options.target, creds, args);
}

void SetBearer(grpc::ClientContext* context, absl::string_view token) {
  context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
}

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

std::string BearerToken(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  return BearerFromHeader(absl::string_view(it->second.data(), it->second.size()));
}

std::string BearerFromHeader(absl::string_view authorization) {
  constexpr absl::string_view kPrefix = "Bearer ";
  if (!absl::StartsWith(authorization, kPrefix)) return "";
  return std::string(authorization.substr(kPrefix.size()));
}

std::string StatusCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

}  // namespace parc::common
