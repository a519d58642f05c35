#pragma once

// What the provisioning tests share: a server with an artifact port and publisher keys, devices
// enrolled from the fixture trees, bundles built with parc-bundle and rolled out with parcctl.
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace parc::testing {

inline constexpr char kFermat[] = "0310036W";
inline constexpr char kJoffre[] = "0340001S";

inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Writes a tar.gz holding one file, with the system tar and gzip.
inline std::string MakeArchive(const std::string& dir, const std::string& name,
                               const std::string& file, const std::string& content) {
  std::string src = absl::StrCat(dir, "/src-", name);
  EXPECT_TRUE(common::MakeDirs(src).ok());
  WriteFile(absl::StrCat(src, "/", file), content);
  std::string out = absl::StrCat(dir, "/", name, ".tar.gz");
  // Reproducible: the same content gives the same bytes (hence the same artifact hash).
  std::string cmd = absl::StrCat(
      "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner "
      "-cf - -C '",
      src, "' . | gzip -n > '", out, "'");
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return out;
}

class ProvisioningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(RunBundleTool({"keygen", "--out", dir_.Sub("toulouse")}).status, 0);
    ASSERT_EQ(RunBundleTool({"keygen", "--out", dir_.Sub("montpellier")}).status, 0);
    server_ = std::make_unique<TestServer>(dir_.Sub("server"), 0, [this](server::ServerOptions& o) {
      o.publisher_keys = {dir_.Sub("toulouse.pub")};
      o.artifact_listen = "127.0.0.1:0";
      o.rollout_interval = absl::Milliseconds(200);
    });
    server_->ImportFixtureEstablishments();
    install_root_ = dir_.Sub("installed");
    ASSERT_TRUE(common::MakeDirs(install_root_).ok());
  }

  // Agent configuration pinning the given keys.
  std::string AgentConfig(const std::string& name, std::vector<std::string> keys = {},
                          int threshold = 1) {
    if (keys.empty()) keys = {dir_.Sub("toulouse.pub")};
    std::string list;
    for (const auto& k : keys) absl::StrAppend(&list, list.empty() ? "" : ", ", "\"", k, "\"");
    std::string path = dir_.Sub(name + ".toml");
    WriteFile(path, absl::StrCat("publisher_keys = [", list, "]\nsignature_threshold = ", threshold,
                                 "\n"));
    return path;
  }

  // A device: fixture tree, state dir, config; enrolled into uai.
  struct Device {
    std::string root, state, config;
  };
  Device EnrollDevice(const std::string& fixture, const std::string& name, const std::string& uai) {
    Device d{DataPath(fixture), dir_.Sub(name + "-state"), AgentConfig(name)};
    auto r = RunAgent({"enroll", "--root", d.root, "--state-dir", d.state, "--server",
                       server_->address(), "--token", server_->CreateToken(uai), "--ca",
                       server_->ca_path(), "--config", d.config});
    EXPECT_EQ(r.status, 0) << r.err;
    return d;
  }
  CommandResult RunOnce(const Device& d) {
    return RunAgent(
        {"run", "--once", "--root", d.root, "--state-dir", d.state, "--config", d.config});
  }

  CommandResult Ctl(std::vector<std::string> args) {
    std::string empty = dir_.Sub("parcctl.toml");
    WriteFile(empty, "");
    args.insert(args.end(), {"--server", server_->address(), "--ca", server_->ca_path(), "--token",
                             server_->admin_token(), "--config", empty});
    return RunCtl(args);
  }

  // Builds (and publishes) a bundle from package specs written in TOML.
  std::string BuildBundle(const std::string& version, int sequence, const std::string& packages,
                          const std::string& key = "toulouse",
                          const std::string& expires = "365d") {
    std::string spec = dir_.Sub(absl::StrCat("spec-", version, ".toml"));
    WriteFile(spec, absl::StrCat("name = \"mcnl\"\nversion = \"", version, "\"\nsequence = ",
                                 sequence, "\nexpires = \"", expires, "\"\n", packages));
    std::string out = dir_.Sub(absl::StrCat("bundle-", version));
    auto r = RunBundleTool({"build", spec, "--key", dir_.Sub(key + ".key"), "--out", out});
    EXPECT_EQ(r.status, 0) << r.err;
    return out;
  }
  void Publish(const std::string& bundle_dir) {
    auto r = Ctl({"bundles", "publish", bundle_dir});
    ASSERT_EQ(r.status, 0) << r.err;
  }
  std::string StartRollout(const std::string& version, std::vector<std::string> extra) {
    std::vector<std::string> args = {"rollouts", "create", "--bundle", "mcnl@" + version, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = Ctl(args);
    EXPECT_EQ(r.status, 0) << r.err;
    parc::v1::Rollout rollout;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rollout).ok()) << r.out;
    last_created_establishments_ = rollout.establishments();
    auto started = Ctl({"rollouts", "start", rollout.id()});
    EXPECT_EQ(started.status, 0) << started.err;
    return rollout.id();
  }
  uint32_t last_created_establishments_ = 0;
  parc::v1::RolloutStatus Status(const std::string& id) {
    parc::v1::GetRolloutStatusRequest request;
    request.set_id(id);
    parc::v1::RolloutStatus status;
    grpc::Status s =
        server_->AdminStub()->GetRolloutStatus(server_->AdminContext().get(), request, &status);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return status;
  }
  // Waits for the server's asynchronous rollout evaluation to reach a state.
  parc::v1::RolloutStatus WaitForState(const std::string& id, const std::string& state) {
    parc::v1::RolloutStatus s;
    for (int i = 0; i < 100; ++i) {
      s = Status(id);
      if (s.rollout().state() == state) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return s;
  }
  std::string ArchivePackage(const std::string& id, const std::string& version,
                             const std::string& content) {
    std::string archive =
        MakeArchive(dir_.path(), absl::StrCat(id, "-", version), "app.txt", content);
    return absl::StrCat("[[packages]]\nid = \"", id, "\"\nversion = \"", version,
                        "\"\nartifact = \"", archive, "\"\ntype = \"archive\"\ntarget_dir = \"",
                        install_root_, "/", id, "\"\n");
  }

  TempDir dir_;
  std::unique_ptr<TestServer> server_;
  std::string install_root_;
};

}  // namespace parc::testing
