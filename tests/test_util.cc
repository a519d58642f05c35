#include "tests/test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/linux/platform.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/openssl_exit.h"
#include "gtest/gtest.h"
#include "server/postgres/sql_connection.h"
#include "server/sqlite/connection.h"
#include "tests/postgres_server.h"
#include "tools/bundle/bundle_tool.h"
#include "tools/parcctl/ctl.h"

namespace parc::testing {

// The tests' processes run servers and agents in process and end, as the programs do, while
// gRPC's threads end (common/openssl_exit.h); before main, as the programs' first step.
[[maybe_unused]] const bool kOpenSslStateKeptAtExit = common::KeepOpenSslStateAtExit();

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp", "/parc-test-XXXXXX");
  char* made = ::mkdtemp(tmpl.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  std::string cmd = absl::StrCat("rm -rf '", path_, "'");
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "cannot remove %s\n", path_.c_str());
}

std::string DataDir() { return PARC_TEST_DATA_DIR; }
std::string DataPath(const std::string& name) { return DataDir() + "/" + name; }

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  ASSERT_TRUE(f.good()) << path;
}

std::string ReadFileOrDie(const std::string& path) {
  auto content = common::ReadFile(path);
  if (!content.ok()) {
    ADD_FAILURE() << content.status();
    return "";
  }
  return *content;
}

void CopyTree(const std::string& from, const std::string& to) {
  std::string cmd = absl::StrCat("cp -a '", from, "' '", to, "'");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

bool TestOnPostgres() {
  const char* engine = std::getenv("PARC_TEST_DATABASE");
  return engine != nullptr && std::string(engine) == "postgresql";
}

std::string NewTestDatabase() {
  if (!TestOnPostgres()) return "";
  auto info = PostgresServer::Shared().CreateDatabase();
  EXPECT_TRUE(info.ok()) << info.status();
  return info.ok() ? *info : "";
}

namespace {

// On PostgreSQL, each server data directory has its database, found again by a server started
// later on the same directory (as the SQLite file would be).
std::string DatabaseOf(const std::string& data_dir) {
  static std::mutex mu;
  static std::map<std::string, std::string> databases;
  std::lock_guard<std::mutex> lock(mu);
  std::string& db = databases[data_dir];
  if (db.empty()) db = NewTestDatabase();
  return db;
}

}  // namespace

TestServer::TestServer(const std::string& data_dir, int port,
                       std::function<void(server::ServerOptions&)> customize)
    : data_dir_(data_dir),
      database_(DatabaseOf(data_dir)),
      port_(port),
      customize_(std::move(customize)) {
  Start();
}

TestServer::~TestServer() { Stop(); }

void TestServer::Start() {
  server::ServerOptions options;
  options.data_dir = data_dir_;
  options.database = database_;
  options.listen = absl::StrCat("127.0.0.1:", port_);
  options.clock = &clock_;
  options.agent.checkin_interval = absl::Seconds(60);
  options.store_readers = 2;
  options.rollout_debounce = absl::Milliseconds(20);
  // Reads right after a check-in see it (CheckInsAreWrittenBehind covers the default).
  options.agent.checkin_write_behind = false;
  if (customize_) customize_(options);
  auto server = server::Server::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  port_ = server_->port();
  admin_token_ =
      std::string(absl::StripAsciiWhitespace(ReadFileOrDie(server_->admin_token_path())));
}

void TestServer::Stop() {
  if (server_) server_->Shutdown(absl::Seconds(2));
  server_.reset();
}

void TestServer::Restart() {
  Stop();
  Start();
}

std::unique_ptr<server::sql::Connection> TestServer::OpenDatabase() const {
  if (!database_.empty()) {
    auto db = server::pg::Connection::Open(database_);
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return nullptr;
    return std::make_unique<server::pg::SqlConnection>(std::move(*db));
  }
  auto db = common::Database::Open(data_dir_ + "/parc.db", {});
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return nullptr;
  return std::make_unique<server::sqlite::Connection>(std::move(*db));
}

std::string TestServer::ca_pem() const { return ReadFileOrDie(ca_path()); }

std::unique_ptr<parc::v1::AdminService::Stub> TestServer::AdminStub() const {
  common::ChannelOptions o;
  o.target = address();
  o.ca_pem = ca_pem();
  auto channel = common::MakeChannel(o);
  EXPECT_TRUE(channel.ok());
  return parc::v1::AdminService::NewStub(*channel);
}

std::unique_ptr<parc::v1::AgentService::Stub> TestServer::AgentStub() const {
  common::ChannelOptions o;
  o.target = address();
  o.ca_pem = ca_pem();
  auto channel = common::MakeChannel(o);
  EXPECT_TRUE(channel.ok());
  return parc::v1::AgentService::NewStub(*channel);
}

std::unique_ptr<grpc::ClientContext> TestServer::Context(const std::string& bearer) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  common::SetDeadline(ctx.get(), absl::Seconds(20));
  if (!bearer.empty()) common::SetBearer(ctx.get(), bearer);
  return ctx;
}

void TestServer::ImportFixtureEstablishments() {
  parc::v1::ImportCsvRequest request;
  request.set_content(ReadFileOrDie(DataPath("annuaire-occitanie.csv")));
  parc::v1::ImportEstablishmentsResponse response;
  grpc::Status s = AdminStub()->ImportEstablishments(AdminContext().get(), request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(response.inserted() + response.unchanged() + response.updated(), 9u);
}

std::string TestServer::CreateToken(const std::string& uai, uint32_t max_uses,
                                    uint32_t expires_in_seconds, bool reenroll) {
  parc::v1::CreateEnrollmentTokenRequest request;
  request.set_reenroll(reenroll);
  request.set_uai(uai);
  request.set_region(uai.empty());
  request.set_max_uses(max_uses);
  request.set_expires_in_seconds(expires_in_seconds);
  parc::v1::CreateEnrollmentTokenResponse response;
  grpc::Status s = AdminStub()->CreateEnrollmentToken(AdminContext().get(), request, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return response.token();
}

std::vector<parc::v1::Device> TestServer::ListDevices(const parc::v1::ListDevicesRequest& request) {
  parc::v1::ListDevicesResponse response;
  grpc::Status s = AdminStub()->ListDevices(AdminContext().get(), request, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return {response.devices().begin(), response.devices().end()};
}

std::string TestServer::DashboardGet(const std::string& path, int* status) {
  httplib::SSLClient c("127.0.0.1", server_->web_port());
  c.enable_server_certificate_verification(false);
  if (dashboard_cookie_.empty()) {
    auto r = c.Post("/connexion", absl::StrCat("jeton=", admin_token_),
                    "application/x-www-form-urlencoded");
    EXPECT_TRUE(r && r->status == 303) << "sign-in: " << (r ? r->status : -1);
    const std::string set = r ? r->get_header_value("Set-Cookie") : "";
    dashboard_cookie_ = set.substr(0, set.find(';'));
  }
  auto r = c.Get(path.c_str(), {{"Cookie", dashboard_cookie_}});
  if (status != nullptr) *status = r ? r->status : -1;
  return r ? r->body : "";
}

namespace {

// Runs a program's main (args without the program name) and collects what it printed.
CommandResult RunMain(
    const char* program, const std::vector<std::string>& args,
    const std::function<int(const std::vector<std::string>&, std::ostream&, std::ostream&)>& main) {
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), args.begin(), args.end());
  std::ostringstream out, err;
  CommandResult r;
  r.status = main(argv, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace

CommandResult RunAgent(const std::vector<std::string>& args) {
  return RunMain("parc-agent", args,
                 [](const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
                   return agent::LinuxAgentMain(argv, out, err);
                 });
}

CommandResult RunCtl(const std::vector<std::string>& args) {
  return RunMain("parcctl", args, cli::CtlMain);
}

CommandResult RunBundleTool(const std::vector<std::string>& args) {
  return RunMain("parc-bundle", args, bundle::BundleMain);
}

namespace {

// A length-delimited field: tag, length, bytes.
std::string LengthDelimited(int field, const std::string& bytes) {
  std::string out(1, static_cast<char>(field << 3 | 2));
  for (uint64_t n = bytes.size();; n >>= 7) {
    out.push_back(static_cast<char>((n & 0x7F) | (n >= 0x80 ? 0x80 : 0)));
    if (n < 0x80) break;
  }
  return out + bytes;
}

}  // namespace

std::string ReportWithSoftwareBytes(parc::v1::ReportInventoryRequest report,
                                    const std::string& software_bytes) {
  parc::v1::Inventory inventory = report.inventory();
  inventory.clear_software();
  report.clear_inventory();
  return report.SerializeAsString() +
         LengthDelimited(
             parc::v1::ReportInventoryRequest::kInventoryFieldNumber,
             inventory.SerializeAsString() +
                 LengthDelimited(parc::v1::Inventory::kSoftwareFieldNumber, software_bytes));
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

void ChildProcess::Start(std::vector<std::string> argv, const std::string& output_path) {
  // Everything the child needs is ready before fork: between fork and exec, a child of this
  // multithreaded process may only make async-signal-safe calls (an allocation there can wait
  // forever on a lock another thread held at the fork).
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const char* out = output_path.empty() ? nullptr : output_path.c_str();
  pid_ = ::fork();
  if (pid_ == 0) {
    if (out != nullptr) {
      int fd = ::open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
}

bool ChildProcess::Exited() {
  if (pid_ <= 0) return true;
  if (::waitpid(pid_, nullptr, WNOHANG) != pid_) return false;
  pid_ = -1;
  return true;
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace parc::testing
