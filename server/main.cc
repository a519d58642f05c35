// parc-server: the central Parc service.
#include <cstdio>
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "asio.hpp"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/openssl_exit.h"
#include "server/migrate.h"
#include "server/relays.h"
#include "server/server.h"

namespace {

int Run(int argc, char** argv) {
  parc::server::ServerOptions options;
  std::string checkin_interval = "1h";
  std::string retention = "365d";
  std::string port_file;
  std::string log_level = "info";
  std::vector<std::string> tls_names;

  CLI::App app{
      "parc-server: inventory and provisioning of school devices.\n"
      "Serves the agent and admin gRPC APIs (TLS by default) from one data directory.",
      "parc-server"};
  app.set_version_flag("--version", PARC_VERSION);
  app.set_help_all_flag("--help-all", "Print the help of every command and exit");
  app.footer(
      "Example:\n"
      "  parc-server --data-dir /var/lib/parc-server --listen 0.0.0.0:8443 \\\n"
      "      --artifact-listen 0.0.0.0:8444 --tls-name parc.example.fr \\\n"
      "      --publisher-key /etc/parc/keys/toulouse.pub\n"
      "On first start it writes DATA/tls/ca.pem (give it to agents and parcctl) and\n"
      "DATA/admin.token (the first operator). SIGTERM stops it cleanly.");
  app.add_option("--data-dir", options.data_dir,
                 "Directory holding the database, TLS material and bootstrap admin token")
      ->required();
  app.add_option("--database", options.database,
                 "PostgreSQL database instead of the SQLite file in --data-dir: a libpq URI "
                 "(postgresql://parc@db.example/parc) or connection string");
  app.add_option("--listen", options.listen, "Address to listen on, HOST:PORT (port 0: any)")
      ->capture_default_str();
  app.add_option("--tls-cert", options.tls_cert,
                 "Certificate chain (PEM) to serve instead of the generated one");
  app.add_option("--tls-key", options.tls_key, "Private key (PEM) of --tls-cert");
  app.add_option("--tls-name", tls_names,
                 "Name or IP address for the generated certificate (repeatable; default "
                 "localhost and 127.0.0.1)");
  app.add_flag("--insecure", options.insecure,
               "Serve plaintext gRPC (refused unless listening on loopback)");
  app.add_option("--checkin-interval", checkin_interval,
                 "Mean time between agent check-ins (e.g. 1h, 15m)")
      ->capture_default_str();
  app.add_option("--inventory-retention", retention,
                 "How long inventory history is kept (each device's latest is always kept)")
      ->capture_default_str();
  app.add_option("--publisher-key", options.publisher_keys,
                 "Public key (PEM) of a bundle publisher; repeatable (e.g. one per académie)");
  app.add_option("--signature-threshold", options.signature_threshold,
                 "Valid publisher signatures a bundle needs to be published")
      ->capture_default_str();
  app.add_option("--artifact-listen", options.artifact_listen,
                 "Address of the artifact HTTPS server, HOST:PORT (port 0: any)")
      ->capture_default_str();
  app.add_option("--artifact-url", options.artifact_url,
                 "Base URL agents download artifacts from (a relay or CDN may stand in; "
                 "default https://<first --tls-name>:<artifact port>/artifacts)");
  app.add_option("--http-max-connections", options.http_limits.max_connections,
                 "Connections the HTTPS port (artifacts, dashboard) serves at once; more are "
                 "answered 503")
      ->capture_default_str();
  app.add_option("--http-max-downloads", options.http_limits.max_downloads,
                 "Artifact downloads at once, out of --http-max-connections (the rest stays "
                 "for the dashboard)")
      ->capture_default_str();
  app.add_option("--max-cached-devices", options.max_cached_devices,
                 "Devices whose credentials and assignment check-ins find in memory (about 200 "
                 "bytes each); raise it above the fleet's size")
      ->check(CLI::Range(size_t{1000}, size_t{100000000}))
      ->capture_default_str();
  std::string rollout_interval = "30s";
  app.add_option("--rollout-interval", rollout_interval,
                 "How often running rollouts are re-evaluated")
      ->capture_default_str();
  bool checkin_wait = false;
  app.add_flag("--checkin-wait", checkin_wait,
               "Answer a check-in only once its write is on disk (default: check-ins are "
               "written behind, within a second)");
  app.add_option("--port-file", port_file, "Write the port listened on to this file");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  if (!tls_names.empty()) options.tls_names = tls_names;
  auto interval = parc::common::ParseDuration(checkin_interval);
  auto keep = parc::common::ParseDuration(retention);
  if (!interval.ok() || !keep.ok()) {
    std::cerr << "parc-server: --checkin-interval/--inventory-retention: "
              << (interval.ok() ? keep.status() : interval.status()).message() << "\n";
    return 2;
  }
  options.agent.checkin_interval = *interval;
  options.agent.checkin_write_behind = !checkin_wait;
  auto rollout_every = parc::common::ParseDuration(rollout_interval);
  if (!rollout_every.ok()) {
    std::cerr << "parc-server: --rollout-interval: " << rollout_every.status().message() << "\n";
    return 2;
  }
  options.rollout_interval = *rollout_every;
  options.inventory_retention = *keep;

  auto server = parc::server::Server::Start(options);
  if (!server.ok()) {
    std::cerr << "parc-server: " << server.status().message() << "\n";
    return 1;
  }
  auto& s = **server;
  std::cout << "parc-server " << PARC_VERSION << ": data in " << options.data_dir
            << (options.database.empty() ? "" : ", database on PostgreSQL") << "\n";
  if (!s.ca_path().empty()) {
    std::cout << "parc-server: agents and parcctl must trust the CA certificate " << s.ca_path()
              << "\n";
  }
  if (s.created_admin_token()) {
    std::cout << "parc-server: bootstrap admin token written to " << s.admin_token_path()
              << " (mode 0600)\n";
  }
  std::cout << "parc-server: artifacts served at " << s.artifact_url() << "\n";
  std::cout << "parc-server: dashboard at " << (s.tls() ? "https" : "http") << "://"
            << (options.tls_names.empty() ? "localhost" : options.tls_names[0]) << ":"
            << s.web_port() << "/ (metrics at /metrics)\n";
  std::cout << "parc-server: listening on port " << s.port() << " ("
            << (s.tls() ? "TLS" : "plaintext") << ")" << std::endl;
  if (!port_file.empty()) {
    auto st = parc::common::WriteFileAtomic(port_file, std::to_string(s.port()) + "\n");
    if (!st.ok()) {
      std::cerr << "parc-server: --port-file: " << st.message() << "\n";
      return 1;
    }
  }

  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code&, int sig) {
    spdlog::info("signal {}: shutting down", sig);
    s.Shutdown();
  });
  io.run();
  std::cout << "parc-server: stopped" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  parc::common::KeepOpenSslStateAtExit();  // common/openssl_exit.h
  // Abseil's lock-order checks (on in Debian's build, for gRPC's locks too) cost about 5 % of a
  // check-in's CPU; the tests, which run the server in their own process, keep them.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (argc > 1 && std::string(argv[1]) == "migrate") {
    return parc::server::MigrateMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string(argv[1]) == "relay-cert") {
    return parc::server::RelayCertMain(argc - 1, argv + 1);
  }
  return Run(argc, argv);
}
