// MCNL provisioning end to end: parc-bundle builds and signs, parcctl publishes and rolls out,
// agents download over HTTPS with libcurl and install; plus the agent's refusals, resume,
// crash recovery, window and rate cap.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/core/deployer.h"
#include "agent/core/sqlite_state.h"
#include "agent/linux/curl_fetcher.h"
#include "agent/linux/packages.h"
#include "agent/linux/process_runner.h"
#include "common/bundle_trust.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "common/http_listen.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/artifact_http.h"
#include "server/migrate.h"
#include "server/rollout_plan.h"
#include "tests/postgres_server.h"
#include "tests/provisioning_fixture.h"
#include "tests/test_util.h"
#include "tools/bundle/bundle_tool.h"

namespace parc::testing {
namespace {

agent::PosixProcessRunner& PosixRunner() {
  static agent::PosixProcessRunner runner;
  return runner;
}

TEST_F(ProvisioningTest, TwoWaveRolloutReachesEveryDevice) {
  std::string bundle = BuildBundle(
      "2026.1", 1,
      ArchivePackage("geogebra", "6.0.820", "GeoGebra") +
          absl::StrCat("[[packages]]\nid = \"notes\"\nversion = \"1.0\"\nartifact = \"",
                       MakeArchive(dir_.path(), "notes", "n.txt", "x"),
                       "\"\ntype = \"command\"\ninstall = [\"sh\", \"-c\", \"touch ", install_root_,
                       "/notes-$0\", \"{version}\"]\ndetect = [\"test\", \"-f\", \"", install_root_,
                       "/notes-{version}\"]\n"));
  Publish(bundle);
  Device laptop = EnrollDevice("laptop", "laptop", kFermat);
  Device tablet = EnrollDevice("tablet", "tablet", kJoffre);
  std::string id = StartRollout(
      "2026.1", {"--target", "uai:0310036W,0340001S", "--pilot", kFermat, "--waves", "100"});
  EXPECT_EQ(last_created_establishments_, 2u);  // what `rollouts create` reports
  auto status = Status(id);
  ASSERT_EQ(status.rollout().wave_count(), 2u);
  EXPECT_EQ(status.waves(0).establishments(0).uai(), kFermat);

  // The second wave has not started: the tablet gets nothing yet.
  ASSERT_EQ(RunOnce(tablet).status, 0);
  EXPECT_FALSE(common::PathExists(install_root_ + "/geogebra"));
  // The pilot installs; its wave reaches 100% and the next one starts.
  auto r = RunOnce(laptop);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ReadFileOrDie(install_root_ + "/geogebra/current/app.txt"), "GeoGebra");
  EXPECT_TRUE(common::PathExists(install_root_ + "/notes-1.0"));
  for (int i = 0; i < 100 && Status(id).rollout().current_wave() < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(Status(id).rollout().current_wave(), 1u);
  ASSERT_EQ(RunOnce(tablet).status, 0);
  status = WaitForState(id, "completed");
  EXPECT_EQ(status.rollout().state(), "completed");
  EXPECT_EQ(status.total().targeted(), 2u);
  EXPECT_EQ(status.total().installed(), 2u);
  EXPECT_EQ(status.total().failed(), 0u);

  auto bundles = RunAgent({"bundles", "--state-dir", laptop.state, "--config", laptop.config});
  EXPECT_TRUE(absl::StrContains(bundles.out, "mcnl@2026.1")) << bundles.out;
  EXPECT_TRUE(absl::StrContains(bundles.out, "installed")) << bundles.out;
  auto text = Ctl({"rollouts", "status", id});
  EXPECT_TRUE(absl::StrContains(text.out, "2 of 2 devices installed (100%)")) << text.out;
}

// A server moved from its SQLite file to PostgreSQL mid-rollout (`parc-server migrate`): the
// counts match on both sides, the rollout's status is the same, and the agents carry on with
// the credentials they hold.
TEST_F(ProvisioningTest, MigratedToPostgresTheRolloutCarriesOnWithoutReenrolling) {
  if (TestOnPostgres()) GTEST_SKIP() << "starts from the SQLite file";
  Publish(BuildBundle("2026.1", 1, ArchivePackage("geogebra", "6.0.820", "GeoGebra")));
  Device laptop = EnrollDevice("laptop", "laptop", kFermat);
  Device tablet = EnrollDevice("tablet", "tablet", kJoffre);
  std::string id = StartRollout(
      "2026.1", {"--target", "uai:0310036W,0340001S", "--pilot", kFermat, "--waves", "100"});
  ASSERT_EQ(RunOnce(laptop).status, 0);
  for (int i = 0; i < 100 && Status(id).rollout().current_wave() < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  const parc::v1::RolloutStatus before = Status(id);
  ASSERT_EQ(before.rollout().current_wave(), 1u);
  ASSERT_EQ(before.total().installed(), 1u);

  const int port = server_->port();
  server_.reset();
  auto database = PostgresServer::Shared().CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  auto tables = server::MigrateSqliteToPostgres(dir_.Sub("server/parc.db"), *database,
                                                dir_.Sub("server/artifacts"));
  ASSERT_TRUE(tables.ok()) << tables.status();
  std::map<std::string, int64_t> copied;
  for (const auto& t : *tables) {
    EXPECT_EQ(t.source, t.target) << t.table;
    copied[t.table] = t.target;
  }
  EXPECT_EQ(copied["devices"], 2);
  EXPECT_EQ(copied["deployments"], 1);
  EXPECT_EQ(copied["rollout_tally (devices)"], 1);
  EXPECT_GT(copied["audit"], 0);
  EXPECT_EQ(copied["artifacts"], 1);
  // The artifacts are in the database now: a node without them on its disk serves them.
  ASSERT_EQ(std::system(("rm -rf " + dir_.Sub("server/artifacts")).c_str()), 0);
  // Once only: the target now holds data.
  auto again = server::MigrateSqliteToPostgres(dir_.Sub("server/parc.db"), *database);
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status())) << again.status();

  server_ = std::make_unique<TestServer>(dir_.Sub("server"), port, [&](server::ServerOptions& o) {
    o.database = *database;
    o.publisher_keys = {dir_.Sub("toulouse.pub")};
    o.artifact_listen = "127.0.0.1:0";
    o.rollout_interval = absl::Milliseconds(200);
  });
  ASSERT_STREQ(server_->server()->store()->engine_name(), "postgresql");
  const parc::v1::RolloutStatus after = Status(id);
  EXPECT_EQ(after.rollout().current_wave(), 1u);
  EXPECT_EQ(after.total().targeted(), before.total().targeted());
  EXPECT_EQ(after.total().installed(), before.total().installed());
  // The tablet, enrolled before the move, installs without enrolling again.
  auto r = RunOnce(tablet);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(WaitForState(id, "completed").total().installed(), 2u);
}

TEST_F(ProvisioningTest, TamperedArtifactIsRefusedAndCountsAsFailure) {
  std::string bundle = BuildBundle("2026.1", 1, ArchivePackage("geogebra", "6.0.820", "GeoGebra"));
  Publish(bundle);
  // One byte flipped in the artifact the server holds (same size).
  parc::v1::SignedManifest sm = *bundle::ReadBundleDir(bundle);
  parc::v1::BundleManifest m;
  ASSERT_TRUE(m.ParseFromString(sm.manifest()));
  std::string stored = server_->server()->artifacts()->PathOf(m.packages(0).artifact().sha256());
  std::string bytes = ReadFileOrDie(stored);
  bytes[bytes.size() / 2] ^= 0x01;
  WriteFile(stored, bytes);

  Device laptop = EnrollDevice("laptop", "laptop", kFermat);
  std::string id = StartRollout("2026.1", {"--target", "uai:0310036W", "--max-failures", "50%"});
  ASSERT_EQ(RunOnce(laptop).status, 0);
  EXPECT_FALSE(common::PathExists(install_root_ + "/geogebra/6.0.820"));
  auto bundles = RunAgent({"bundles", "--state-dir", laptop.state, "--config", laptop.config});
  EXPECT_TRUE(absl::StrContains(bundles.out, "artifact_hash_mismatch")) << bundles.out;
  auto status = WaitForState(id, "paused");
  EXPECT_EQ(status.total().failed(), 1u);
  ASSERT_GT(status.total().top_errors_size(), 0);
  EXPECT_EQ(status.total().top_errors(0).reason(), "artifact_hash_mismatch");
  EXPECT_TRUE(absl::StrContains(status.rollout().state_reason(), "artifact_hash_mismatch"))
      << status.rollout().state_reason();
}

TEST_F(ProvisioningTest, FailingInstallIsReportedAndPausesTheRollout) {
  std::string bundle = BuildBundle(
      "2026.1", 1,
      absl::StrCat("[[packages]]\nid = \"broken\"\nversion = \"1\"\nartifact = \"",
                   MakeArchive(dir_.path(), "b", "b.txt", "b"),
                   "\"\ntype = \"command\"\ninstall = [\"sh\", \"-c\", \"echo preparing; echo "
                   "'disk full' >&2; exit 3\"]\n"));
  Publish(bundle);
  Device laptop = EnrollDevice("laptop", "laptop", kFermat);
  std::string id = StartRollout("2026.1", {"--target", "uai:0310036W", "--max-failures", "1"});
  // Three attempts, then the package is failed for good.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(RunOnce(laptop).status, 0);
  auto status = WaitForState(id, "paused");
  EXPECT_EQ(status.rollout().state(), "paused");
  EXPECT_EQ(status.total().failed(), 1u);
  ASSERT_GT(status.total().top_errors_size(), 0);
  const auto& e = status.total().top_errors(0);
  EXPECT_EQ(e.reason(), "install_failed");
  EXPECT_TRUE(absl::StrContains(e.example(), "exit 3")) << e.example();
  EXPECT_TRUE(absl::StrContains(e.example(), "disk full")) << e.example();
  EXPECT_TRUE(absl::StrContains(status.rollout().state_reason(), "paused automatically"));
  auto bundles = RunAgent({"bundles", "--state-dir", laptop.state, "--config", laptop.config});
  EXPECT_TRUE(absl::StrContains(bundles.out, "exit 3, 3 attempt(s)")) << bundles.out;
}

TEST_F(ProvisioningTest, NextVersionMovesOnlyChangedArtifactsAndRemovesDroppedPackages) {
  std::string v1;
  for (int i = 1; i <= 5; ++i) {
    v1 +=
        ArchivePackage(absl::StrCat("app", i), "1", RandomBytes(200000, static_cast<uint32_t>(i)));
  }
  Publish(BuildBundle("2026.1", 1, v1));
  Device laptop = EnrollDevice("laptop", "laptop", kFermat);
  std::string first = StartRollout("2026.1", {"--target", "uai:0310036W"});
  ASSERT_EQ(RunOnce(laptop).status, 0);
  ASSERT_EQ(WaitForState(first, "completed").total().installed(), 1u);
  for (int i = 1; i <= 5; ++i) {
    EXPECT_TRUE(common::PathExists(absl::StrCat(install_root_, "/app", i, "/current/app.txt")));
  }
  const uint64_t served_v1 = server_->server()->artifact_bytes_served();

  // Next year: app1..app3 change, app4 stays, app5 is dropped.
  std::string v2;
  uint64_t changed_bytes = 0;
  for (int i = 1; i <= 3; ++i) {
    v2 += ArchivePackage(absl::StrCat("app", i), "2",
                         RandomBytes(200000, static_cast<uint32_t>(100 + i)));
  }
  v2 += ArchivePackage("app4", "1", RandomBytes(200000, 4));
  std::string bundle2 = BuildBundle("2027.1", 2, v2);
  parc::v1::BundleManifest m2;
  ASSERT_TRUE(m2.ParseFromString(bundle::ReadBundleDir(bundle2)->manifest()));
  for (int i = 0; i < 3; ++i) changed_bytes += m2.packages(i).artifact().size();
  auto published = Ctl({"bundles", "publish", bundle2});
  ASSERT_EQ(published.status, 0) << published.err;
  EXPECT_TRUE(absl::StrContains(published.out, "Uploaded 3 of 4 artifacts")) << published.out;
  std::string second = StartRollout("2027.1", {"--target", "uai:0310036W"});
  ASSERT_EQ(RunOnce(laptop).status, 0);
  EXPECT_EQ(WaitForState(second, "completed").total().installed(), 1u);

  // Only the three changed artifacts crossed the network.
  EXPECT_EQ(server_->server()->artifact_bytes_served() - served_v1, changed_bytes);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(ReadFileOrDie(absl::StrCat(install_root_, "/app", i, "/current/app.txt")).size(),
              200000u);
    EXPECT_TRUE(common::PathExists(absl::StrCat(install_root_, "/app", i, "/2")));
  }
  EXPECT_TRUE(common::PathExists(install_root_ + "/app4/1"));
  EXPECT_FALSE(common::PathExists(install_root_ + "/app5/1"));  // uninstalled
  auto bundles = RunAgent({"bundles", "--state-dir", laptop.state, "--config", laptop.config});
  EXPECT_TRUE(absl::StrContains(bundles.out, "mcnl@2027.1")) << bundles.out;
  EXPECT_FALSE(absl::StrContains(bundles.out, "app5")) << bundles.out;
}

TEST_F(ProvisioningTest, AgentKilledDuringInstallEndsInstalledExactlyOnce) {
  std::string log = install_root_ + "/install.log";
  std::string mark = install_root_ + "/slow.done";
  std::string bundle = BuildBundle(
      "2026.1", 1,
      absl::StrCat("[[packages]]\nid = \"slow\"\nversion = \"1\"\nartifact = \"",
                   MakeArchive(dir_.path(), "slow", "s.txt", "s"),
                   "\"\ntype = \"command\"\ninstall = [\"sh\", \"-c\", \"echo started >> ", log,
                   "; sleep 3; echo finished >> ", log, "; touch ", mark,
                   "\"]\ndetect = [\"test\", \"-f\", \"", mark, "\"]\n"));
  Publish(bundle);
  Device laptop = EnrollDevice("laptop", "laptop", kFermat);
  std::string id = StartRollout("2026.1", {"--target", "uai:0310036W"});

  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int fd = ::open("/dev/null", O_WRONLY);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(PARC_AGENT_BIN, "parc-agent", "run", "--once", "--root", laptop.root.c_str(),
            "--state-dir", laptop.state.c_str(), "--config", laptop.config.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Started: the line written, not only the file created (the shell's >> creates it first).
  auto started = [&]() {
    auto text = common::ReadFile(log);
    return text.ok() && *text == "started\n";
  };
  for (int i = 0; i < 200 && !started(); ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(started()) << "the install never started";
  ::kill(pid, SIGKILL);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  // The install command died with the agent: it never finishes on its own.
  absl::SleepFor(absl::Seconds(4));
  EXPECT_EQ(ReadFileOrDie(log), "started\n");
  EXPECT_FALSE(common::PathExists(mark));

  auto r = RunOnce(laptop);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ReadFileOrDie(log), "started\nstarted\nfinished\n");
  EXPECT_TRUE(common::PathExists(mark));
  // Later cycles find it installed and never run it again.
  ASSERT_EQ(RunOnce(laptop).status, 0);
  EXPECT_EQ(ReadFileOrDie(log), "started\nstarted\nfinished\n");
  EXPECT_EQ(WaitForState(id, "completed").total().installed(), 1u);
}

TEST_F(ProvisioningTest, ServerRefusesManifestsItsKeysDidNotSign) {
  std::string bundle = BuildBundle("2026.1", 1, ArchivePackage("a", "1", "a"), "montpellier");
  auto r = Ctl({"bundles", "publish", bundle});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "unknown_key")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "keys this server does not trust")) << r.err;
  Publish(BuildBundle("2026.2", 2, ArchivePackage("a", "1", "a")));
  auto older = Ctl({"bundles", "publish", BuildBundle("2026.0", 1, ArchivePackage("a", "1", "a"))});
  EXPECT_EQ(older.status, 1);
  EXPECT_TRUE(absl::StrContains(older.err, "not above the latest")) << older.err;
}

// ---------------------------------------------------------------------------------------------
// The agent's deployer against an artifact server, with a fake clock.

class DeployerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = server::ArtifactStore::Open(dir_.Sub("artifacts"));
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    server::ArtifactHttpServer::Options o;
    o.host = "127.0.0.1";
    auto http = server::ArtifactHttpServer::Start(store_.get(), o);
    ASSERT_TRUE(http.ok()) << http.status();
    http_ = std::move(*http);
    for (const char* name : {"toulouse", "montpellier", "stranger"}) {
      auto pair = common::SigningKey::Generate();
      std::string path = dir_.Sub(std::string(name) + ".key");
      WriteFile(path, pair->first);
      keys_.push_back(*common::SigningKey::Load(path));
    }
    auto state = agent::SqliteAgentState::Open(dir_.Sub("state"));
    ASSERT_TRUE(state.ok());
    state_ = std::move(*state);
    options_.keys = {keys_[0].public_key(), keys_[1].public_key()};
    options_.threshold = 1;
    options_.cache_dir = dir_.Sub("cache");
    options_.allow_http = true;  // the artifact server of these tests is plaintext, on loopback
    options_.time_zone = absl::UTCTimeZone();
    options_.kind = parc::v1::DEVICE_KIND_LAPTOP;
    clock_.Set(absl::FromCivil(absl::CivilSecond(2026, 11, 30, 10, 0, 0), absl::UTCTimeZone()));
  }

  // A manifest with one archive package whose artifact is in the store.
  parc::v1::BundleManifest Manifest(uint64_t sequence, const std::string& content) {
    std::string archive = MakeArchive(dir_.path(), absl::StrCat("pkg", sequence), "f", content);
    std::string bytes = ReadFileOrDie(archive);
    std::string sha = common::Sha256Hex(bytes);
    auto up = store_->BeginUpload(sha, bytes.size());
    if (up.ok()) {
      EXPECT_TRUE((*up)->Append(bytes).ok());
      EXPECT_TRUE((*up)->Commit().ok());
    }
    parc::v1::BundleManifest m;
    m.set_name("mcnl");
    m.set_version(absl::StrCat("v", sequence));
    m.set_sequence(sequence);
    m.set_expires_at(absl::ToUnixSeconds(clock_.Now() + absl::Hours(24 * 30)));
    auto* p = m.add_packages();
    p->set_id("app");
    p->set_version(absl::StrCat(sequence));
    p->mutable_artifact()->set_sha256(sha);
    p->mutable_artifact()->set_size(bytes.size());
    p->mutable_archive()->set_target_dir(dir_.Sub("installed/app"));
    return m;
  }
  void Assign(const parc::v1::BundleManifest& m, std::vector<const common::SigningKey*> signers,
              parc::v1::DownloadWindow window = {}) {
    parc::v1::Assignment a;
    a.set_rollout_id("r1");
    a.mutable_bundle()->set_manifest(m.SerializeAsString());
    for (const auto* k : signers) {
      auto* s = a.mutable_bundle()->add_signatures();
      s->set_key_id(k->public_key().key_id);
      s->set_signature(*k->Sign(a.mutable_bundle()->manifest()));
    }
    a.set_artifact_base_url(absl::StrCat("http://127.0.0.1:", http_->port(), "/artifacts"));
    *a.mutable_window() = window;
    ASSERT_TRUE(state_->SaveAssignment(a).ok());
  }
  agent::DeployOutcome Run() {
    agent::LinuxPackages packages(&PosixRunner(), agent::InstallerOptions());
    agent::CurlFetcher fetcher;
    agent::Deployer d(state_.get(), &clock_, options_, &packages, &fetcher);
    return d.Run();
  }
  // The latest queued deployment report.
  parc::v1::DeploymentReport LastReport() {
    auto queued = state_->QueuedOfKind("deployment");
    EXPECT_TRUE(queued.ok() && !queued->empty());
    parc::v1::DeploymentReport r;
    if (queued.ok() && !queued->empty()) (void)r.ParseFromString(queued->back().payload);
    return r;
  }
  bool Installed(uint64_t sequence) {
    return common::PathExists(dir_.Sub(absl::StrCat("installed/app/", sequence)));
  }

  TempDir dir_;
  std::unique_ptr<server::ArtifactStore> store_;
  std::unique_ptr<server::ArtifactHttpServer> http_;
  std::vector<common::SigningKey> keys_;
  std::unique_ptr<agent::AgentState> state_;
  agent::DeployerOptions options_;
  common::FakeClock clock_;
};

TEST_F(DeployerTest, RefusesEachUntrustedManifestWithItsOwnReason) {
  auto m = Manifest(5, "five");
  WriteFile(dir_.Sub("empty.toml"), "");
  auto refused = [&](const char* reason) {
    Run();
    auto report = LastReport();
    EXPECT_EQ(report.state(), parc::v1::DEPLOYMENT_STATE_REFUSED) << reason;
    EXPECT_EQ(report.reason(), reason);
    EXPECT_FALSE(Installed(5)) << reason;
    EXPECT_EQ(http_->bytes_served(), 0u) << reason;
    // The technician at the device sees the refusal and why.
    auto shown =
        RunAgent({"bundles", "--state-dir", dir_.Sub("state"), "--config", dir_.Sub("empty.toml")});
    EXPECT_TRUE(absl::StrContains(shown.out, absl::StrCat("REFUSED mcnl@v5 (rollout r1")))
        << shown.out;
    EXPECT_TRUE(absl::StrContains(shown.out, reason)) << shown.out;
    (void)state_->Set("refused_manifest", "");  // the next case is refused afresh
  };
  Assign(m, {&keys_[2]});
  refused(common::kReasonUnknownKey);
  Assign(m, {});
  refused(common::kReasonUnsigned);
  {
    Assign(m, {&keys_[0]});
    parc::v1::Assignment a = **state_->LoadAssignment();
    std::string bytes = a.bundle().manifest();
    bytes[bytes.size() - 3] ^= 1;
    a.mutable_bundle()->set_manifest(bytes);
    ASSERT_TRUE(state_->SaveAssignment(a).ok());
    refused(common::kReasonBadSignature);
  }
  options_.threshold = 2;
  Assign(m, {&keys_[0]});
  refused(common::kReasonBelowThreshold);
  options_.threshold = 1;
  auto expired = m;
  expired.set_expires_at(absl::ToUnixSeconds(clock_.Now() - absl::Hours(1)));
  Assign(expired, {&keys_[0]});
  refused(common::kReasonExpired);
  // Install sequence 5, then an older sequence is a rollback.
  options_.threshold = 2;
  Assign(m, {&keys_[0], &keys_[1]});
  Run();
  ASSERT_EQ(LastReport().state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  ASSERT_TRUE(Installed(5));
  const uint64_t served = http_->bytes_served();
  auto older = Manifest(4, "four");
  Assign(older, {&keys_[0], &keys_[1]});
  Run();
  EXPECT_EQ(LastReport().state(), parc::v1::DEPLOYMENT_STATE_REFUSED);
  EXPECT_EQ(LastReport().reason(), common::kReasonRollback);
  EXPECT_FALSE(Installed(4));
  EXPECT_EQ(http_->bytes_served(), served);
}

TEST_F(DeployerTest, DownloadsOnlyInsideTheWindow) {
  auto m = Manifest(1, RandomBytes(100000, 1));
  parc::v1::DownloadWindow window;
  window.set_start_minute(18 * 60);
  window.set_end_minute(7 * 60);
  Assign(m, {&keys_[0]}, window);
  auto outcome = Run();  // 10:00: outside the window
  EXPECT_TRUE(outcome.waiting_for_window);
  EXPECT_EQ(outcome.window_opens_in, absl::Hours(8));
  EXPECT_EQ(http_->bytes_served(), 0u);
  EXPECT_EQ(LastReport().packages(0).state(), parc::v1::PACKAGE_STATE_WAITING);
  clock_.Advance(absl::Hours(9));  // 19:00
  outcome = Run();
  EXPECT_FALSE(outcome.waiting_for_window);
  EXPECT_GT(http_->bytes_served(), 0u);
  EXPECT_EQ(LastReport().state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  EXPECT_TRUE(Installed(1));
}

TEST_F(DeployerTest, ACachedArtifactIsCheckedAgainBeforeItIsInstalled) {
  const std::string content = RandomBytes(100000, 7);
  auto m = Manifest(1, content);
  Assign(m, {&keys_[0]});
  // The first install fails after the download: the install directory's parent is a file.
  WriteFile(dir_.Sub("installed"), "not a directory");
  Run();
  EXPECT_EQ(LastReport().packages(0).state(), parc::v1::PACKAGE_STATE_FAILED);
  const std::string cached = dir_.Sub("cache/" + m.packages(0).artifact().sha256());
  ASSERT_TRUE(common::PathExists(cached));
  // The cached file is swapped before the next attempt.
  std::string swapped = ReadFileOrDie(cached);
  swapped.replace(swapped.size() / 2, 5, "EVIL!");
  WriteFile(cached, swapped);
  ASSERT_EQ(::unlink(dir_.Sub("installed").c_str()), 0);
  const uint64_t served = http_->bytes_served();
  Run();
  EXPECT_EQ(LastReport().state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  EXPECT_GT(http_->bytes_served(), served) << "the artifact is downloaded again";
  EXPECT_EQ(ReadFileOrDie(dir_.Sub("installed/app/1/f")), content);
}

TEST_F(DeployerTest, PlainHttpArtifactUrlsAreRefused) {
  options_.allow_http = false;
  Assign(Manifest(1, RandomBytes(1000, 3)), {&keys_[0]});
  Run();
  auto report = LastReport();
  ASSERT_EQ(report.packages_size(), 1);
  EXPECT_EQ(report.packages(0).state(), parc::v1::PACKAGE_STATE_FAILED);
  EXPECT_EQ(report.packages(0).reason(), "insecure_url");
  EXPECT_EQ(http_->bytes_served(), 0u);
}

// ---------------------------------------------------------------------------------------------
// The downloader against servers that misbehave.

struct FlakyServer {
  explicit FlakyServer(std::string body) : content(std::move(body)) {
    http.Get("/artifacts/x", [this](const httplib::Request& req, httplib::Response& res) {
      ++requests;
      if (req.has_header("Range")) ranged = true;
      res.set_header("ETag", "\"etag\"");
      const bool drop = requests == 1;
      res.set_content_provider(content.size(), "application/octet-stream",
                               [this, drop](size_t offset, size_t length, httplib::DataSink& sink) {
                                 size_t half = content.size() / 2;
                                 size_t n = std::min<size_t>(length, 64 * 1024);
                                 if (drop && offset + n > half) {
                                   n = half > offset ? half - offset : 0;
                                   if (n > 0) {
                                     sink.write(content.data() + offset, n);
                                     served += n;
                                   }
                                   return false;  // the connection drops at half
                                 }
                                 sink.write(content.data() + offset, n);
                                 served += n;
                                 return true;
                               });
    });
    port = http.bind_to_any_port("127.0.0.1");
    thread = common::ListenInBackground(&http);
  }
  ~FlakyServer() {
    http.stop();
    thread.join();
  }
  std::string content;
  httplib::Server http;
  std::thread thread;
  int port = 0;
  std::atomic<int> requests{0};
  std::atomic<bool> ranged{false};
  std::atomic<uint64_t> served{0};
};

TEST(Downloader, ResumesAfterTheConnectionDropsAtHalf) {
  TempDir dir;
  FlakyServer flaky(RandomBytes(8 << 20, 9));
  agent::DownloadRequest d;
  d.url = absl::StrCat("http://127.0.0.1:", flaky.port, "/artifacts/x");
  d.sha256 = common::Sha256Hex(flaky.content);
  d.size = flaky.content.size();
  std::string part = dir.Sub("a.part"), final_path = dir.Sub("a");
  auto first = agent::DownloadArtifact(d, part, final_path);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(common::TrustReason(first.status()), "download_failed");
  EXPECT_FALSE(common::PathExists(final_path));
  auto second = agent::DownloadArtifact(d, part, final_path);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->resumed);
  EXPECT_TRUE(flaky.ranged.load());
  EXPECT_EQ(ReadFileOrDie(final_path), flaky.content);
  // Less than 1% of the artifact was downloaded twice.
  EXPECT_LE(flaky.served.load(), d.size + d.size / 100);
}

TEST(Downloader, RefusesOversizedAndAlteredArtifacts) {
  TempDir dir;
  FlakyServer server(RandomBytes(300000, 3));
  ++server.requests;  // no drop
  agent::DownloadRequest d;
  d.url = absl::StrCat("http://127.0.0.1:", server.port, "/artifacts/x");
  d.sha256 = common::Sha256Hex(server.content);
  d.size = 100000;  // the manifest says less than the server sends
  auto r = agent::DownloadArtifact(d, dir.Sub("a.part"), dir.Sub("a"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(common::TrustReason(r.status()), "artifact_size_mismatch");
  EXPECT_LE(server.served.load(), 100000u + (256u << 10));  // stopped at the declared size
  EXPECT_FALSE(common::PathExists(dir.Sub("a.part")));
  d.size = server.content.size();
  d.sha256 = std::string(64, 'a');
  r = agent::DownloadArtifact(d, dir.Sub("b.part"), dir.Sub("b"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(common::TrustReason(r.status()), "artifact_hash_mismatch");
  EXPECT_FALSE(common::PathExists(dir.Sub("b")));
}

TEST(Downloader, ASourceBelowItsMinimumSpeedIsLeftKeepingWhatItSent) {
  TempDir dir;
  const std::string content = RandomBytes(4 << 20, 11);
  std::atomic<uint64_t> served{0};
  httplib::Server http;
  // About 40 KiB/s: it never stalls, it is only slow.
  http.Get("/artifacts/x", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(content.size(), "application/octet-stream",
                             [&](size_t offset, size_t length, httplib::DataSink& sink) {
                               std::this_thread::sleep_for(std::chrono::milliseconds(100));
                               const size_t n = std::min<size_t>(length, 4096);
                               if (!sink.write(content.data() + offset, n)) return false;
                               served += n;
                               return true;
                             });
  });
  const int port = http.bind_to_any_port("127.0.0.1");
  std::thread serving = common::ListenInBackground(&http);
  agent::DownloadRequest d;
  d.url = absl::StrCat("http://127.0.0.1:", port, "/artifacts/x");
  d.sha256 = common::Sha256Hex(content);
  d.size = content.size();
  d.stall_timeout = absl::Seconds(2);
  d.min_speed = 256 << 10;
  const absl::Time start = absl::Now();
  auto r = agent::DownloadArtifact(d, dir.Sub("a.part"), dir.Sub("a"));
  const absl::Duration took = absl::Now() - start;
  http.stop();
  serving.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(common::TrustReason(r.status()), "download_failed") << r.status();
  EXPECT_LT(took, absl::Seconds(15));
  // What it sent is kept for the next source to resume from.
  EXPECT_GT(std::filesystem::file_size(dir.Sub("a.part")), 0u);
  EXPECT_FALSE(common::PathExists(dir.Sub("a")));
}

TEST(Downloader, RespectsTheBandwidthCap) {
  TempDir dir;
  FlakyServer server(RandomBytes(3 << 20, 5));
  ++server.requests;
  agent::DownloadRequest d;
  d.url = absl::StrCat("http://127.0.0.1:", server.port, "/artifacts/x");
  d.sha256 = common::Sha256Hex(server.content);
  d.size = server.content.size();
  d.rate_limit = 1 << 20;  // 1 MiB/s
  absl::Time start = absl::Now();
  auto r = agent::DownloadArtifact(d, dir.Sub("a.part"), dir.Sub("a"));
  ASSERT_TRUE(r.ok()) << r.status();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  double rate = static_cast<double>(d.size) / seconds;
  // The average rate stays at the cap, and not far below it.
  EXPECT_LE(rate, 1.05 * static_cast<double>(d.rate_limit)) << seconds << " s";
  EXPECT_GE(rate, 0.5 * static_cast<double>(d.rate_limit)) << seconds << " s";
}

}  // namespace
}  // namespace parc::testing

namespace parc::testing {
namespace {

TEST_F(ProvisioningTest, ArtifactServerSpeaksRangeIfRangeAndETag) {
  std::string content = RandomBytes(100000, 11);
  std::string sha = common::Sha256Hex(content);
  auto up = server_->server()->artifacts()->BeginUpload(sha, content.size());
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE((*up)->Append(content).ok());
  ASSERT_TRUE((*up)->Commit().ok());
  httplib::SSLClient client("127.0.0.1", server_->server()->artifact_port());
  client.set_ca_cert_path(server_->ca_path().c_str());
  client.enable_server_certificate_verification(true);
  const std::string path = "/artifacts/" + sha;
  const std::string etag = "\"" + sha + "\"";

  auto head = client.Head(path.c_str());
  ASSERT_TRUE(head) << httplib::to_string(head.error());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->get_header_value("ETag"), etag);
  EXPECT_EQ(head->get_header_value("Accept-Ranges"), "bytes");
  EXPECT_EQ(head->get_header_value("Content-Length"), std::to_string(content.size()));

  auto ranged = client.Get(path.c_str(), {{"Range", "bytes=1000-"}, {"If-Range", etag}});
  ASSERT_TRUE(ranged);
  EXPECT_EQ(ranged->status, 206);
  EXPECT_EQ(ranged->body, content.substr(1000));
  EXPECT_EQ(ranged->get_header_value("Content-Range"),
            absl::StrCat("bytes 1000-", content.size() - 1, "/", content.size()));

  // A range past the end is cut at the end (a relay asks for whole 1 MiB slices, the last
  // one included); one starting past it is not satisfiable (RFC 9110 14.1.2, 15.5.17).
  auto past = client.Get(path.c_str(), {{"Range", "bytes=99000-1048575"}});
  ASSERT_TRUE(past);
  EXPECT_EQ(past->status, 206);
  EXPECT_EQ(past->body, content.substr(99000));
  EXPECT_EQ(past->get_header_value("Content-Range"),
            absl::StrCat("bytes 99000-", content.size() - 1, "/", content.size()));
  auto suffix = client.Get(path.c_str(), {{"Range", "bytes=-200000"}});
  ASSERT_TRUE(suffix);
  EXPECT_EQ(suffix->status, 206);
  EXPECT_EQ(suffix->body, content);
  auto beyond = client.Get(path.c_str(), {{"Range", "bytes=100000-"}});
  ASSERT_TRUE(beyond);
  EXPECT_EQ(beyond->status, 416);
  EXPECT_EQ(beyond->get_header_value("Content-Range"), absl::StrCat("bytes */", content.size()));

  // A partial copy of something else: the whole artifact comes back.
  auto other = client.Get(path.c_str(), {{"Range", "bytes=1000-"}, {"If-Range", "\"other\""}});
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  EXPECT_EQ(other->body, content);

  auto missing = client.Get(("/artifacts/" + std::string(64, '0')).c_str());
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto malformed = client.Get("/artifacts/../parc.db");
  ASSERT_TRUE(malformed);
  EXPECT_EQ(malformed->status, 404);
}

TEST_F(ProvisioningTest, PausedRolloutsAssignNothingUntilResumed) {
  Publish(BuildBundle("2026.1", 1, ArchivePackage("geogebra", "6.0.820", "GeoGebra")));
  Device laptop = EnrollDevice("laptop", "laptop", kFermat);
  std::string id = StartRollout("2026.1", {"--target", "departement:31", "--kinds", "laptop"});
  auto paused = Ctl({"rollouts", "pause", id});
  ASSERT_EQ(paused.status, 0) << paused.err;
  EXPECT_TRUE(absl::StrContains(paused.out, "paused by admin")) << paused.out;
  ASSERT_EQ(RunOnce(laptop).status, 0);
  EXPECT_FALSE(common::PathExists(install_root_ + "/geogebra"));
  EXPECT_EQ(Ctl({"rollouts", "pause", id}).status, 1);  // already paused
  ASSERT_EQ(Ctl({"rollouts", "resume", id}).status, 0);
  ASSERT_EQ(RunOnce(laptop).status, 0);
  EXPECT_TRUE(common::PathExists(install_root_ + "/geogebra/current"));
  EXPECT_EQ(WaitForState(id, "completed").total().installed(), 1u);
  EXPECT_EQ(Ctl({"rollouts", "cancel", id}).status, 1);  // completed: nothing to cancel
}

TEST_F(ProvisioningTest, BurstOfDeploymentReportsIsCoalescedIntoFewEvaluations) {
  // A longer coalescing delay than the other tests, and no periodic evaluation.
  server_.reset();
  server_ = std::make_unique<TestServer>(dir_.Sub("server"), 0, [this](server::ServerOptions& o) {
    o.publisher_keys = {dir_.Sub("toulouse.pub")};
    o.artifact_listen = "127.0.0.1:0";
    o.rollout_interval = absl::Hours(1);
    o.rollout_debounce = absl::Milliseconds(400);
  });
  Publish(BuildBundle("2026.1", 1, ArchivePackage("geogebra", "6.0.820", "GeoGebra")));
  constexpr int kDevices = 40;
  std::string token = server_->CreateToken(kFermat);
  std::vector<std::string> credentials;
  for (int i = 0; i < kDevices; ++i) {
    parc::v1::EnrollRequest request;
    request.set_token(token);
    request.mutable_identity()->set_serial(absl::StrCat("BURST", i));
    request.mutable_identity()->set_machine_id(absl::StrFormat("%032x", i));
    parc::v1::EnrollResponse enrolled;
    grpc::Status s = server_->AgentStub()->Enroll(TestServer::Context().get(), request, &enrolled);
    ASSERT_TRUE(s.ok()) << s.error_message();
    credentials.push_back(absl::StrCat(enrolled.device_id(), ".", enrolled.device_secret()));
  }
  std::string id = StartRollout("2026.1", {"--target", "uai:0310036W"});
  uint64_t before = server_->server()->metrics()->RolloutEvaluations();
  auto stub = server_->AgentStub();
  for (const auto& credential : credentials) {
    parc::v1::DeploymentReport report;
    report.set_rollout_id(id);
    report.set_bundle_name("mcnl");
    report.set_bundle_version("2026.1");
    report.set_state(parc::v1::DEPLOYMENT_STATE_INSTALLED);
    parc::v1::ReportDeploymentResponse response;
    grpc::Status s =
        stub->ReportDeployment(TestServer::Context(credential).get(), report, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  auto status = WaitForState(id, "completed");
  EXPECT_EQ(status.rollout().state(), "completed");
  EXPECT_EQ(status.total().installed(), static_cast<uint32_t>(kDevices));
  // 40 reports (and the start) within a few coalescing periods: a handful of evaluations, not
  // one per report.
  uint64_t evaluations = server_->server()->metrics()->RolloutEvaluations() - before;
  EXPECT_GE(evaluations, 1u);
  EXPECT_LE(evaluations, 6u) << "every report evaluated the rollout";
}

TEST(RolloutPlan, SelectorsAndWaves) {
  std::vector<parc::v1::Establishment> all;
  auto add = [&](const char* uai, const char* dep, const char* academie, const char* commune,
                 std::vector<std::string> tags) {
    parc::v1::Establishment e;
    e.set_uai(uai);
    e.set_departement(dep);
    e.set_academie(academie);
    e.set_commune_code(commune);
    e.set_commune_name("Ville");
    for (auto& t : tags) e.add_tags(t);
    all.push_back(e);
  };
  add("0310036W", "31", "Toulouse", "31555", {"labellycee:3"});
  add("0310024H", "31", "Toulouse", "31555", {});
  add("0340001S", "34", "Montpellier", "34172", {"labellycee:3"});
  add("0120005R", "12", "Toulouse", "12202", {});
  EXPECT_EQ(server::SelectEstablishments("all", all)->size(), 4u);
  EXPECT_EQ(server::SelectEstablishments("academie:toulouse", all)->size(), 3u);
  EXPECT_EQ(server::SelectEstablishments("departement:031", all)->size(), 2u);
  EXPECT_EQ(server::SelectEstablishments("commune:34172", all)->size(), 1u);
  EXPECT_EQ(server::SelectEstablishments("uai:0310036W,0120005R", all)->size(), 2u);
  EXPECT_EQ(server::SelectEstablishments("tag:LabelLycee:3", all)->size(), 2u);
  EXPECT_EQ(server::SelectEstablishments("planet:mars", all).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server::SelectEstablishments("uai:0310036X", all).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server::SelectEstablishments("uai:0310500A", all).status().code(),
            absl::StatusCode::kNotFound);

  uint32_t waves = 0;
  auto members = server::PlanWaves("r1", all, {"0340001S"}, {25, 50, 100}, &waves);
  ASSERT_TRUE(members.ok()) << members.status();
  EXPECT_EQ(waves, 4u);  // pilots, then three waves of one establishment each
  std::map<uint32_t, int> per_wave;
  std::set<std::string> seen;
  for (const auto& m : *members) {
    ++per_wave[m.wave];
    EXPECT_TRUE(seen.insert(m.uai).second) << m.uai;  // whole establishments, once
    if (m.uai == "0340001S") {
      EXPECT_EQ(m.wave, 0u);
    }
  }
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_EQ(per_wave[0], 1);
  EXPECT_FALSE(server::PlanWaves("r1", all, {}, {50, 40, 100}, &waves).ok());
  EXPECT_FALSE(server::PlanWaves("r1", all, {}, {50}, &waves).ok());
  EXPECT_FALSE(server::PlanWaves("r1", all, {"0820001F"}, {100}, &waves).ok());  // not selected
}

TEST(Installer, DebPackagesGoThroughDpkg) {
  TempDir dir;
  std::string log = dir.Sub("dpkg.log");
  std::string fake = dir.Sub("dpkg");
  WriteFile(fake, absl::StrCat("#!/bin/sh\necho \"$@\" >> ", log, "\n"));
  ASSERT_EQ(::chmod(fake.c_str(), 0755), 0);
  agent::InstallerOptions options;
  options.dpkg = fake;
  parc::v1::PackageSpec spec;
  spec.set_id("geogebra");
  spec.set_version("6");
  spec.mutable_deb()->set_package_name("geogebra-classic");
  auto installed = agent::LinuxPackages(&PosixRunner(), options).Install(spec, "/cache/abc");
  EXPECT_TRUE(installed.ok) << installed.message;
  auto removed = agent::LinuxPackages(&PosixRunner(), options).Remove(spec);
  EXPECT_TRUE(removed.ok) << removed.message;
  EXPECT_EQ(ReadFileOrDie(log), "--install /cache/abc\n--remove geogebra-classic\n");
  WriteFile(fake, "#!/bin/sh\necho 'dpkg: error: dependency problems' >&2\nexit 1\n");
  auto failed = agent::LinuxPackages(&PosixRunner(), options).Install(spec, "/cache/abc");
  EXPECT_FALSE(failed.ok);
  EXPECT_EQ(failed.reason, "install_failed");
  EXPECT_EQ(failed.exit_status, 1);
  EXPECT_TRUE(absl::StrContains(failed.output_tail, "dependency problems"));
}

TEST(Installer, ArchivesCannotEscapeTheirDirectory) {
  TempDir dir;
  // An archive whose entry climbs out with "..".
  ASSERT_TRUE(common::MakeDirs(dir.Sub("src/a")).ok());
  WriteFile(dir.Sub("src/evil"), "x");
  std::string cmd = absl::StrCat("tar cf '", dir.Sub("evil.tar"), "' -C '", dir.Sub("src/a"),
                                 "' --absolute-names ../evil 2>/dev/null");
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  parc::v1::PackageSpec spec;
  spec.set_id("evil");
  spec.set_version("1");
  spec.mutable_archive()->set_target_dir(dir.Sub("target"));
  auto r = agent::LinuxPackages(&PosixRunner(), agent::InstallerOptions())
               .Install(spec, dir.Sub("evil.tar"));
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(absl::StrContains(r.message, "outside")) << r.message;
  EXPECT_FALSE(common::PathExists(dir.Sub("target/1")));
  EXPECT_FALSE(common::PathExists(dir.Sub("target/evil")));
}

TEST(Installer, ArchivesForWindowsDirectoriesAreNotForLinuxDevices) {
  agent::LinuxPackages packages(&PosixRunner(), agent::InstallerOptions());
  parc::v1::PackageSpec spec;
  spec.mutable_archive()->set_target_dir("/opt/mcnl/atlas");
  EXPECT_TRUE(packages.Handles(spec));
  spec.mutable_archive()->set_target_dir("C:\\Program Files\\MCNL\\Atlas");
  EXPECT_FALSE(packages.Handles(spec));
}

TEST(Process, TimeoutKillsTheWholeCommand) {
  absl::Time start = absl::Now();
  auto r = agent::RunCommand({"sh", "-c", "sleep 30 & sleep 30"}, absl::Milliseconds(300));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  auto missing = agent::RunCommand({"no-such-program-parc"}, absl::Seconds(1));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto out = agent::RunCommand({"sh", "-c", "echo one; echo two >&2; exit 7"}, absl::Seconds(5));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->exit_status, 7);
  EXPECT_EQ(out->output_tail, "one\ntwo\n");
}

}  // namespace
}  // namespace parc::testing

namespace parc::testing {
namespace {

TEST(Installer, TheAgentsOwnPackageInstallsOutsideTheAgentUnderSystemd) {
  TempDir dir;
  std::string log = dir.Sub("calls.log");
  for (const char* tool : {"dpkg", "systemd-run"}) {
    std::string path = dir.Sub(tool);
    WriteFile(path, absl::StrCat("#!/bin/sh\necho ", tool, " \"$@\" >> ", log, "\n"));
    ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  }
  agent::InstallerOptions options;
  options.dpkg = dir.Sub("dpkg");
  options.systemd_run = dir.Sub("systemd-run");
  options.under_systemd = true;
  parc::v1::PackageSpec self;
  self.set_id("parc-agent");
  self.set_version("0.2.0");
  self.mutable_deb()->set_package_name("parc-agent");
  EXPECT_TRUE(agent::LinuxPackages(&PosixRunner(), options).Install(self, "/cache/new-agent").ok);
  parc::v1::PackageSpec other = self;
  other.mutable_deb()->set_package_name("geogebra-classic");
  EXPECT_TRUE(agent::LinuxPackages(&PosixRunner(), options).Install(other, "/cache/geogebra").ok);
  options.under_systemd = false;
  EXPECT_TRUE(agent::LinuxPackages(&PosixRunner(), options).Install(self, "/cache/new-agent").ok);
  EXPECT_EQ(ReadFileOrDie(log),
            absl::StrCat("systemd-run --wait --collect --quiet --unit=parc-agent-self-update -- ",
                         dir.Sub("dpkg"),
                         " --install /cache/new-agent\n"
                         "dpkg --install /cache/geogebra\n"
                         "dpkg --install /cache/new-agent\n"));
}

}  // namespace
}  // namespace parc::testing

namespace parc::testing {
namespace {

// Writes a tar.gz with libarchive: entries as an attacker would craft them.
struct Entry {
  std::string name;
  mode_t type = AE_IFREG;
  int perm = 0644;
  std::string content;
  std::string link;  // symlink target
};
std::string CraftArchive(const std::string& path, const std::vector<Entry>& entries) {
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  EXPECT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const auto& e : entries) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.name.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, static_cast<mode_t>(e.perm));
    if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.link.c_str());
    if (e.type == AE_IFCHR) archive_entry_set_rdev(entry, makedev(1, 3));
    archive_entry_set_size(entry, static_cast<la_int64_t>(e.content.size()));
    archive_write_header(a, entry);
    if (!e.content.empty()) archive_write_data(a, e.content.data(), e.content.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return path;
}

agent::InstallOutcome InstallCrafted(const TempDir& dir, const std::vector<Entry>& entries,
                                     uint64_t max_bytes = 0) {
  parc::v1::PackageSpec spec;
  spec.set_id("crafted");
  spec.set_version("1");
  spec.mutable_archive()->set_target_dir(dir.Sub("target"));
  agent::InstallerOptions options;
  options.max_extracted_bytes = max_bytes;
  return agent::LinuxPackages(&PosixRunner(), options)
      .Install(spec, CraftArchive(dir.Sub("crafted.tar.gz"), entries));
}

TEST(Installer, ArchivesUnpackNoDevicesNoSetuidNoOutsideLinksAndNoBombs) {
  {
    TempDir dir;
    auto r = InstallCrafted(dir, {{"dev/mem", AE_IFCHR, 0600, "", ""}});
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(absl::StrContains(r.message, "device, fifo or socket")) << r.message;
    EXPECT_FALSE(common::PathExists(dir.Sub("target/1")));
  }
  for (const char* target : {"/etc/shadow", "../../etc", "b/../../../x"}) {
    TempDir dir;
    auto r = InstallCrafted(dir, {{"a/link", AE_IFLNK, 0777, "", target}});
    EXPECT_FALSE(r.ok) << target;
    EXPECT_TRUE(absl::StrContains(r.message, "outside the install directory")) << r.message;
  }
  {
    TempDir dir;
    auto r = InstallCrafted(dir, {{"bin/tool", AE_IFREG, 04755, "#!/bin/sh\n", ""},
                                  {"bin/group", AE_IFREG, 02755, "#!/bin/sh\n", ""},
                                  {"bin/self", AE_IFLNK, 0777, "", "tool"},
                                  {"share/up", AE_IFLNK, 0777, "", "../bin/tool"}});
    ASSERT_TRUE(r.ok) << r.message;
    struct stat st;
    ASSERT_EQ(::stat(dir.Sub("target/1/bin/tool").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    ASSERT_EQ(::stat(dir.Sub("target/1/bin/group").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
  }
  {
    TempDir dir;
    auto r = InstallCrafted(dir, {{"zeros", AE_IFREG, 0644, std::string(8 << 20, '\0'), ""}},
                            /*max_bytes=*/1 << 20);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(absl::StrContains(r.message, "decompression bomb")) << r.message;
    EXPECT_FALSE(common::PathExists(dir.Sub("target/1")));
  }
}

TEST(Installer, ArchivesAreTarOrZipOnly) {
  // An mtree "archive" names local files for libarchive to copy in (contents=): as root, it
  // would publish /etc/shadow in the install directory. Only tar and zip are read.
  TempDir dir;
  const std::string artifact = dir.Sub("shadow.mtree");
  ASSERT_TRUE(common::WriteFileAtomic(artifact,
                                      "#mtree\n./copy type=file mode=0644 contents=/etc/hostname\n")
                  .ok());
  parc::v1::PackageSpec spec;
  spec.set_id("mtree");
  spec.set_version("1");
  spec.mutable_archive()->set_target_dir(dir.Sub("target"));
  auto r = agent::LinuxPackages(&PosixRunner(), agent::InstallerOptions()).Install(spec, artifact);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(absl::StrContains(r.message, "archive")) << r.message;
  EXPECT_FALSE(common::PathExists(dir.Sub("target/1/copy")));
  // A zip still unpacks.
  const std::string zip = dir.Sub("a.zip");
  struct archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  ASSERT_EQ(archive_write_open_filename(a, zip.c_str()), ARCHIVE_OK);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "readme.txt");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, 5);
  ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK);
  ASSERT_EQ(archive_write_data(a, "hello", 5), 5);
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  spec.set_id("zip");
  spec.mutable_archive()->set_target_dir(dir.Sub("zip"));
  r = agent::LinuxPackages(&PosixRunner(), agent::InstallerOptions()).Install(spec, zip);
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(ReadFileOrDie(dir.Sub("zip/current/readme.txt")), "hello");
}

}  // namespace
}  // namespace parc::testing
