// AgentService's handlers against the in-memory store (tests/fake_store.h), over an in-process
// gRPC channel: authentication, what a check-in answers, and how storage failures and refusals
// reach the agent (status codes, retry pushback, nothing half-written). The same calls run end
// to end on SQLite and PostgreSQL in integration_test.
#include "server/agent_service.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/inventory_util.h"
#include "server/metrics.h"
#include "tests/fake_store.h"
#include "tests/test_util.h"

namespace parc::testing {
namespace {

constexpr char kFermat[] = "0310036W";

class AgentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server::AgentServiceOptions options;
    options.artifact_base_url = "https://parc.example/artifacts";
    options.deployment_reported = [this](const std::string& id) {
      std::lock_guard<std::mutex> lock(mu_);
      evaluated_.push_back(id);
    };
    service_ = std::make_unique<server::AgentServiceImpl>(&store_, &clock_, &metrics_, options);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = parc::v1::AgentService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));

    parc::v1::Establishment fermat;
    fermat.set_uai(kFermat);
    fermat.set_name("Lycée Pierre de Fermat");
    store_.UpsertEstablishments({fermat}, clock_.Now(), [](auto r) { ASSERT_TRUE(r.ok()); });
    auto token = common::NewCredential("e", 6);
    ASSERT_TRUE(token.ok());
    token_ = common::FormatCredential(*token);
    server::EnrollmentTokenRecord t;
    t.id = token->id;
    t.secret_hash = common::Sha256Hex(token->secret);
    t.uai = kFermat;
    t.created_at = clock_.Now();
    t.expires_at = clock_.Now() + absl::Hours(1);
    t.max_uses = 2;
    store_.CreateEnrollmentToken(t, [](auto r) { ASSERT_TRUE(r.ok()); });
  }
  void TearDown() override { server_->Shutdown(); }

  parc::v1::EnrollRequest EnrollRequest(const std::string& serial) const {
    parc::v1::EnrollRequest r;
    r.set_token(token_);
    r.mutable_identity()->set_serial(serial);
    r.mutable_identity()->set_product_uuid("4c4c4544-0000-0000-0000-" + serial.substr(0, 12));
    r.set_detected_kind(parc::v1::DEVICE_KIND_LAPTOP);
    r.set_hostname("pc-" + serial);
    r.set_agent_version("1.0");
    return r;
  }
  grpc::Status Enroll(const std::string& serial, parc::v1::EnrollResponse* out) {
    grpc::ClientContext ctx;
    return stub_->Enroll(&ctx, EnrollRequest(serial), out);
  }
  grpc::Status CheckIn(const std::string& credential, const parc::v1::CheckInRequest& request,
                       parc::v1::CheckInResponse* out, grpc::ClientContext* ctx = nullptr) {
    grpc::ClientContext local;
    if (ctx == nullptr) ctx = &local;
    ctx->AddMetadata("authorization", "Bearer " + credential);
    return stub_->CheckIn(ctx, request, out);
  }
  // A ReportInventory call carrying these bytes as they are.
  grpc::Status ReportRaw(const std::string& credential, const std::string& bytes) {
    grpc::GenericStub stub(server_->InProcessChannel(grpc::ChannelArguments()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + credential);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1), response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, "/parc.v1.AgentService/ReportInventory", grpc::StubOptions(), &request,
                   &response, [&](grpc::Status st) { done.set_value(st); });
    return done.get_future().get();
  }
  static std::string CredentialOf(const parc::v1::EnrollResponse& r) {
    return common::FormatCredential(common::Credential{r.device_id(), r.device_secret()});
  }

  common::FakeClock clock_;
  server::Metrics metrics_;
  FakeStore store_;
  std::unique_ptr<server::AgentServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<parc::v1::AgentService::Stub> stub_;
  std::string token_;
  std::mutex mu_;
  std::vector<std::string> evaluated_;
};

TEST_F(AgentServiceTest, AnEnrolledDeviceChecksInAndIsAskedForItsInventoryOnce) {
  parc::v1::EnrollResponse enrolled;
  ASSERT_TRUE(Enroll("5CD1234ABC", &enrolled).ok());
  EXPECT_EQ(enrolled.uai(), kFermat);
  EXPECT_EQ(enrolled.establishment_name(), "Lycée Pierre de Fermat");
  EXPECT_EQ(enrolled.checkin_interval_seconds(), 3600u);
  // The store holds the secret's hash, never the secret.
  auto row = store_.device(enrolled.device_id());
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->auth.secret_hash, common::Sha256Hex(enrolled.device_secret()));
  EXPECT_EQ(row->serial, "5CD1234ABC");

  parc::v1::CheckInRequest request;
  request.set_agent_version("1.0");
  request.set_inventory_hash(std::string(64, 'a'));
  request.set_software_hash(std::string(64, 'b'));
  parc::v1::CheckInResponse answer;
  grpc::Status s = CheckIn(CredentialOf(enrolled), request, &answer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(answer.send_inventory());
  EXPECT_TRUE(answer.send_software());  // a list nobody sent yet
  EXPECT_EQ(answer.uai(), kFermat);
  // Jittered around the interval (±20 %).
  EXPECT_GE(answer.next_checkin_seconds(), 2880u);
  EXPECT_LE(answer.next_checkin_seconds(), 4320u);
  EXPECT_FALSE(answer.has_assignment());
  EXPECT_EQ(store_.device(enrolled.device_id())->last_seen, clock_.Now());

  // Once the server holds that inventory, check-ins carrying its hash send nothing.
  server::InventoryInput in;
  in.device_id = enrolled.device_id();
  in.inventory_hash = std::string(64, 'a');
  in.software_hash = std::string(64, 'b');
  in.software = std::make_shared<const parc::v1::SoftwareList>();
  store_.StoreInventory(in, [](auto r) { ASSERT_TRUE(r.ok()); });
  ASSERT_TRUE(CheckIn(CredentialOf(enrolled), request, &answer).ok());
  EXPECT_FALSE(answer.send_inventory());
  EXPECT_FALSE(answer.send_software());
}

TEST_F(AgentServiceTest, CredentialsThatDoNotMatchAreRefusedAsUnauthenticated) {
  parc::v1::EnrollResponse enrolled;
  ASSERT_TRUE(Enroll("5CD1234ABC", &enrolled).ok());
  parc::v1::CheckInResponse answer;
  // No credential, garbage, a wrong secret, a device retired since.
  grpc::ClientContext none;
  EXPECT_EQ(stub_->CheckIn(&none, {}, &answer).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CheckIn("garbage", {}, &answer).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  common::Credential wrong{enrolled.device_id(), std::string(64, '0')};
  grpc::Status s = CheckIn(common::FormatCredential(wrong), {}, &answer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(s.error_message().find("enroll again"), std::string::npos) << s.error_message();
  store_.RetireDevice(enrolled.device_id(), server::Scope::Region(),
                      [](auto r) { ASSERT_TRUE(r.ok()); });
  s = CheckIn(CredentialOf(enrolled), {}, &answer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(s.error_message().find("unknown device"), std::string::npos) << s.error_message();
}

TEST_F(AgentServiceTest, AStorageFailureIsUnavailableWithARetryPushbackAndWritesNothing) {
  store_.FailWrites(FakeStore::StorageError("disk full"));
  parc::v1::EnrollResponse enrolled;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->Enroll(&ctx, EnrollRequest("5CD1234ABC"), &enrolled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  // The cause stays in the server's log; the agent learns when to retry.
  EXPECT_EQ(s.error_message().find("disk full"), std::string::npos) << s.error_message();
  auto pushback = ctx.GetServerTrailingMetadata().find(common::kRetryPushbackHeader);
  ASSERT_NE(pushback, ctx.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(pushback->second.data(), pushback->second.size()), "30000");
  EXPECT_EQ(store_.device_count(), 0u);
  EXPECT_EQ(store_.token(common::ParseCredential(token_)->id)->uses, 0u);

  // Back: the same request enrolls.
  store_.FailWrites(absl::OkStatus());
  ASSERT_TRUE(Enroll("5CD1234ABC", &enrolled).ok());
  EXPECT_EQ(store_.device_count(), 1u);
  EXPECT_EQ(store_.token(common::ParseCredential(token_)->id)->uses, 1u);
}

TEST_F(AgentServiceTest, AUsedUpTokenIsPermissionDeniedAndAKnownDeviceNeedsItsCredential) {
  parc::v1::EnrollResponse first, second, again;
  ASSERT_TRUE(Enroll("5CD1234ABC", &first).ok());
  // The same hardware without its credential: refused, its record untouched.
  grpc::Status s = Enroll("5CD1234ABC", &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(store_.device(first.device_id())->auth.secret_hash,
            common::Sha256Hex(first.device_secret()));
  // With it: re-keyed, same id.
  parc::v1::EnrollRequest rekey = EnrollRequest("5CD1234ABC");
  rekey.set_device_credential(CredentialOf(first));
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Enroll(&ctx, rekey, &again).ok());
  EXPECT_EQ(again.device_id(), first.device_id());
  EXPECT_TRUE(again.reenrolled());
  parc::v1::CheckInResponse answer;
  EXPECT_EQ(CheckIn(CredentialOf(first), {}, &answer).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Two uses spent (the token allows 2): a third device is refused.
  s = Enroll("5CD9999XYZ", &second);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(store_.device_count(), 1u);
}

TEST_F(AgentServiceTest, ACheckInCarriesTheAssignmentAndItsManifestOnlyWhenItChanged) {
  parc::v1::EnrollResponse enrolled;
  ASSERT_TRUE(Enroll("5CD1234ABC", &enrolled).ok());
  parc::v1::SignedManifest manifest;
  manifest.set_manifest("the bundle's manifest");
  auto a = std::make_shared<server::ActiveAssignment>();
  a->rollout_id = "r1";
  a->manifest_sha256 = std::string(64, 'c');
  a->signed_manifest = manifest.SerializeAsString();
  a->window_start = 17 * 60;
  a->window_end = 7 * 60;
  a->rate_limit = 1 << 20;
  a->relay_urls = {"https://relais.lycee-fermat.fr/artifacts"};
  store_.Assign(kFermat, parc::v1::DEVICE_KIND_LAPTOP, a);

  parc::v1::CheckInResponse answer;
  ASSERT_TRUE(CheckIn(CredentialOf(enrolled), {}, &answer).ok());
  ASSERT_TRUE(answer.has_assignment());
  EXPECT_EQ(answer.assignment().rollout_id(), "r1");
  EXPECT_EQ(answer.assignment().artifact_base_url(), "https://parc.example/artifacts");
  EXPECT_EQ(answer.assignment().window().start_minute(), 17u * 60);
  EXPECT_EQ(answer.assignment().rate_limit_bytes_per_second(), 1u << 20);
  EXPECT_EQ(answer.assignment().bundle().manifest(), "the bundle's manifest");
  ASSERT_EQ(answer.assignment().relay_urls_size(), 1);
  EXPECT_EQ(answer.assignment().relay_urls(0), "https://relais.lycee-fermat.fr/artifacts");
  // The agent holds it: the manifest does not travel again.
  parc::v1::CheckInRequest holding;
  holding.set_assignment_rollout_id("r1");
  holding.set_assignment_manifest_sha256(std::string(64, 'c'));
  ASSERT_TRUE(CheckIn(CredentialOf(enrolled), holding, &answer).ok());
  EXPECT_EQ(answer.assignment().rollout_id(), "r1");
  EXPECT_FALSE(answer.assignment().has_bundle());
  // A tablet of the same lycée is not targeted.
  parc::v1::EnrollRequest tablet = EnrollRequest("TAB0000001");
  tablet.set_detected_kind(parc::v1::DEVICE_KIND_TABLET);
  parc::v1::EnrollResponse tab;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->Enroll(&ctx, tablet, &tab).ok());
  ASSERT_TRUE(CheckIn(CredentialOf(tab), {}, &answer).ok());
  EXPECT_FALSE(answer.has_assignment());
}

TEST_F(AgentServiceTest, ADeploymentReportIsStoredThenItsRolloutEvaluated) {
  parc::v1::EnrollResponse enrolled;
  ASSERT_TRUE(Enroll("5CD1234ABC", &enrolled).ok());
  parc::v1::DeploymentReport report;
  report.set_rollout_id("r1");
  report.set_bundle_name("mcnl");
  report.set_bundle_version("2026.1");
  report.set_state(parc::v1::DEPLOYMENT_STATE_INSTALLED);
  parc::v1::ReportDeploymentResponse out;
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + CredentialOf(enrolled));
    ASSERT_TRUE(stub_->ReportDeployment(&ctx, report, &out).ok());
  }
  EXPECT_EQ(store_.device(enrolled.device_id())->deployments.size(), 1u);
  {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(evaluated_, std::vector<std::string>{"r1"});
  }
  // Not stored: not evaluated, and the agent keeps it in its outbox (UNAVAILABLE).
  store_.FailWrites(FakeStore::StorageError("I/O error"));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + CredentialOf(enrolled));
  EXPECT_EQ(stub_->ReportDeployment(&ctx, report, &out).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(evaluated_.size(), 1u);
  // A malformed report is the agent's fault, whatever the storage.
  auto* fault = report.add_packages()->add_source_faults();
  fault->set_url("https://relais.lycee-fermat.fr/artifacts");
  fault->set_reason("relay looked at me funny");
  grpc::ClientContext bad_fault;
  bad_fault.AddMetadata("authorization", "Bearer " + CredentialOf(enrolled));
  grpc::Status refused = stub_->ReportDeployment(&bad_fault, report, &out);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("source_faults.reason"), std::string::npos)
      << refused.error_message();
  report.set_rollout_id("");
  grpc::ClientContext bad;
  bad.AddMetadata("authorization", "Bearer " + CredentialOf(enrolled));
  EXPECT_EQ(stub_->ReportDeployment(&bad, report, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AgentServiceTest, AKnownListIsTakenAsHeldAndABrokenOrUnknownBadListIsRefused) {
  parc::v1::EnrollResponse a, b;
  ASSERT_TRUE(Enroll("5CD1234ABC", &a).ok());
  ASSERT_TRUE(Enroll("5CD1234ABD", &b).ok());
  parc::v1::SoftwareList list;
  for (const char* name : {"libreoffice", "geogebra-classic", "firefox-esr"}) {
    auto* p = list.add_packages();
    p->set_name(name);
    p->set_version("1.0");
  }
  common::CanonicalizeSoftware(&list);
  auto report_of = [](const std::string& software_bytes, const std::string& software_hash) {
    parc::v1::ReportInventoryRequest report;
    report.set_software_hash(software_hash);
    report.mutable_inventory()->mutable_hardware()->set_model("Latitude 3190");
    report.set_inventory_hash(
        common::InventoryHash(report.inventory().hardware(), report.software_hash()));
    return ReportWithSoftwareBytes(report, software_bytes);
  };
  const std::string hash = common::SoftwareHash(list);
  ASSERT_TRUE(ReportRaw(CredentialOf(a), report_of(list.SerializeAsString(), hash)).ok());
  ASSERT_TRUE(store_.device(a.device_id()).has_value());
  EXPECT_FALSE(store_.device(a.device_id())->auth.inventory_hash.empty());

  // Bytes that are not a software list: refused, naming the field, whatever the hash.
  const std::string broken("\x0a\xff\xff\xff\x0f", 5);
  for (const std::string& h : {hash, std::string(64, 'c')}) {
    grpc::Status s = ReportRaw(CredentialOf(b), report_of(broken, h));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find("inventory.software"), std::string::npos) << s.error_message();
  }
  // A list the server does not hold, with a name that is not UTF-8: parsed, and refused.
  parc::v1::SoftwareList bad = list;
  std::string bad_bytes = bad.SerializeAsString();
  const size_t at = bad_bytes.find("firefox-esr");
  ASSERT_NE(at, std::string::npos);
  bad_bytes[at] = '\xff';
  grpc::Status s = ReportRaw(CredentialOf(b), report_of(bad_bytes, std::string(64, 'd')));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("inventory.software"), std::string::npos) << s.error_message();
  // Garbage instead of a report: a bad request, counted as such.
  const uint64_t unparseable = metrics_.Unparseable();
  EXPECT_EQ(ReportRaw(CredentialOf(b), broken).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(metrics_.Unparseable(), unparseable + 1);
  // Nothing of the refused reports was stored; the same list from a clone is taken as held.
  EXPECT_TRUE(store_.device(b.device_id())->auth.inventory_hash.empty());
  ASSERT_TRUE(ReportRaw(CredentialOf(b), report_of(list.SerializeAsString(), hash)).ok());
  EXPECT_FALSE(store_.device(b.device_id())->auth.inventory_hash.empty());
}

}  // namespace
}  // namespace parc::testing
