#pragma once

#include <string>

#include "absl/status/status.h"
#include "tests/test_util.h"

namespace parc::testing {

// An establishment relay as sites run it: nginx from Debian, configured with the site Parc
// ships (packaging/relay/parc-relay.conf), on 127.0.0.1 in front of a server's artifact port,
// with a certificate from that server's private CA (parc-server relay-cert). One process
// (master_process off), so that killing it kills the relay.
class NginxRelay {
 public:
  // False when nginx is not installed (tests then skip).
  static bool Available();

  // dir: a directory of its own; server_data_dir: the TestServer's (its tls/ holds the CA);
  // upstream_port: the server's artifact port.
  NginxRelay(std::string dir, std::string server_data_dir, int upstream_port);
  ~NginxRelay() { Kill(); }

  // Writes the configuration and certificate, starts nginx and waits until it answers.
  [[nodiscard]] absl::Status Start();
  // SIGKILL, as a relay losing power.
  void Kill() { process_.Kill(); }

  int port() const { return port_; }
  // What `parcctl relays add --url` takes: https://127.0.0.1:<port>/artifacts.
  std::string url() const;
  // Flips the last byte of every file in the cache: a relay whose disk went bad serves bytes
  // of the right size and the wrong hash. Returns the number of files changed.
  int CorruptCache() const;
  std::string cache_dir() const { return dir_ + "/cache"; }
  // nginx's error log (for failure messages).
  std::string ErrorLog() const;

 private:
  std::string dir_;
  std::string server_data_dir_;
  int upstream_port_;
  int port_ = 0;
  ChildProcess process_;
};

}  // namespace parc::testing
