#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/artifact_store.h"
#include "server/http_guard.h"

namespace httplib {
class Server;
}

namespace parc::server {

// The data plane: artifacts over HTTPS at /artifacts/<sha256> (GET and HEAD), with Range,
// If-Range and a strong ETag (the hash itself), so that downloads resume and any HTTP cache,
// relay or CDN can stand in for it. cpp-httplib does the HTTP.
class ArtifactHttpServer {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    int port = 0;  // 0: any free port
    // TLS certificate chain and key files; both empty: plaintext (tests on loopback only).
    std::string cert_path;
    std::string key_path;
    // Adds more routes (the dashboard, /metrics) to the same HTTPS server.
    std::function<void(httplib::Server*)> register_routes;
    // Connections, downloads, request heads and bodies (see HttpGuard).
    HttpLimits limits;
  };

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ArtifactHttpServer>> Start(
      const ArtifactStore* store, const Options& options);
  ~ArtifactHttpServer();

  int port() const { return port_; }
  // Bytes of artifact content sent so far (for metrics and tests).
  uint64_t bytes_served() const;
  const HttpGuard& guard() const { return *guard_; }
  void Stop();

 private:
  ArtifactHttpServer() = default;
  // Declared first: the server's threads and TLS context use it until they are gone.
  std::unique_ptr<HttpGuard> guard_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
  std::shared_ptr<std::atomic<uint64_t>> bytes_served_;
};

}  // namespace parc::server
