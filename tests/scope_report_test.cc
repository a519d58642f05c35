// Operators' scopes, roles, audit log and reports, against a real server and agents.
#include <httplib.h>

#include <chrono>
#include <map>
#include <thread>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/core/sqlite_state.h"
#include "common/sqlite.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "parc/v1/admin.pb.h"
#include "server/dashboard.h"
#include "tests/test_util.h"
#include "tools/bundle/bundle_tool.h"

namespace parc::testing {
namespace {

// Fleet: laptop in Lycée Fermat (31), display in Collège Jean Jaurès (31), tablet in Lycée
// Joffre (34), a second laptop in Fermat enrolled but never seen. Bundle mcnl@2026.1 has a
// package for every kind and one that fails on displays only.
class ScopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(RunBundleTool({"keygen", "--out", dir_.Sub("key")}).status, 0);
    server_ = std::make_unique<TestServer>(dir_.Sub("server"), 0, [this](server::ServerOptions& o) {
      o.publisher_keys = {dir_.Sub("key.pub")};
      o.artifact_listen = "127.0.0.1:0";
    });
    server_->ImportFixtureEstablishments();
    agent_config_ = dir_.Sub("agent.toml");
    WriteFile(agent_config_, absl::StrCat("publisher_keys = [\"", dir_.Sub("key.pub"), "\"]\n"));
    WriteFile(dir_.Sub("a.txt"), "a");
    WriteFile(dir_.Sub("spec.toml"),
              absl::StrCat("name = \"mcnl\"\nversion = \"2026.1\"\nsequence = 1\nexpires = "
                           "\"365d\"\n[[packages]]\nid = \"ok\"\nversion = \"1\"\nartifact = "
                           "\"a.txt\"\ntype = \"command\"\ninstall = [\"true\"]\n"
                           "[[packages]]\nid = \"display-driver\"\nversion = \"1\"\nkinds = "
                           "[\"display\"]\nartifact = \"a.txt\"\ntype = \"command\"\n"
                           "install = [\"sh\", \"-c\", \"echo no screen >&2; exit 2\"]\n"));
    ASSERT_EQ(RunBundleTool({"build", dir_.Sub("spec.toml"), "--key", dir_.Sub("key.key"), "--out",
                             dir_.Sub("bundle")})
                  .status,
              0);
    ASSERT_EQ(Admin({"bundles", "publish", dir_.Sub("bundle")}).status, 0);

    laptop_ = Enroll("laptop", DataPath("laptop"), "0310036W", {});
    display_ = Enroll("display", DataPath("desktop"), "0311234Y", {"--kind", "display"});
    tablet_ = Enroll("tablet", DataPath("tablet"), "0340001S", {});
    std::string clone = dir_.Sub("clone-root");
    CopyTree(DataPath("laptop"), clone);
    WriteFile(clone + "/sys/class/dmi/id/product_serial", "5CD0000NEW\n");
    WriteFile(clone + "/sys/class/dmi/id/product_uuid", "11111111-2222-3333-4444-555555555555\n");
    Enroll("never-seen", clone, "0310036W", {});

    auto created = Admin({"rollouts", "create", "--bundle", "mcnl@2026.1", "--json"});
    ASSERT_EQ(created.status, 0) << created.err;
    rollout_ = FromJson<parc::v1::Rollout>(created.out).id();
    ASSERT_EQ(Admin({"rollouts", "start", rollout_}).status, 0);
    for (const auto& [root, state] : {laptop_, tablet_}) ASSERT_EQ(Run(root, state).status, 0);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(Run(display_.first, display_.second).status, 0);
  }

  std::pair<std::string, std::string> Enroll(const std::string& name, const std::string& root,
                                             const std::string& uai,
                                             std::vector<std::string> extra) {
    std::string state = dir_.Sub(name + "-state");
    std::vector<std::string> args = {"enroll",
                                     "--root",
                                     root,
                                     "--state-dir",
                                     state,
                                     "--server",
                                     server_->address(),
                                     "--token",
                                     server_->CreateToken(uai),
                                     "--ca",
                                     server_->ca_path(),
                                     "--config",
                                     agent_config_};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = RunAgent(args);
    EXPECT_EQ(r.status, 0) << r.err;
    return {root, state};
  }
  CommandResult Run(const std::string& root, const std::string& state) {
    return RunAgent(
        {"run", "--once", "--root", root, "--state-dir", state, "--config", agent_config_});
  }
  CommandResult Ctl(const std::string& token, std::vector<std::string> args) {
    std::string empty = dir_.Sub("parcctl.toml");
    WriteFile(empty, "");
    args.insert(args.end(), {"--server", server_->address(), "--ca", server_->ca_path(), "--token",
                             token, "--config", empty});
    return RunCtl(args);
  }
  CommandResult Admin(std::vector<std::string> args) {
    return Ctl(server_->admin_token(), std::move(args));
  }
  std::string CreateOperator(const std::string& name, const std::string& role,
                             const std::string& scope) {
    auto r =
        Admin({"operators", "create", "--name", name, "--role", role, "--scope", scope, "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
    return FromJson<parc::v1::CreateOperatorResponse>(r.out).token();
  }
  std::string DeviceId(const std::string& serial) {
    for (const auto& d : server_->ListDevices()) {
      if (d.serial() == serial) return d.id();
    }
    return "";
  }

  TempDir dir_;
  std::unique_ptr<TestServer> server_;
  std::string agent_config_;
  std::pair<std::string, std::string> laptop_, display_, tablet_;
  std::string rollout_;
};

TEST_F(ScopeTest, DepartementViewerSeesOnlyItsDepartement) {
  std::string viewer = CreateOperator("cd31-viewer", "viewer", "departement:31");
  auto est = Ctl(viewer, {"establishments", "list", "--json"});
  ASSERT_EQ(est.status, 0) << est.err;
  auto establishments = FromJson<parc::v1::ListEstablishmentsResponse>(est.out);
  EXPECT_EQ(establishments.establishments_size(), 4);  // the four of 31 in the fixture
  for (const auto& e : establishments.establishments()) EXPECT_EQ(e.departement(), "31");

  auto dev = Ctl(viewer, {"devices", "list", "--json"});
  auto devices = FromJson<parc::v1::ListDevicesResponse>(dev.out);
  EXPECT_EQ(devices.devices_size(), 3);  // laptop, display, never-seen laptop
  for (const auto& d : devices.devices()) EXPECT_EQ(d.departement(), "31");

  // A device of 34 does not exist for this viewer, by id or by serial.
  auto by_id = Ctl(viewer, {"devices", "show", DeviceId("HX7K2Q3")});
  EXPECT_EQ(by_id.status, 1);
  EXPECT_TRUE(absl::StrContains(by_id.err, "NOT_FOUND")) << by_id.err;
  auto by_serial = Ctl(viewer, {"devices", "show", "HX7K2Q3"});
  EXPECT_TRUE(absl::StrContains(by_serial.err, "NOT_FOUND")) << by_serial.err;
  auto shown = Ctl(viewer, {"devices", "show", "5CD1234ABC"});
  EXPECT_EQ(shown.status, 0);
  // It checked in today (the server's clock): one day of the last 30.
  EXPECT_TRUE(absl::StrContains(shown.out, "1 of the last 30")) << shown.out;

  auto report =
      Ctl(viewer, {"report", "deployment", "--bundle", "mcnl", "--by", "establishment", "--json"});
  ASSERT_EQ(report.status, 0) << report.err;
  auto report_rows = FromJson<parc::v1::DeploymentReportResponse>(report.out);
  for (const auto& row : report_rows.rows()) {
    EXPECT_TRUE(absl::StartsWith(row.group(), "031")) << row.group();
  }
  auto status = Ctl(viewer, {"rollouts", "status", rollout_, "--json"});
  ASSERT_EQ(status.status, 0);
  EXPECT_EQ(FromJson<parc::v1::RolloutStatus>(status.out).total().targeted(), 3u);

  // A viewer cannot pause a rollout, nor create tokens or operators.
  auto pause = Ctl(viewer, {"rollouts", "pause", rollout_});
  EXPECT_EQ(pause.status, 1);
  EXPECT_TRUE(absl::StrContains(pause.err, "PERMISSION_DENIED")) << pause.err;
  EXPECT_TRUE(absl::StrContains(Ctl(viewer, {"tokens", "create", "--uai", "0310036W"}).err,
                                "PERMISSION_DENIED"));
  EXPECT_TRUE(absl::StrContains(
      Ctl(viewer, {"operators", "create", "--name", "x", "--role", "admin", "--scope", "region"})
          .err,
      "PERMISSION_DENIED"));
}

TEST_F(ScopeTest, DeliveryListsMoveNothingOutOfTheCallersScope) {
  // The region's delivery list sends a new serial to Joffre (34).
  WriteFile(dir_.Sub("region.csv"), "serial;uai\nNEW0001;0340001S\n");
  ASSERT_EQ(Admin({"devices", "preassign", dir_.Sub("region.csv")}).status, 0);

  // Fermat's technician tries to take it, and Joffre's enrolled tablet, for Fermat.
  std::string tech = CreateOperator("fermat-tech", "technician", "uai:0310036W");
  WriteFile(dir_.Sub("grab.csv"),
            "serial;uai\nNEW0001;0310036W\nHX7K2Q3;0310036W\nOWN0001;0310036W\n");
  auto grab = Ctl(tech, {"devices", "preassign", dir_.Sub("grab.csv")});
  EXPECT_EQ(grab.status, 1);
  EXPECT_TRUE(absl::StrContains(grab.err, "line 2")) << grab.err;
  EXPECT_TRUE(absl::StrContains(grab.err,
                                "serial NEW0001 is delivered in an establishment "
                                "outside your scope"))
      << grab.err;
  EXPECT_TRUE(absl::StrContains(grab.err, "line 3")) << grab.err;
  EXPECT_TRUE(absl::StrContains(grab.err, "serial HX7K2Q3 is enrolled")) << grab.err;

  // With --skip-invalid only its own new serial is recorded.
  auto skip = Ctl(tech, {"devices", "preassign", dir_.Sub("grab.csv"), "--skip-invalid"});
  ASSERT_EQ(skip.status, 0) << skip.err;
  EXPECT_TRUE(absl::StrContains(skip.out, "1 new")) << skip.out;
  auto list = Admin({"devices", "show", "HX7K2Q3", "--json"});
  ASSERT_EQ(list.status, 0) << list.err;
  EXPECT_EQ(FromJson<parc::v1::GetDeviceResponse>(list.out).device().uai(), "0340001S");

  // A region operator may move the new serial.
  WriteFile(dir_.Sub("move.csv"), "serial;uai\nNEW0001;0310036W\n");
  auto move = Admin({"devices", "preassign", dir_.Sub("move.csv")});
  EXPECT_EQ(move.status, 0) << move.err;
  EXPECT_TRUE(absl::StrContains(move.out, "1 updated")) << move.out;
}

TEST_F(ScopeTest, DeploymentReportsAreBoundToTheDevicesRolloutsAndBundle) {
  // A second rollout of the same bundle, for Haute-Garonne only: the tablet (Joffre, 34) is
  // not targeted by it.
  auto other = Admin(
      {"rollouts", "create", "--bundle", "mcnl@2026.1", "--target", "departement:31", "--json"});
  ASSERT_EQ(other.status, 0) << other.err;
  const std::string other_id = FromJson<parc::v1::Rollout>(other.out).id();
  auto state = agent::SqliteAgentState::Open(tablet_.second);
  ASSERT_TRUE(state.ok());
  auto identity = (*state)->LoadIdentity();
  ASSERT_TRUE(identity.ok() && identity->has_value());
  const std::string credential = absl::StrCat((*identity)->device_id, ".", (*identity)->secret);
  auto report = [&](const std::string& rollout, const std::vector<std::string>& packages) {
    parc::v1::DeploymentReport r;
    r.set_rollout_id(rollout);
    r.set_state(parc::v1::DEPLOYMENT_STATE_IN_PROGRESS);
    for (const auto& id : packages) {
      auto* p = r.add_packages();
      p->set_package_id(id);
      p->set_version("1");
      p->set_state(parc::v1::PACKAGE_STATE_QUEUED);
    }
    parc::v1::ReportDeploymentResponse ack;
    return server_->AgentStub()->ReportDeployment(TestServer::Context(credential).get(), r, &ack);
  };
  EXPECT_EQ(report("r00000000", {}).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(report(other_id, {}).error_code(), grpc::StatusCode::NOT_FOUND);
  std::vector<std::string> invented;
  for (int i = 0; i < 200; ++i) invented.push_back(absl::StrCat("pkg", i));
  EXPECT_EQ(report(rollout_, invented).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status unknown = report(rollout_, {"ok", "made-up"});
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(unknown.error_message(), "\"made-up\" is not in mcnl@2026.1"))
      << unknown.error_message();
  // Valid reports, sent 30 times, keep one row per package.
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(report(rollout_, {"ok"}).ok());
  auto db = server_->OpenDatabase();
  ASSERT_NE(db, nullptr);
  auto count = db->Prepare("SELECT count(*) FROM deployment_packages WHERE device_id = ?");
  ASSERT_TRUE(count.ok());
  count->Bind(1, (*identity)->device_id);
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->Int(0), 1);
}

TEST_F(ScopeTest, OneRolloutRuleBehindParcctlAndTheDashboard) {
  auto created = Admin(
      {"rollouts", "create", "--bundle", "mcnl@2026.1", "--target", "departement:31", "--json"});
  ASSERT_EQ(created.status, 0) << created.err;
  const std::string only31 = FromJson<parc::v1::Rollout>(created.out).id();
  const std::string pub34 = CreateOperator("pub34", "publisher", "departement:34");

  // A rollout that reaches nothing of 34 does not exist for 34's publisher.
  auto status = Ctl(pub34, {"rollouts", "status", only31});
  EXPECT_TRUE(absl::StrContains(status.err, "NOT_FOUND")) << status.err;
  auto list = Ctl(pub34, {"rollouts", "list", "--json"});
  ASSERT_EQ(list.status, 0) << list.err;
  EXPECT_FALSE(absl::StrContains(list.out, only31));
  EXPECT_TRUE(absl::StrContains(list.out, rollout_));
  // The region-wide rollout reaches 34: visible, but not 34's to change, and it is told why.
  auto pause = Ctl(pub34, {"rollouts", "pause", rollout_});
  EXPECT_EQ(pause.status, 1);
  EXPECT_TRUE(absl::StrContains(pause.err, "PERMISSION_DENIED")) << pause.err;
  EXPECT_TRUE(absl::StrContains(pause.err, "was created by admin")) << pause.err;

  // The dashboard: same rule, same answers.
  httplib::SSLClient web("127.0.0.1", server_->server()->web_port());
  web.enable_server_certificate_verification(false);
  const httplib::Headers origin = {
      {"Origin", absl::StrCat("https://127.0.0.1:", server_->server()->web_port())}};
  auto login = web.Post("/connexion", origin, absl::StrCat("jeton=", pub34),
                        "application/x-www-form-urlencoded");
  ASSERT_TRUE(login && login->status == 303);
  std::string cookie = login->get_header_value("Set-Cookie");
  cookie = cookie.substr(0, cookie.find(';'));
  auto page = web.Get("/deploiements", {{"Cookie", cookie}});
  ASSERT_TRUE(page && page->status == 200);
  EXPECT_FALSE(absl::StrContains(page->body, only31));
  EXPECT_FALSE(absl::StrContains(page->body, "Mettre en pause"));
  const std::string marker = "name=\"csrf\" value=\"";
  const size_t at = page->body.find(marker);
  ASSERT_NE(at, std::string::npos);
  const std::string csrf = page->body.substr(at + marker.size(), 64);
  httplib::Headers headers = origin;
  headers.emplace("Cookie", cookie);
  auto refused = web.Post(absl::StrCat("/deploiements/", rollout_, "/pause").c_str(), headers,
                          absl::StrCat("csrf=", csrf), "application/x-www-form-urlencoded");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 303);
  EXPECT_EQ(refused->get_header_value("Location"), "/deploiements?refus=perimetre");
  auto hidden = web.Post(absl::StrCat("/deploiements/", only31, "/pause").c_str(), headers,
                         absl::StrCat("csrf=", csrf), "application/x-www-form-urlencoded");
  ASSERT_TRUE(hidden);
  EXPECT_EQ(hidden->status, 404);
  // Both doors wrote the same audit entry (written just after each answer).
  int denied = 0;
  std::string listing;
  for (int attempt = 0; attempt < 40 && denied < 2; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto audit = Admin({"audit", "--operator", "pub34", "--json"});
    ASSERT_EQ(audit.status, 0);
    listing = audit.out;
    denied = 0;
    const auto entries = FromJson<parc::v1::ListAuditResponse>(audit.out);
    for (const auto& e : entries.entries()) {
      if (e.action() == "UpdateRollout" && e.outcome() == "PERMISSION_DENIED") ++denied;
    }
  }
  EXPECT_EQ(denied, 2) << listing;
  // The rollout still runs.
  EXPECT_TRUE(absl::StrContains(Admin({"rollouts", "status", rollout_}).out, "running"));
}

TEST_F(ScopeTest, ScopedAdminsListOnlyOperatorsAndAuditOfTheirScope) {
  const std::string admin31 = CreateOperator("admin31", "admin", "departement:31");
  CreateOperator("fermat-viewer", "viewer", "uai:0310036W");
  CreateOperator("cd34-viewer", "viewer", "departement:34");
  auto ops = Ctl(admin31, {"operators", "list", "--json"});
  ASSERT_EQ(ops.status, 0) << ops.err;
  EXPECT_TRUE(absl::StrContains(ops.out, "fermat-viewer"));
  EXPECT_TRUE(absl::StrContains(ops.out, "admin31"));
  EXPECT_FALSE(absl::StrContains(ops.out, "cd34-viewer"));
  EXPECT_FALSE(absl::StrContains(ops.out, "\"name\": \"admin\"")) << ops.out;
  auto audit = Ctl(admin31, {"audit", "--json"});
  ASSERT_EQ(audit.status, 0) << audit.err;
  // The region admin's actions (operators created, rollouts started) are not 31's to read.
  EXPECT_FALSE(absl::StrContains(audit.out, "\"operatorName\": \"admin\"")) << audit.out;
}

TEST_F(ScopeTest, MetricsAnswerTheServerItselfOrARegionWideToken) {
  const std::string region_viewer = CreateOperator("prometheus", "viewer", "region");
  const std::string viewer31 = CreateOperator("cd31-metrics", "viewer", "departement:31");
  server::Store* store = server_->server()->store();
  EXPECT_TRUE(server::MetricsAllowed(store, "127.0.0.1", ""));
  EXPECT_TRUE(server::MetricsAllowed(store, "::1", ""));
  EXPECT_FALSE(server::MetricsAllowed(store, "10.31.0.7", ""));
  EXPECT_FALSE(server::MetricsAllowed(store, "10.31.0.7", "Bearer " + viewer31));
  EXPECT_FALSE(server::MetricsAllowed(store, "10.31.0.7", "Bearer o000000000000.bad"));
  EXPECT_TRUE(server::MetricsAllowed(store, "10.31.0.7", "Bearer " + region_viewer));
}

TEST_F(ScopeTest, CollectiviteScopesFollowWhoOwnsTheEquipment) {
  std::string cd31 = CreateOperator("cd31", "viewer", "collectivite:departement:31");
  auto est = FromJson<parc::v1::ListEstablishmentsResponse>(
      Ctl(cd31, {"establishments", "list", "--json"}).out);
  ASSERT_EQ(est.establishments_size(), 1);
  EXPECT_EQ(est.establishments(0).uai(), "0311234Y");  // the collège only
  auto devices =
      FromJson<parc::v1::ListDevicesResponse>(Ctl(cd31, {"devices", "list", "--json"}).out);
  ASSERT_EQ(devices.devices_size(), 1);
  EXPECT_EQ(devices.devices(0).serial(), "8J2KLM3");

  std::string region = CreateOperator("region", "viewer", "collectivite:region");
  est = FromJson<parc::v1::ListEstablishmentsResponse>(
      Ctl(region, {"establishments", "list", "--json"}).out);
  for (const auto& e : est.establishments()) {
    EXPECT_TRUE(e.category() == "lycee" || e.category() == "erea") << e.uai();
  }
  EXPECT_EQ(est.establishments_size(), 5);  // 4 lycées and the EREA of the fixture

  // A technician of one lycée creates tokens for it and nowhere else.
  std::string tech = CreateOperator("tech-fermat", "technician", "uai:0310036W");
  EXPECT_EQ(Ctl(tech, {"tokens", "create", "--uai", "0310036W"}).status, 0);
  auto other = Ctl(tech, {"tokens", "create", "--uai", "0340001S"});
  EXPECT_TRUE(absl::StrContains(other.err, "NOT_FOUND")) << other.err;
  auto wide = Ctl(tech, {"tokens", "create", "--region"});
  EXPECT_TRUE(absl::StrContains(wide.err, "PERMISSION_DENIED")) << wide.err;
  EXPECT_EQ(Admin({"operators", "create", "--name", "bad", "--role", "viewer", "--scope",
                   "departement:XX"})
                .status,
            1);
}

TEST_F(ScopeTest, ReportsMatchTheFleet) {
  auto by_dep = FromJson<parc::v1::DeploymentReportResponse>(
      Admin({"report", "deployment", "--bundle", "mcnl@2026.1", "--by", "departement", "--json"})
          .out);
  std::map<std::string, parc::v1::DeploymentReportRow> rows;
  for (const auto& r : by_dep.rows()) rows[r.group()] = r;
  // 31: laptop installed, display failed (its driver), the second laptop never seen.
  const auto& d31 = rows.at("31");
  EXPECT_EQ(d31.establishments(), 4u);
  EXPECT_EQ(d31.devices(), 3u);
  EXPECT_EQ(d31.up_to_date(), 1u);
  EXPECT_EQ(d31.failed(), 1u);
  EXPECT_EQ(d31.in_progress(), 0u);
  EXPECT_EQ(d31.never_seen(), 1u);
  EXPECT_NEAR(d31.percent_up_to_date(), 100.0 / 3, 0.01);
  EXPECT_EQ(d31.label(), "31 Haute-Garonne");
  const auto& d34 = rows.at("34");
  EXPECT_EQ(d34.devices(), 1u);
  EXPECT_EQ(d34.up_to_date(), 1u);
  EXPECT_EQ(rows.at("12").devices(), 0u);  // an école without devices still counts
  EXPECT_EQ(by_dep.total().devices(), 4u);
  EXPECT_EQ(by_dep.total().up_to_date(), 2u);
  EXPECT_EQ(by_dep.total().establishments(), 9u);

  auto by_kind = FromJson<parc::v1::DeploymentReportResponse>(
      Admin({"report", "deployment", "--bundle", "mcnl", "--by", "kind", "--json"}).out);
  std::map<std::string, uint32_t> kinds;
  for (const auto& r : by_kind.rows()) kinds[r.group()] = r.devices();
  EXPECT_EQ(kinds, (std::map<std::string, uint32_t>{{"display", 1}, {"laptop", 2}, {"tablet", 1}}));

  // Stale: nobody checks in for 8 days.
  server_->clock()->Advance(absl::Hours(24 * 8));
  auto stale = FromJson<parc::v1::DeploymentReportResponse>(
      Admin({"report", "deployment", "--bundle", "mcnl", "--by", "region", "--json"}).out);
  EXPECT_EQ(stale.total().stale(), 3u);

  auto inventory = FromJson<parc::v1::InventoryReportResponse>(
      Admin({"report", "inventory", "--by", "kind", "--json"}).out);
  std::map<std::string, parc::v1::InventoryReportRow> inv;
  for (const auto& r : inventory.rows()) inv[r.group()] = r;
  EXPECT_EQ(inv.at("laptop").devices(), 2u);
  EXPECT_EQ(inv.at("tablet").battery_below_60(), 1u);  // 55 % in the fixture
  EXPECT_EQ(inv.at("laptop").battery_below_60(), 0u);  // 87 %
  EXPECT_EQ(inv.at("display").rotational_disk(), 1u);  // the desktop's hard disk
  EXPECT_EQ(inventory.total().devices(), 4u);

  auto csv =
      Admin({"report", "deployment", "--bundle", "mcnl", "--by", "departement", "--format", "csv"});
  EXPECT_TRUE(absl::StartsWith(csv.out, "\xEF\xBB\xBFGROUP;NAME;")) << csv.out;
  EXPECT_TRUE(absl::StrContains(csv.out, "31;31 Haute-Garonne;4;3;1;0;1;1;")) << csv.out;
}

// Fleet health through parcctl: the indicators of the fixture devices, the end-of-support table
// kept by region-wide admins only, a bundle's requirements, the table and CSV forms.
TEST_F(ScopeTest, HealthReportFollowsTheFleetTheTableAndTheBundle) {
  auto health = [&](const std::string& token) {
    auto r = Ctl(token, {"report", "health", "--by", "departement", "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
    auto report = FromJson<parc::v1::HealthReportResponse>(r.out);
    std::map<std::string, parc::v1::HealthReportRow> rows;
    for (const auto& row : report.rows()) rows[row.group()] = row;
    return std::make_pair(report, rows);
  };
  auto [report, rows] = health(server_->admin_token());
  // 31: the laptop (Debian 12, firmware 2021, battery 87 %), the desktop (Ubuntu 22.04,
  // firmware 2014) and the laptop never seen (no inventory); 34: the tablet (battery 55 %,
  // unreadable firmware date).
  EXPECT_EQ(rows.at("31").devices(), 3u);
  EXPECT_EQ(rows.at("31").age_4_7(), 1u);
  EXPECT_EQ(rows.at("31").age_8_plus(), 1u);
  EXPECT_EQ(rows.at("31").age_unknown(), 1u);
  EXPECT_EQ(rows.at("31").os_support_unknown(), 1u);
  EXPECT_EQ(rows.at("31").unseen_30_days(), 1u);
  EXPECT_EQ(rows.at("34").battery_below_60(), 1u);
  EXPECT_EQ(rows.at("34").age_unknown(), 1u);
  EXPECT_EQ(rows.at("12").devices(), 0u);
  EXPECT_EQ(report.total().devices(), 4u);
  EXPECT_EQ(report.total().os_unsupported(), 0u);  // Debian 12 and Ubuntu 22.04 as seeded
  EXPECT_EQ(report.total().cannot_take_bundle(), 0u);
  EXPECT_EQ(report.bundle_name(), "");  // mcnl@2026.1 declares no requirements

  // The end-of-support table: region-wide admins only, dates checked.
  const std::vector<std::string> set = {"os-support",   "set", "--os", "Debian GNU/Linux",
                                        "--os-version", "12",  "--end"};
  auto with_end = [&](const std::string& end) {
    std::vector<std::string> args = set;
    args.push_back(end);
    return args;
  };
  std::string viewer = CreateOperator("viewer-health", "viewer", "region");
  std::string admin31 = CreateOperator("admin-31", "admin", "departement:31");
  EXPECT_TRUE(absl::StrContains(Ctl(viewer, with_end("2026-01-01")).err, "PERMISSION_DENIED"));
  EXPECT_TRUE(absl::StrContains(Ctl(admin31, with_end("2026-01-01")).err, "PERMISSION_DENIED"));
  auto bad = Admin(with_end("2026-13-01"));
  EXPECT_TRUE(absl::StrContains(bad.err, "end_of_support")) << bad.err;
  auto ok = Admin(with_end("2026-01-01"));
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_TRUE(absl::StrContains(ok.out, "Debian 12")) << ok.out;
  std::tie(report, rows) = health(server_->admin_token());
  EXPECT_EQ(report.total().os_unsupported(), 2u);  // the laptop and the tablet
  EXPECT_EQ(report.total().to_windows11() + report.total().linux_candidates(), 2u);
  auto versions = Admin({"os-support", "list"});
  EXPECT_TRUE(absl::StrContains(versions.out, "2026-01-01")) << versions.out;
  EXPECT_TRUE(absl::StrContains(versions.out, "by admin")) << versions.out;

  // A bundle declaring requirements no device meets.
  WriteFile(dir_.Sub("spec2.toml"),
            "name = \"mcnl\"\nversion = \"2027.1\"\nsequence = 2\nexpires = \"365d\"\n"
            "[requirements]\ninstalled_size = \"900000 GiB\"\nmin_ram = \"1000 GiB\"\n"
            "[[packages]]\nid = \"ok\"\nversion = \"2\"\nartifact = \"a.txt\"\n"
            "type = \"command\"\ninstall = [\"true\"]\n");
  ASSERT_EQ(RunBundleTool({"build", dir_.Sub("spec2.toml"), "--key", dir_.Sub("key.key"), "--out",
                           dir_.Sub("bundle2")})
                .status,
            0);
  ASSERT_EQ(Admin({"bundles", "publish", dir_.Sub("bundle2")}).status, 0);
  std::tie(report, rows) = health(server_->admin_token());
  EXPECT_EQ(report.bundle_name(), "mcnl");
  EXPECT_EQ(report.bundle_version(), "2027.1");
  EXPECT_EQ(report.total().cannot_take_bundle(), 3u);  // every device that sent an inventory

  // One indicator, as a table and as CSV; a département without devices shows "—".
  auto table = Admin({"report", "health", "--by", "departement", "--indicator", "battery-60"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_TRUE(absl::StrContains(table.out, "BATTERY < 60%")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "1 (100.0 %)")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "—")) << table.out;
  EXPECT_FALSE(absl::StrContains(table.out, "CANNOT TAKE BUNDLE")) << table.out;
  auto csv = Admin(
      {"report", "health", "--by", "departement", "--indicator", "battery-60", "--format", "csv"});
  EXPECT_TRUE(absl::StrContains(csv.out, "GROUP;NAME;ESTABLISHMENTS;DEVICES;BATTERY < 60%;"))
      << csv.out;
  EXPECT_TRUE(absl::StrContains(csv.out, "34;34 Hérault;2;1;1;100.0")) << csv.out;
  EXPECT_TRUE(absl::StrContains(csv.out, "12;12 Aveyron;1;0;0;\r\n")) << csv.out;
  auto unknown = Admin({"report", "health", "--indicator", "batteries"});
  EXPECT_NE(unknown.status, 0);
  EXPECT_TRUE(absl::StrContains(unknown.err, "battery-60")) << unknown.err;

  // The dashboard's table has the same numbers, row for row.
  std::string web_csv = server_->DashboardGet("/sante?format=csv");
  std::vector<std::string> web_lines = absl::StrSplit(web_csv, "\r\n", absl::SkipEmpty());
  auto cli = Admin({"report", "health", "--by", "departement", "--format", "csv"});
  ASSERT_GT(web_lines.size(), 5u) << web_csv;
  for (size_t i = 1; i < web_lines.size(); ++i) {
    EXPECT_TRUE(absl::StrContains(cli.out, web_lines[i] + "\r\n")) << web_lines[i] << "\nnot in\n"
                                                                   << cli.out;
  }

  // The overview's académies (sums of their départements) are parcctl's --by academie rows.
  std::string overview = server_->DashboardGet("/sante");
  auto academies = FromJson<parc::v1::HealthReportResponse>(
      Admin({"report", "health", "--by", "academie", "--json"}).out);
  ASSERT_EQ(academies.rows_size(), 2);
  for (const auto& a : academies.rows()) {
    const std::string row = absl::StrCat("<th scope=\"row\">", a.label(), "</th><td class=\"n\">",
                                         a.establishments(), "</td><td class=\"n\">", a.devices(),
                                         "</td><td class=\"n\">", a.cannot_take_bundle(), " (");
    EXPECT_TRUE(absl::StrContains(overview, row)) << row << "\n" << overview;
  }

  // A département's viewer sees its own rows only.
  std::string viewer31 = CreateOperator("viewer-31", "viewer", "departement:31");
  auto [scoped, scoped_rows] = health(viewer31);
  EXPECT_EQ(scoped_rows.size(), 1u);
  EXPECT_EQ(scoped.total().devices(), 3u);
}

TEST_F(ScopeTest, AuditRecordsWhoDidWhatAndTheOutcome) {
  std::string viewer = CreateOperator("marie.viewer", "viewer", "departement:31");
  std::string publisher = CreateOperator("jean.publisher", "publisher", "region");
  EXPECT_EQ(Ctl(viewer, {"rollouts", "pause", rollout_}).status, 1);
  auto paused = Ctl(publisher, {"rollouts", "pause", rollout_});
  ASSERT_EQ(paused.status, 0) << paused.err;
  // An entry is queued before the call is answered and committed with the writer's next
  // batch, milliseconds later.
  parc::v1::ListAuditResponse audit;
  for (int i = 0; i < 100; ++i) {
    audit = FromJson<parc::v1::ListAuditResponse>(Admin({"audit", "--json"}).out);
    bool has_pause = false;
    for (const auto& e : audit.entries()) {
      has_pause |= e.action() == "UpdateRollout" && e.operator_name() == "jean.publisher";
    }
    if (has_pause) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  bool denied = false, pause_ok = false, operator_created = false;
  for (const auto& e : audit.entries()) {
    if (e.action() == "UpdateRollout" && e.operator_name() == "marie.viewer") {
      denied = e.outcome() == "PERMISSION_DENIED";
    }
    if (e.action() == "UpdateRollout" && e.operator_name() == "jean.publisher") {
      pause_ok = e.outcome() == "ok" && absl::StrContains(e.target(), rollout_) &&
                 absl::StrContains(e.target(), "pause");
    }
    if (e.action() == "CreateOperator" && e.operator_name() == "admin") {
      operator_created = absl::StrContains(e.target(), "marie.viewer");
    }
    EXPECT_FALSE(absl::StrContains(e.target(), "BEGIN")) << "file contents in the audit log";
  }
  EXPECT_TRUE(denied);
  EXPECT_TRUE(pause_ok);
  EXPECT_TRUE(operator_created);
  auto text = Admin({"audit", "--operator", "jean.publisher"});
  EXPECT_TRUE(absl::StrContains(text.out, "UpdateRollout")) << text.out;
  EXPECT_FALSE(absl::StrContains(text.out, "marie.viewer")) << text.out;
  // Only admins read the audit log; a revoked operator is refused.
  EXPECT_TRUE(absl::StrContains(Ctl(publisher, {"audit"}).err, "PERMISSION_DENIED"));
  ASSERT_EQ(Admin({"operators", "revoke", "jean.publisher"}).status, 0);
  EXPECT_TRUE(absl::StrContains(Ctl(publisher, {"rollouts", "list"}).err, "UNAUTHENTICATED"));
}

}  // namespace
}  // namespace parc::testing
