// AgentService over gRPC-Web on the HTTPS port: the frame codec, calls framed by hand (every
// malformed shape a proxy or a bug can produce), and an independent client (Connect's Node
// gRPC-Web transport) against a real parc-server over TLS on loopback.
#include "server/grpc_web.h"

#include <google/protobuf/descriptor.pb.h>
#include <httplib.h>

#include <cstdio>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/grpc_web_codec.h"
#include "common/inventory_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace parc::testing {
namespace {

constexpr char kFermat[] = "0310036W";

// ---------------------------------------------------------------------------------------------
// The codec.

TEST(GrpcWebCodec, DecodesOneDataFrameAndNamesWhatIsWrongWithOthers) {
  const std::string message =
      "\x0a\x03"
      "abc";
  const std::string frame = server::GrpcWebFrame(0, message);
  auto ok = server::DecodeGrpcWebRequest(frame, 1024);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, message);
  EXPECT_TRUE(server::DecodeGrpcWebRequest(server::GrpcWebFrame(0, ""), 1024).ok());

  auto shorter = server::DecodeGrpcWebRequest(std::string(2, '\0'), 1024);
  EXPECT_TRUE(absl::IsInvalidArgument(shorter.status()));
  EXPECT_TRUE(absl::StrContains(shorter.status().message(), "2 bytes")) << shorter.status();

  std::string truncated = server::GrpcWebFrame(0, message);
  truncated.pop_back();
  auto t = server::DecodeGrpcWebRequest(truncated, 1024);
  EXPECT_TRUE(absl::IsInvalidArgument(t.status()));
  EXPECT_TRUE(absl::StrContains(t.status().message(), "declares 5 bytes but the body holds 4"))
      << t.status();

  auto two = server::DecodeGrpcWebRequest(
      server::GrpcWebFrame(0, message) + server::GrpcWebFrame(0, message), 1024);
  EXPECT_TRUE(absl::IsInvalidArgument(two.status()));

  EXPECT_TRUE(absl::IsUnimplemented(
      server::DecodeGrpcWebRequest(server::GrpcWebFrame(1, message), 1024).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      server::DecodeGrpcWebRequest(server::GrpcWebFrame(0x80, message), 1024).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      server::DecodeGrpcWebRequest(server::GrpcWebFrame(0x40, message), 1024).status()));
  EXPECT_TRUE(absl::IsResourceExhausted(
      server::DecodeGrpcWebRequest(server::GrpcWebFrame(0, std::string(2000, 'x')), 1024)
          .status()));
}

TEST(GrpcWebCodec, ResponsesEndWithATrailerFrame) {
  const std::string ok = server::EncodeGrpcWebResponse("hello", absl::OkStatus());
  EXPECT_EQ(ok, server::GrpcWebFrame(0, "hello") + server::GrpcWebFrame(0x80, "grpc-status:0\r\n"));
  const std::string failed = server::EncodeGrpcWebResponse(
      "ignored", absl::UnauthenticatedError("unknown device: enroll again\r\n100% é"));
  EXPECT_EQ(failed, server::GrpcWebFrame(0x80,
                                         "grpc-status:16\r\ngrpc-message:unknown device: enroll "
                                         "again%0D%0A100%25 %C3%A9\r\n"));
}

// ---------------------------------------------------------------------------------------------
// Against a running server.

struct WebReply {
  int http_status = 0;
  int grpc_status = -1;
  std::string grpc_message;
  std::string message;  // the response's data frame
  std::map<std::string, std::string> trailers;
};

WebReply Parse(const httplib::Result& r) {
  WebReply reply;
  if (!r) return reply;
  reply.http_status = r->status;
  auto parsed = common::ParseGrpcWebResponse(r->body);
  if (parsed.ok()) {
    reply.message = parsed->message;
    reply.trailers = parsed->trailers;
  }
  if (r->has_header("grpc-status"))
    reply.trailers["grpc-status"] = r->get_header_value("grpc-status");
  if (r->has_header("grpc-message")) {
    reply.trailers["grpc-message"] = r->get_header_value("grpc-message");
  }
  if (reply.trailers.count("grpc-status") > 0) {
    (void)absl::SimpleAtoi(reply.trailers["grpc-status"], &reply.grpc_status);
  }
  reply.grpc_message = common::PercentDecodeGrpcMessage(reply.trailers["grpc-message"]);
  return reply;
}

class GrpcWebTest : public ::testing::Test {
 protected:
  GrpcWebTest()
      : server_(dir_.Sub("server"), 0,
                [](server::ServerOptions& o) { o.http_limits.max_rpc_bytes = 64 << 10; }) {
    server_.ImportFixtureEstablishments();
  }

  std::unique_ptr<httplib::SSLClient> Client() {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", server_.server()->artifact_port());
    c->set_ca_cert_path(server_.ca_path().c_str());
    c->enable_server_certificate_verification(true);
    return c;
  }

  WebReply Call(const std::string& method, const std::string& body, const std::string& bearer = "",
                const std::string& content_type = "application/grpc-web+proto") {
    auto c = Client();
    httplib::Headers headers = {{"X-Grpc-Web", "1"}};
    if (!bearer.empty()) headers.emplace("authorization", "Bearer " + bearer);
    return Parse(c->Post(absl::StrCat("/parc.v1.AgentService/", method), headers, body,
                         content_type.c_str()));
  }
  template <typename Message>
  WebReply CallWith(const std::string& method, const Message& m, const std::string& bearer = "") {
    return Call(method, server::GrpcWebFrame(0, m.SerializeAsString()), bearer);
  }

  // Enrolls a Windows-like device through gRPC-Web; returns its credential.
  std::string Enroll(const std::string& serial) {
    parc::v1::EnrollRequest e;
    e.set_token(server_.CreateToken(kFermat));
    e.mutable_identity()->set_product_uuid("7d4f1c2a-3b5e-4f60-8a91-0c2d3e4f5a6b");
    e.mutable_identity()->set_serial(serial);
    e.mutable_identity()->set_machine_id("c0ffee00c0ffee00c0ffee00c0ffee00");
    e.set_hostname("win-classe-01");
    e.set_detected_kind(parc::v1::DEVICE_KIND_DESKTOP);
    e.set_agent_version("0.1.0");
    WebReply r = CallWith("Enroll", e);
    EXPECT_EQ(r.grpc_status, 0) << r.grpc_message;
    parc::v1::EnrollResponse response;
    EXPECT_TRUE(response.ParseFromString(r.message));
    return absl::StrCat(response.device_id(), ".", response.device_secret());
  }

  TempDir dir_;
  TestServer server_;
};

TEST_F(GrpcWebTest, ADeviceEnrollsChecksInAndReportsItsInventoryOverGrpcWeb) {
  const std::string credential = Enroll("WIN10EDU0001");
  ASSERT_EQ(server_.ListDevices().size(), 1u);

  parc::v1::CheckInRequest checkin;
  checkin.set_agent_version("0.1.0");
  checkin.set_inventory_hash(std::string(64, 'a'));  // one the server does not hold
  WebReply r = CallWith("CheckIn", checkin, credential);
  ASSERT_EQ(r.http_status, 200);
  ASSERT_EQ(r.grpc_status, 0) << r.grpc_message;
  parc::v1::CheckInResponse answer;
  ASSERT_TRUE(answer.ParseFromString(r.message));
  EXPECT_TRUE(answer.send_inventory());
  EXPECT_EQ(answer.uai(), kFermat);
  EXPECT_GT(answer.next_checkin_seconds(), 0u);

  parc::v1::ReportInventoryRequest report;
  auto* hw = report.mutable_inventory()->mutable_hardware();
  hw->set_manufacturer("Dell Inc.");
  hw->set_model("OptiPlex 7010");
  hw->set_hostname("win-classe-01");
  auto* sw = report.mutable_inventory()->mutable_software()->add_packages();
  sw->set_name("GeoGebra Classic");
  sw->set_version("6.0.800");
  report.set_software_hash(common::SoftwareHash(report.inventory().software()));
  report.set_inventory_hash(common::InventoryHash(*hw, report.software_hash()));
  r = CallWith("ReportInventory", report, credential);
  ASSERT_EQ(r.grpc_status, 0) << r.grpc_message;
  auto devices = server_.ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].model(), "OptiPlex 7010");

  // Counted with the gRPC calls, under the same names.
  auto* metrics = server_.server()->metrics();
  EXPECT_EQ(metrics->RpcCount("Enroll", grpc::OK), 1u);
  EXPECT_EQ(metrics->RpcCount("CheckIn", grpc::OK), 1u);
  EXPECT_EQ(metrics->RpcCount("ReportInventory", grpc::OK), 1u);
}

TEST_F(GrpcWebTest, MalformedCallsGetAClearStatusAndChangeNothing) {
  const std::string credential = Enroll("WIN10EDU0002");
  parc::v1::CheckInRequest checkin;

  WebReply r = Call("CheckIn", std::string(3, '\0'), credential);
  EXPECT_EQ(r.grpc_status, 3);
  EXPECT_TRUE(absl::StrContains(r.grpc_message, "one data frame")) << r.grpc_message;

  r = Call("CheckIn", server::GrpcWebFrame(0, "\xff\xff\xff garbage"), credential);
  EXPECT_EQ(r.grpc_status, 3);
  EXPECT_EQ(r.grpc_message, "the request is not a valid CheckIn message");

  r = Call("CheckIn", server::GrpcWebFrame(1, checkin.SerializeAsString()), credential);
  EXPECT_EQ(r.grpc_status, 12);
  EXPECT_TRUE(absl::StrContains(r.grpc_message, "compressed")) << r.grpc_message;

  r = Call("Reboot", server::GrpcWebFrame(0, ""), credential);
  EXPECT_EQ(r.grpc_status, 12);
  EXPECT_EQ(r.grpc_message, "unknown method parc.v1.AgentService/Reboot");

  r = Call("CheckIn", server::GrpcWebFrame(0, ""), credential, "application/grpc-web-text");
  EXPECT_EQ(r.http_status, 415);
  EXPECT_EQ(r.grpc_status, 3);

  r = CallWith("CheckIn", checkin, "");
  EXPECT_EQ(r.grpc_status, 16);
  EXPECT_TRUE(absl::StrContains(r.grpc_message, "missing device credential")) << r.grpc_message;
  r = CallWith("CheckIn", checkin, credential + "x");
  EXPECT_EQ(r.grpc_status, 16);

  // Over the limit (64 KiB here): read to its end and dropped, answered cleanly.
  parc::v1::ReportInventoryRequest big;
  big.mutable_inventory()->mutable_hardware()->set_model(std::string(100 << 10, 'x'));
  r = CallWith("ReportInventory", big, credential);
  EXPECT_EQ(r.grpc_status, 8);
  EXPECT_TRUE(absl::StrContains(r.grpc_message, "over the limit")) << r.grpc_message;

  // Nothing was stored, and the port still serves.
  EXPECT_EQ(server_.ListDevices().size(), 1u);
  EXPECT_EQ(server_.ListDevices()[0].model(), "");
  r = CallWith("CheckIn", checkin, credential);
  EXPECT_EQ(r.grpc_status, 0) << r.grpc_message;
  EXPECT_GE(server_.server()->metrics()->Unparseable(), 3u);
}

// Parc's own Linux agent, told the HTTPS port's URL instead of the gRPC port: it enrolls,
// inventories and checks in over gRPC-Web (libcurl, HTTP/1.1), as behind a proxy that passes
// only HTTP/1.1. The HTTPS port speaks no gRPC, so success means gRPC-Web was used.
TEST_F(GrpcWebTest, TheLinuxAgentWorksOverGrpcWebToo) {
  const std::string config = dir_.Sub("agent.toml");
  WriteFile(config, "");
  const std::string url = absl::StrCat("https://127.0.0.1:", server_.server()->artifact_port());
  const std::string state = dir_.Sub("state");
  CommandResult enrolled = RunAgent({"enroll", "--root", DataPath("laptop"), "--state-dir", state,
                                     "--server", url, "--token", server_.CreateToken(kFermat),
                                     "--ca", server_.ca_path(), "--config", config});
  ASSERT_EQ(enrolled.status, 0) << enrolled.err;
  EXPECT_TRUE(absl::StrContains(enrolled.out, "in 0310036W")) << enrolled.out;
  CommandResult run = RunAgent(
      {"run", "--once", "--root", DataPath("laptop"), "--state-dir", state, "--config", config});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "0 report(s) still queued")) << run.out;
  auto devices = server_.ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].model(), "HP ProBook x360 11 G7 Education Edition");
  EXPECT_EQ(devices[0].software_packages(), 8u);
  auto* metrics = server_.server()->metrics();
  EXPECT_EQ(metrics->RpcCount("CheckIn", grpc::OK), 1u);
  EXPECT_EQ(metrics->RpcCount("ReportInventory", grpc::OK), 1u);
}

// Through a real HTTP proxy (tinyproxy from Debian), as in a school whose proxy passes only
// HTTP/1.1: the agent's gRPC-Web transport tunnels through it (CONNECT), as https_proxy says.
TEST_F(GrpcWebTest, TheAgentReachesTheServerThroughTheSchoolsHttpProxy) {
  if (std::system("command -v tinyproxy >/dev/null") != 0) {
    GTEST_SKIP() << "needs tinyproxy (tools/deps.sh --test installs it)";
  }
  const int proxy_port = FreePort();
  const std::string conf = dir_.Sub("tinyproxy.conf");
  WriteFile(conf, absl::StrCat("Port ", proxy_port, "\nListen 127.0.0.1\nTimeout 30\n",
                               "Allow 127.0.0.1\nLogLevel Info\n",
                               ::geteuid() == 0 ? "User nobody\nGroup nogroup\n" : ""));
  const std::string proxy_log = dir_.Sub("tinyproxy.log");
  ChildProcess proxy;
  proxy.Start({"tinyproxy", "-d", "-c", conf}, proxy_log);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  bool listening = false;
  while (!listening && absl::Now() < deadline) {
    httplib::Client probe("127.0.0.1", proxy_port);
    listening = static_cast<bool>(probe.Get("/"));
    if (!listening) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(listening) << ReadFileOrDie(proxy_log);

  // The agent reads the proxy from its environment, like the service's.
  ::setenv("https_proxy", absl::StrCat("http://127.0.0.1:", proxy_port).c_str(), 1);
  ::setenv("no_proxy", "", 1);
  ::unsetenv("NO_PROXY");
  const std::string config = dir_.Sub("agent.toml");
  WriteFile(config, "");
  const std::string url = absl::StrCat("https://127.0.0.1:", server_.server()->artifact_port());
  const std::string state = dir_.Sub("state");
  CommandResult enrolled = RunAgent({"enroll", "--root", DataPath("tablet"), "--state-dir", state,
                                     "--server", url, "--token", server_.CreateToken(kFermat),
                                     "--ca", server_.ca_path(), "--config", config});
  CommandResult run = RunAgent(
      {"run", "--once", "--root", DataPath("tablet"), "--state-dir", state, "--config", config});
  // Without the proxy, nothing gets through.
  proxy.Kill();
  CommandResult cut = RunAgent(
      {"run", "--once", "--root", DataPath("tablet"), "--state-dir", state, "--config", config});
  ::unsetenv("https_proxy");
  ::unsetenv("no_proxy");
  ASSERT_EQ(enrolled.status, 0) << enrolled.err;
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(server_.ListDevices().size(), 1u);
  const std::string log = ReadFileOrDie(proxy_log);
  EXPECT_TRUE(
      absl::StrContains(log, absl::StrCat("CONNECT 127.0.0.1:", server_.server()->artifact_port())))
      << log;
  EXPECT_EQ(cut.status, 1);
  // It tried the proxy, not the server directly.
  EXPECT_TRUE(absl::StrContains(cut.err, absl::StrCat("port ", proxy_port))) << cut.err;
}

// The descriptors of AgentService and of every file it imports.
std::string AgentServiceDescriptors() {
  google::protobuf::FileDescriptorSet set;
  std::set<std::string> seen;
  std::function<void(const google::protobuf::FileDescriptor*)> add =
      [&](const google::protobuf::FileDescriptor* f) {
        if (!seen.insert(f->name()).second) return;
        for (int i = 0; i < f->dependency_count(); ++i) add(f->dependency(i));
        f->CopyTo(set.add_file());
      };
  add(parc::v1::EnrollRequest::descriptor()->file());  // agent.proto, which holds AgentService
  return set.SerializeAsString();
}

TEST_F(GrpcWebTest, AClientParcDidNotWriteEnrollsAndChecksIn) {
  const std::string client_dir = absl::StrCat(PARC_SOURCE_DIR, "/tests/grpc_web_client");
  if (std::system("command -v node >/dev/null") != 0 ||
      !common::PathExists(client_dir + "/node_modules/@connectrpc/connect-node")) {
    GTEST_SKIP() << "needs node and " << client_dir
                 << "/node_modules (tools/test.sh installs them)";
  }
  const std::string descriptors = dir_.Sub("agent.binpb");
  WriteFile(descriptors, AgentServiceDescriptors());
  const std::string out = dir_.Sub("client.out");
  const std::string command = absl::StrCat(
      "node ", client_dir, "/client.mjs https://127.0.0.1:", server_.server()->artifact_port(), " ",
      server_.ca_path(), " ", descriptors, " ", server_.CreateToken(kFermat), " >", out, " 2>&1");
  const int status = std::system(command.c_str());
  const std::string printed = ReadFileOrDie(out);
  ASSERT_EQ(status, 0) << printed;
  EXPECT_TRUE(absl::StrContains(printed, "\"uai\":\"0310036W\"")) << printed;
  EXPECT_TRUE(absl::StrContains(printed, "\"sendInventory\":true")) << printed;
  // Connect's codes are gRPC's: 16 unauthenticated, for a wrong credential and no token.
  EXPECT_TRUE(absl::StrContains(printed, "\"wrongCredential\":{\"code\":16")) << printed;
  EXPECT_TRUE(absl::StrContains(printed, "\"noToken\":{\"code\":16")) << printed;
  auto devices = server_.ListDevices();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].hostname(), "win-classe-01");
  EXPECT_EQ(server_.server()->metrics()->RpcCount("CheckIn", grpc::OK), 1u);
  EXPECT_EQ(server_.server()->metrics()->RpcCount("CheckIn", grpc::UNAUTHENTICATED), 1u);
}

}  // namespace
}  // namespace parc::testing
