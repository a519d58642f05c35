#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace parc::testing {

// A private PostgreSQL server for one test process: initdb in a temporary directory, then
// postgres listening on a Unix socket in that directory only (no TCP port), stopped and
// removed at the end. As root it runs as the unprivileged user "postgres" (PostgreSQL refuses
// root). Needs Debian's postgresql package (tools/deps.sh --test installs it).
class PostgresServer {
 public:
  // Starts the server, or says why it could not.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  // The server shared by every test of the process (started on first use); dies with the
  // test's failure if it cannot start.
  static PostgresServer& Shared();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // A libpq connection string for a new, empty database of its own.
  [[nodiscard]] absl::StatusOr<std::string> CreateDatabase();
  // The connection string of database name.
  std::string ConnInfo(const std::string& name) const;
  // Stops the server at once, as a crash would (pg_ctl stop -m immediate).
  void Kill();
  // Starts it again on the same data directory.
  [[nodiscard]] absl::Status Restart();

 private:
  PostgresServer() = default;
  std::string dir_;
  std::string bin_;
  std::string as_user_;  // "runuser -u postgres -- " as root, "" otherwise
  int databases_ = 0;
};

}  // namespace parc::testing
