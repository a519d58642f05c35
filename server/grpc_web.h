#pragma once

#include <atomic>
#include <cstddef>
#include <string>

#include "absl/time/time.h"
#include "server/agent_service.h"
#include "server/grpc_web_frames.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace parc::server {

// gRPC-Web (application/grpc-web+proto over HTTP/1.1, https://github.com/grpc/grpc/blob/master/
// doc/PROTOCOL-WEB.md): AgentService on the HTTPS port, for the Windows agent (gRPC has no
// supported MinGW build) and for agents behind school proxies that pass only HTTP/1.1. Each
// call goes to the same AgentCalls as the gRPC port: same authentication, validation, limits,
// metrics and store writes.
//
// A request is POST /parc.v1.AgentService/<Method> with Content-Type application/grpc-web or
// application/grpc-web+proto, "authorization: Bearer <credential>" for device calls, and one
// uncompressed data frame: a flags byte (0), a 4-byte big-endian length, the message. The
// response is HTTP 200, Content-Type application/grpc-web+proto, and a body of the response's
// data frame (OK only) and a trailer frame (flags 0x80) holding grpc-status, grpc-message
// (percent-encoded) and grpc-retry-pushback-ms when the server asks to come back later.
// The base64 variant (application/grpc-web-text) is not served: 415 with grpc-status 3.

struct GrpcWebOptions {
  // Largest request message; larger ones are refused with RESOURCE_EXHAUSTED.
  size_t max_message_bytes = 8 << 20;
  // A call the store has not finished by then is answered DEADLINE_EXCEEDED (it may still
  // complete).
  absl::Duration call_timeout = absl::Seconds(60);
};

// Registers the AgentService routes on an HTTPS server (HttpGuard lets their bodies through up
// to HttpLimits::max_rpc_bytes). calls is read at each request: until it is set (the server
// starts its HTTPS port before its services), calls are answered UNAVAILABLE.
void RegisterGrpcWeb(httplib::Server* http, const std::atomic<AgentCalls*>* calls, Metrics* metrics,
                     GrpcWebOptions options);

inline constexpr char kGrpcWebPrefix[] = "/parc.v1.AgentService/";

}  // namespace parc::server
