#include "server/server.h"

#include <fcntl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/audit.h"
#include "server/grpc_web.h"
#include "server/postgres/artifacts.h"
#include "server/relay_http.h"
#include "server/tls_bootstrap.h"

namespace parc::server {

bool IsLoopbackListen(const std::string& listen) { return common::IsLoopbackAddress(listen); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  std::unique_ptr<Server> server(new Server(std::move(options)));
  PARC_RETURN_IF_ERROR(server->Init());
  return server;
}

absl::Status Server::Init() {
  if (options_.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  if (options_.insecure && !IsLoopbackListen(options_.listen)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--insecure serves plaintext and is refused on ", options_.listen,
                     ": listen on a loopback address (127.0.0.1, [::1]) or drop --insecure"));
  }
  if (options_.http_limits.max_downloads == 0 ||
      options_.http_limits.max_downloads >= options_.http_limits.max_connections) {
    return absl::InvalidArgumentError(
        "--http-max-downloads must be at least 1 and below --http-max-connections (the rest "
        "serves the dashboard and health checks)");
  }
  PARC_RETURN_IF_ERROR(common::MakeDirs(options_.data_dir, 0700));
  PARC_RETURN_IF_ERROR(LockDataDir());

  SqlStore::Options sopts;
  sopts.path = options_.data_dir + "/parc.db";
  sopts.postgres = options_.database;
  sopts.readers = options_.store_readers;
  sopts.max_cached_devices = options_.max_cached_devices;
  PARC_ASSIGN_OR_RETURN(store_, SqlStore::Open(sopts));
  PARC_RETURN_IF_ERROR(EnsureBootstrapAdmin());

  if (!options_.database.empty()) {
    shared_artifacts_ = std::make_unique<pg::Artifacts>(options_.database);
  }
  PARC_ASSIGN_OR_RETURN(
      artifacts_, ArtifactStore::Open(options_.data_dir + "/artifacts", shared_artifacts_.get()));
  BundleConfig bundles;
  bundles.artifacts = artifacts_.get();
  for (const auto& path : options_.publisher_keys) {
    PARC_ASSIGN_OR_RETURN(common::PublicKey key, common::LoadPublicKey(path));
    bundles.publisher_keys.push_back(std::move(key));
  }
  bundles.signature_threshold = options_.signature_threshold;
  if (!bundles.publisher_keys.empty() &&
      (options_.signature_threshold < 1 ||
       options_.signature_threshold > static_cast<int>(bundles.publisher_keys.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--signature-threshold ", options_.signature_threshold, " with ",
                     bundles.publisher_keys.size(), " publisher key(s)"));
  }
  rollout_actions_ = std::make_unique<RolloutActions>(
      store_.get(), options_.clock, [this](const std::string& id) { EvaluateRolloutSoon(id); });
  bundles.rollouts = rollout_actions_.get();

  std::shared_ptr<grpc::ServerCredentials> creds;
  ArtifactHttpServer::Options http;
  {
    size_t colon = options_.artifact_listen.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError("--artifact-listen must be HOST:PORT");
    }
    http.host = options_.artifact_listen.substr(0, colon);
    http.port = std::atoi(options_.artifact_listen.c_str() + colon + 1);
    if (!options_.insecure && !IsLoopbackListen(options_.listen) &&
        IsLoopbackListen(options_.artifact_listen)) {
      spdlog::warn("artifacts served on loopback only ({})", options_.artifact_listen);
    }
  }
  if (options_.insecure) {
    creds = grpc::InsecureServerCredentials();
  } else {
    TlsMaterial tls;
    if (!options_.tls_cert.empty() || !options_.tls_key.empty()) {
      if (options_.tls_cert.empty() || options_.tls_key.empty()) {
        return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
      }
      PARC_ASSIGN_OR_RETURN(tls, LoadTlsMaterial(options_.tls_cert, options_.tls_key));
      http.cert_path = options_.tls_cert;
      http.key_path = options_.tls_key;
    } else {
      PARC_ASSIGN_OR_RETURN(tls, EnsureTlsMaterial(options_.data_dir + "/tls", options_.tls_names));
      ca_path_ = tls.ca_path;
      http.cert_path = options_.data_dir + "/tls/server.pem";
      http.key_path = options_.data_dir + "/tls/server.key";
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  }

  store_->set_commit_observer([this](absl::Duration d, size_t writes) {
    metrics_.ObserveCommit(absl::ToDoubleSeconds(d), writes);
  });
  Dashboard::Options dashboard_options;
  dashboard_options.secure_cookies = !options_.insecure;
  dashboard_options.extra_metrics = [this] {
    std::string text = RolloutMetrics();
    absl::StrAppend(
        &text,
        "# HELP parc_store_writable 1 while the database accepts writes, 0 while they fail.\n"
        "# TYPE parc_store_writable gauge\nparc_store_writable ",
        store_->Writable() ? 1 : 0,
        "\n# HELP parc_store_failed_batches_total Write batches that failed for the storage "
        "itself.\n# TYPE parc_store_failed_batches_total counter\n"
        "parc_store_failed_batches_total ",
        store_->FailedBatches(),
        "\n# HELP parc_checkins_unrecorded_total Check-ins answered before their write "
        "whose write then failed.\n# TYPE parc_checkins_unrecorded_total counter\n"
        "parc_checkins_unrecorded_total ",
        store_->UnrecordedCheckIns(),
        "\n# HELP parc_checkins_waiting Check-ins answered and waiting for their write (written "
        "within a second).\n# TYPE parc_checkins_waiting gauge\nparc_checkins_waiting ",
        store_->WaitingCheckIns(),
        "\n# HELP parc_store_conflict_retries_total Writes run again in the next batch after a "
        "lock conflict with another node's transaction.\n# TYPE parc_store_conflict_retries_total "
        "counter\nparc_store_conflict_retries_total ",
        store_->conflict_retries(),
        "\n# HELP parc_node_leads_jobs 1 on the node that evaluates rollouts and purges (one "
        "node of those sharing a database), else 0.\n# TYPE parc_node_leads_jobs gauge\n"
        "parc_node_leads_jobs ",
        store_->LeadsJobs() ? 1 : 0,
        "\n# HELP parc_checkin_cache_lookups_total Lookups of the in-memory records that agent "
        "calls read (credentials, assignments, software sets), by result: misses read the "
        "database.\n# TYPE parc_checkin_cache_lookups_total counter\n"
        "parc_checkin_cache_lookups_total{result=\"hit\"} ",
        store_->checkin_cache().hits(), "\nparc_checkin_cache_lookups_total{result=\"miss\"} ",
        store_->checkin_cache().misses(), "\n");
    if (artifact_http_) {
      absl::StrAppend(&text,
                      "# HELP parc_artifact_bytes_sent_total Bytes of artifact content sent "
                      "(the central egress; with establishment relays, one copy per relay).\n"
                      "# TYPE parc_artifact_bytes_sent_total counter\n"
                      "parc_artifact_bytes_sent_total ",
                      artifact_http_->bytes_served(), "\n");
      text += artifact_http_->guard().RenderPrometheus();
    }
    return text;
  };
  dashboard_ = std::make_unique<Dashboard>(store_.get(), options_.clock, &metrics_,
                                           rollout_actions_.get(), dashboard_options);
  http.register_routes = [this](httplib::Server* s) {
    dashboard_->Register(s);
    GrpcWebOptions grpc_web;
    grpc_web.max_message_bytes = options_.http_limits.max_rpc_bytes;
    RegisterGrpcWeb(s, &grpc_web_calls_, &metrics_, grpc_web);
    RegisterRelayRoutes(s, store_.get(), options_.clock);
  };
  http.limits = options_.http_limits;
  PARC_ASSIGN_OR_RETURN(artifact_http_, ArtifactHttpServer::Start(artifacts_.get(), http));
  artifact_url_ = options_.artifact_url;
  if (!artifact_url_.empty() && !options_.insecure &&
      !absl::StartsWith(artifact_url_, "https://")) {
    return absl::InvalidArgumentError(
        "--artifact-url must be an https:// URL (agents refuse plain http: what a device "
        "installs is nobody else's business on the way)");
  }
  if (artifact_url_.empty()) {
    std::string host = options_.tls_names.empty() ? "localhost" : options_.tls_names[0];
    if (host.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
    artifact_url_ = absl::StrCat(options_.insecure ? "http" : "https", "://", host, ":",
                                 artifact_http_->port(), "/artifacts");
  }
  AgentServiceOptions agent_options = options_.agent;
  agent_options.artifact_base_url = artifact_url_;
  agent_options.deployment_reported = [this](const std::string& id) { EvaluateRolloutSoon(id); };
  agent_service_ =
      std::make_unique<AgentServiceImpl>(store_.get(), options_.clock, &metrics_, agent_options);
  grpc_web_calls_.store(agent_service_->calls());
  admin_service_ = std::make_unique<AdminServiceImpl>(store_.get(), options_.clock, &metrics_,
                                                      std::move(bundles));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, creds, &port_);
  builder.RegisterService(agent_service_.get());
  builder.RegisterService(admin_service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RpcDurationInterceptorFactory>(&metrics_));
  interceptors.push_back(std::make_unique<AuditInterceptorFactory>(store_.get(), options_.clock));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  // gRPC sets SO_REUSEPORT by default: a second server on the same port would share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  grpc::ResourceQuota quota("parc-server");
  quota.Resize(size_t{1} << 30);
  builder.SetResourceQuota(quota);
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen, " (address in use or not available)"));
  }
  grpc_server_->GetHealthCheckService()->SetServingStatus(true);

  jobs_work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      jobs_.get_executor());
  jobs_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "parc-jobs");
    jobs_.run();
  });
  // Rollout evaluations asked by other nodes (PostgreSQL), when this node leads.
  store_->set_rollout_handler([this](const std::string& id) { EvaluateRolloutSoon(id); });
  asio::post(jobs_, [this] {
    SchedulePurge();
    ScheduleRolloutEvaluation();
  });
  return absl::OkStatus();
}

absl::Status Server::LockDataDir() {
  const std::string path = options_.data_dir + "/parc-server.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = ::pread(fd, pid, sizeof(pid) - 1, 0);
    ::close(fd);
    std::string holder(pid, n > 0 ? static_cast<size_t>(n) : 0);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return absl::FailedPreconditionError(
        absl::StrCat("the data directory ", options_.data_dir, " is in use by another parc-server",
                     holder.empty() ? "" : absl::StrCat(" (pid ", holder, ")"),
                     ": two servers on one database would corrupt it; stop the other one first"));
  }
  std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    spdlog::warn("cannot write the pid to {}", path);
  }
  lock_fd_ = fd;  // held (and the lock with it) until the server is destroyed
  return absl::OkStatus();
}

absl::Status Server::EnsureBootstrapAdmin() {
  PARC_ASSIGN_OR_RETURN(int64_t operators, store_->CountOperators());
  if (operators > 0) return absl::OkStatus();
  PARC_ASSIGN_OR_RETURN(common::Credential credential, common::NewCredential("o", 6));
  OperatorRecord op;
  op.id = credential.id;
  op.name = "admin";
  op.secret_hash = common::Sha256Hex(credential.secret);
  op.role = std::string(kRoleAdmin);
  op.scope = "region";
  op.created_at = options_.clock->Now();
  std::promise<absl::StatusOr<bool>> created;
  store_->CreateOperator(op, [&](absl::StatusOr<bool> r) { created.set_value(std::move(r)); });
  PARC_RETURN_IF_ERROR(created.get_future().get().status());
  PARC_RETURN_IF_ERROR(common::WriteFileAtomic(admin_token_path(),
                                               common::FormatCredential(credential) + "\n", 0600));
  created_admin_token_ = true;
  return absl::OkStatus();
}

void Server::SchedulePurge() {
  purge_timer_.expires_after(absl::ToChronoSeconds(options_.purge_interval));
  purge_timer_.async_wait([this](const asio::error_code& ec) {
    // A wait that completed just before Shutdown cancelled it still runs, with no error: it
    // must not arm the timer again, or the jobs thread never runs out of work to join.
    if (ec || shut_down_) return;
    if (!store_->LeadsJobs()) {  // another node purges
      SchedulePurge();
      return;
    }
    store_->PurgeInventoryHistory(
        options_.clock->Now() - options_.inventory_retention, [](absl::StatusOr<int64_t> deleted) {
          if (!deleted.ok()) {
            spdlog::error("retention purge failed: {}", deleted.status().ToString());
          } else if (*deleted > 0) {
            spdlog::info("retention purge: {} inventories deleted", *deleted);
          }
        });
    SchedulePurge();
  });
}

std::string Server::RolloutMetrics() {
  std::string out =
      "# HELP parc_rollout_devices Devices targeted by each rollout, by deployment state.\n"
      "# TYPE parc_rollout_devices gauge\n";
  auto rollouts = store_->ListRollouts(Scope::Region());
  if (!rollouts.ok()) return out;
  for (const auto& r : *rollouts) {
    if (r.state != "running" && r.state != "paused") continue;
    auto counts = store_->RolloutCounts(r.id, Scope::Region());
    if (!counts.ok()) continue;
    uint64_t targeted = 0, installed = 0, in_progress = 0, failed = 0;
    for (const auto& c : *counts) {
      targeted += c.targeted;
      installed += c.installed;
      in_progress += c.in_progress;
      failed += c.failed;
    }
    std::string labels = absl::StrCat("rollout=\"", r.id, "\",bundle=\"", r.bundle_name, "@",
                                      r.bundle_version, "\"");
    for (const auto& [state, n] : {std::pair<const char*, uint64_t>{"targeted", targeted},
                                   {"installed", installed},
                                   {"in_progress", in_progress},
                                   {"failed", failed}}) {
      absl::StrAppend(&out, "parc_rollout_devices{", labels, ",state=\"", state, "\"} ", n, "\n");
    }
  }
  return out;
}

void Server::EvaluateRolloutSoon(const std::string& id) {
  // Reports arrive by the thousand during a rollout: they are coalesced so that a rollout is
  // evaluated at most once per rollout_debounce, however many reports it received meanwhile.
  asio::post(jobs_, [this, id] {
    if (!store_ || shut_down_ || evaluation_pending_.count(id)) return;
    auto timer = std::make_shared<asio::steady_timer>(jobs_);
    evaluation_pending_[id] = timer;
    timer->expires_after(absl::ToChronoMilliseconds(options_.rollout_debounce));
    timer->async_wait([this, id, timer](const asio::error_code& ec) {
      evaluation_pending_.erase(id);
      if (ec || shut_down_) return;
      // With several nodes, one evaluates (the one that leads); the others pass it on.
      if (!store_->LeadsJobs()) {
        store_->RequestRolloutEvaluation(id);
        return;
      }
      metrics_.RecordRolloutEvaluation();
      store_->EvaluateRollout(id, options_.clock->Now(), [id](absl::StatusOr<RolloutRecord> r) {
        if (!r.ok()) {
          spdlog::error("rollout {}: evaluation failed: {}", id, r.status().ToString());
        }
      });
    });
  });
}

void Server::ScheduleRolloutEvaluation() {
  rollout_timer_.expires_after(absl::ToChronoMilliseconds(options_.rollout_interval));
  rollout_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || shut_down_) return;  // as in SchedulePurge
    auto rollouts = store_->LeadsJobs() ? store_->ListRollouts(Scope::Region())
                                        : absl::StatusOr<std::vector<RolloutRecord>>();
    if (rollouts.ok()) {
      for (const auto& r : *rollouts) {
        if (r.state == "running") EvaluateRolloutSoon(r.id);
      }
    }
    ScheduleRolloutEvaluation();
  });
}

absl::StatusOr<int64_t> Server::PurgeNow() {
  std::promise<absl::StatusOr<int64_t>> result;
  store_->PurgeInventoryHistory(options_.clock->Now() - options_.inventory_retention,
                                [&](absl::StatusOr<int64_t> r) { result.set_value(std::move(r)); });
  return result.get_future().get();
}

void Server::Shutdown(absl::Duration deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  if (store_) store_->set_rollout_handler(nullptr);
  if (grpc_server_) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
    grpc_server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
  }
  asio::post(jobs_, [this] {
    purge_timer_.cancel();
    rollout_timer_.cancel();
    for (auto& [id, timer] : evaluation_pending_) timer->cancel();
  });
  jobs_work_.reset();
  if (jobs_thread_.joinable()) jobs_thread_.join();
  if (artifact_http_) artifact_http_->Stop();
  store_.reset();  // drains queued writes
}

void Server::Wait() {
  if (grpc_server_) grpc_server_->Wait();
}

Server::~Server() {
  Shutdown();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

}  // namespace parc::server
