// The agent's core (cycle, deployer, command steps) against the in-memory platform of
// tests/agent_fakes.h: no server, no network, no package manager. This test links the core
// library only, not the Linux platform: it also shows that the core stands on the interfaces.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/core/command_steps.h"
#include "agent/core/config.h"
#include "agent/core/daemon.h"
#include "agent/core/enrollment.h"
#include "agent/core/grpc_web_transport.h"
#include "common/bundle_trust.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/grpc_web_codec.h"
#include "common/retry.h"
#include "gtest/gtest.h"
#include "tests/agent_fakes.h"

namespace parc::testing {
namespace {

using agent::Daemon;
using parc::v1::DeploymentState;
using parc::v1::PackageState;

class ScratchDir {
 public:
  ScratchDir() {
    // Portable (the test also runs on Windows): a random name, created exclusively.
    auto name = common::RandomHex(8);
    path_ = (std::filesystem::temp_directory_path() / ("parc-core-" + name.value())).string();
    if (!std::filesystem::create_directory(path_)) std::abort();
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

class AgentCore : public ::testing::Test {
 protected:
  AgentCore() {
    auto inventory = std::make_unique<FakeInventorySource>();
    auto packages = std::make_unique<FakePackages>();
    auto fetcher = std::make_unique<FakeFetcher>();
    auto host = std::make_unique<FakeServiceHost>(/*supervised=*/true);
    inventory_ = inventory.get();
    packages_ = packages.get();
    fetcher_ = fetcher.get();
    host_ = host.get();
    platform_.inventory = std::move(inventory);
    platform_.packages = std::move(packages);
    platform_.fetcher = std::move(fetcher);
    platform_.transport = std::make_unique<FakeTransportFactory>(&server_);
    platform_.host = std::move(host);

    server_.enroll_response.set_device_id("d-1");
    server_.enroll_response.set_device_secret("s-1");
    server_.enroll_response.set_uai("0310036W");
    server_.enroll_response.set_establishment_name("Lycée Pierre de Fermat");
    server_.checkin_response.set_next_checkin_seconds(3600);
    server_.checkin_response.set_send_inventory(true);
    server_.checkin_response.set_send_software(true);
    server_.checkin_response.set_uai("0310036W");

    agent::EnrollParams enroll;
    enroll.server = "parc.ac-toulouse.test:8443";
    enroll.ca_pem = "-----BEGIN CERTIFICATE-----\n";
    enroll.token = "token-fermat";
    options_.enroll = enroll;
    options_.once = true;
    options_.deploy.cache_dir = dir_.Sub("cache");
    options_.deploy.time_zone = absl::UTCTimeZone();
    for (const char* name : {"toulouse", "stranger"}) {
      auto pair = common::SigningKey::Generate();
      const std::string path = dir_.Sub(absl::StrCat(name, ".key"));
      std::ofstream(path) << pair->first;
      keys_.push_back(*common::SigningKey::Load(path));
    }
    options_.deploy.keys = {keys_[0].public_key()};
    clock_.Set(absl::FromCivil(absl::CivilSecond(2026, 11, 30, 10, 0, 0), absl::UTCTimeZone()));
  }

  // One cycle, as parc-agentd starts it: `run --once`.
  absl::Status Cycle() {
    asio::io_context io;
    Daemon daemon(io, &platform_, &state_, options_, &clock_);
    daemon.Start();
    io.run();
    return daemon.last_status();
  }

  // A package whose artifact the fetcher serves.
  parc::v1::PackageSpec Package(const std::string& id, const std::string& version) {
    const std::string bytes = absl::StrCat("artifact of ", id, " ", version);
    fetcher_->Add(bytes);
    parc::v1::PackageSpec p;
    p.set_id(id);
    p.set_version(version);
    p.mutable_artifact()->set_sha256(common::Sha256Hex(bytes));
    p.mutable_artifact()->set_size(bytes.size());
    p.mutable_command()->mutable_install()->add_argv("install.sh");
    return p;
  }

  // The server assigns this bundle from now on, signed by signer.
  void Assign(const std::vector<parc::v1::PackageSpec>& packages, uint64_t sequence,
              const common::SigningKey& signer, parc::v1::DownloadWindow window = {}) {
    parc::v1::BundleManifest m;
    m.set_name("mcnl");
    m.set_version(absl::StrCat("2026.", sequence));
    m.set_sequence(sequence);
    m.set_expires_at(absl::ToUnixSeconds(clock_.Now() + absl::Hours(24 * 30)));
    for (const auto& p : packages) *m.add_packages() = p;
    parc::v1::Assignment* a = server_.checkin_response.mutable_assignment();
    a->Clear();
    a->set_rollout_id("r-2026");
    a->mutable_bundle()->set_manifest(m.SerializeAsString());
    auto* sig = a->mutable_bundle()->add_signatures();
    sig->set_key_id(signer.public_key().key_id);
    sig->set_signature(*signer.Sign(a->bundle().manifest()));
    a->set_manifest_sha256(common::Sha256Hex(a->bundle().SerializeAsString()));
    a->set_artifact_base_url("https://artifacts.ac-toulouse.test/artifacts");
    a->set_rate_limit_bytes_per_second(2 << 20);
    *a->mutable_window() = window;
  }

  parc::v1::DeploymentReport LastDeployment() {
    std::lock_guard<std::mutex> lock(server_.mu);
    return server_.deployments.empty() ? parc::v1::DeploymentReport() : server_.deployments.back();
  }
  size_t Count(const std::vector<parc::v1::EnrollRequest>& v) {
    std::lock_guard<std::mutex> lock(server_.mu);
    return v.size();
  }
  int64_t Queued() { return state_.QueuedCount().value_or(-1); }

  ScratchDir dir_;
  FakeServer server_;
  agent::Platform platform_;
  FakeInventorySource* inventory_;
  FakePackages* packages_;
  FakeFetcher* fetcher_;
  FakeServiceHost* host_;
  MemoryAgentState state_;
  agent::DaemonOptions options_;
  std::vector<common::SigningKey> keys_;
  common::FakeClock clock_;
};

TEST_F(AgentCore, APreseededDeviceEnrollsChecksInAndDeliversItsInventory) {
  ASSERT_TRUE(Cycle().ok());
  ASSERT_EQ(server_.enrolls.size(), 1u);
  EXPECT_EQ(server_.enrolls[0].token(), "token-fermat");
  EXPECT_EQ(server_.enrolls[0].identity().serial(), "PF4ABCDE");
  EXPECT_EQ(server_.enrolls[0].hostname(), "lordi-0042");
  EXPECT_EQ(server_.enrolls[0].detected_kind(), parc::v1::DEVICE_KIND_LAPTOP);
  EXPECT_EQ(server_.connections.at(0).server, "parc.ac-toulouse.test:8443");
  ASSERT_EQ(server_.checkins.size(), 1u);
  EXPECT_EQ(server_.checkins[0].first, "d-1.s-1");
  ASSERT_EQ(server_.inventories.size(), 1u);
  EXPECT_EQ(server_.inventories[0].second.inventory().hardware().model(),
            "ThinkPad L13 Yoga Gen 4");
  EXPECT_EQ(server_.inventories[0].second.inventory_hash(),
            server_.checkins[0].second.inventory_hash());
  auto identity = state_.LoadIdentity();
  ASSERT_TRUE(identity.ok() && identity->has_value());
  EXPECT_EQ((*identity)->device_id, "d-1");
  EXPECT_EQ((*identity)->uai, "0310036W");
  EXPECT_EQ(Queued(), 0);
  EXPECT_EQ(*state_.Get("last_checkin_at"), absl::StrCat(absl::ToUnixSeconds(clock_.Now())));
  // The supervisor starts the next cycle when the server asked.
  ASSERT_EQ(host_->next_cycles.size(), 1u);
  EXPECT_EQ(host_->next_cycles[0], absl::Seconds(3600));
}

TEST_F(AgentCore, TheMasterImagesMachineDoesNotEnrollItsClonesDo) {
  // Prepared with `configure --image`: the configuration holds this machine's fingerprint.
  options_.image_fingerprint = agent::Fingerprint(inventory_->CollectIdentity());
  absl::Status s = Cycle();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "master image")) << s;
  EXPECT_TRUE(server_.enrolls.empty());
  // A clone: other hardware (UUID and serial), the same image (MachineGuid kept by sysprep).
  parc::v1::HardwareIdentity clone = inventory_->CollectIdentity();
  clone.set_serial("PF4CLONE");
  clone.set_product_uuid("4c4c4544-0042-3010-8036-b7c04f574d33");
  inventory_->Set(inventory_->CollectInventory(), clone);
  ASSERT_TRUE(Cycle().ok());
  ASSERT_EQ(server_.enrolls.size(), 1u);
  EXPECT_EQ(server_.enrolls[0].identity().serial(), "PF4CLONE");
}

TEST_F(AgentCore, AnInventoryTheServerHoldsIsNotSentAgain) {
  ASSERT_TRUE(Cycle().ok());
  server_.checkin_response.set_send_inventory(false);
  ASSERT_TRUE(Cycle().ok());
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(server_.enrolls.size(), 1u);
  EXPECT_EQ(server_.checkins.size(), 3u);
  EXPECT_EQ(server_.inventories.size(), 1u);
  EXPECT_EQ(Queued(), 0);
  // A change on the device is sent at the next cycle.
  parc::v1::Inventory changed = inventory_->CollectInventory();
  changed.mutable_hardware()->set_ram_bytes(uint64_t{16} << 30);
  inventory_->Set(changed, inventory_->CollectIdentity());
  server_.checkin_response.set_send_inventory(true);
  ASSERT_TRUE(Cycle().ok());
  ASSERT_EQ(server_.inventories.size(), 2u);
  EXPECT_EQ(server_.inventories[1].second.inventory().hardware().ram_bytes(), uint64_t{16} << 30);
}

TEST_F(AgentCore, AServerThatIsDownKeepsTheInventoryQueuedAndBacksOffAcrossCycles) {
  for (int i = 0; i < 3; ++i) {
    server_.checkin_errors.push_back(absl::UnavailableError("connection refused"));
  }
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(absl::IsUnavailable(Cycle()));
  EXPECT_EQ(server_.inventories.size(), 0u);
  EXPECT_EQ(Queued(), 1);
  EXPECT_EQ(*state_.Get("retry_attempt"), "3");
  EXPECT_TRUE(absl::StrContains(*state_.Get("last_error"), "connection refused"));
  // Full jitter under a cap that doubles: 10 s, 20 s, 40 s.
  ASSERT_EQ(host_->next_cycles.size(), 3u);
  EXPECT_LE(host_->next_cycles[0], absl::Seconds(10));
  EXPECT_LE(host_->next_cycles[1], absl::Seconds(20));
  EXPECT_LE(host_->next_cycles[2], absl::Seconds(40));
  // Back up: the queued inventory goes, the backoff resets.
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(server_.inventories.size(), 1u);
  EXPECT_EQ(Queued(), 0);
  EXPECT_EQ(*state_.Get("retry_attempt"), "0");
  EXPECT_EQ(*state_.Get("last_error"), "");
  EXPECT_EQ(host_->next_cycles.back(), absl::Seconds(3600));
}

TEST_F(AgentCore, ARejectedCredentialIsForgottenAndThePreseededDeviceEnrollsAgain) {
  ASSERT_TRUE(Cycle().ok());
  server_.checkin_errors.push_back(absl::UnauthenticatedError("unknown device credential"));
  EXPECT_TRUE(absl::IsUnauthenticated(Cycle()));
  EXPECT_FALSE(state_.LoadIdentity()->has_value());
  server_.enroll_response.set_device_id("d-2");
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(server_.enrolls.size(), 2u);
  EXPECT_EQ(server_.checkins.back().first, "d-2.s-1");
}

TEST_F(AgentCore, AReportTheServerRefusesForGoodIsDroppedCountedAndShown) {
  server_.inventory_errors.push_back(absl::InvalidArgumentError("inventory.disks[3]: bad size"));
  ASSERT_TRUE(Cycle().ok());  // the outbox is not blocked
  EXPECT_EQ(Queued(), 0);
  EXPECT_EQ(*state_.DroppedCount(), 1u);
  EXPECT_TRUE(absl::StrContains(*state_.Get("last_refused"), "inventory.disks[3]"));
  // A busy server is not a refusal: the report stays.
  server_.checkin_response.set_send_inventory(true);
  parc::v1::Inventory changed = inventory_->CollectInventory();
  changed.mutable_hardware()->set_hostname("lordi-0043");
  inventory_->Set(changed, inventory_->CollectIdentity());
  server_.inventory_errors.push_back(
      common::RetryLater(absl::ResourceExhaustedError("server busy"), absl::Seconds(30)));
  EXPECT_FALSE(Cycle().ok());
  EXPECT_EQ(Queued(), 1);
  EXPECT_EQ(*state_.DroppedCount(), 1u);
}

TEST_F(AgentCore, StateCopiedOntoOtherHardwareEnrollsAsANewDevice) {
  ASSERT_TRUE(Cycle().ok());
  parc::v1::HardwareIdentity other = inventory_->CollectIdentity();
  other.set_serial("PF4ZZZZZ");
  other.set_product_uuid("4c4c4544-0099-3510-8052-b2c04f4a4e31");
  inventory_->Set(inventory_->CollectInventory(), other);
  server_.enroll_response.set_device_id("d-2");
  ASSERT_TRUE(Cycle().ok());
  ASSERT_EQ(server_.enrolls.size(), 2u);
  // It does not present the first device's credential.
  EXPECT_EQ(server_.enrolls[1].device_credential(), "");
  EXPECT_EQ(server_.enrolls[1].identity().serial(), "PF4ZZZZZ");
  EXPECT_EQ((*state_.LoadIdentity())->device_id, "d-2");
}

TEST_F(AgentCore, ClonesSendNoSoftwareListTheServerAlreadyHolds) {
  server_.checkin_response.set_send_software(false);
  ASSERT_TRUE(Cycle().ok());
  ASSERT_EQ(server_.inventories.size(), 1u);
  const auto& report = server_.inventories[0].second;
  EXPECT_EQ(report.inventory().software().packages_size(), 0);
  EXPECT_FALSE(report.software_hash().empty());
  EXPECT_EQ(report.software_hash(), server_.checkins[0].second.software_hash());
}

TEST_F(AgentCore, ASignedBundleIsFetchedInstalledAndReportedInTheSameCycle) {
  Assign({Package("geogebra", "6.0.800"), Package("libreoffice", "24.8")}, 1, keys_[0]);
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(packages_->installed(),
            (std::map<std::string, std::string>{{"geogebra", "6.0.800"}, {"libreoffice", "24.8"}}));
  auto requests = fetcher_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_TRUE(absl::StartsWith(requests[0].url, "https://artifacts.ac-toulouse.test/artifacts/"));
  EXPECT_EQ(requests[0].rate_limit, 2u << 20);
  const auto report = LastDeployment();
  EXPECT_EQ(report.state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  EXPECT_EQ(report.rollout_id(), "r-2026");
  ASSERT_EQ(report.packages_size(), 2);
  for (const auto& p : report.packages()) {
    EXPECT_EQ(p.state(), parc::v1::PACKAGE_STATE_INSTALLED) << p.package_id();
    EXPECT_GT(p.bytes_downloaded(), 0u);
  }
  EXPECT_EQ(Queued(), 0);
  // The next cycle changes nothing and installs nothing again.
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(packages_->installs("geogebra"), 1);
  EXPECT_EQ(fetcher_->requests().size(), 2u);
}

// The same on Linux and Windows: the establishment's relays first, then the centre; a relay
// that fails is noted, passed over for the rest of the run, and the download goes on.
TEST_F(AgentCore, RelaysAreTriedFirstAndAFailingOneIsPassedOverAndReported) {
  Assign({Package("geogebra", "6.0.800"), Package("libreoffice", "24.8")}, 1, keys_[0]);
  auto* a = server_.checkin_response.mutable_assignment();
  a->add_relay_urls("https://relais-1.lycee-fermat.test/artifacts");
  a->add_relay_urls("https://relais-2.lycee-fermat.test/artifacts");
  // Relay 1 serves wrong bytes, relay 2 does not answer: the centre serves geogebra, and
  // libreoffice is asked of the centre only.
  fetcher_->FailNext(
      common::WithReason(absl::DataLossError("hash differs"), agent::kReasonArtifactHashMismatch));
  fetcher_->FailNext(common::WithReason(absl::UnavailableError("connection refused"),
                                        agent::kReasonDownloadFailed));
  ASSERT_TRUE(Cycle().ok());
  auto requests = fetcher_->requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_TRUE(absl::StartsWith(requests[0].url, "https://relais-1.lycee-fermat.test/artifacts/"));
  EXPECT_LE(requests[0].connect_timeout, absl::Seconds(5));
  // A relay is left when it is slow, not only when it stalls; the centre only when it stalls.
  EXPECT_EQ(requests[0].min_speed, 32u * 1024);
  EXPECT_EQ(requests[2].min_speed, 1u);
  EXPECT_TRUE(absl::StartsWith(requests[1].url, "https://relais-2.lycee-fermat.test/artifacts/"));
  EXPECT_TRUE(absl::StartsWith(requests[2].url, "https://artifacts.ac-toulouse.test/artifacts/"));
  EXPECT_TRUE(absl::StartsWith(requests[3].url, "https://artifacts.ac-toulouse.test/artifacts/"));
  const auto report = LastDeployment();
  EXPECT_EQ(report.state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  ASSERT_EQ(report.packages_size(), 2);
  const auto& geogebra = report.packages(0);
  EXPECT_EQ(geogebra.source(), "https://artifacts.ac-toulouse.test/artifacts");
  ASSERT_EQ(geogebra.source_faults_size(), 2);
  EXPECT_EQ(geogebra.source_faults(0).url(), "https://relais-1.lycee-fermat.test/artifacts");
  EXPECT_EQ(geogebra.source_faults(0).reason(), "artifact_hash_mismatch");
  EXPECT_EQ(geogebra.source_faults(1).reason(), "download_failed");
  EXPECT_EQ(report.packages(1).source_faults_size(), 0);

  // Next version, relays healthy again: the first relay serves.
  Assign({Package("geogebra", "6.0.900")}, 2, keys_[0]);
  server_.checkin_response.mutable_assignment()->add_relay_urls(
      "https://relais-1.lycee-fermat.test/artifacts");
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(LastDeployment().packages(0).source(), "https://relais-1.lycee-fermat.test/artifacts");
  EXPECT_EQ(LastDeployment().packages(0).source_faults_size(), 0);
}

TEST_F(AgentCore, CachedArtifactsKeepTheirSourceFilesExtension) {
  // Windows runs installers and scripts by their extension: geogebra.msi is cached as
  // <sha256>.msi; a name without a plain extension gives the bare hash.
  auto msi = Package("geogebra", "6.0.800");
  msi.mutable_artifact()->set_filename("GeoGebra-Windows-Installer-6-0-800.MSI");
  auto odd = Package("scratch", "3.29");
  odd.mutable_artifact()->set_filename("scratch.tar.gz;rm -rf");
  Assign({msi, odd}, 1, keys_[0]);
  ASSERT_TRUE(Cycle().ok());
  EXPECT_TRUE(std::filesystem::exists(dir_.Sub("cache/" + msi.artifact().sha256() + ".msi")));
  EXPECT_TRUE(std::filesystem::exists(dir_.Sub("cache/" + odd.artifact().sha256())));
}

TEST_F(AgentCore, AFailingInstallIsRetriedThenReportedFailedWithItsExitCode) {
  agent::InstallOutcome failed;
  failed.reason = "install_failed";
  failed.exit_status = 1603;
  failed.message = "install.sh exited with status 1603";
  failed.output_tail = "fatal error during installation";
  packages_->FailInstalls("geogebra", failed, 10);
  Assign({Package("geogebra", "6.0.800")}, 1, keys_[0]);
  for (int cycle = 1; cycle <= 2; ++cycle) {
    ASSERT_TRUE(Cycle().ok());
    EXPECT_EQ(LastDeployment().state(), parc::v1::DEPLOYMENT_STATE_IN_PROGRESS) << cycle;
    // Failed packages with attempts left: the next cycle comes after a backoff, not in an hour.
    EXPECT_LE(host_->next_cycles.back(), absl::Seconds(10) * (1 << cycle)) << cycle;
  }
  ASSERT_TRUE(Cycle().ok());
  const auto report = LastDeployment();
  EXPECT_EQ(report.state(), parc::v1::DEPLOYMENT_STATE_FAILED);
  EXPECT_EQ(report.reason(), "install_failed");
  ASSERT_EQ(report.packages_size(), 1);
  EXPECT_EQ(report.packages(0).exit_status(), 1603);
  EXPECT_EQ(report.packages(0).output_tail(), "fatal error during installation");
  EXPECT_EQ(packages_->installs("geogebra"), 3);
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(packages_->installs("geogebra"), 3);  // failed for good until the next version
  // The bundle was downloaded once: the cached artifact is installed again.
  EXPECT_EQ(fetcher_->requests().size(), 1u);
}

TEST_F(AgentCore, ABundleSignedByAnUnpinnedKeyIsRefusedOnceAndNothingIsFetched) {
  Assign({Package("geogebra", "6.0.800")}, 1, keys_[1]);
  ASSERT_TRUE(Cycle().ok());
  ASSERT_TRUE(Cycle().ok());
  ASSERT_EQ(server_.deployments.size(), 1u);
  EXPECT_EQ(server_.deployments[0].state(), parc::v1::DEPLOYMENT_STATE_REFUSED);
  EXPECT_EQ(server_.deployments[0].reason(), common::kReasonUnknownKey);
  EXPECT_TRUE(fetcher_->requests().empty());
  EXPECT_TRUE(packages_->installed().empty());
  EXPECT_TRUE(absl::StrContains(*state_.Get("refused_bundle"), "mcnl@2026.1"));
}

TEST_F(AgentCore, DownloadsWaitForTheWindowAndTheNextCycleStartsWhenItOpens) {
  parc::v1::DownloadWindow evening;
  evening.set_start_minute(22 * 60);
  evening.set_end_minute(23 * 60);
  server_.checkin_response.set_next_checkin_seconds(24 * 3600);
  Assign({Package("geogebra", "6.0.800")}, 1, keys_[0], evening);
  ASSERT_TRUE(Cycle().ok());  // at 10:00
  EXPECT_TRUE(fetcher_->requests().empty());
  auto records = state_.LoadPackages("mcnl");
  ASSERT_TRUE(records.ok() && records->size() == 1u);
  EXPECT_EQ((*records)[0].state, parc::v1::PACKAGE_STATE_WAITING);
  EXPECT_EQ(host_->next_cycles.back(), absl::Hours(12) + absl::Seconds(1));
  clock_.Advance(absl::Hours(12) + absl::Seconds(1));
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(fetcher_->requests().size(), 1u);
  EXPECT_EQ(LastDeployment().state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
}

TEST_F(AgentCore, APackageAlreadyPresentIsNeitherFetchedNorInstalled) {
  packages_->Preinstall("geogebra", "6.0.800");
  Assign({Package("geogebra", "6.0.800")}, 1, keys_[0]);
  ASSERT_TRUE(Cycle().ok());
  EXPECT_TRUE(fetcher_->requests().empty());
  EXPECT_EQ(packages_->installs("geogebra"), 0);
  const auto report = LastDeployment();
  EXPECT_EQ(report.state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  ASSERT_EQ(report.packages_size(), 1);
  EXPECT_EQ(report.packages(0).reason(), "already_installed");
}

TEST_F(AgentCore, AnInstallCutShortByTheAgentsDeathIsNeitherLostNorRepeated) {
  // What an agent killed during two installs leaves behind: both packages "installing". One
  // installer had completed (msiexec ran to its end, the registry lists the product), the
  // other had not.
  const auto geogebra = Package("geogebra", "6.0.800");
  const auto scratch = Package("scratch", "3.29");
  Assign({geogebra, scratch}, 1, keys_[0]);
  for (const auto& spec : {geogebra, scratch}) {
    agent::PackageRecord r;
    r.bundle_name = "mcnl";
    r.package_id = spec.id();
    r.version = spec.version();
    r.spec = spec;
    r.state = parc::v1::PACKAGE_STATE_INSTALLING;
    ASSERT_TRUE(state_.SavePackage(r).ok());
  }
  packages_->Preinstall("geogebra", "6.0.800");
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(packages_->installs("geogebra"), 0);  // detected: not run a second time
  EXPECT_EQ(packages_->installs("scratch"), 1);   // run again, once
  const auto report = LastDeployment();
  EXPECT_EQ(report.state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  for (const auto& p : report.packages()) {
    EXPECT_EQ(p.state(), parc::v1::PACKAGE_STATE_INSTALLED) << p.package_id();
  }
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(packages_->installs("geogebra"), 0);
  EXPECT_EQ(packages_->installs("scratch"), 1);
}

TEST_F(AgentCore, TheNextVersionFetchesOnlyWhatChangedAndRemovesDroppedPackages) {
  Assign({Package("geogebra", "6.0.800"), Package("scratch", "3.29")}, 1, keys_[0]);
  ASSERT_TRUE(Cycle().ok());
  // The next version updates geogebra and drops scratch.
  Assign({Package("geogebra", "6.0.850")}, 3, keys_[0]);
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(packages_->installed(), (std::map<std::string, std::string>{{"geogebra", "6.0.850"}}));
  EXPECT_EQ(fetcher_->requests().size(), 3u);  // two for the first version, one for geogebra
  const auto report = LastDeployment();
  EXPECT_EQ(report.bundle_version(), "2026.3");
  EXPECT_EQ(report.state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  bool removed = false;
  for (const auto& p : report.packages()) {
    if (p.package_id() == "scratch") removed = p.state() == parc::v1::PACKAGE_STATE_REMOVED;
  }
  EXPECT_TRUE(removed);
  // An older bundle is a rollback: refused.
  Assign({Package("geogebra", "6.0.800")}, 1, keys_[0]);
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(LastDeployment().reason(), common::kReasonRollback);
  EXPECT_EQ(packages_->installed().at("geogebra"), "6.0.850");
}

TEST_F(AgentCore, PackagesOfAnotherPlatformAreLeftOut) {
  packages_->HandleOnly({parc::v1::PackageSpec::kCommand});
  parc::v1::PackageSpec deb = Package("libreoffice-deb", "24.8");
  deb.mutable_deb()->set_package_name("libreoffice");
  Assign({Package("geogebra", "6.0.800"), deb}, 1, keys_[0]);
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(packages_->installed(), (std::map<std::string, std::string>{{"geogebra", "6.0.800"}}));
  EXPECT_EQ(fetcher_->requests().size(), 1u);  // the deb is not even downloaded
  const auto report = LastDeployment();
  EXPECT_EQ(report.state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  ASSERT_EQ(report.packages_size(), 1);
  EXPECT_EQ(report.packages(0).package_id(), "geogebra");
}

TEST_F(AgentCore, ABusyInstallerIsTriedAgainWithoutCountingAnAttempt) {
  agent::InstallOutcome busy;
  busy.retry_later = true;
  busy.reason = "install_busy";
  busy.exit_status = 1618;
  packages_->FailInstalls("geogebra", busy, 4);  // more than max_attempts (3)
  Assign({Package("geogebra", "6.0.800")}, 1, keys_[0]);
  for (int cycle = 1; cycle <= 4; ++cycle) {
    ASSERT_TRUE(Cycle().ok());
    auto records = state_.LoadPackages("mcnl");
    ASSERT_TRUE(records.ok() && records->size() == 1u);
    EXPECT_EQ((*records)[0].state, parc::v1::PACKAGE_STATE_DOWNLOADED) << cycle;
    EXPECT_EQ((*records)[0].attempts, 0) << cycle;
    EXPECT_EQ(LastDeployment().state(), parc::v1::DEPLOYMENT_STATE_IN_PROGRESS) << cycle;
    EXPECT_LE(host_->next_cycles.back(), absl::Seconds(10) * (1 << cycle)) << cycle;
  }
  ASSERT_TRUE(Cycle().ok());
  EXPECT_EQ(LastDeployment().state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  EXPECT_EQ(fetcher_->requests().size(), 1u);
}

TEST_F(AgentCore, AnInstallThatAsksForARebootIsInstalledWithTheRebootPending) {
  agent::InstallOutcome reboot;
  reboot.ok = true;
  reboot.reboot_pending = true;
  reboot.exit_status = 3010;
  packages_->FailInstalls("geogebra", reboot, 1);
  Assign({Package("geogebra", "6.0.800")}, 1, keys_[0]);
  ASSERT_TRUE(Cycle().ok());
  const auto report = LastDeployment();
  EXPECT_EQ(report.state(), parc::v1::DEPLOYMENT_STATE_INSTALLED);
  ASSERT_EQ(report.packages_size(), 1);
  EXPECT_EQ(report.packages(0).reason(), "reboot_pending");
  EXPECT_EQ(report.packages(0).exit_status(), 3010);
}

TEST_F(AgentCore, AFailingStateStoreEndsTheCycleAndLosesNoReport) {
  ASSERT_TRUE(Cycle().ok());
  parc::v1::Inventory changed = inventory_->CollectInventory();
  changed.mutable_hardware()->set_hostname("lordi-0043");
  inventory_->Set(changed, inventory_->CollectIdentity());
  state_.FailWrites(true);
  EXPECT_TRUE(absl::IsUnavailable(Cycle()));
  EXPECT_EQ(server_.inventories.size(), 1u);
  state_.FailWrites(false);
  ASSERT_TRUE(Cycle().ok());
  ASSERT_EQ(server_.inventories.size(), 2u);
  EXPECT_EQ(server_.inventories[1].second.inventory().hardware().hostname(), "lordi-0043");
}

// ---------------------------------------------------------------------------------------------
// The gRPC-Web transport (the Windows agent's, and any agent's behind an HTTP/1.1 proxy).

class ScriptedHttp final : public agent::HttpClient {
 public:
  explicit ScriptedHttp(std::vector<absl::StatusOr<agent::HttpAnswer>>* answers,
                        std::vector<agent::HttpPost>* posts)
      : answers_(answers), posts_(posts) {}
  absl::StatusOr<agent::HttpAnswer> Post(const agent::HttpPost& request) override {
    posts_->push_back(request);
    auto a = answers_->front();
    answers_->erase(answers_->begin());
    return a;
  }
  void CancelAll() override {}

 private:
  std::vector<absl::StatusOr<agent::HttpAnswer>>* answers_;
  std::vector<agent::HttpPost>* posts_;
};

agent::HttpAnswer GrpcWebAnswer(const std::string& body,
                                std::map<std::string, std::string> headers = {}) {
  agent::HttpAnswer a;
  a.status = 200;
  a.headers = std::move(headers);
  a.headers.emplace("content-type", "application/grpc-web+proto");
  a.body = body;
  return a;
}

TEST(GrpcWebTransport, FramesCallsAndReadsStatusesAsGrpcDoes) {
  std::vector<absl::StatusOr<agent::HttpAnswer>> answers;
  std::vector<agent::HttpPost> posts;
  agent::TransportOptions options;
  options.server = "https://parc.ac-toulouse.test:8444/";
  options.ca_pem = "-----BEGIN CERTIFICATE-----";
  agent::GrpcWebTransport transport(std::make_unique<ScriptedHttp>(&answers, &posts), options);
  EXPECT_TRUE(agent::GrpcWebTransport::IsGrpcWebAddress(options.server));
  EXPECT_FALSE(agent::GrpcWebTransport::IsGrpcWebAddress("parc.ac-toulouse.test:8443"));

  parc::v1::CheckInResponse ok;
  ok.set_next_checkin_seconds(3600);
  ok.set_uai("0310036W");
  answers.push_back(GrpcWebAnswer(common::GrpcWebFrame(0, ok.SerializeAsString()) +
                                  common::GrpcWebFrame(0x80, "grpc-status: 0\r\n")));
  parc::v1::CheckInRequest request;
  request.set_agent_version("0.1.0");
  auto r = transport.CheckIn("d-1.s-1", request);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->uai(), "0310036W");
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].url, "https://parc.ac-toulouse.test:8444/parc.v1.AgentService/CheckIn");
  EXPECT_EQ(posts[0].body, common::GrpcWebFrame(0, request.SerializeAsString()));
  EXPECT_EQ(posts[0].ca_pem, options.ca_pem);
  bool bearer = false;
  for (const auto& [name, value] : posts[0].headers) {
    bearer |= name == "authorization" && value == "Bearer d-1.s-1";
  }
  EXPECT_TRUE(bearer);

  // A refusal, its message percent-encoded, with a pushback.
  answers.push_back(GrpcWebAnswer(
      common::GrpcWebFrame(0x80,
                           "grpc-status:14\r\ngrpc-message:storage unavailable%3A retry later\r\n"
                           "grpc-retry-pushback-ms:30000\r\n")));
  r = transport.CheckIn("d-1.s-1", request);
  EXPECT_TRUE(absl::IsUnavailable(r.status()));
  EXPECT_EQ(r.status().message(), "storage unavailable: retry later");
  EXPECT_TRUE(common::IsRetryLater(r.status()));
  EXPECT_EQ(common::RetryAfter(r.status()), absl::Seconds(30));

  // Trailers-only, in the headers.
  agent::HttpAnswer refused;
  refused.status = 415;
  refused.headers = {{"grpc-status", "3"}, {"grpc-message", "content type"}};
  answers.push_back(refused);
  EXPECT_TRUE(absl::IsInvalidArgument(transport.CheckIn("d-1.s-1", request).status()));

  // A proxy's error page, a network failure, a truncated answer.
  agent::HttpAnswer proxy;
  proxy.status = 502;
  proxy.headers = {{"content-type", "text/html"}};
  proxy.body = "<html>Bad Gateway</html>";
  answers.push_back(proxy);
  auto p = transport.CheckIn("d-1.s-1", request);
  EXPECT_TRUE(absl::IsUnavailable(p.status()));
  EXPECT_TRUE(absl::StrContains(p.status().message(), "HTTP 502")) << p.status();
  answers.push_back(absl::UnavailableError("Could not resolve proxy: proxy.lycee.test"));
  auto n = transport.CheckIn("d-1.s-1", request);
  EXPECT_TRUE(absl::IsUnavailable(n.status()));
  EXPECT_TRUE(absl::StrContains(n.status().message(), "server https://parc.ac-toulouse.test:8444"))
      << n.status();
  answers.push_back(GrpcWebAnswer(common::GrpcWebFrame(0, ok.SerializeAsString()).substr(0, 7)));
  EXPECT_TRUE(absl::IsInternal(transport.CheckIn("d-1.s-1", request).status()));

  // Enrollment carries no credential.
  answers.push_back(GrpcWebAnswer(common::GrpcWebFrame(0x80, "grpc-status:16\r\n")));
  EXPECT_TRUE(absl::IsUnauthenticated(transport.Enroll(parc::v1::EnrollRequest()).status()));
  for (const auto& [name, value] : posts.back().headers) EXPECT_NE(name, "authorization");
}

// ---------------------------------------------------------------------------------------------
// The agent's configuration.

TEST(AgentConfig, NumbersMustBeWholeAndInRange) {
  auto huge = agent::ParseAgentConfig("outbox_max_reports = 1e300\n", "agent.toml");
  EXPECT_TRUE(absl::IsInvalidArgument(huge.status()));
  EXPECT_TRUE(absl::StrContains(huge.status().message(),
                                "agent.toml: outbox_max_reports must be a number from 1 to 100000"))
      << huge.status();
  EXPECT_TRUE(absl::IsInvalidArgument(
      agent::ParseAgentConfig("signature_threshold = 1.5\n", "agent.toml").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      agent::ParseAgentConfig("signature_threshold = 17\n", "agent.toml").status()));
  auto ok =
      agent::ParseAgentConfig("outbox_max_reports = 500\nsignature_threshold = 2\n", "agent.toml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->outbox_max_reports, 500);
  EXPECT_EQ(ok->signature_threshold, 2);
}

// ---------------------------------------------------------------------------------------------
// The command steps every platform shares.

TEST(CommandSteps, ExitStatusTimeoutAndMissingProgramsBecomeOutcomes) {
  FakeProcessRunner runner;
  agent::CommandResult ok;
  ok.exit_status = 0;
  runner.Answer("detect.sh", ok);
  agent::CommandResult failing;
  failing.exit_status = 3;
  failing.output_tail = "disk full";
  runner.Answer("install.sh", failing);
  agent::CommandResult slow;
  slow.timed_out = true;
  runner.Answer("slow.sh", slow);
  agent::CommandSteps steps(&runner, absl::Minutes(10));

  parc::v1::PackageSpec spec;
  spec.set_id("geogebra");
  spec.set_version("6.0.800");
  auto* install = spec.mutable_command()->mutable_install();
  install->add_argv("install.sh");
  install->add_argv("--from={artifact}");
  install->add_argv("--version={version}");
  agent::InstallOutcome o = steps.InstallCommand(spec, "/cache/abc");
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.reason, "install_failed");
  EXPECT_EQ(o.exit_status, 3);
  EXPECT_EQ(o.output_tail, "disk full");
  EXPECT_EQ(o.message, "install.sh exited with status 3");
  EXPECT_EQ(runner.runs().back(),
            (std::vector<std::string>{"install.sh", "--from=/cache/abc", "--version=6.0.800"}));

  install->set_argv(0, "slow.sh");
  install->set_timeout_seconds(5);
  o = steps.InstallCommand(spec, "/cache/abc");
  EXPECT_EQ(o.reason, "install_timeout");
  EXPECT_EQ(o.message, "slow.sh did not finish within 5s");

  install->set_argv(0, "missing.sh");
  o = steps.InstallCommand(spec, "/cache/abc");
  EXPECT_EQ(o.reason, "install_failed");
  EXPECT_TRUE(absl::StrContains(o.message, "missing.sh"));

  EXPECT_EQ(steps.Detect(spec), std::nullopt);  // no detection command
  spec.mutable_detect()->add_argv("detect.sh");
  EXPECT_EQ(steps.Detect(spec), true);
  spec.mutable_detect()->set_argv(0, "not-yet-installed.sh");
  EXPECT_EQ(steps.Detect(spec), false);  // a program that does not exist yet: absent

  o = steps.RemoveCommand(spec);  // no remove command: left in place
  EXPECT_TRUE(o.ok);
  EXPECT_EQ(o.message, "no remove command: left in place");
}

}  // namespace
}  // namespace parc::testing
