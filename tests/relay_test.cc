// Establishment relays end to end: a real nginx with the site Parc ships, in front of the
// server's artifact port; agents (the real binary) try their establishment's relay, then the
// centre; parcctl assigns relays and shows what the agents reported about them.
#include <filesystem>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "tests/nginx_relay.h"
#include "tests/provisioning_fixture.h"

namespace parc::testing {
namespace {

class RelayTest : public ProvisioningTest {
 protected:
  void SetUp() override {
    if (!NginxRelay::Available()) GTEST_SKIP() << "nginx is not installed (tools/deps.sh --test)";
    ProvisioningTest::SetUp();
    relay_ = std::make_unique<NginxRelay>(dir_.Sub("relay"), dir_.Sub("server"),
                                          server_->server()->artifact_port());
    absl::Status started = relay_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  // A laptop of its own (serial and hardware UUID), enrolled into uai.
  Device EnrollClone(const std::string& name, const std::string& uai) {
    std::string root = dir_.Sub(name + "-root");
    CopyTree(DataPath("laptop"), root);
    WriteFile(root + "/sys/class/dmi/id/product_serial", name + "\n");
    WriteFile(
        root + "/sys/class/dmi/id/product_uuid",
        absl::StrCat("4c4c4544-0000-0000-0000-", common::Sha256Hex(name).substr(0, 12), "\n"));
    Device d{root, dir_.Sub(name + "-state"), AgentConfig(name)};
    auto r = RunAgent({"enroll", "--root", d.root, "--state-dir", d.state, "--server",
                       server_->address(), "--token", Token(uai), "--ca", server_->ca_path(),
                       "--config", d.config});
    EXPECT_EQ(r.status, 0) << r.err;
    return d;
  }
  std::string Token(const std::string& uai) {
    auto& t = tokens_[uai];
    if (t.empty()) t = server_->CreateToken(uai);
    return t;
  }
  // `parc-agent run --once` as its own process (several run at once).
  std::unique_ptr<ChildProcess> StartAgent(const Device& d) {
    auto p = std::make_unique<ChildProcess>();
    p->Start({PARC_AGENT_BIN, "run", "--once", "--root", d.root, "--state-dir", d.state, "--config",
              d.config},
             d.state + ".log");
    return p;
  }
  static bool WaitForExit(ChildProcess* p, absl::Duration limit) {
    absl::Time end = absl::Now() + limit;
    while (!p->Exited()) {
      if (absl::Now() > end) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }

  // A command package (nothing to unpack: many devices share this machine) of size bytes.
  std::string CommandPackage(const std::string& id, size_t size, uint32_t seed) {
    std::string artifact = dir_.Sub(id + ".bin");
    WriteFile(artifact, RandomBytes(size, seed));
    return absl::StrCat("[[packages]]\nid = \"", id, "\"\nversion = \"1.0\"\nartifact = \"",
                        artifact, "\"\ntype = \"command\"\ninstall = [\"true\"]\n");
  }

  parc::v1::Relay ListedRelay() {
    auto r = Ctl({"relays", "list", "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
    auto list = FromJson<parc::v1::ListRelaysResponse>(r.out);
    EXPECT_EQ(list.relays_size(), 1) << r.out;
    return list.relays_size() > 0 ? list.relays(0) : parc::v1::Relay();
  }

  // Per artifact source: (packages, bytes the agents downloaded from it), from the
  // deployment reports the server stored.
  std::map<std::string, std::pair<int64_t, int64_t>> BySource() {
    std::map<std::string, std::pair<int64_t, int64_t>> out;
    auto db = server_->OpenDatabase();
    auto st = db->Prepare(
        "SELECT source, count(*), sum(bytes_downloaded) FROM deployment_packages GROUP BY source");
    EXPECT_TRUE(st.ok()) << st.status();
    while (st.ok() && *st->Step()) out[st->Text(0)] = {st->Int(1), st->Int(2)};
    return out;
  }
  std::string central_url() const {
    return absl::StrCat("https://localhost:", server_->server()->artifact_port(), "/artifacts");
  }

  std::unique_ptr<NginxRelay> relay_;
  std::map<std::string, std::string> tokens_;
};

// P11's scenario: one lycée's devices all fetch the bundle at once through its relay; the
// central server sends each artifact once, and a device of another establishment (no relay)
// still downloads from the centre.
TEST_F(RelayTest, ThirtyDevicesBehindOneRelayCostTheCentreOneCopy) {
  constexpr size_t kSizeA = 3 << 20, kSizeB = 1 << 20;
  Publish(BuildBundle(
      "2026.1", 1, CommandPackage("manuels", kSizeA, 1) + CommandPackage("geogebra", kSizeB, 2)));
  auto added = Ctl({"relays", "add", "--url", relay_->url() + "/", "--uai", kFermat});
  ASSERT_EQ(added.status, 0) << added.err;
  EXPECT_TRUE(absl::StrContains(added.out, relay_->url())) << added.out;  // trailing / dropped

  std::vector<Device> devices;
  for (int i = 0; i < 30; ++i) devices.push_back(EnrollClone(absl::StrCat("FERMAT", i), kFermat));
  Device other = EnrollClone("JOFFRE0", kJoffre);
  std::string id = StartRollout("2026.1", {"--target", "uai:0310036W,0340001S"});

  const uint64_t central_before = server_->server()->artifact_bytes_served();
  std::vector<std::unique_ptr<ChildProcess>> agents;
  for (const auto& d : devices) agents.push_back(StartAgent(d));
  for (size_t i = 0; i < agents.size(); ++i) {
    ASSERT_TRUE(WaitForExit(agents[i].get(), absl::Minutes(3)))
        << ReadFileOrDie(devices[i].state + ".log") << relay_->ErrorLog();
  }
  // The relay reached the centre once per artifact: P11's ratio is exactly 1.
  EXPECT_EQ(server_->server()->artifact_bytes_served() - central_before, kSizeA + kSizeB)
      << relay_->ErrorLog();

  auto other_run = RunOnce(other);
  ASSERT_EQ(other_run.status, 0) << other_run.err;
  auto status = WaitForState(id, "completed");
  EXPECT_EQ(status.total().installed(), 31u);
  EXPECT_EQ(status.total().failed(), 0u);

  auto sources = BySource();
  EXPECT_EQ(sources[relay_->url()].first, 60) << "every Fermat package came from the relay";
  EXPECT_EQ(sources[relay_->url()].second, int64_t{30} * (kSizeA + kSizeB));
  EXPECT_EQ(sources[central_url()].first, 2) << "Joffre has no relay";

  parc::v1::Relay relay = ListedRelay();
  EXPECT_EQ(relay.health(), "ok");
  EXPECT_EQ(relay.bytes_served(), uint64_t{30} * (kSizeA + kSizeB));
  ASSERT_EQ(relay.uais_size(), 1);
  EXPECT_EQ(relay.uais(0), kFermat);

  // The dashboard: Fermat's relay is in service and served all of its devices' bytes; Joffre
  // has none. The same in the département's CSV.
  int code = 0;
  const std::string page = server_->DashboardGet("/etablissement/0310036W", &code);
  EXPECT_EQ(code, 200);
  EXPECT_TRUE(absl::StrContains(page, "en service")) << page;
  EXPECT_TRUE(absl::StrContains(page, "100 % des octets téléchargés pour ce lot en sont venus"))
      << page;
  EXPECT_TRUE(absl::StrContains(server_->DashboardGet("/etablissement/0340001S"), "Pas de relais"));
  const std::string csv = server_->DashboardGet("/departement/31?format=csv");
  EXPECT_TRUE(absl::StrContains(csv, "Relais (part des octets)")) << csv;
  const size_t fermat = csv.find("0310036W");
  ASSERT_NE(fermat, std::string::npos) << csv;
  EXPECT_TRUE(
      absl::StrContains(csv.substr(fermat, csv.find('\n', fermat) - fermat), "en service · 100 %"))
      << csv;
}

// A relay that dies mid-download, then one whose disk serves wrong bytes: the devices fall back
// to the centre (resuming the partial download), every one installs, and the relay is flagged.
TEST_F(RelayTest, ARelayKilledOrServingWrongBytesIsPassedOverAndFlagged) {
  // 32 MiB at 8 MiB/s: 4 s per download, and more than the relay's socket buffers hold when it
  // dies (what they hold still arrives).
  constexpr size_t kSize = 32 << 20;
  Publish(BuildBundle("2026.1", 1, CommandPackage("manuels", kSize, 3)));
  ASSERT_EQ(Ctl({"relays", "add", "--url", relay_->url(), "--uai", kFermat}).status, 0);
  Device d1 = EnrollClone("FERMAT-A", kFermat);
  Device d2 = EnrollClone("FERMAT-B", kFermat);
  Device d3 = EnrollClone("FERMAT-C", kFermat);
  std::string id = StartRollout("2026.1", {"--target", "uai:0310036W", "--rate", "8MiB"});

  // 1. The relay loses power while d1 downloads from it.
  auto agent = StartAgent(d1);
  // A deadline, not a count of polls: on a loaded machine (sanitizers, tests side by side) the
  // agent may take several seconds to check in and start.
  bool partial = false;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60);
       !partial && absl::Now() < deadline;) {
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(d1.state, ec)) {
      if (absl::EndsWith(e.path().string(), ".part") && e.file_size(ec) > (2 << 20)) {
        partial = true;
      }
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(partial) << "d1 never started downloading from the relay";
  relay_->Kill();
  ASSERT_TRUE(WaitForExit(agent.get(), absl::Minutes(1)));
  auto sources = BySource();
  EXPECT_EQ(sources[central_url()].first, 1) << ReadFileOrDie(d1.state + ".log");
  // Resumed: the centre sent only what the relay had not.
  EXPECT_GT(sources[central_url()].second, 0);
  EXPECT_LT(sources[central_url()].second, static_cast<int64_t>(kSize - (2 << 20)));
  parc::v1::Relay relay = ListedRelay();
  EXPECT_EQ(relay.health(), "unreachable");
  EXPECT_EQ(relay.unreachable(), 1u);

  // 2. Back up: d2 downloads from it.
  ASSERT_TRUE(relay_->Start().ok()) << relay_->ErrorLog();
  auto run2 = RunOnce(d2);
  ASSERT_EQ(run2.status, 0) << run2.err;
  EXPECT_EQ(BySource()[relay_->url()].first, 1);

  // 3. Its disk goes bad: d3 gets wrong bytes from it, then the right ones from the centre.
  ASSERT_GT(relay_->CorruptCache(), 0);
  auto run3 = RunOnce(d3);
  ASSERT_EQ(run3.status, 0) << run3.err;
  sources = BySource();
  EXPECT_EQ(sources[central_url()].first, 2);
  EXPECT_EQ(sources[relay_->url()].first, 1);

  auto status = WaitForState(id, "completed");
  EXPECT_EQ(status.total().installed(), 3u);
  relay = ListedRelay();
  EXPECT_EQ(relay.health(), "flagged");
  EXPECT_EQ(relay.wrong_bytes(), 1u);
  EXPECT_EQ(relay.last_fault(), "artifact_hash_mismatch");
  auto table = Ctl({"relays", "list"});
  EXPECT_TRUE(absl::StrContains(table.out, "flagged")) << table.out;
  // The dashboard says so too, and how much the relay still served: d2's download and the
  // part of d1's it sent before it died.
  const std::string page = server_->DashboardGet("/etablissement/0310036W");
  EXPECT_TRUE(absl::StrContains(page, "signalé (octets erronés)")) << page;
  EXPECT_TRUE(absl::StrContains(page, "des octets téléchargés pour ce lot en sont venus")) << page;

  // A report sent again (the outbox after a lost answer) counts nothing twice.
  auto again = RunOnce(d3);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(ListedRelay().wrong_bytes(), 1u);
}

// parc-relay-sync (the script the relay package runs every 15 minutes) with the relay's token:
// once a wave reaches the relay's establishment, the relay fetches each artifact once, before
// any device asks, and the devices' downloads never reach the centre.
TEST_F(RelayTest, TheRelayPrefetchesWhatItsEstablishmentsAreAssignedAndReportsItsCache) {
  // Three of the relay's 1 MiB slices, and one.
  constexpr size_t kSizeA = (2 << 20) + 4321, kSizeB = 1 << 19;
  Publish(BuildBundle(
      "2026.1", 1, CommandPackage("manuels", kSizeA, 4) + CommandPackage("geogebra", kSizeB, 5)));
  auto added = Ctl({"relays", "add", "--url", relay_->url(), "--uai", kFermat, "--json"});
  ASSERT_EQ(added.status, 0) << added.err;
  const std::string token = FromJson<parc::v1::AddRelayResponse>(added.out).token();
  ASSERT_FALSE(token.empty()) << added.out;
  // Added again (another establishment, say): no new token unless asked.
  auto again = Ctl({"relays", "add", "--url", relay_->url(), "--uai", kFermat, "--json"});
  EXPECT_TRUE(FromJson<parc::v1::AddRelayResponse>(again.out).token().empty()) << again.out;

  WriteFile(dir_.Sub("relay-token"), token + "\n");
  const std::string env = dir_.Sub("sync.env");
  WriteFile(env,
            absl::StrCat(
                "PARC_SERVER=https://localhost:", server_->server()->artifact_port(),
                "\nPARC_CA=", server_->ca_path(), "\nPARC_TOKEN_FILE=", dir_.Sub("relay-token"),
                "\nRELAY_URL=https://127.0.0.1:", relay_->port(), "\nRELAY_CA=", server_->ca_path(),
                "\nCACHE_DIR=", relay_->cache_dir(), "\nCACHE_MAX_BYTES=1073741824\n"));
  auto sync = [&]() {
    std::string out = dir_.Sub("sync.out");
    std::string cmd = absl::StrCat("PARC_RELAY_CONF='", env, "' ", PARC_SOURCE_DIR,
                                   "/packaging/relay/parc-relay-sync > '", out, "' 2>&1");
    int rc = std::system(cmd.c_str());
    return std::make_pair(rc, ReadFileOrDie(out));
  };

  // Nothing assigned to Fermat yet (a rollout for Joffre only does not count).
  EnrollClone("JOFFRE-P", kJoffre);
  StartRollout("2026.1", {"--target", "uai:0340001S"});
  auto [rc0, out0] = sync();
  ASSERT_EQ(rc0, 0) << out0;
  EXPECT_TRUE(absl::StrContains(out0, "0 artifact(s) assigned")) << out0;
  parc::v1::Relay relay = ListedRelay();
  EXPECT_TRUE(relay.has_reported_at());
  EXPECT_EQ(relay.cache_max_bytes(), 1u << 30);

  // The wave reaches Fermat: the relay fetches each artifact once, ahead of the devices.
  Device a = EnrollClone("FERMAT-P1", kFermat);
  Device b = EnrollClone("FERMAT-P2", kFermat);
  StartRollout("2026.1", {"--target", "uai:0310036W"});
  const uint64_t before = server_->server()->artifact_bytes_served();
  auto [rc1, out1] = sync();
  ASSERT_EQ(rc1, 0) << out1;
  EXPECT_TRUE(absl::StrContains(out1, "2 artifact(s) assigned, 2 fetched now, 0 missing")) << out1;
  EXPECT_EQ(server_->server()->artifact_bytes_served() - before, kSizeA + kSizeB);
  auto [rc2, out2] = sync();
  ASSERT_EQ(rc2, 0) << out2;
  EXPECT_TRUE(absl::StrContains(out2, "2 artifact(s) assigned, 0 fetched now, 0 missing")) << out2;

  ASSERT_EQ(RunOnce(a).status, 0);
  ASSERT_EQ(RunOnce(b).status, 0);
  EXPECT_EQ(server_->server()->artifact_bytes_served() - before, kSizeA + kSizeB)
      << "the devices' downloads stayed on the school's network";
  EXPECT_EQ(BySource()[relay_->url()].first, 4);
  relay = ListedRelay();
  EXPECT_EQ(relay.health(), "ok");
  EXPECT_EQ(relay.artifacts_missing(), 0u);
  EXPECT_GE(relay.cache_bytes(), kSizeA + kSizeB);
  auto table = Ctl({"relays", "list"});
  EXPECT_TRUE(absl::StrContains(table.out, "MISSING")) << table.out;

  // A wrong token gets nothing, and a report must be numbers.
  // (The last character changed: one that was already "0" would stay the right token.)
  WriteFile(dir_.Sub("relay-token"),
            token.substr(0, token.size() - 1) + (token.back() == '0' ? "1\n" : "0\n"));
  EXPECT_NE(sync().first, 0);
  const std::string curl =
      absl::StrCat("curl -s -o /dev/null -w '%{http_code}' --cacert '", server_->ca_path(),
                   "' -H 'Authorization: Bearer ", token,
                   "' https://localhost:", server_->server()->artifact_port(),
                   "/relay/v1/report --data cache_bytes=lots > '", dir_.Sub("code"), "'");
  ASSERT_EQ(std::system(curl.c_str()), 0);
  EXPECT_EQ(ReadFileOrDie(dir_.Sub("code")), "400");
  // A new token replaces the old one.
  auto rekeyed =
      Ctl({"relays", "add", "--url", relay_->url(), "--uai", kFermat, "--new-token", "--json"});
  const std::string token2 = FromJson<parc::v1::AddRelayResponse>(rekeyed.out).token();
  ASSERT_FALSE(token2.empty());
  WriteFile(dir_.Sub("relay-token"), token + "\n");
  EXPECT_NE(sync().first, 0);
  WriteFile(dir_.Sub("relay-token"), token2 + "\n");
  EXPECT_EQ(sync().first, 0);
}

// Who may assign relays, and what a relay's URL may be.
TEST_F(RelayTest, RelaysAreCheckedScopedAndAudited) {
  auto http = Ctl({"relays", "add", "--url", "http://relais.lycee-fermat.fr", "--uai", kFermat});
  EXPECT_NE(http.status, 0);
  EXPECT_TRUE(absl::StrContains(http.err, "https://")) << http.err;
  auto creds = Ctl({"relays", "add", "--url", "https://u:p@relais.fr", "--uai", kFermat});
  EXPECT_NE(creds.status, 0);
  EXPECT_TRUE(absl::StrContains(creds.err, "user name")) << creds.err;
  auto unknown = Ctl({"relays", "add", "--url", "https://relais.fr", "--uai", "0999999Z"});
  EXPECT_NE(unknown.status, 0);
  EXPECT_TRUE(absl::StrContains(unknown.err, "no establishment with UAI 0999999Z")) << unknown.err;

  // A cité scolaire: one relay for two establishments, given in two steps.
  ASSERT_EQ(
      Ctl({"relays", "add", "--url", "https://Relais.Example/artifacts", "--uai", kFermat}).status,
      0);
  ASSERT_EQ(
      Ctl({"relays", "add", "--url", "https://relais.example/artifacts", "--uai", kJoffre}).status,
      0);
  parc::v1::Relay relay = ListedRelay();
  EXPECT_EQ(relay.url(), "https://relais.example/artifacts");  // host in lower case
  EXPECT_EQ(relay.uais_size(), 2);

  // A technician of Hérault (34) sees and changes only its establishment.
  auto op = Ctl({"operators", "create", "--name", "tech34", "--role", "technician", "--scope",
                 "departement:34", "--json"});
  ASSERT_EQ(op.status, 0) << op.err;
  std::string tech34 = FromJson<parc::v1::CreateOperatorResponse>(op.out).token();
  auto as34 = [&](std::vector<std::string> args) {
    std::string empty = dir_.Sub("parcctl34.toml");
    WriteFile(empty, "");
    args.insert(args.end(), {"--server", server_->address(), "--ca", server_->ca_path(), "--token",
                             tech34, "--config", empty});
    return RunCtl(args);
  };
  auto listed = as34({"relays", "list", "--json"});
  ASSERT_EQ(listed.status, 0) << listed.err;
  auto seen = FromJson<parc::v1::ListRelaysResponse>(listed.out);
  ASSERT_EQ(seen.relays_size(), 1);
  ASSERT_EQ(seen.relays(0).uais_size(), 1);
  EXPECT_EQ(seen.relays(0).uais(0), kJoffre);
  auto other = as34({"relays", "add", "--url", "https://r2.example", "--uai", kFermat});
  EXPECT_NE(other.status, 0);
  EXPECT_TRUE(absl::StrContains(other.err, "no establishment with UAI 0310036W")) << other.err;
  auto removed = as34({"relays", "remove", "--url", "https://relais.example/artifacts"});
  ASSERT_EQ(removed.status, 0) << removed.err;
  // Only its own establishment went: the relay still serves Fermat.
  relay = ListedRelay();
  ASSERT_EQ(relay.uais_size(), 1);
  EXPECT_EQ(relay.uais(0), kFermat);
  auto again = as34({"relays", "remove", "--url", "https://relais.example/artifacts"});
  EXPECT_NE(again.status, 0);
  EXPECT_TRUE(absl::StrContains(again.err, "no relay")) << again.err;

  auto gone = Ctl({"relays", "remove", "--url", "https://relais.example/artifacts"});
  ASSERT_EQ(gone.status, 0) << gone.err;
  EXPECT_TRUE(absl::StrContains(gone.out, "removed")) << gone.out;
  auto none = Ctl({"relays", "list", "--json"});
  EXPECT_EQ(FromJson<parc::v1::ListRelaysResponse>(none.out).relays_size(), 0) << none.out;

  auto audit = Ctl({"audit", "--json"});
  EXPECT_TRUE(absl::StrContains(audit.out, "AddRelay")) << audit.out;
  EXPECT_TRUE(absl::StrContains(audit.out, "RemoveRelay")) << audit.out;
}

}  // namespace
}  // namespace parc::testing
