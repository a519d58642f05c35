// The dashboard shows what devices say about themselves: hostile strings in every
// device-supplied field must reach the pages as text and the CSV exports as inert cells.
#include <httplib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/core/sqlite_state.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"
#include "server/dashboard_html.h"
#include "tests/test_util.h"
#include "tools/bundle/bundle_tool.h"

namespace parc::testing {
namespace {

// Markup a browser would act on, as a device could send it.
constexpr char kMeta[] = "<meta http-equiv=refresh content=\"0;url=https://evil.example\">";
constexpr char kScript[] = "<script>alert(1)</script>";
constexpr char kImg[] = "<img src=x onerror=alert(2)>";
constexpr char kFormula[] = "=HYPERLINK(\"https://evil.example\";\"cliquez\")";

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(RunBundleTool({"keygen", "--out", dir_.Sub("key")}).status, 0);
    server_ = std::make_unique<TestServer>(dir_.Sub("server"), 0, [this](server::ServerOptions& o) {
      o.publisher_keys = {dir_.Sub("key.pub")};
      o.artifact_listen = "127.0.0.1:0";
    });
    server_->ImportFixtureEstablishments();
    config_ = dir_.Sub("agent.toml");
    WriteFile(config_, absl::StrCat("publisher_keys = [\"", dir_.Sub("key.pub"), "\"]\n"));
  }
  CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.end(), {"--server", server_->address(), "--ca", server_->ca_path(), "--token",
                             server_->admin_token()});
    return RunCtl(args);
  }
  // GET as the signed-in admin.
  std::string Page(const std::string& path, int* status = nullptr) {
    return server_->DashboardGet(path, status);
  }

  TempDir dir_;
  std::unique_ptr<TestServer> server_;
  std::string config_;
};

TEST(HtmlTest, StringsAreTextAndOnlyLiteralsAreMarkup) {
  using server::web::Html;
  const std::string hostile = "<meta http-equiv=\"refresh\" content=\"0;url=//evil\">'&";
  Html cell = Html::Of("<td>", hostile, "</td>");
  EXPECT_EQ(cell.str(),
            "<td>&lt;meta http-equiv=&quot;refresh&quot; content=&quot;0;url=//evil&quot;&gt;"
            "&#39;&amp;</td>");
  // Html values nest without being escaped twice; numbers are printed.
  Html row = Html::Of("<tr>", cell, "<td>", 42, "</td></tr>");
  EXPECT_EQ(row.str(), absl::StrCat("<tr>", cell.str(), "<td>42</td></tr>"));
  EXPECT_EQ(Html::Of(absl::string_view("a<b")).str(), "a&lt;b");
  // A page built from an escaped value cannot be turned back into markup by appending it.
  Html page = server::web::Layout(hostile, nullptr, "", row);
  EXPECT_EQ(page.str().find("<meta http-equiv=\"refresh\""), std::string::npos);
  EXPECT_NE(page.str().find("&lt;meta http-equiv"), std::string::npos);
}

TEST_F(DashboardTest, AnEstablishmentListsItsDevicesByPagesSortedAndFilteredByTheStore) {
  {
    // 200 laptops and 30 tablets in one lycée, written as enrollments would leave them.
    auto db = server_->OpenDatabase();
    ASSERT_NE(db, nullptr);
    std::string sql = "BEGIN;";
    for (int i = 0; i < 230; ++i) {
      absl::StrAppend(&sql,
                      "INSERT INTO devices(id, secret_hash, hw_key, uai, kind, serial, hostname, "
                      "enrolled_at, last_enrolled_at, last_seen_at) VALUES ('d",
                      absl::StrFormat("%016d", i), "', 'x', 'hw", i, "', '0310036W', ",
                      i < 200 ? 1 : 2, ", 'S", absl::StrFormat("%03d", i), "', 'pc-",
                      absl::StrFormat("%03d", i), "', 1790000000, 1790000000, 1790000000);");
    }
    ASSERT_TRUE(db->Exec(sql + "COMMIT;").ok());
  }
  int status = 0;
  std::string html = Page("/etablissement/0310036W", &status);
  ASSERT_EQ(status, 200);
  EXPECT_TRUE(absl::StrContains(html, "Appareils 1–100 sur 230")) << html;
  EXPECT_TRUE(absl::StrContains(html, "Page 1 sur 3"));
  EXPECT_TRUE(absl::StrContains(html, "rel=\"next\""));
  EXPECT_FALSE(absl::StrContains(html, "rel=\"prev\""));
  // The summary counts every device and links to each list.
  EXPECT_TRUE(absl::StrContains(html, "type=tablette&amp;etat=pasencore\">30</a>")) << html;
  EXPECT_TRUE(absl::StrContains(html, ">230</a>"));
  EXPECT_LT(html.size(), 64u * 1024);

  // Sorted by the store across pages: the last device by name comes first, descending.
  html = Page("/etablissement/0310036W?tri=appareil&ordre=desc");
  ASSERT_NE(html.find(">pc-229<"), std::string::npos);
  EXPECT_LT(html.find(">pc-229<"), html.find(">pc-228<"));
  EXPECT_EQ(html.find(">pc-129<"), std::string::npos);  // on page 2
  html = Page("/etablissement/0310036W?tri=appareil&ordre=desc&page=2");
  EXPECT_NE(html.find(">pc-129<"), std::string::npos);
  EXPECT_TRUE(absl::StrContains(html, "Appareils 101–200 sur 230"));
  // A page past the end shows the last one.
  html = Page("/etablissement/0310036W?page=99");
  EXPECT_TRUE(absl::StrContains(html, "Appareils 201–230 sur 230"));

  // Filtered: only the tablets, one page.
  html = Page("/etablissement/0310036W?type=tablette&etat=pasencore");
  EXPECT_TRUE(absl::StrContains(html, "Appareils 1–30 sur 30"));
  EXPECT_FALSE(absl::StrContains(html, "Page 1 sur"));
  EXPECT_EQ(html.find(">pc-000<"), std::string::npos);
  EXPECT_NE(html.find(">pc-200<"), std::string::npos);

  // Compressed with gzip even when the browser also offers brotli (cpp-httplib's brotli runs
  // at its slowest quality).
  {
    httplib::SSLClient c("127.0.0.1", server_->server()->web_port());
    c.enable_server_certificate_verification(false);
    auto r = c.Get("/etablissement/0310036W", {{"Cookie", server_->dashboard_cookie()},
                                               {"Accept-Encoding", "gzip, deflate, br"}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->get_header_value("Content-Encoding"), "gzip");
  }

  // The CSV holds the whole list, not one page; with a filter, the filtered list.
  std::string csv = Page("/etablissement/0310036W?format=csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 231);
  csv = Page("/etablissement/0310036W?type=tablette&format=csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 31);
}

TEST_F(DashboardTest, DeviceSuppliedStringsAreTextOnEveryPageAndInertInExports) {
  // A laptop whose firmware, hostname, OS and packages carry markup and formulas.
  std::string root = dir_.Sub("root");
  CopyTree(DataPath("laptop"), root);
  WriteFile(root + "/sys/class/dmi/id/product_name", absl::StrCat(kMeta, "\n"));
  WriteFile(root + "/sys/class/dmi/id/sys_vendor", absl::StrCat(kImg, "\n"));
  WriteFile(root + "/sys/class/dmi/id/product_serial", absl::StrCat(kFormula, "\n"));
  WriteFile(root + "/proc/sys/kernel/hostname", "<b>pirate</b>\n");
  WriteFile(root + "/etc/os-release", absl::StrCat("PRETTY_NAME=\"", kScript, "\"\nID=debian\n"));
  WriteFile(root + "/var/lib/dpkg/status",
            absl::StrCat("Package: evil\nStatus: install ok installed\nArchitecture: amd64\n"
                         "Version: ",
                         kScript, "\n\n"));
  std::string state = dir_.Sub("state");
  auto enrolled = RunAgent({"enroll", "--root", root, "--state-dir", state, "--server",
                            server_->address(), "--token", server_->CreateToken("0310036W"), "--ca",
                            server_->ca_path(), "--config", config_});
  ASSERT_EQ(enrolled.status, 0) << enrolled.err;

  // A bundle whose install fails with hostile output, rolled out to the laptop.
  WriteFile(dir_.Sub("a.txt"), "a");
  WriteFile(dir_.Sub("spec.toml"),
            absl::StrCat("name = \"mcnl\"\nversion = \"2026.1\"\nsequence = 1\nexpires = "
                         "\"365d\"\n[[packages]]\nid = \"ressources\"\nversion = \"1\"\n"
                         "artifact = \"a.txt\"\ntype = \"command\"\ninstall = [\"sh\", \"-c\", "
                         "\"echo '",
                         kScript, "' >&2; exit 3\"]\n"));
  ASSERT_EQ(RunBundleTool({"build", dir_.Sub("spec.toml"), "--key", dir_.Sub("key.key"), "--out",
                           dir_.Sub("bundle")})
                .status,
            0);
  ASSERT_EQ(Ctl({"bundles", "publish", dir_.Sub("bundle")}).status, 0);
  auto created =
      Ctl({"rollouts", "create", "--bundle", "mcnl@2026.1", "--target", "all", "--json"});
  ASSERT_EQ(created.status, 0) << created.err;
  const size_t id_at = created.out.find("\"id\": \"");
  ASSERT_NE(id_at, std::string::npos) << created.out;
  std::string rollout = created.out.substr(id_at + 7, 9);
  ASSERT_EQ(Ctl({"rollouts", "start", rollout}).status, 0);
  auto run = RunAgent({"run", "--once", "--root", root, "--state-dir", state, "--config", config_});
  ASSERT_EQ(run.status, 0) << run.err;

  // The device also reports a hostile reason and message of its own.
  auto agent_state = agent::SqliteAgentState::Open(state);
  ASSERT_TRUE(agent_state.ok());
  auto identity = (*agent_state)->LoadIdentity();
  ASSERT_TRUE(identity.ok() && identity->has_value());
  parc::v1::DeploymentReport report;
  report.set_rollout_id(rollout);
  report.set_bundle_name("mcnl");
  report.set_bundle_version("2026.1");
  report.set_state(parc::v1::DEPLOYMENT_STATE_FAILED);
  report.set_reason(kMeta);
  report.set_message(kImg);
  auto* p = report.add_packages();
  p->set_package_id("ressources");
  p->set_version("1");
  p->set_state(parc::v1::PACKAGE_STATE_FAILED);
  p->set_reason(kMeta);
  p->set_output_tail(kScript);
  parc::v1::ReportDeploymentResponse ack;
  auto ctx = TestServer::Context(absl::StrCat((*identity)->device_id, ".", (*identity)->secret));
  grpc::Status sent = server_->AgentStub()->ReportDeployment(ctx.get(), report, &ack);
  ASSERT_TRUE(sent.ok()) << sent.error_message();
  const std::string device = (*identity)->device_id;

  for (const std::string& path :
       {std::string("/"), std::string("/departement/31"), std::string("/commune/31555"),
        std::string("/etablissement/0310036W"), absl::StrCat("/appareil/", device),
        std::string("/deploiements"), std::string("/sante"), std::string("/sante/departement/31"),
        std::string("/sante/commune/31555"), std::string("/sante/etablissement/0310036W"),
        std::string("/sante/etablissement/0310036W?indicateur=os-unknown")}) {
    int status = 0;
    std::string html = Page(path, &status);
    EXPECT_EQ(status, 200) << path;
    const std::string lower = absl::AsciiStrToLower(html);
    for (const char* markup : {"<meta http-equiv", "<script", "<img", "<b>pirate"}) {
      EXPECT_FALSE(absl::StrContains(lower, markup)) << path << " contains " << markup;
    }
  }
  // The escaped text is there, readable.
  std::string device_page = Page(absl::StrCat("/appareil/", device));
  EXPECT_TRUE(absl::StrContains(device_page, "&lt;meta http-equiv=refresh")) << device_page;
  EXPECT_TRUE(absl::StrContains(device_page, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_TRUE(absl::StrContains(device_page, "&lt;b&gt;pirate&lt;/b&gt;"));

  // CSV exports: the formula is a text cell.
  std::string csv = Page("/etablissement/0310036W?format=csv");
  EXPECT_TRUE(absl::StrContains(csv, "'=HYPERLINK")) << csv;
  EXPECT_FALSE(absl::StrContains(csv, ";=HYPERLINK")) << csv;
  EXPECT_FALSE(absl::StrContains(csv, ";\"=HYPERLINK")) << csv;
  csv = Page("/sante/etablissement/0310036W?format=csv");
  EXPECT_TRUE(absl::StrContains(csv, "'=HYPERLINK")) << csv;
  EXPECT_FALSE(absl::StrContains(csv, ";=HYPERLINK")) << csv;
  auto report_csv = Ctl({"devices", "list", "--uai", "0310036W"});
  ASSERT_EQ(report_csv.status, 0);
}

TEST_F(DashboardTest, ParcctlPrintsNoTerminalEscapes) {
  std::string root = dir_.Sub("root");
  CopyTree(DataPath("laptop"), root);
  WriteFile(root + "/sys/class/dmi/id/product_serial", "SN\x1b]0;owned\x07\x1b[2J\n");
  WriteFile(root + "/proc/sys/kernel/hostname", "host\x1b[31mred\n");
  auto enrolled = RunAgent({"enroll", "--root", root, "--state-dir", dir_.Sub("state"), "--server",
                            server_->address(), "--token", server_->CreateToken("0310036W"), "--ca",
                            server_->ca_path(), "--config", config_});
  ASSERT_EQ(enrolled.status, 0) << enrolled.err;
  ASSERT_EQ(RunAgent({"run", "--once", "--root", root, "--state-dir", dir_.Sub("state"), "--config",
                      config_})
                .status,
            0);
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"devices", "list"},
                                             {"devices", "show", server_->ListDevices()[0].id()},
                                             {"report", "inventory", "--by", "model"}}) {
    auto r = Ctl(args);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << args[0] << " " << args[1] << ": " << r.out;
    EXPECT_EQ(r.out.find('\x07'), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace parc::testing
