// End-to-end tests: a real parc-server over TLS on loopback (port 0), real agents and parcctl
// run in-process on the fixture trees, real SQLite files in temporary directories.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/inventory_util.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace parc::testing {
namespace {

constexpr char kFermat[] = "0310036W";  // lycée, Toulouse (31)
constexpr char kJoffre[] = "0340001S";  // lycée, Montpellier (34)

class IntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<TestServer>(dir_.Sub("server"));
    server_->ImportFixtureEstablishments();
  }

  // An empty agent configuration, so that no file of the machine running the tests counts.
  std::string EmptyConfig() {
    std::string path = dir_.Sub("empty-agent.toml");
    WriteFile(path, "");
    return path;
  }
  // parc-agent enroll on a fixture tree, with its own state directory.
  CommandResult Enroll(const std::string& root, const std::string& state, const std::string& token,
                       std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "enroll",           "--root",           root,         "--state-dir", state,
        "--server",         server_->address(), "--token",    token,         "--ca",
        server_->ca_path(), "--config",         EmptyConfig()};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunAgent(args);
  }
  CommandResult RunOnce(const std::string& root, const std::string& state,
                        std::string config = "") {
    if (config.empty()) config = EmptyConfig();
    return RunAgent({"run", "--once", "--root", root, "--state-dir", state, "--config", config});
  }
  CommandResult Status(const std::string& root, const std::string& state) {
    return RunAgent({"status", "--root", root, "--state-dir", state, "--config", EmptyConfig()});
  }
  // A copy of a fixture tree whose DMI identity (serial, UUID) is changed: another machine
  // cloned from the same master image.
  std::string CloneFixture(const std::string& fixture, const std::string& name,
                           const std::string& serial) {
    std::string root = dir_.Sub(name);
    CopyTree(DataPath(fixture), root);
    WriteFile(root + "/sys/class/dmi/id/product_serial", serial + "\n");
    WriteFile(
        root + "/sys/class/dmi/id/product_uuid",
        absl::StrCat("4c4c4544-0000-0000-0000-", common::Sha256Hex(serial).substr(0, 12), "\n"));
    return root;
  }
  parc::v1::GetDeviceResponse GetDevice(const std::string& id) {
    parc::v1::GetDeviceRequest request;
    request.set_device(id);
    parc::v1::GetDeviceResponse response;
    grpc::Status s =
        server_->AdminStub()->GetDevice(server_->AdminContext().get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }
  std::string DeviceIdOf(const std::string& enroll_output) {
    size_t at = enroll_output.find("device ");
    EXPECT_NE(at, std::string::npos) << enroll_output;
    std::string rest = enroll_output.substr(at + 7);
    return rest.substr(0, rest.find_first_of(" \n"));
  }

  TempDir dir_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(IntegrationTest, TwoAgentsEnrollCheckInAndReportOverTls) {
  std::string laptop_state = dir_.Sub("laptop-state");
  std::string tablet_state = dir_.Sub("tablet-state");
  auto r1 = Enroll(DataPath("laptop"), laptop_state, server_->CreateToken(kFermat));
  ASSERT_EQ(r1.status, 0) << r1.err;
  EXPECT_NE(r1.out.find("in 0310036W Lycée Pierre de Fermat"), std::string::npos) << r1.out;
  auto r2 = Enroll(DataPath("tablet"), tablet_state, server_->CreateToken(kJoffre));
  ASSERT_EQ(r2.status, 0) << r2.err;

  for (const auto& [root, state] :
       {std::pair{DataPath("laptop"), laptop_state}, std::pair{DataPath("tablet"), tablet_state}}) {
    auto run = RunOnce(root, state);
    ASSERT_EQ(run.status, 0) << run.err;
  }
  auto devices = server_->ListDevices();
  ASSERT_EQ(devices.size(), 2u);
  std::map<std::string, parc::v1::Device> by_serial;
  for (const auto& d : devices) by_serial[d.serial()] = d;
  const auto& laptop = by_serial.at("5CD1234ABC");
  EXPECT_EQ(laptop.uai(), kFermat);
  EXPECT_EQ(laptop.kind(), parc::v1::DEVICE_KIND_LAPTOP);
  EXPECT_EQ(laptop.model(), "HP ProBook x360 11 G7 Education Edition");
  EXPECT_EQ(laptop.software_packages(), 8u);
  EXPECT_GT(laptop.last_seen_at().seconds(), 0);
  const auto& tablet = by_serial.at("HX7K2Q3");
  EXPECT_EQ(tablet.uai(), kJoffre);
  EXPECT_EQ(tablet.departement(), "34");
  EXPECT_EQ(tablet.kind(), parc::v1::DEVICE_KIND_TABLET);

  auto details = GetDevice(laptop.id());
  ASSERT_TRUE(details.has_inventory());
  EXPECT_EQ(details.inventory().hardware().batteries(0).health_percent(), 87u);
  EXPECT_EQ(details.inventory().software().packages_size(), 8);

  // Filters of the listing.
  parc::v1::ListDevicesRequest by_dep;
  by_dep.set_departement("31");
  EXPECT_EQ(server_->ListDevices(by_dep).size(), 1u);
  parc::v1::ListDevicesRequest by_kind;
  by_kind.set_kind(parc::v1::DEVICE_KIND_TABLET);
  EXPECT_EQ(server_->ListDevices(by_kind).size(), 1u);

  // A second cycle with nothing changed sends no inventory.
  const uint64_t reports = server_->server()->metrics()->RpcCount("ReportInventory", grpc::OK);
  ASSERT_EQ(RunOnce(DataPath("laptop"), laptop_state).status, 0);
  EXPECT_EQ(server_->server()->metrics()->RpcCount("ReportInventory", grpc::OK), reports);
  EXPECT_EQ(GetDevice(laptop.id()).inventory_history(), 1u);

  auto status = Status(DataPath("laptop"), laptop_state);
  EXPECT_EQ(status.status, 0);
  EXPECT_NE(status.out.find("matches the enrolled device"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("Queued reports  0"), std::string::npos) << status.out;
}

TEST_F(IntegrationTest, TechnicianSetKindIsKept) {
  std::string state = dir_.Sub("display-state");
  auto r = Enroll(DataPath("desktop"), state, server_->CreateToken(kFermat), {"--kind", "display"});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(RunOnce(DataPath("desktop"), state).status, 0);
  auto devices = server_->ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].kind(), parc::v1::DEVICE_KIND_DISPLAY);
  EXPECT_EQ(devices[0].kind_source(), "technician");
}

TEST_F(IntegrationTest, ClonesOfOneImageShareOneStoredSoftwareList) {
  std::string token = server_->CreateToken(kFermat);
  for (int i = 0; i < 3; ++i) {
    std::string root = CloneFixture("laptop", absl::StrCat("clone", i), absl::StrCat("SN", i));
    std::string state = dir_.Sub(absl::StrCat("clone-state", i));
    ASSERT_EQ(Enroll(root, state, token).status, 0);
    ASSERT_EQ(RunOnce(root, state).status, 0);
  }
  EXPECT_EQ(server_->ListDevices().size(), 3u);
  // Only the first device sent its software list; the others referred to it by hash.
  EXPECT_EQ(server_->server()->metrics()->InventoryCount(true), 1u);
  EXPECT_EQ(server_->server()->metrics()->InventoryCount(false), 2u);
  auto db = server_->OpenDatabase();
  ASSERT_NE(db, nullptr);
  auto st = db->Prepare("SELECT count(*) FROM software_sets");
  ASSERT_TRUE(st.ok() && *st->Step());
  EXPECT_EQ(st->Int(0), 1);
}

TEST_F(IntegrationTest, CopiedStateOnClonedHardwareEnrollsAsNewDevice) {
  // The master image: enrolled once on the reference machine.
  std::string token = server_->CreateToken(kFermat);
  std::string master_state = dir_.Sub("master-state");
  auto first = Enroll(DataPath("laptop"), master_state, token);
  ASSERT_EQ(first.status, 0) << first.err;
  ASSERT_EQ(RunOnce(DataPath("laptop"), master_state).status, 0);
  std::string master_id = DeviceIdOf(first.out);

  // The image, state directory included, is cloned onto another laptop whose agent config
  // carries the enrollment settings.
  std::string clone_root = CloneFixture("laptop", "clone", "5CD9999XYZ");
  std::string clone_state = dir_.Sub("clone-state");
  CopyTree(master_state, clone_state);
  std::string config = dir_.Sub("agent.toml");
  WriteFile(config, absl::StrCat("server = \"", server_->address(), "\"\nca = \"",
                                 server_->ca_path(), "\"\nenrollment_token = \"", token, "\"\n"));
  auto status = Status(clone_root, clone_state);
  EXPECT_NE(status.out.find("DIFFERS"), std::string::npos) << status.out;
  auto run = RunOnce(clone_root, clone_state, config);
  ASSERT_EQ(run.status, 0) << run.err;

  auto devices = server_->ListDevices();
  ASSERT_EQ(devices.size(), 2u);
  std::set<std::string> serials;
  for (const auto& d : devices) serials.insert(d.serial());
  EXPECT_EQ(serials, (std::set<std::string>{"5CD1234ABC", "5CD9999XYZ"}));
  // The master machine keeps its identity and credential.
  ASSERT_EQ(RunOnce(DataPath("laptop"), master_state).status, 0);
  EXPECT_EQ(GetDevice(master_id).device().serial(), "5CD1234ABC");
}

TEST_F(IntegrationTest, ReimagedDeviceKeepsItsRecordAndOldSecretStopsWorking) {
  std::string token = server_->CreateToken(kFermat);
  std::string old_state = dir_.Sub("before-reimage");
  auto first = Enroll(DataPath("laptop"), old_state, token);
  ASSERT_EQ(first.status, 0);
  ASSERT_EQ(RunOnce(DataPath("laptop"), old_state).status, 0);

  // Re-imaged: same hardware, state lost. The token of the image alone does not re-key an
  // enrolled device; the technician's re-enrollment token does.
  std::string new_state = dir_.Sub("after-reimage");
  auto refused = Enroll(DataPath("laptop"), new_state, token);
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("--reenroll"), std::string::npos) << refused.err;
  std::string reenroll = server_->CreateToken(kFermat, 1, 0, /*reenroll=*/true);
  auto second = Enroll(DataPath("laptop"), new_state, reenroll);
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_NE(second.out.find("Re-enrolled"), std::string::npos);
  EXPECT_EQ(DeviceIdOf(second.out), DeviceIdOf(first.out));
  ASSERT_EQ(RunOnce(DataPath("laptop"), new_state).status, 0);
  auto devices = server_->ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].enroll_count(), 2u);

  // The old credential is refused.
  auto stale = RunOnce(DataPath("laptop"), old_state);
  EXPECT_EQ(stale.status, 1);
  EXPECT_NE(stale.err.find("credential rejected"), std::string::npos) << stale.err;
}

TEST_F(IntegrationTest, AnotherTokenAndTheHardwareIdentityCannotTakeADeviceOver) {
  // The real laptop, enrolled in Fermat.
  std::string state = dir_.Sub("real");
  auto real = Enroll(DataPath("laptop"), state, server_->CreateToken(kFermat));
  ASSERT_EQ(real.status, 0) << real.err;
  const std::string id = DeviceIdOf(real.out);

  // A student copies its identity (DMI UUID and serial, machine-id: all readable on the
  // laptop) to another machine and enrolls with whatever token it can read: Joffre's (another
  // scope), a region-wide one, Fermat's own, or a re-enrollment token of another
  // establishment.
  std::string thief = dir_.Sub("thief-root");
  CopyTree(DataPath("laptop"), thief);
  WriteFile(thief + "/proc/sys/kernel/hostname", "pirate\n");
  for (const std::string& token :
       {server_->CreateToken(kJoffre), server_->CreateToken(""), server_->CreateToken(kFermat),
        server_->CreateToken(kJoffre, 0, 0, /*reenroll=*/true)}) {
    auto taken = Enroll(thief, dir_.Sub("thief-state"), token);
    EXPECT_EQ(taken.status, 1) << taken.out;
    EXPECT_NE(
        taken.err.find("PERMISSION_DENIED: this hardware is already enrolled as device " + id),
        std::string::npos)
        << taken.err;
  }
  // Nothing moved, the refused tokens were not used, and the real agent keeps working.
  auto device = GetDevice(id).device();
  EXPECT_EQ(device.uai(), kFermat);
  EXPECT_EQ(device.enroll_count(), 1u);
  EXPECT_NE(device.hostname(), "pirate");
  parc::v1::ListEnrollmentTokensResponse tokens;
  ASSERT_TRUE(
      server_->AdminStub()->ListEnrollmentTokens(server_->AdminContext().get(), {}, &tokens).ok());
  uint32_t uses = 0;
  for (const auto& t : tokens.tokens()) uses += t.uses();
  EXPECT_EQ(uses, 1u);
  auto run = RunOnce(DataPath("laptop"), state);
  EXPECT_EQ(run.status, 0) << run.err;

  // The device itself, holding its credential, may enroll again (here with Joffre's token):
  // it is re-keyed and stays in Fermat.
  auto again = Enroll(DataPath("laptop"), state, server_->CreateToken(kJoffre));
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.out.find("Re-enrolled as device " + id + " in 0310036W"), std::string::npos)
      << again.out;
  EXPECT_EQ(RunOnce(DataPath("laptop"), state).status, 0);
}

TEST_F(IntegrationTest, RegionTokensAreLimitedInUsesAndTime) {
  parc::v1::CreateEnrollmentTokenRequest request;
  request.set_region(true);
  parc::v1::CreateEnrollmentTokenResponse response;
  ASSERT_TRUE(server_->AdminStub()
                  ->CreateEnrollmentToken(server_->AdminContext().get(), request, &response)
                  .ok());
  EXPECT_EQ(response.info().max_uses(), 500u);
  request.set_expires_in_seconds(400 * 24 * 3600);
  grpc::Status too_long = server_->AdminStub()->CreateEnrollmentToken(server_->AdminContext().get(),
                                                                      request, &response);
  EXPECT_EQ(too_long.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(too_long.error_message().find("365 days"), std::string::npos);
}

TEST_F(IntegrationTest, OperatorsNeedAnExplicitScopeAndTokensCanComeFromFiles) {
  parc::v1::CreateOperatorRequest request;
  request.set_name("forgot-scope");
  request.set_role("viewer");
  parc::v1::CreateOperatorResponse response;
  grpc::Status s =
      server_->AdminStub()->CreateOperator(server_->AdminContext().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("scope is required"), std::string::npos);
  auto ctl =
      RunCtl({"operators", "create", "--name", "x", "--role", "viewer", "--server",
              server_->address(), "--ca", server_->ca_path(), "--token", server_->admin_token()});
  EXPECT_EQ(ctl.status, 2) << ctl.out;
  // The enrollment token from a file rather than the command line (ps shows it).
  WriteFile(dir_.Sub("token"), server_->CreateToken(kFermat) + "\n");
  auto enrolled =
      RunAgent({"enroll", "--root", DataPath("laptop"), "--state-dir", dir_.Sub("state"),
                "--server", server_->address(), "--token-file", dir_.Sub("token"), "--ca",
                server_->ca_path(), "--config", EmptyConfig()});
  EXPECT_EQ(enrolled.status, 0) << enrolled.err;
}

TEST_F(IntegrationTest, UnauthenticatedCallsCostNoWriteAndSecretsStayOutOfTheAudit) {
  // The audit entry of the set-up's import is written after its answer: wait for it.
  uint64_t writes = server_->server()->store()->writes_applied();
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const uint64_t now = server_->server()->store()->writes_applied();
    if (now == writes && i >= 5) break;
    writes = now;
  }
  auto agent = server_->AgentStub();
  auto admin = server_->AdminStub();
  for (int i = 0; i < 50; ++i) {
    parc::v1::EnrollRequest e;
    e.set_token(absl::StrCat("e00000000000", i % 10, ".", std::string(64, 'a')));
    e.mutable_identity()->set_serial(absl::StrCat("BOGUS", i));
    parc::v1::EnrollResponse r;
    EXPECT_EQ(agent->Enroll(TestServer::Context().get(), e, &r).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    parc::v1::CreateEnrollmentTokenRequest t;
    t.set_uai(kFermat);
    parc::v1::CreateEnrollmentTokenResponse created;
    EXPECT_EQ(
        admin
            ->CreateEnrollmentToken(
                TestServer::Context(absl::StrCat("o000000000000.", std::string(64, 'b'))).get(), t,
                &created)
            .error_code(),
        grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(server_->server()->store()->writes_applied(), writes);
  EXPECT_GE(server_->server()->metrics()->RpcCount("Enroll", grpc::StatusCode::UNAUTHENTICATED),
            50u);

  // An operator pastes a whole token where its id goes, and the revoke fails: the audit log
  // keeps the id, never the secret.
  const std::string secret(64, 'c');
  auto revoke =
      RunCtl({"tokens", "revoke", absl::StrCat("e999999999999.", secret), "--server",
              server_->address(), "--ca", server_->ca_path(), "--token", server_->admin_token()});
  EXPECT_NE(revoke.status, 0);
  // The audit entry is written behind the answer (queued before it, committed with the next
  // batch): read until it shows, for at most 5 s.
  CommandResult audit;
  for (int i = 0; i < 50; ++i) {
    audit = RunCtl({"audit", "--json", "--server", server_->address(), "--ca", server_->ca_path(),
                    "--token", server_->admin_token()});
    ASSERT_EQ(audit.status, 0) << audit.err;
    if (absl::StrContains(audit.out, "RevokeEnrollmentToken")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(absl::StrContains(audit.out, "RevokeEnrollmentToken")) << audit.out;
  EXPECT_FALSE(absl::StrContains(audit.out, secret)) << audit.out;
}

TEST_F(IntegrationTest, AgentConfigurationHoldingATokenIsMadePrivate) {
  std::string config = dir_.Sub("agent.toml");
  WriteFile(config,
            absl::StrCat("server = \"", server_->address(), "\"\nca = \"", server_->ca_path(),
                         "\"\nenrollment_token = \"", server_->CreateToken(kFermat), "\"\n"));
  ASSERT_EQ(::chmod(config.c_str(), 0644), 0);
  auto run = RunOnce(DataPath("laptop"), dir_.Sub("state"), config);
  ASSERT_EQ(run.status, 0) << run.err;
  struct stat st;
  ASSERT_EQ(::stat(config.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(IntegrationTest, OutboxIsDeliveredAfterTheServerRestarts) {
  std::string root = dir_.Sub("root");
  CopyTree(DataPath("laptop"), root);
  std::string state = dir_.Sub("state");
  ASSERT_EQ(Enroll(root, state, server_->CreateToken(kFermat)).status, 0);
  ASSERT_EQ(RunOnce(root, state).status, 0);
  const int port = server_->port();

  server_->Stop();
  // A package is installed while the server is down.
  std::ofstream(root + "/var/lib/dpkg/status", std::ios::app)
      << "\nPackage: qgis\nStatus: install ok installed\nVersion: 3.22.16\nArchitecture: amd64\n";
  auto offline = RunOnce(root, state);
  EXPECT_EQ(offline.status, 1);
  auto status = Status(root, state);
  EXPECT_NE(status.out.find("Queued reports  1"), std::string::npos) << status.out;

  server_ = std::make_unique<TestServer>(dir_.Sub("server"), port);
  auto online = RunOnce(root, state);
  ASSERT_EQ(online.status, 0) << online.err;
  status = Status(root, state);
  EXPECT_NE(status.out.find("Queued reports  0"), std::string::npos) << status.out;
  auto devices = server_->ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].software_packages(), 9u);
  EXPECT_EQ(GetDevice(devices[0].id()).inventory_history(), 2u);
}

class TokenTest : public IntegrationTest {
 protected:
  grpc::Status EnrollRaw(const std::string& token, const std::string& serial,
                         parc::v1::EnrollResponse* response = nullptr) {
    parc::v1::EnrollRequest request;
    request.set_token(token);
    request.mutable_identity()->set_serial(serial);
    request.mutable_identity()->set_machine_id("0123456789abcdef0123456789abcdef");
    parc::v1::EnrollResponse local;
    return server_->AgentStub()->Enroll(TestServer::Context().get(), request,
                                        response ? response : &local);
  }
};

TEST_F(TokenTest, WrongExpiredRevokedAndUsedUpTokensAreRefused) {
  // Wrong: unknown id, wrong secret, garbage.
  std::string good = server_->CreateToken(kFermat, /*max_uses=*/1);
  auto wrong_secret = good.substr(0, good.find('.') + 1) + std::string(64, '0');
  for (const std::string& token : {std::string("e000000000000.") + std::string(64, 'f'),
                                   wrong_secret, std::string("garbage"), std::string()}) {
    grpc::Status s = EnrollRaw(token, "S1");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
  }
  // Used up: the second device is refused.
  EXPECT_TRUE(EnrollRaw(good, "S1").ok());
  grpc::Status used_up = EnrollRaw(good, "S2");
  EXPECT_EQ(used_up.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(used_up.error_message(), "maximum")) << used_up.error_message();

  // Expired.
  std::string short_lived = server_->CreateToken(kFermat, 0, /*expires_in_seconds=*/3600);
  server_->clock()->Advance(absl::Hours(2));
  grpc::Status expired = EnrollRaw(short_lived, "S3");
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(expired.error_message(), "expired")) << expired.error_message();

  // Revoked, through parcctl.
  std::string revoked = server_->CreateToken(kFermat);
  std::string id = revoked.substr(0, revoked.find('.'));
  auto r = RunCtl({"tokens", "revoke", id, "--server", server_->address(), "--ca",
                   server_->ca_path(), "--token", server_->admin_token()});
  ASSERT_EQ(r.status, 0) << r.err;
  grpc::Status s = EnrollRaw(revoked, "S4");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "revoked")) << s.error_message();

  // Nothing was enrolled but S1.
  EXPECT_EQ(server_->ListDevices().size(), 1u);
}

TEST_F(TokenTest, RegionWideTokensUseTheSupplierDeliveryList) {
  WriteFile(dir_.Sub("delivery.csv"), "numero_de_serie;uai\n5CD1234ABC;0310036W\n");
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--server", server_->address(), "--ca", server_->ca_path(), "--token",
                             server_->admin_token()});
    return RunCtl(args);
  };
  auto pre = ctl({"devices", "preassign", dir_.Sub("delivery.csv")});
  ASSERT_EQ(pre.status, 0) << pre.err;
  std::string region = server_->CreateToken("");
  auto laptop = Enroll(DataPath("laptop"), dir_.Sub("s1"), region);
  ASSERT_EQ(laptop.status, 0) << laptop.err;
  EXPECT_NE(laptop.out.find("in 0310036W"), std::string::npos) << laptop.out;
  auto tablet = Enroll(DataPath("tablet"), dir_.Sub("s2"), region);
  ASSERT_EQ(tablet.status, 0);
  EXPECT_NE(tablet.out.find("not assigned"), std::string::npos) << tablet.out;

  auto unassigned = ctl({"devices", "list", "--unassigned"});
  ASSERT_EQ(unassigned.status, 0);
  EXPECT_NE(unassigned.out.find("HX7K2Q3"), std::string::npos);
  EXPECT_EQ(unassigned.out.find("5CD1234ABC"), std::string::npos);
  EXPECT_NE(unassigned.out.find("1 device(s)"), std::string::npos) << unassigned.out;

  // The next delivery list names the tablet: it is placed at once.
  WriteFile(dir_.Sub("delivery2.csv"), "HX7K2Q3;0340001S\n");
  auto pre2 = ctl({"devices", "preassign", dir_.Sub("delivery2.csv")});
  ASSERT_EQ(pre2.status, 0) << pre2.err;
  EXPECT_NE(pre2.out.find("1 enrolled device(s) placed"), std::string::npos) << pre2.out;
  parc::v1::ListDevicesRequest req;
  req.set_unassigned(true);
  EXPECT_TRUE(server_->ListDevices(req).empty());
}

TEST_F(TokenTest, OversizedInventoriesAreRefusedWithResourceExhausted) {
  parc::v1::EnrollResponse enrolled;
  ASSERT_TRUE(EnrollRaw(server_->CreateToken(kFermat), "S1", &enrolled).ok());
  std::string credential = absl::StrCat(enrolled.device_id(), ".", enrolled.device_secret());

  auto report = [&](int packages, size_t name_size, grpc::Status* status) {
    parc::v1::ReportInventoryRequest request;
    auto* sw = request.mutable_inventory()->mutable_software();
    for (int i = 0; i < packages; ++i) {
      auto* p = sw->add_packages();
      p->set_name(absl::StrCat("pkg", i, std::string(name_size, 'x')));
      p->set_version("1");
    }
    common::CanonicalizeSoftware(sw);
    request.set_software_hash(common::SoftwareHash(*sw));
    request.set_inventory_hash(
        common::InventoryHash(request.inventory().hardware(), request.software_hash()));
    common::ChannelOptions o;
    o.target = server_->address();
    o.ca_pem = server_->ca_pem();
    o.max_send_bytes = 256 << 20;
    auto stub = parc::v1::AgentService::NewStub(*common::MakeChannel(o));
    parc::v1::ReportInventoryResponse response;
    *status = stub->ReportInventory(TestServer::Context(credential).get(), request, &response);
  };
  grpc::Status s;
  report(100, 10, &s);
  EXPECT_TRUE(s.ok()) << s.error_message();
  report(25000, 0, &s);  // too many packages
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  report(20000, 240, &s);  // ~5 MiB: over the inventory limit
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  report(20000, 3500, &s);  // ~70 MiB: over the transport limit
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  // The stored inventory is the accepted one.
  EXPECT_EQ(GetDevice(enrolled.device_id()).inventory().software().packages_size(), 100);
}

grpc::Status GenericUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& bytes, std::string* out) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  common::SetDeadline(&ctx, absl::Seconds(10));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(s); });
  grpc::Status s = done.get_future().get();
  if (s.ok() && out != nullptr) {
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    out->clear();
    for (const auto& sl : slices) out->append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  }
  return s;
}

std::shared_ptr<grpc::Channel> TlsChannel(const TestServer& server) {
  common::ChannelOptions o;
  o.target = server.address();
  o.ca_pem = server.ca_pem();
  return *common::MakeChannel(o);
}

TEST_F(IntegrationTest, GarbageOnTheWireLeavesServerAndDatabaseIntact) {
  std::string state = dir_.Sub("state");
  ASSERT_EQ(Enroll(DataPath("laptop"), state, server_->CreateToken(kFermat)).status, 0);
  ASSERT_EQ(RunOnce(DataPath("laptop"), state).status, 0);

  std::mt19937 rng(7);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  // Raw TCP garbage, and an HTTP/2 preface followed by garbage frames.
  for (int i = 0; i < 20; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    std::string junk = (i % 2 == 0 ? "" : "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + random_bytes(16384);
    (void)!::write(fd, junk.data(), junk.size());
    ::close(fd);
  }
  // Inside TLS: garbage where HTTP/2 frames are expected.
  for (int i = 0; i < 5; ++i) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>("\x02h2"), 3);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ASSERT_EQ(SSL_connect(ssl), 1);
    std::string junk = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + random_bytes(8192);
    SSL_write(ssl, junk.data(), static_cast<int>(junk.size()));
    SSL_free(ssl);
    ::close(fd);
    SSL_CTX_free(ctx);
  }
  // Well-formed gRPC calls carrying bytes that are not the expected protobuf messages.
  auto channel = TlsChannel(*server_);
  for (const char* method :
       {"/parc.v1.AgentService/Enroll", "/parc.v1.AgentService/ReportInventory",
        "/parc.v1.AdminService/ImportEstablishments"}) {
    for (int i = 0; i < 5; ++i) {
      grpc::Status s = GenericUnary(channel, method, random_bytes(4096), nullptr);
      EXPECT_FALSE(s.ok()) << method;
    }
    // A message that cannot parse (a field longer than the message) is a bad request,
    // answered as such and counted.
    grpc::Status s = GenericUnary(channel, method, std::string("\x0a\xff\xff\xff\x0f", 5), nullptr);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method << s.error_message();
  }
  EXPECT_GE(server_->server()->metrics()->Unparseable(), 3u);

  // The server still serves, and the database is intact.
  std::string health;
  grpc::Status hs = GenericUnary(channel, "/grpc.health.v1.Health/Check", "", &health);
  ASSERT_TRUE(hs.ok()) << hs.error_message();
  EXPECT_EQ(health, std::string("\x08\x01", 2));  // status: SERVING
  EXPECT_EQ(server_->ListDevices().size(), 1u);
  EXPECT_EQ(RunOnce(DataPath("laptop"), state).status, 0);
  if (parc::testing::TestOnPostgres()) return;  // the SQLite file's own check
  common::Database::Options o;
  auto db = common::Database::Open(dir_.Sub("server/parc.db"), o);
  ASSERT_TRUE(db.ok());
  auto check = (*db)->Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.ok() && *check->Step());
  EXPECT_EQ(check->Text(0), "ok");
}

TEST_F(IntegrationTest, HealthAndReflectionServeStockTools) {
  auto channel = TlsChannel(*server_);
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  common::SetDeadline(&ctx, absl::Seconds(10));
  grpc::CompletionQueue cq;
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  // ServerReflectionRequest{list_services: ""} (field 7).
  grpc::Slice req_slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer req(&req_slice, 1);
  call->Write(req, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer resp;
  call->Read(&resp, reinterpret_cast<void*>(4));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(resp.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_NE(bytes.find("parc.v1.AgentService"), std::string::npos);
  EXPECT_NE(bytes.find("parc.v1.AdminService"), std::string::npos);
  EXPECT_NE(bytes.find("grpc.health.v1.Health"), std::string::npos);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(IntegrationTest, AdminCallsNeedAValidOperatorTokenAndTrustedCa) {
  parc::v1::ListDevicesResponse response;
  auto stub = server_->AdminStub();
  EXPECT_EQ(stub->ListDevices(TestServer::Context().get(), {}, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stub->ListDevices(TestServer::Context("o123.456").get(), {}, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // A client that trusts another CA does not connect.
  TempDir other;
  TestServer other_server(other.Sub("server"));
  common::ChannelOptions o;
  o.target = server_->address();
  o.ca_pem = other_server.ca_pem();
  auto foreign = parc::v1::AdminService::NewStub(*common::MakeChannel(o));
  EXPECT_EQ(foreign->ListDevices(server_->AdminContext().get(), {}, &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

// The default: a check-in is answered before its write commits, and is stored shortly after,
// including when the server stops right after answering.
TEST(CheckIn, CheckInsAreWrittenBehind) {
  parc::testing::TempDir dir;
  auto server = std::make_unique<parc::testing::TestServer>(
      dir.Sub("server"), 0, [](server::ServerOptions& o) { o.agent.checkin_write_behind = true; });
  server->ImportFixtureEstablishments();
  parc::v1::EnrollRequest enroll;
  enroll.set_token(server->CreateToken(kFermat));
  enroll.mutable_identity()->set_serial("BEHIND1");
  enroll.mutable_identity()->set_machine_id(std::string(32, 'b'));
  parc::v1::EnrollResponse enrolled;
  ASSERT_TRUE(server->AgentStub()
                  ->Enroll(parc::testing::TestServer::Context().get(), enroll, &enrolled)
                  .ok());
  const std::string credential = absl::StrCat(enrolled.device_id(), ".", enrolled.device_secret());
  auto check_in = [&](const std::string& version) {
    parc::v1::CheckInRequest request;
    request.set_agent_version(version);
    parc::v1::CheckInResponse response;
    grpc::Status s = server->AgentStub()->CheckIn(
        parc::testing::TestServer::Context(credential).get(), request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
  };
  auto device = [&]() {
    auto devices = server->ListDevices();
    EXPECT_EQ(devices.size(), 1u);
    return devices.empty() ? parc::v1::Device() : devices.front();
  };
  check_in("1.1");
  const int64_t first = absl::ToUnixSeconds(server->clock()->Now());
  for (int i = 0; i < 500 && device().agent_version() != "1.1"; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(device().agent_version(), "1.1");
  EXPECT_EQ(device().last_seen_at().seconds(), first);

  // Answered, then the server stops at once: the queued check-in is written before it exits.
  server->clock()->Advance(absl::Minutes(5));
  check_in("1.2");
  server->Restart();
  EXPECT_EQ(device().agent_version(), "1.2");
  EXPECT_EQ(device().last_seen_at().seconds(), first + 300);
}

TEST(ServerOptions, PlaintextIsRefusedOffLoopback) {
  TempDir dir;
  server::ServerOptions options;
  options.data_dir = dir.Sub("server");
  options.listen = "0.0.0.0:0";
  options.insecure = true;
  auto server = server::Server::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  options.listen = "127.0.0.1:0";
  server = server::Server::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(server::IsLoopbackListen("[::1]:8443"));
  EXPECT_FALSE(server::IsLoopbackListen("10.0.0.1:8443"));
}

TEST_F(IntegrationTest, RetentionJobPurgesOldInventories) {
  std::string root = dir_.Sub("root");
  CopyTree(DataPath("laptop"), root);
  std::string state = dir_.Sub("state");
  ASSERT_EQ(Enroll(root, state, server_->CreateToken(kFermat)).status, 0);
  ASSERT_EQ(RunOnce(root, state).status, 0);
  std::ofstream(root + "/var/lib/dpkg/status", std::ios::app)
      << "\nPackage: vlc\nStatus: install ok installed\nVersion: 3.0.20\nArchitecture: amd64\n";
  server_->clock()->Advance(absl::Hours(24 * 400));
  ASSERT_EQ(RunOnce(root, state).status, 0);
  auto id = server_->ListDevices()[0].id();
  EXPECT_EQ(GetDevice(id).inventory_history(), 2u);
  auto deleted = server_->server()->PurgeNow();  // default retention: 365 days
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 1);
  EXPECT_EQ(GetDevice(id).inventory_history(), 1u);
  EXPECT_EQ(GetDevice(id).inventory().software().packages_size(), 9);
}

}  // namespace
}  // namespace parc::testing

namespace parc::testing {
namespace {

// The daemon as technicians run it: the real parc-agent binary, stopped with SIGTERM.
TEST(AgentDaemon, ChecksInOnTheServersScheduleAndStopsOnSigterm) {
  TempDir dir;
  TestServer server(dir.Sub("server"), 0, [](server::ServerOptions& o) {
    o.agent.checkin_interval = absl::Seconds(1);
    o.agent.checkin_jitter = 0.1;
  });
  server.ImportFixtureEstablishments();
  std::string config = dir.Sub("agent.toml");
  // Preseeded like a master image: the daemon enrolls by itself.
  WriteFile(config, absl::StrCat("server = \"", server.address(), "\"\nca = \"", server.ca_path(),
                                 "\"\nenrollment_token = \"", server.CreateToken(kFermat), "\"\n"));
  std::string log = dir.Sub("agent.log");
  // Built before fork: the child of a multithreaded process must not allocate.
  const std::string root = DataPath("laptop"), state = dir.Sub("state");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(PARC_AGENT_BIN, "parc-agent", "run", "--config", config.c_str(), "--root", root.c_str(),
            "--state-dir", state.c_str(), "--splay", "0s", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Several check-ins happen on their own, one second apart.
  auto* metrics = server.server()->metrics();
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (metrics->RpcCount("CheckIn", grpc::OK) < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GE(metrics->RpcCount("CheckIn", grpc::OK), 3u) << ReadFileOrDie(log);
  EXPECT_EQ(metrics->RpcCount("Enroll", grpc::OK), 1u);
  EXPECT_EQ(metrics->RpcCount("ReportInventory", grpc::OK), 1u);
  ASSERT_EQ(server.ListDevices().size(), 1u);
  // Between cycles the daemon is parc-agentd (same process): one thread, none of the agent's
  // libraries; each cycle was a `parc-agent run --once` child.
  std::string comm = ReadFileOrDie(absl::StrCat("/proc/", pid, "/comm"));
  EXPECT_EQ(absl::StripAsciiWhitespace(comm), "parc-agentd");

  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  absl::Time stop_deadline = absl::Now() + absl::Seconds(5);
  pid_t done = 0;
  while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 && absl::Now() < stop_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (done == 0) ::kill(pid, SIGKILL);
  ASSERT_EQ(done, pid) << "parc-agent did not stop within 5 s of SIGTERM";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadFileOrDie(log);
}

// Runs the installed-style parc-agent binary; stdout captured, stderr to a file.
CommandResult RunAgentBinary(const std::vector<std::string>& args, const std::string& err_path) {
  std::string command = PARC_AGENT_BIN;
  for (const auto& a : args) absl::StrAppend(&command, " '", a, "'");
  absl::StrAppend(&command, " 2>'", err_path, "'");
  CommandResult r;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = ReadFileOrDie(err_path);
  return r;
}

// parc-agent is the small program: it prints the same inventory as the full agent, and hands
// every other command to parc-agent-full.
TEST(AgentFront, InventoriesItselfAndHandsTheRestToTheFullAgent) {
  TempDir dir;
  WriteFile(dir.Sub("agent.toml"), "");
  for (const char* fixture : {"laptop", "tablet"}) {
    auto small = RunAgentBinary(
        {"inventory", "--json", "--root", DataPath(fixture), "--config", dir.Sub("agent.toml")},
        dir.Sub("err"));
    auto full = RunAgent(
        {"inventory", "--json", "--root", DataPath(fixture), "--config", dir.Sub("agent.toml")});
    ASSERT_EQ(small.status, 0) << small.err;
    ASSERT_EQ(full.status, 0) << full.err;
    EXPECT_EQ(small.out, full.out) << fixture;
    EXPECT_NE(small.out.find("packages"), std::string::npos);
  }
  // The text form, without the software list's id.
  auto text =
      RunAgentBinary({"inventory", "--root", DataPath("laptop"), "--config", dir.Sub("agent.toml")},
                     dir.Sub("err"));
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("installed packages\n"), std::string::npos) << text.out;
  // A bad flag is reported by the small program itself.
  auto bad = RunAgentBinary({"inventory", "--no-such-flag"}, dir.Sub("err"));
  EXPECT_EQ(bad.status, 2);
  // Everything else is the full agent's.
  auto status = RunAgentBinary({"status", "--root", DataPath("laptop"), "--state-dir",
                                dir.Sub("state"), "--config", dir.Sub("agent.toml")},
                               dir.Sub("err"));
  EXPECT_EQ(status.status, 3) << status.err;
  EXPECT_NE(status.out.find("Not enrolled"), std::string::npos) << status.out;
  auto help = RunAgentBinary({"--help"}, dir.Sub("err"));
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("enroll"), std::string::npos) << help.out;
}

// A cycle started by parc-agentd says when to run the next one, and a failing cycle's backoff
// grows across cycles although each is a new process.
TEST(AgentCycle, TellsTheSupervisorWhenNextAndBacksOffAcrossCycles) {
  TempDir dir;
  const std::string state = dir.Sub("state");
  const std::string config = dir.Sub("agent.toml");
  WriteFile(config, "");  // no server, no token: the cycle fails (not enrolled)
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::setenv("PARC_AGENT_NEXT_CYCLE_FD", std::to_string(fds[1]).c_str(), 1);
  std::vector<int64_t> delays;
  for (int cycle = 0; cycle < 3; ++cycle) {
    auto r = RunAgent({"run", "--once", "--root", DataPath("laptop"), "--state-dir", state,
                       "--config", config, "--retry-base", "10s"});
    EXPECT_EQ(r.status, 1) << r.err;
    char buf[64] = {};
    ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
    ASSERT_GT(n, 0);
    delays.push_back(std::strtoll(buf, nullptr, 10));
  }
  ::unsetenv("PARC_AGENT_NEXT_CYCLE_FD");
  ::close(fds[0]);
  ::close(fds[1]);
  // Full jitter under a cap that doubles: 10 s, 20 s, 40 s.
  EXPECT_LE(delays[0], 10000);
  EXPECT_LE(delays[1], 20000);
  EXPECT_LE(delays[2], 40000);
  common::Database::Options o;
  auto db = common::Database::Open(state + "/agent.db", o);
  ASSERT_TRUE(db.ok()) << db.status();
  auto st = (*db)->Prepare("SELECT value FROM meta WHERE key = 'retry_attempt'");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Text(0), "3");
}

TEST_F(IntegrationTest, StaleDevicesAreListed) {
  std::string token = server_->CreateToken(kFermat);
  ASSERT_EQ(Enroll(DataPath("laptop"), dir_.Sub("s1"), token).status, 0);
  ASSERT_EQ(RunOnce(DataPath("laptop"), dir_.Sub("s1")).status, 0);
  server_->clock()->Advance(absl::Hours(24 * 8));
  ASSERT_EQ(Enroll(DataPath("tablet"), dir_.Sub("s2"), token).status, 0);
  ASSERT_EQ(RunOnce(DataPath("tablet"), dir_.Sub("s2")).status, 0);
  auto r = RunCtl({"devices", "list", "--stale", "7d", "--server", server_->address(), "--ca",
                   server_->ca_path(), "--token", server_->admin_token(), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("5CD1234ABC"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("HX7K2Q3"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace parc::testing

namespace parc::testing {
namespace {

TEST_F(IntegrationTest, EnrollCheckTellsATechnicianWhatWorksAndEnrollsNothing) {
  std::string token = server_->CreateToken(kFermat, /*max_uses=*/30);
  auto ok = Enroll(DataPath("laptop"), dir_.Sub("s"), token, {"--check"});
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_NE(ok.out.find("token valid for 0310036W Lycée Pierre de Fermat"), std::string::npos)
      << ok.out;
  EXPECT_NE(ok.out.find("30 enrollment(s) left"), std::string::npos) << ok.out;
  EXPECT_TRUE(server_->ListDevices().empty());
  EXPECT_FALSE(common::PathExists(dir_.Sub("s/agent.db")));

  auto bad = Enroll(DataPath("laptop"), dir_.Sub("s"), "e000000000000." + std::string(64, '1'),
                    {"--check"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("UNAUTHENTICATED"), std::string::npos) << bad.err;

  // The CA of another server: the TLS handshake fails, and the technician is told what to check.
  TempDir other;
  TestServer other_server(other.Sub("server"));
  auto r = RunAgent({"enroll", "--check", "--root", DataPath("laptop"), "--state-dir",
                     dir_.Sub("s2"), "--server", server_->address(), "--token", token, "--ca",
                     other_server.ca_path(), "--config", EmptyConfig()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CA file"), std::string::npos) << r.err;
}

TEST_F(IntegrationTest, RetiredDevicesAreGoneAndTheirCredentialStopsWorking) {
  std::string state = dir_.Sub("state");
  ASSERT_EQ(Enroll(DataPath("laptop"), state, server_->CreateToken(kFermat)).status, 0);
  ASSERT_EQ(RunOnce(DataPath("laptop"), state).status, 0);
  auto r = RunCtl({"devices", "retire", "5CD1234ABC", "--server", server_->address(), "--ca",
                   server_->ca_path(), "--token", server_->admin_token()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Retired device"), std::string::npos);
  EXPECT_TRUE(server_->ListDevices().empty());
  EXPECT_EQ(RunOnce(DataPath("laptop"), state).status, 1);
  auto again = RunCtl({"devices", "retire", "5CD1234ABC", "--server", server_->address(), "--ca",
                       server_->ca_path(), "--token", server_->admin_token()});
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("NOT_FOUND"), std::string::npos);
}

}  // namespace
}  // namespace parc::testing
