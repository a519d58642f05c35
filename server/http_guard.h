#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace httplib {
class Server;
class TaskQueue;
struct Request;
}  // namespace httplib

namespace parc::server {

// What one HTTPS port (artifacts, dashboard, /metrics, /healthz) gives each client.
struct HttpLimits {
  // Connections served at once; each holds a thread while it is open. A connection beyond
  // them is answered 503 with Retry-After and closed.
  size_t max_connections = 512;
  // Artifact downloads at once, out of max_connections: the rest is kept for the dashboard and
  // health checks, so a rollout cannot starve them. Beyond it a download is answered 503.
  size_t max_downloads = 384;
  // From a connection's first byte (or the end of its previous response) to the end of a
  // request's head, and of a form's body: a client that trickles its request is cut off.
  absl::Duration request_timeout = absl::Seconds(10);
  // Bytes a client may send (TLS records included) before its request head is complete.
  size_t max_head_bytes = 32 << 10;
  // Largest form body (POST, application/x-www-form-urlencoded).
  size_t max_form_bytes = 4 << 10;
  // Largest gRPC-Web message (POST under /parc.v1.AgentService/, see grpc_web.h): an
  // inventory is at most 4 MiB by default, and the gRPC port's own limit is larger. Its body
  // (Content-Length or chunked, not compressed) must arrive within rpc_body_timeout: an
  // inventory from a laptop on a slow school link takes a few seconds, a trickling client is
  // cut off. Other requests carry no body.
  size_t max_rpc_bytes = 8 << 20;
  absl::Duration rpc_body_timeout = absl::Seconds(60);
};

// Counts of what the guard refused, for /metrics.
struct HttpGuardStats {
  std::atomic<uint64_t> refused_connections{0};
  std::atomic<uint64_t> refused_downloads{0};
  std::atomic<uint64_t> refused_bodies{0};
  std::atomic<uint64_t> timed_out{0};
  std::atomic<uint64_t> oversized_heads{0};
};

// Keeps one HTTPS port available to everyone under hostile or careless clients, in front of
// cpp-httplib (whose server reads requests with blocking calls, one thread per connection,
// and bounds neither the time nor the size of a request head):
//  - a thread per connection up to max_connections, then a clear refusal (503);
//  - every TLS connection reads through a filter that ends it when its request head (or form
//    body) is not complete within request_timeout or max_head_bytes: slow or endless headers
//    cost one thread for seconds, never the port;
//  - request bodies are refused before they are read unless they are forms within
//    max_form_bytes with a Content-Length (no chunked or compressed bodies), or gRPC-Web
//    calls within max_rpc_bytes (refused with a gRPC-Web RESOURCE_EXHAUSTED beyond);
//  - artifact downloads take at most max_downloads of the connections.
// Plaintext servers (tests on loopback only) get the limits on connections, bodies and
// downloads but no time or size limit on request heads.
// Thread-safe. Must outlive the httplib::Server it is installed on.
class HttpGuard {
 public:
  explicit HttpGuard(HttpLimits limits);
  ~HttpGuard();
  HttpGuard(const HttpGuard&) = delete;
  HttpGuard& operator=(const HttpGuard&) = delete;

  // Configures a TLS server context: the certificate chain and key, TLS 1.2 or later with
  // AEAD cipher suites and forward secrecy only (the policy of the gRPC port), no
  // renegotiation, and the per-connection filter.
  [[nodiscard]] absl::Status ConfigureTls(SSL_CTX* ctx, const std::string& cert_path,
                                          const std::string& key_path);
  // The task queue httplib runs connections on (httplib::Server::new_task_queue).
  httplib::TaskQueue* NewTaskQueue();
  // Installs the request checks (pre-routing handler) and the per-request bookkeeping
  // (logger). Routes under download_prefix are artifact downloads.
  void Install(httplib::Server* http, std::string download_prefix);

  const HttpLimits& limits() const { return limits_; }
  const HttpGuardStats& stats() const { return stats_; }
  HttpGuardStats* mutable_stats() { return &stats_; }
  // Connections open now (for tests and /metrics).
  size_t open_connections() const;
  size_t active_downloads() const { return downloads_.load(); }
  // Prometheus text of the counters above.
  std::string RenderPrometheus() const;

  // Internal: the filter's connection state (defined in http_guard.cc).
  struct Connection;

 private:
  class Pool;
  friend class Pool;

  bool TryAcquireDownload();
  void ReleaseDownload();

  HttpLimits limits_;
  HttpGuardStats stats_;
  std::atomic<size_t> downloads_{0};
  mutable std::mutex mu_;
  size_t open_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace parc::server
