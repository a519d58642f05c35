#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "asio.hpp"
#include "common/clock.h"
#include "server/admin_service.h"
#include "server/agent_service.h"
#include "server/artifact_http.h"
#include "server/artifact_store.h"
#include "server/dashboard.h"
#include "server/metrics.h"
#include "server/sql_store.h"

namespace parc::server {

struct ServerOptions {
  // Holds the database (parc.db), TLS material (tls/) and the bootstrap admin token.
  std::string data_dir;
  // PostgreSQL instead of data_dir/parc.db, when set: a libpq connection string or URI
  // (postgresql://parc@db.example/parc).
  std::string database;
  std::string listen = "0.0.0.0:8443";
  // Operator-supplied certificate chain and key; otherwise a private CA is created.
  std::string tls_cert;
  std::string tls_key;
  std::vector<std::string> tls_names = {"localhost", "127.0.0.1"};
  // Plaintext gRPC; refused unless listen is a loopback address.
  bool insecure = false;
  AgentServiceOptions agent;
  absl::Duration inventory_retention = absl::Hours(24 * 365);
  absl::Duration purge_interval = absl::Hours(1);
  // Largest message accepted (CSV imports are the largest).
  int max_message_bytes = 64 << 20;
  int store_readers = sql::kDefaultReaders;
  // Devices whose credentials and assignment the check-in path keeps in memory (about 200
  // bytes each); beyond them a check-in reads the database.
  size_t max_cached_devices = 400000;
  // Bundle publisher public keys (PEM files) and the signatures a bundle needs.
  std::vector<std::string> publisher_keys;
  int signature_threshold = 1;
  // Artifact HTTPS server: where it listens (port 0: any) and the base URL given to agents
  // (default https://<first --tls-name>:<port>/artifacts). Set the URL to a relay or CDN.
  std::string artifact_listen = "0.0.0.0:0";
  std::string artifact_url;
  // Limits of that HTTPS port (connections, downloads, request heads and bodies).
  HttpLimits http_limits;
  // How often running rollouts are evaluated (besides after each deployment report).
  absl::Duration rollout_interval = absl::Seconds(30);
  // Deployment reports and state changes are coalesced: a rollout is evaluated at most once
  // per this delay.
  absl::Duration rollout_debounce = absl::Seconds(1);
  const common::Clock* clock = common::RealClock::Get();
};

// A running parc-server: gRPC services (agents, admin, health, reflection) and periodic jobs.
class Server {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  ~Server();

  int port() const { return port_; }
  bool tls() const { return !options_.insecure; }
  // CA certificate agents and parcctl must trust; empty with operator-supplied TLS or insecure.
  const std::string& ca_path() const { return ca_path_; }
  // File holding the bootstrap admin token (written on first start only).
  std::string admin_token_path() const { return options_.data_dir + "/admin.token"; }
  bool created_admin_token() const { return created_admin_token_; }
  SqlStore* store() const { return store_.get(); }
  // The HTTPS port of artifacts, the dashboard, /metrics and /healthz.
  int artifact_port() const { return artifact_http_ ? artifact_http_->port() : 0; }
  int web_port() const { return artifact_port(); }
  const std::string& artifact_url() const { return artifact_url_; }
  uint64_t artifact_bytes_served() const {
    return artifact_http_ ? artifact_http_->bytes_served() : 0;
  }
  ArtifactStore* artifacts() const { return artifacts_.get(); }
  const HttpGuard* http_guard() const {
    return artifact_http_ ? &artifact_http_->guard() : nullptr;
  }
  Metrics* metrics() { return &metrics_; }

  // Stops accepting calls, finishes those in flight (up to deadline), drains writes.
  void Shutdown(absl::Duration deadline = absl::Seconds(5));
  void Wait();

  // Runs the retention purge now; returns the number of inventories deleted.
  absl::StatusOr<int64_t> PurgeNow();

 private:
  explicit Server(ServerOptions options) : options_(std::move(options)) {}
  absl::Status Init();
  // Takes the data directory's lock (parc-server.lock): one server per database.
  absl::Status LockDataDir();
  absl::Status EnsureBootstrapAdmin();
  void SchedulePurge();
  void ScheduleRolloutEvaluation();
  // Rollout progress gauges for /metrics.
  std::string RolloutMetrics();
  // Evaluates one rollout (wave progression, automatic pause) on the jobs thread.
  void EvaluateRolloutSoon(const std::string& id);

  ServerOptions options_;
  Metrics metrics_;
  std::unique_ptr<SqlStore> store_;
  // PostgreSQL: the artifacts every node reads (artifacts_ is this node's cache of them).
  std::unique_ptr<SharedArtifacts> shared_artifacts_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<RolloutActions> rollout_actions_;
  std::unique_ptr<Dashboard> dashboard_;
  std::unique_ptr<ArtifactHttpServer> artifact_http_;
  std::string artifact_url_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  // agent_service_'s handlers once it exists, for gRPC-Web on the HTTPS port.
  std::atomic<AgentCalls*> grpc_web_calls_{nullptr};
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  std::string ca_path_;
  bool created_admin_token_ = false;
  int lock_fd_ = -1;
  std::atomic<bool> shut_down_{false};

  asio::io_context jobs_;
  asio::steady_timer purge_timer_{jobs_};
  asio::steady_timer rollout_timer_{jobs_};
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> jobs_work_;
  std::thread jobs_thread_;
  // Rollouts with an evaluation scheduled (touched on the jobs thread only).
  std::map<std::string, std::shared_ptr<asio::steady_timer>> evaluation_pending_;
};

// True for addresses of the loopback interface ("127.0.0.1:8443", "localhost:1", "[::1]:2").
bool IsLoopbackListen(const std::string& listen);

}  // namespace parc::server
