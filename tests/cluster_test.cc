// Several parc-server nodes on one PostgreSQL database, behind HAProxy in TCP mode (as
// docs/operator-guide.md describes): agents spread over the nodes, the node that evaluates the
// rollout killed with SIGKILL mid-rollout, the other one completing the waves, and the
// deployment report equal to what the same scenario gives on one SQLite server.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "tests/postgres_server.h"
#include "tests/test_util.h"

namespace parc::testing {
namespace {

constexpr char kFermat[] = "0310036W";
constexpr char kJoffre[] = "0340001S";
constexpr char kClemenceau[] = "0340123Z";

// One parc-server process with fixed ports.
struct Node {
  std::string data;
  int grpc_port = 0;
  int https_port = 0;
  ChildProcess process;

  void Start(const std::vector<std::string>& extra) {
    grpc_port = FreePort();
    https_port = FreePort();
    const std::string port_file = data + ".port";
    (void)::unlink(port_file.c_str());
    std::vector<std::string> argv = {PARC_SERVER_BIN,
                                     "--data-dir",
                                     data,
                                     "--listen",
                                     absl::StrCat("127.0.0.1:", grpc_port),
                                     "--artifact-listen",
                                     absl::StrCat("127.0.0.1:", https_port),
                                     "--port-file",
                                     port_file,
                                     "--rollout-interval",
                                     "1s",
                                     "--log-level",
                                     "error"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process.Start(argv);
    bool started = false;
    for (int i = 0; i < 300 && !started && !process.Exited(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto text = common::ReadFile(port_file, 64);
      started = text.ok() && !text->empty();
    }
    ASSERT_TRUE(started) << "parc-server did not start (" << data << ")";
  }
  std::string Metrics(const std::string& ca) const {
    httplib::SSLClient c("127.0.0.1", https_port);
    c.set_ca_cert_path(ca.c_str());
    auto r = c.Get("/metrics");
    return r && r->status == 200 ? r->body : "";
  }
};

// A metric's value in a Prometheus text page (the first line with that prefix).
double MetricValue(const std::string& page, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) return v;
  }
  return -1;
}

std::string MakeArchive(const std::string& dir, const std::string& name,
                        const std::string& content) {
  std::string src = absl::StrCat(dir, "/src-", name);
  EXPECT_TRUE(common::MakeDirs(src).ok());
  WriteFile(src + "/app.txt", content);
  std::string out = absl::StrCat(dir, "/", name, ".tar.gz");
  std::string cmd =
      absl::StrCat("tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C '", src,
                   "' . | gzip -n > '", out, "'");
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return out;
}

// The scenario, on one SQLite server or on two PostgreSQL nodes behind HAProxy.
class Scenario {
 public:
  explicit Scenario(bool cluster) : cluster_(cluster) {}

  // Runs it to the rollout's completion; the deployment report by establishment.
  parc::v1::DeploymentReportResponse Run() {
    parc::v1::DeploymentReportResponse report;
    RunInto(&report);
    return report;
  }

  bool served_by_both = false;
  bool session_shared = false;
  bool leader_killed = false;

 private:
  void RunInto(parc::v1::DeploymentReportResponse* report) {
    ASSERT_EQ(RunBundleTool({"keygen", "--out", dir_.Sub("toulouse")}).status, 0);
    install_root_ = dir_.Sub("installed");
    ASSERT_TRUE(common::MakeDirs(install_root_).ok());
    a_.data = dir_.Sub("a");
    b_.data = dir_.Sub("b");
    const std::vector<std::string> common_args = {"--publisher-key", dir_.Sub("toulouse.pub")};
    if (!cluster_) {
      a_.Start(common_args);
      if (::testing::Test::HasFatalFailure()) return;
      address_ = absl::StrCat("127.0.0.1:", a_.grpc_port);
    } else {
      auto database = PostgresServer::Shared().CreateDatabase();
      ASSERT_TRUE(database.ok()) << database.status();
      const int proxy_grpc = FreePort(), proxy_https = FreePort();
      std::vector<std::string> args = common_args;
      args.insert(args.end(), {"--database", *database, "--artifact-url",
                               absl::StrCat("https://127.0.0.1:", proxy_https, "/artifacts")});
      a_.Start(args);
      if (::testing::Test::HasFatalFailure()) return;
      // Every node presents the same certificate (the one the first node made).
      args.insert(args.end(), {"--tls-cert", a_.data + "/tls/server.pem", "--tls-key",
                               a_.data + "/tls/server.key"});
      b_.Start(args);
      if (::testing::Test::HasFatalFailure()) return;
      const std::string cfg = dir_.Sub("haproxy.cfg");
      WriteFile(cfg, absl::StrCat(
                         "global\n  maxconn 1000\n"
                         "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 60s\n"
                         "  timeout server 60s\n  retries 3\n  option redispatch\n"
                         "frontend agents\n  bind 127.0.0.1:",
                         proxy_grpc,
                         "\n  default_backend grpc\n"
                         "backend grpc\n  balance roundrobin\n"
                         "  server a 127.0.0.1:",
                         a_.grpc_port,
                         " check inter 300ms fall 2 rise 2\n  server b 127.0.0.1:", b_.grpc_port,
                         " check inter 300ms fall 2 rise 2\n"
                         "frontend web\n  bind 127.0.0.1:",
                         proxy_https,
                         "\n  default_backend https\n"
                         "backend https\n  balance roundrobin\n  server a 127.0.0.1:",
                         a_.https_port, " check inter 300ms fall 2 rise 2\n  server b 127.0.0.1:",
                         b_.https_port, " check inter 300ms fall 2 rise 2\n"));
      haproxy_.Start({"haproxy", "-q", "-db", "-f", cfg});
      address_ = absl::StrCat("127.0.0.1:", proxy_grpc);
      // Up once HAProxy answers and finds a node.
      bool up = false;
      for (int i = 0; i < 100 && !up; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        up = Ctl({"operators", "list"}).status == 0;
      }
      ASSERT_TRUE(up) << "nothing answers through HAProxy";
    }
    ca_ = a_.data + "/tls/ca.pem";
    admin_token_ = std::string(absl::StripAsciiWhitespace(ReadFileOrDie(a_.data + "/admin.token")));

    // Establishments, devices (two per establishment), the bundle.
    {
      parc::v1::ImportCsvRequest import;
      import.set_content(ReadFileOrDie(DataPath("annuaire-occitanie.csv")));
      parc::v1::ImportEstablishmentsResponse imported;
      grpc::Status s = Admin()->ImportEstablishments(Context().get(), import, &imported);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
    int serial = 0;
    for (const char* uai : {kFermat, kJoffre, kClemenceau}) {
      parc::v1::CreateEnrollmentTokenRequest token;
      token.set_uai(uai);
      parc::v1::CreateEnrollmentTokenResponse created;
      grpc::Status s = Admin()->CreateEnrollmentToken(Context().get(), token, &created);
      ASSERT_TRUE(s.ok()) << s.error_message();
      for (int i = 0; i < 2; ++i) {
        Device d = CloneDevice(absl::StrCat("SER-", ++serial));
        auto r = RunAgent({"enroll", "--root", d.root, "--state-dir", d.state, "--server", address_,
                           "--token", created.token(), "--ca", ca_, "--config", d.config});
        ASSERT_EQ(r.status, 0) << r.err;
        devices_[uai].push_back(d);
      }
    }
    const std::string spec = dir_.Sub("spec.toml");
    WriteFile(spec, absl::StrCat("name = \"mcnl\"\nversion = \"2026.1\"\nsequence = 1\n"
                                 "expires = \"365d\"\n[[packages]]\nid = \"geogebra\"\n"
                                 "version = \"6.0.820\"\nartifact = \"",
                                 MakeArchive(dir_.path(), "geogebra", "GeoGebra"),
                                 "\"\ntype = \"archive\"\ntarget_dir = \"", install_root_,
                                 "/geogebra\"\n"));
    ASSERT_EQ(RunBundleTool(
                  {"build", spec, "--key", dir_.Sub("toulouse.key"), "--out", dir_.Sub("bundle")})
                  .status,
              0);
    auto published = Ctl({"bundles", "publish", dir_.Sub("bundle")});
    ASSERT_EQ(published.status, 0) << published.err;

    // Two waves: the pilot lycée, then the others.
    auto created = Ctl({"rollouts", "create", "--bundle", "mcnl@2026.1", "--json", "--target",
                        absl::StrCat("uai:", kFermat, ",", kJoffre, ",", kClemenceau), "--pilot",
                        kFermat, "--waves", "100"});
    ASSERT_EQ(created.status, 0) << created.err;
    parc::v1::Rollout rollout;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(created.out, &rollout).ok());
    ASSERT_EQ(Ctl({"rollouts", "start", rollout.id()}).status, 0);

    for (const auto& d : devices_[kFermat]) RunUntilDone(d);
    ASSERT_TRUE(WaitFor(rollout.id(), [](const parc::v1::RolloutStatus& s) {
      return s.rollout().current_wave() >= 1;
    })) << "the pilot wave did not end";

    if (cluster_) {
      // Both nodes served agents (HAProxy's round robin).
      const std::string ma = a_.Metrics(ca_), mb = b_.Metrics(ca_);
      served_by_both = MetricValue(ma, "parc_rpcs_total{method=\"CheckIn\",code=\"OK\"}") > 0 &&
                       MetricValue(mb, "parc_rpcs_total{method=\"CheckIn\",code=\"OK\"}") > 0;
      // Each node says how many answered check-ins wait for their write.
      EXPECT_GE(MetricValue(ma, "parc_checkins_waiting"), 0);
      // A dashboard session opened on one node works on the other.
      session_shared = SessionWorksAcrossNodes();
      // The node that evaluates rollouts goes, hard.
      Node* leader = MetricValue(ma, "parc_node_leads_jobs") == 1   ? &a_
                     : MetricValue(mb, "parc_node_leads_jobs") == 1 ? &b_
                                                                    : nullptr;
      ASSERT_NE(leader, nullptr) << "no node leads the jobs";
      Node* survivor = leader == &a_ ? &b_ : &a_;
      EXPECT_EQ(MetricValue(survivor->Metrics(ca_), "parc_node_leads_jobs"), 0);
      leader->process.Kill();
      leader_killed = true;
      // The survivor takes the jobs over within seconds.
      bool took_over = false;
      for (int i = 0; i < 50 && !took_over; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        took_over = MetricValue(survivor->Metrics(ca_), "parc_node_leads_jobs") == 1;
      }
      EXPECT_TRUE(took_over) << "the surviving node did not take the rollout evaluation over";
    }

    for (const char* uai : {kJoffre, kClemenceau}) {
      for (const auto& d : devices_[uai]) RunUntilDone(d);
    }
    ASSERT_TRUE(WaitFor(rollout.id(), [](const parc::v1::RolloutStatus& s) {
      return s.rollout().state() == "completed";
    })) << "the rollout did not complete";

    parc::v1::DeploymentReportRequest request;
    request.set_bundle_name("mcnl");
    request.set_by("establishment");
    grpc::Status s = Admin()->GetDeploymentReport(Context().get(), request, report);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  struct Device {
    std::string root, state, config;
  };
  Device CloneDevice(const std::string& serial) {
    Device d{dir_.Sub("root-" + serial), dir_.Sub("state-" + serial),
             dir_.Sub("agent-" + serial + ".toml")};
    CopyTree(DataPath("laptop"), d.root);
    WriteFile(d.root + "/sys/class/dmi/id/product_serial", serial + "\n");
    WriteFile(
        d.root + "/sys/class/dmi/id/product_uuid",
        absl::StrCat("4c4c4544-0000-0000-0000-", common::Sha256Hex(serial).substr(0, 12), "\n"));
    WriteFile(d.config, absl::StrCat("publisher_keys = [\"", dir_.Sub("toulouse.pub"),
                                     "\"]\nsignature_threshold = 1\n"));
    return d;
  }
  // Runs the agent until its bundle is installed (a run may meet the killed node before
  // HAProxy has noticed; the next one goes to the other).
  void RunUntilDone(const Device& d) {
    for (int i = 0; i < 30; ++i) {
      auto run = RunAgent(
          {"run", "--once", "--root", d.root, "--state-dir", d.state, "--config", d.config});
      auto bundles = RunAgent({"bundles", "--state-dir", d.state, "--config", d.config});
      if (run.status == 0 && absl::StrContains(bundles.out, "installed")) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ADD_FAILURE() << "device " << d.root << " did not install the bundle";
  }
  bool WaitFor(const std::string& id,
               const std::function<bool(const parc::v1::RolloutStatus&)>& done) {
    for (int i = 0; i < 150; ++i) {
      parc::v1::GetRolloutStatusRequest request;
      request.set_id(id);
      parc::v1::RolloutStatus status;
      if (Admin()->GetRolloutStatus(Context().get(), request, &status).ok() && done(status)) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  bool SessionWorksAcrossNodes() {
    httplib::SSLClient on_a("127.0.0.1", a_.https_port);
    on_a.set_ca_cert_path(ca_.c_str());
    auto login = on_a.Post("/connexion", absl::StrCat("jeton=", admin_token_),
                           "application/x-www-form-urlencoded");
    if (!login || login->status != 303) return false;
    std::string cookie = login->get_header_value("Set-Cookie");
    cookie = cookie.substr(0, cookie.find(';'));
    httplib::SSLClient on_b("127.0.0.1", b_.https_port);
    on_b.set_ca_cert_path(ca_.c_str());
    auto page = on_b.Get("/", {{"Cookie", cookie}});
    return page && page->status == 200 && absl::StrContains(page->body, "Se déconnecter");
  }

  CommandResult Ctl(std::vector<std::string> args) {
    const std::string empty = dir_.Sub("parcctl.toml");
    WriteFile(empty, "");
    args.insert(args.end(),
                {"--server", address_, "--ca", ca_.empty() ? a_.data + "/tls/ca.pem" : ca_,
                 "--token", admin_token_.empty() ? AdminToken() : admin_token_, "--config", empty});
    return RunCtl(args);
  }
  std::string AdminToken() const {
    auto text = common::ReadFile(a_.data + "/admin.token", 1024);
    return text.ok() ? std::string(absl::StripAsciiWhitespace(*text)) : "";
  }
  std::unique_ptr<parc::v1::AdminService::Stub> Admin() {
    if (!channel_) {
      common::ChannelOptions o;
      o.target = address_;
      o.ca_pem = ReadFileOrDie(ca_);
      channel_ = *common::MakeChannel(o);
    }
    return parc::v1::AdminService::NewStub(channel_);
  }
  std::unique_ptr<grpc::ClientContext> Context() { return TestServer::Context(admin_token_); }

  const bool cluster_;
  TempDir dir_;
  std::string install_root_;
  Node a_, b_;
  ChildProcess haproxy_;
  std::string address_, ca_, admin_token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::map<std::string, std::vector<Device>> devices_;
};

bool HaveHaproxy() { return std::system("command -v haproxy >/dev/null 2>&1") == 0; }

TEST(ClusterTest, TwoNodesLoseOneMidRolloutAndReportAsOneSqliteServer) {
  if (!HaveHaproxy()) GTEST_SKIP() << "haproxy is not installed (tools/deps.sh --test)";
  Scenario single(false);
  const parc::v1::DeploymentReportResponse expected = single.Run();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  ASSERT_EQ(expected.total().devices(), 6u);
  EXPECT_EQ(expected.total().up_to_date(), 6u);

  Scenario cluster(true);
  const parc::v1::DeploymentReportResponse got = cluster.Run();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  EXPECT_TRUE(cluster.served_by_both) << "HAProxy sent every agent to one node";
  EXPECT_TRUE(cluster.session_shared) << "a dashboard session of one node failed on the other";
  EXPECT_TRUE(cluster.leader_killed);
  std::string diff;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  EXPECT_TRUE(d.Compare(expected, got)) << diff;
}

}  // namespace
}  // namespace parc::testing
