#include "tests/nginx_relay.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "server/tls_bootstrap.h"

#ifndef PARC_SOURCE_DIR
#error "PARC_SOURCE_DIR must name the source tree (packaging/relay/parc-relay.conf)"
#endif

namespace parc::testing {

namespace {
constexpr char kNginx[] = "/usr/sbin/nginx";
}  // namespace

bool NginxRelay::Available() { return common::PathExists(kNginx); }

NginxRelay::NginxRelay(std::string dir, std::string server_data_dir, int upstream_port)
    : dir_(std::move(dir)),
      server_data_dir_(std::move(server_data_dir)),
      upstream_port_(upstream_port) {}

std::string NginxRelay::url() const {
  return absl::StrCat("https://127.0.0.1:", port_, "/artifacts");
}

absl::Status NginxRelay::Start() {
  PARC_RETURN_IF_ERROR(common::MakeDirs(dir_ + "/cache", 0700));
  PARC_RETURN_IF_ERROR(common::MakeDirs(dir_ + "/tmp", 0700));
  PARC_ASSIGN_OR_RETURN(server::TlsMaterial tls,
                        server::IssueCertificate(server_data_dir_ + "/tls", {"127.0.0.1"}));
  PARC_RETURN_IF_ERROR(common::WriteFileAtomic(dir_ + "/relay.pem", tls.cert_pem, 0644));
  PARC_RETURN_IF_ERROR(common::WriteFileAtomic(dir_ + "/relay.key", tls.key_pem, 0600));
  if (port_ == 0) port_ = FreePort();

  PARC_ASSIGN_OR_RETURN(std::string site, common::ReadFile(std::string(PARC_SOURCE_DIR) +
                                                           "/packaging/relay/parc-relay.conf"));
  site = absl::StrReplaceAll(
      site, {{"@LISTEN@", absl::StrCat("127.0.0.1:", port_)},
             {"@SERVER_NAME@", "127.0.0.1"},
             {"@CERT@", dir_ + "/relay.pem"},
             {"@KEY@", dir_ + "/relay.key"},
             {"@UPSTREAM@", absl::StrCat("https://127.0.0.1:", upstream_port_)},
             // The server's certificate names localhost and 127.0.0.1; nginx checks DNS names.
             {"@UPSTREAM_NAME@", "localhost"},
             {"@UPSTREAM_CA@", server_data_dir_ + "/tls/ca.pem"},
             {"@CACHE_DIR@", dir_ + "/cache"},
             {"@CACHE_MAX@", "1g"}});
  PARC_RETURN_IF_ERROR(common::WriteFileAtomic(dir_ + "/parc-relay.conf", site, 0644));
  const std::string tmp = dir_ + "/tmp";
  std::string main_conf = absl::StrCat(
      "master_process off;\ndaemon off;\npid ", dir_, "/nginx.pid;\nerror_log ", dir_,
      "/error.log info;\nevents { worker_connections 512; }\nhttp {\n  client_body_temp_path ", tmp,
      "/body;\n  proxy_temp_path ", tmp, "/proxy;\n  fastcgi_temp_path ", tmp,
      "/fastcgi;\n  uwsgi_temp_path ", tmp, "/uwsgi;\n  scgi_temp_path ", tmp, "/scgi;\n  include ",
      dir_, "/parc-relay.conf;\n}\n");
  PARC_RETURN_IF_ERROR(common::WriteFileAtomic(dir_ + "/nginx.conf", main_conf, 0644));

  process_.Start({kNginx, "-p", dir_, "-c", dir_ + "/nginx.conf", "-e", dir_ + "/error.log"},
                 dir_ + "/nginx.out");
  // Ready once /healthz answers over TLS.
  const std::string probe =
      absl::StrCat("curl -sf --cacert '", server_data_dir_,
                   "/tls/ca.pem' https://127.0.0.1:", port_, "/healthz > /dev/null 2>&1");
  for (int i = 0; i < 100; ++i) {
    if (std::system(probe.c_str()) == 0) return absl::OkStatus();
    if (process_.Exited()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::UnavailableError(absl::StrCat("nginx did not start: ", ErrorLog()));
}

int NginxRelay::CorruptCache() const {
  int changed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_ + "/cache", ec)) {
    if (!entry.is_regular_file()) continue;
    std::fstream f(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(c ^ 0x5a));
    if (f) ++changed;
  }
  return changed;
}

std::string NginxRelay::ErrorLog() const {
  auto log = common::ReadFile(dir_ + "/error.log");
  auto out = common::ReadFile(dir_ + "/nginx.out");
  return absl::StrCat(log.ok() ? *log : "", out.ok() ? *out : "");
}

}  // namespace parc::testing
