#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/clock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "parc/v1/admin.grpc.pb.h"
#include "parc/v1/agent.grpc.pb.h"
#include "server/server.h"
#include "server/sql/sql.h"

namespace parc::testing {

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Source directory of the fixture trees (tests/data).
std::string DataDir();
std::string DataPath(const std::string& name);

void WriteFile(const std::string& path, const std::string& content);
std::string ReadFileOrDie(const std::string& path);
// cp -a from to (to must not exist).
void CopyTree(const std::string& from, const std::string& to);

// The engine the tests' stores and servers run on: SQLite (the default) or, with
// PARC_TEST_DATABASE=postgresql in the environment, PostgreSQL (tests/postgres_server.h).
bool TestOnPostgres();
// A new empty PostgreSQL database (connection string) when TestOnPostgres(), else "".
std::string NewTestDatabase();

// A parc-server on 127.0.0.1 (port 0 unless given) over TLS, with a fake clock, on the test
// engine (TestOnPostgres).
class TestServer {
 public:
  explicit TestServer(const std::string& data_dir, int port = 0,
                      std::function<void(server::ServerOptions&)> customize = nullptr);
  ~TestServer();
  void Restart();
  void Stop();

  server::Server* server() { return server_.get(); }
  common::FakeClock* clock() { return &clock_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string ca_path() const { return data_dir_ + "/tls/ca.pem"; }
  std::string ca_pem() const;
  const std::string& admin_token() const { return admin_token_; }
  int port() const { return port_; }

  std::unique_ptr<parc::v1::AdminService::Stub> AdminStub() const;
  std::unique_ptr<parc::v1::AgentService::Stub> AgentStub() const;
  // ClientContext with the admin token and a deadline.
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& bearer = "");
  std::unique_ptr<grpc::ClientContext> AdminContext() const { return Context(admin_token_); }

  // A connection of its own to the server's database (the SQLite file or the PostgreSQL
  // database), for tests that write or read rows directly, in SQL both engines accept.
  std::unique_ptr<server::sql::Connection> OpenDatabase() const;

  // Imports tests/data/annuaire-occitanie.csv.
  void ImportFixtureEstablishments();
  // Creates an enrollment token; uai "" for region-wide.
  std::string CreateToken(const std::string& uai, uint32_t max_uses = 0,
                          uint32_t expires_in_seconds = 0, bool reenroll = false);
  std::vector<parc::v1::Device> ListDevices(const parc::v1::ListDevicesRequest& request = {});
  // GET on the dashboard, signed in as the admin (the session is opened on first use); the
  // body, and the HTTP status in *status (-1: no answer).
  std::string DashboardGet(const std::string& path, int* status = nullptr);
  const std::string& dashboard_cookie() const { return dashboard_cookie_; }

 private:
  void Start();
  std::string data_dir_;
  // PostgreSQL database, kept across restarts; "" on SQLite.
  std::string database_;
  int port_;
  std::function<void(server::ServerOptions&)> customize_;
  common::FakeClock clock_;
  std::unique_ptr<server::Server> server_;
  std::string admin_token_;
  std::string dashboard_cookie_;
};

// A ReportInventoryRequest's encoding with software_bytes in place of its software list's
// (whatever they are: a list, a broken one, garbage), as a device could send it.
std::string ReportWithSoftwareBytes(parc::v1::ReportInventoryRequest report,
                                    const std::string& software_bytes);

// Runs the parc-agent / parcctl command lines in-process.
// A port free on 127.0.0.1 now (the kernel's pick for port 0).
int FreePort();

// A child process (argv[0] searched in PATH), killed with SIGKILL when destroyed. Its standard
// output and error go to output_path when given.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { Kill(); }
  void Start(std::vector<std::string> argv, const std::string& output_path = "");
  // True once it ended (it is then reaped).
  bool Exited();
  void Kill();

 private:
  pid_t pid_ = -1;
};

struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;
};
CommandResult RunAgent(const std::vector<std::string>& args);

// A message from the JSON parcctl prints with --json (a test failure when it does not parse).
template <typename T>
T FromJson(const std::string& json) {
  T message;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &message).ok()) << json;
  return message;
}
CommandResult RunCtl(const std::vector<std::string>& args);
CommandResult RunBundleTool(const std::vector<std::string>& args);

}  // namespace parc::testing
