// Faults users meet: the server killed under load, a full disk, two servers started on one
// data directory, an agent whose state database is damaged. Real processes, real files.
#include <httplib.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/core/sqlite_state.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/inventory_util.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"
#include "server/artifact_http.h"
#include "server/artifact_store.h"
#include "tests/test_util.h"

namespace parc::testing {
namespace {

constexpr char kFermat[] = "0310036W";

std::string IntegrityOf(const std::string& db_path) {
  common::Database::Options o;
  o.read_only = true;
  auto db = common::Database::Open(db_path, o);
  if (!db.ok()) return std::string(db.status().message());
  auto check = (*db)->Prepare("PRAGMA integrity_check");
  if (!check.ok()) return std::string(check.status().message());
  auto row = check->Step();
  return row.ok() && *row ? check->Text(0) : "no answer";
}

// ---------------------------------------------------------------------------------------------
// The agent's state database damaged (a power cut on a worn SD card, a disk error).

class AgentFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<TestServer>(dir_.Sub("server"));
    server_->ImportFixtureEstablishments();
  }
  std::string Config(bool with_token) {
    std::string path = dir_.Sub(with_token ? "with-token.toml" : "without-token.toml");
    WriteFile(path, with_token ? absl::StrCat("server = \"", server_->address(), "\"\nca = \"",
                                              server_->ca_path(), "\"\nenrollment_token = \"",
                                              server_->CreateToken(kFermat), "\"\n")
                               : "");
    return path;
  }
  CommandResult RunOnce(const std::string& state, const std::string& config) {
    return RunAgent(
        {"run", "--once", "--root", DataPath("laptop"), "--state-dir", state, "--config", config});
  }
  static void Damage(const std::string& db) {
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f << std::string(4096, '\x5a');
  }

  TempDir dir_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(AgentFaultTest, DamagedStateIsMovedAsideAndTheDeviceEnrollsAgainAsItself) {
  const std::string config = Config(true);
  const std::string state = dir_.Sub("state");
  ASSERT_EQ(RunOnce(state, config).status, 0);
  auto devices = server_->ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  const std::string id = devices[0].id();

  Damage(state + "/agent.db");
  auto run = RunOnce(state, config);
  ASSERT_EQ(run.status, 0) << run.err;
  bool kept = false;
  for (const auto& entry : std::filesystem::directory_iterator(state)) {
    kept |= absl::StartsWith(entry.path().filename().string(), "agent.db.damaged-");
  }
  EXPECT_TRUE(kept) << "the damaged database is kept for diagnosis";
  // The same record, re-keyed: nothing duplicated, the device reports again.
  devices = server_->ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].id(), id);
  EXPECT_EQ(devices[0].enroll_count(), 2u);
  EXPECT_EQ(RunOnce(state, config).status, 0);
}

TEST_F(AgentFaultTest, DamagedStateWithoutATokenSaysWhatToDo) {
  const std::string state = dir_.Sub("state");
  auto enrolled =
      RunAgent({"enroll", "--root", DataPath("laptop"), "--state-dir", state, "--server",
                server_->address(), "--token", server_->CreateToken(kFermat), "--ca",
                server_->ca_path(), "--config", Config(false)});
  ASSERT_EQ(enrolled.status, 0) << enrolled.err;
  Damage(state + "/agent.db");
  auto run = RunOnce(state, Config(false));
  EXPECT_NE(run.status, 0);
  EXPECT_TRUE(absl::StrContains(run.err, "not enrolled: run `parc-agent enroll`")) << run.err;
  // A technician's enroll then finds the device again (its spare credential).
  auto again = RunAgent({"enroll", "--root", DataPath("laptop"), "--state-dir", state, "--server",
                         server_->address(), "--token", server_->CreateToken(kFermat), "--ca",
                         server_->ca_path(), "--config", Config(false)});
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(server_->ListDevices().size(), 1u);
}

// Runs stop on a thread and waits for it: when it has not returned within `seconds`, reports
// and ends the test binary at once, since what it stops cannot be destroyed while it runs (the
// test would otherwise hang until ctest's timeout, with nothing said).
void ReturnsWithinOrEnd(int seconds, const std::string& what, const std::function<void()>& stop) {
  std::promise<void> stopped;
  std::thread stopper([&] {
    stop();
    stopped.set_value();
  });
  if (stopped.get_future().wait_for(std::chrono::seconds(seconds)) != std::future_status::ready) {
    std::fprintf(stderr, "FAILED: %s did not return within %d s\n", what.c_str(), seconds);
    std::fflush(stderr);
    std::_Exit(1);
  }
  stopper.join();
}

// ---------------------------------------------------------------------------------------------
// Two servers, one data directory.

TEST(ServerFault, ASecondServerOnTheSameDataDirectoryOrPortIsRefused) {
  TempDir dir;
  TestServer first(dir.Sub("server"));
  server::ServerOptions o;
  o.data_dir = dir.Sub("server");
  o.listen = "127.0.0.1:0";
  auto second = server::Server::Start(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(second.status().message(),
                                "in use by another parc-server (pid " + std::to_string(::getpid())))
      << second.status();
  // Another directory, but the first server's ports: both refused (no SO_REUSEPORT sharing).
  o.data_dir = dir.Sub("other");
  o.listen = first.address();
  auto same_port = server::Server::Start(o);
  ASSERT_FALSE(same_port.ok());
  EXPECT_TRUE(absl::StrContains(same_port.status().message(), "cannot listen"))
      << same_port.status();
  o.data_dir = dir.Sub("third");
  o.listen = "127.0.0.1:0";
  o.artifact_listen = absl::StrCat("127.0.0.1:", first.server()->web_port());
  auto same_web_port = server::Server::Start(o);
  ASSERT_FALSE(same_web_port.ok());
  EXPECT_TRUE(absl::StrContains(same_web_port.status().message(), "cannot listen"))
      << same_web_port.status();
}

// A server whose start fails after its web server is up (its gRPC port taken) stops that web
// server at once: a stop that came before the listening thread had begun used to be lost, and
// the join waited for ever (one run in a few of the test above, on PostgreSQL).
TEST(ServerFault, AWebServerStoppedAsSoonAsItStartsStops) {
  TempDir dir;
  auto artifacts = server::ArtifactStore::Open(dir.Sub("artifacts"));
  ASSERT_TRUE(artifacts.ok()) << artifacts.status();
  for (int i = 0; i < 50; ++i) {
    server::ArtifactHttpServer::Options o;
    o.host = "127.0.0.1";
    auto http = server::ArtifactHttpServer::Start(artifacts->get(), o);
    ASSERT_TRUE(http.ok()) << http.status();
    ReturnsWithinOrEnd(10, absl::StrCat("the web server's Stop (start ", i, ")"),
                       [&] { (*http)->Stop(); });
  }
}

// A server stops however busy its periodic jobs are: a timer that fires just as Shutdown cancels
// it must not arm itself again (which kept the jobs thread, and so Shutdown, waiting forever).
TEST(ServerFault, ShutdownReturnsWhileItsPeriodicJobsFireContinuously) {
  TempDir dir;
  for (int i = 0; i < 20; ++i) {
    auto server = std::make_unique<TestServer>(dir.Sub("server"), 0, [](server::ServerOptions& o) {
      o.rollout_interval = absl::ZeroDuration();  // always due: the race at every stop
      o.purge_interval = absl::ZeroDuration();
    });
    absl::SleepFor(absl::Milliseconds(i % 5));
    ReturnsWithinOrEnd(20, absl::StrCat("Server::Shutdown (stop ", i, ")"),
                       [&] { server->Stop(); });
  }
}

// ---------------------------------------------------------------------------------------------
// A full disk.

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The SQLite file's disk; PostgreSQL's storage failures are PostgresFault's.
    if (TestOnPostgres()) GTEST_SKIP() << "SQLite disk test";
    data_ = dir_.Sub("server");
    ASSERT_TRUE(common::MakeDirs(data_, 0700).ok());
    if (::geteuid() != 0 || ::mount("tmpfs", data_.c_str(), "tmpfs", 0, "size=24m") != 0) {
      GTEST_SKIP() << "needs root to mount a small tmpfs (the disk that fills up)";
    }
    mounted_ = true;
  }
  void TearDown() override {
    server_.reset();
    if (mounted_) ::umount2(data_.c_str(), MNT_DETACH);
  }
  // Fills the file system: returns the filler's path.
  std::string Fill() {
    std::string filler = data_ + "/filler";
    std::ofstream f(filler, std::ios::binary);
    std::string mib(1 << 16, 'f');
    while (f.write(mib.data(), static_cast<std::streamsize>(mib.size())) && f.flush()) {
    }
    return filler;
  }
  int Healthz() {
    httplib::SSLClient c("127.0.0.1", server_->server()->web_port());
    c.enable_server_certificate_verification(false);
    auto r = c.Get("/healthz");
    return r ? r->status : -1;
  }

  TempDir dir_;
  std::string data_;
  bool mounted_ = false;
  std::unique_ptr<TestServer> server_;
};

TEST_F(DiskFullTest, WritesFailClearlyNothingIsLostAndTheServerRecovers) {
  server_ = std::make_unique<TestServer>(data_, 0, [](server::ServerOptions& o) {
    o.artifact_listen = "127.0.0.1:0";
    o.agent.checkin_write_behind = true;
  });
  server_->ImportFixtureEstablishments();
  WriteFile(dir_.Sub("none.toml"), "");
  const std::string state = dir_.Sub("agent");
  auto enrolled =
      RunAgent({"enroll", "--root", DataPath("laptop"), "--state-dir", state, "--server",
                server_->address(), "--token", server_->CreateToken(kFermat), "--ca",
                server_->ca_path(), "--config", dir_.Sub("none.toml")});
  ASSERT_EQ(enrolled.status, 0) << enrolled.err;
  ASSERT_EQ(Healthz(), 200);

  const std::string filler = Fill();
  // The inventory cannot be stored: the agent hears "storage unavailable" and keeps it.
  auto run = RunAgent({"run", "--once", "--root", DataPath("laptop"), "--state-dir", state,
                       "--config", dir_.Sub("none.toml")});
  EXPECT_NE(run.status, 0);
  EXPECT_TRUE(absl::StrContains(run.err, "storage unavailable")) << run.err;
  EXPECT_FALSE(absl::StrContains(run.err, "sqlite")) << "no internals reach clients: " << run.err;
  EXPECT_FALSE(absl::StrContains(run.err, data_)) << run.err;
  auto status = RunAgent({"status", "--root", DataPath("laptop"), "--state-dir", state, "--config",
                          dir_.Sub("none.toml")});
  EXPECT_TRUE(absl::StrContains(status.out, "Queued reports  1 (0 dropped")) << status.out;
  // An operator's write fails the same way, and the server says it is unhealthy.
  parc::v1::CreateEnrollmentTokenRequest token;
  token.set_uai(kFermat);
  parc::v1::CreateEnrollmentTokenResponse created;
  grpc::Status s =
      server_->AdminStub()->CreateEnrollmentToken(server_->AdminContext().get(), token, &created);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(Healthz(), 503);
  EXPECT_FALSE(server_->server()->store()->Writable());
  EXPECT_GE(server_->server()->metrics()->StorageFailures(), 1u);

  // Space again: the next cycle delivers what was kept, the server is healthy.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  run = RunAgent({"run", "--once", "--root", DataPath("laptop"), "--state-dir", state, "--config",
                  dir_.Sub("none.toml")});
  EXPECT_EQ(run.status, 0) << run.err;
  status = RunAgent({"status", "--root", DataPath("laptop"), "--state-dir", state, "--config",
                     dir_.Sub("none.toml")});
  EXPECT_TRUE(absl::StrContains(status.out, "Queued reports  0 (0 dropped")) << status.out;
  auto devices = server_->ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_GT(devices[0].software_packages(), 0u);
  EXPECT_FALSE(devices[0].inventory_hash().empty());
  EXPECT_EQ(Healthz(), 200);
  EXPECT_EQ(IntegrityOf(data_ + "/parc.db"), "ok");
}

// ---------------------------------------------------------------------------------------------
// SIGKILL of the server while agents and operators write.

class ServerProcess {
 public:
  explicit ServerProcess(std::string data) : data_(std::move(data)) {}
  ~ServerProcess() { Kill(); }
  void Start() {
    const std::string port_file = data_ + ".port";
    (void)::unlink(port_file.c_str());
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(PARC_SERVER_BIN, PARC_SERVER_BIN, "--data-dir", data_.c_str(), "--listen",
              "127.0.0.1:0", "--artifact-listen", "127.0.0.1:0", "--port-file", port_file.c_str(),
              "--log-level", "error", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 200 && port_.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto text = common::ReadFile(port_file, 64);
      if (text.ok() && !text->empty()) port_ = std::string(absl::StripAsciiWhitespace(*text));
    }
    ASSERT_FALSE(port_.empty()) << "parc-server did not start";
    common::ChannelOptions o;
    o.target = "127.0.0.1:" + port_;
    o.ca_pem = ReadFileOrDie(data_ + "/tls/ca.pem");
    channel_ = *common::MakeChannel(o);
    admin_token_ = std::string(absl::StripAsciiWhitespace(ReadFileOrDie(data_ + "/admin.token")));
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    port_.clear();
  }
  std::unique_ptr<parc::v1::AgentService::Stub> Agent() const {
    return parc::v1::AgentService::NewStub(channel_);
  }
  std::unique_ptr<parc::v1::AdminService::Stub> Admin() const {
    return parc::v1::AdminService::NewStub(channel_);
  }
  const std::string& admin_token() const { return admin_token_; }

 private:
  std::string data_;
  pid_t pid_ = -1;
  std::string port_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string admin_token_;
};

struct Acknowledged {
  std::mutex mu;
  // device id -> (credential, inventory hash acknowledged, or "")
  std::map<std::string, std::pair<std::string, std::string>> devices;
  std::vector<std::string> tokens;
};

TEST(ServerFault, KilledUnderLoadItLosesNothingItAcknowledged) {
  TempDir dir;
  const std::string data = dir.Sub("server");
  ServerProcess server(data);
  server.Start();
  {
    parc::v1::ImportCsvRequest import;
    import.set_content(ReadFileOrDie(DataPath("annuaire-occitanie.csv")));
    parc::v1::ImportEstablishmentsResponse imported;
    ASSERT_TRUE(server.Admin()
                    ->ImportEstablishments(TestServer::Context(server.admin_token()).get(), import,
                                           &imported)
                    .ok());
  }
  std::string token;
  {
    parc::v1::CreateEnrollmentTokenRequest r;
    r.set_uai(kFermat);
    parc::v1::CreateEnrollmentTokenResponse created;
    ASSERT_TRUE(
        server.Admin()
            ->CreateEnrollmentToken(TestServer::Context(server.admin_token()).get(), r, &created)
            .ok());
    token = created.token();
  }
  Acknowledged acked;
  std::mt19937 random(20261129);
  std::atomic<int> serial{0};
  for (int round = 0; round < 3; ++round) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w) {
      writers.emplace_back([&] {
        auto agent = server.Agent();
        while (!stop) {
          parc::v1::EnrollRequest e;
          e.set_token(token);
          const std::string sn = absl::StrCat("KILL", serial++);
          e.mutable_identity()->set_serial(sn);
          e.mutable_identity()->set_product_uuid(
              absl::StrCat("4c4c4544-0000-0000-0000-", common::Sha256Hex(sn).substr(0, 12)));
          parc::v1::EnrollResponse enrolled;
          if (!agent->Enroll(TestServer::Context().get(), e, &enrolled).ok()) continue;
          const std::string credential =
              absl::StrCat(enrolled.device_id(), ".", enrolled.device_secret());
          {
            std::lock_guard<std::mutex> lock(acked.mu);
            acked.devices[enrolled.device_id()] = {credential, ""};
          }
          parc::v1::ReportInventoryRequest inv;
          auto* hw = inv.mutable_inventory()->mutable_hardware();
          hw->set_model("Kill test");
          hw->set_serial(sn);
          auto* p = inv.mutable_inventory()->mutable_software()->add_packages();
          p->set_name("pkg");
          p->set_version(sn);
          inv.set_software_hash(common::SoftwareHash(inv.inventory().software()));
          inv.set_inventory_hash(common::InventoryHash(*hw, inv.software_hash()));
          parc::v1::ReportInventoryResponse ack;
          if (agent->ReportInventory(TestServer::Context(credential).get(), inv, &ack).ok()) {
            std::lock_guard<std::mutex> lock(acked.mu);
            acked.devices[enrolled.device_id()].second = inv.inventory_hash();
          }
        }
      });
    }
    writers.emplace_back([&] {
      auto admin = server.Admin();
      while (!stop) {
        parc::v1::CreateEnrollmentTokenRequest r;
        r.set_uai(kFermat);
        r.set_note("kill test");
        parc::v1::CreateEnrollmentTokenResponse created;
        if (admin
                ->CreateEnrollmentToken(TestServer::Context(server.admin_token()).get(), r,
                                        &created)
                .ok()) {
          std::lock_guard<std::mutex> lock(acked.mu);
          acked.tokens.push_back(created.info().id());
        }
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + random() % 700));
    server.Kill();
    stop = true;
    for (auto& t : writers) t.join();
    server.Start();
  }

  // Everything acknowledged is there, and the database is sound.
  std::lock_guard<std::mutex> lock(acked.mu);
  ASSERT_GT(acked.devices.size(), 10u);
  auto admin = server.Admin();
  auto agent = server.Agent();
  size_t inventories = 0;
  for (const auto& [id, known] : acked.devices) {
    parc::v1::GetDeviceRequest r;
    r.set_device(id);
    parc::v1::GetDeviceResponse d;
    grpc::Status s = admin->GetDevice(TestServer::Context(server.admin_token()).get(), r, &d);
    ASSERT_TRUE(s.ok()) << id << ": " << s.error_message();
    parc::v1::CheckInRequest c;
    parc::v1::CheckInResponse answer;
    EXPECT_TRUE(agent->CheckIn(TestServer::Context(known.first).get(), c, &answer).ok()) << id;
    if (!known.second.empty()) {
      ++inventories;
      EXPECT_EQ(d.device().inventory_hash(), known.second) << id;
    }
  }
  EXPECT_GT(inventories, 5u);
  parc::v1::ListEnrollmentTokensRequest all;
  all.set_include_inactive(true);
  parc::v1::ListEnrollmentTokensResponse tokens;
  ASSERT_TRUE(
      admin->ListEnrollmentTokens(TestServer::Context(server.admin_token()).get(), all, &tokens)
          .ok());
  std::set<std::string> stored;
  for (const auto& t : tokens.tokens()) stored.insert(t.id());
  for (const auto& id : acked.tokens) EXPECT_TRUE(stored.count(id)) << id;
  server.Kill();
  EXPECT_EQ(IntegrityOf(data + "/parc.db"), "ok");
}

}  // namespace
}  // namespace parc::testing
