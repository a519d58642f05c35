// The WinHTTP artifact fetcher against a real parc-server's HTTPS port, as a Windows program.
// agent_wine_test.sh runs it with PARC_TEST_ARTIFACT_URL (https://…/artifacts/<sha256>),
// PARC_TEST_ARTIFACT (a copy of the artifact's bytes), PARC_TEST_CA (the server's CA) and
// PARC_TEST_OTHER_CA (another CA); without them the tests are skipped.
#include <cstdlib>
#include <filesystem>

#include "agent/windows/winhttp_fetcher.h"
#include "common/bundle_trust.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace parc::agent {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

class WinHttpFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    request_.url = Env("PARC_TEST_ARTIFACT_URL");
    if (request_.url.empty()) GTEST_SKIP() << "run by tests/windows/agent_wine_test.sh";
    auto content = common::ReadFile(Env("PARC_TEST_ARTIFACT"));
    auto ca = common::ReadFile(Env("PARC_TEST_CA"));
    ASSERT_TRUE(content.ok() && ca.ok());
    content_ = *content;
    ASSERT_GE(content_.size(), 1000u);
    request_.ca_pem = *ca;
    request_.sha256 = common::Sha256Hex(content_);
    request_.size = content_.size();
    request_.connect_timeout = absl::Seconds(10);
    request_.stall_timeout = absl::Seconds(10);
    dir_ = ::testing::TempDir() + "parc-fetch-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(common::RemoveTree(dir_).ok());
    ASSERT_TRUE(common::MakeDirs(dir_).ok());
    part_ = dir_ + "\\artifact.part";
    final_ = dir_ + "\\artifact.msi";
  }
  void TearDown() override { (void)common::RemoveTree(dir_); }

  WinHttpFetcher fetcher_;
  DownloadRequest request_;
  std::string content_, dir_, part_, final_;
};

TEST_F(WinHttpFetcherTest, DownloadsVerifiesAndRenames) {
  auto r = fetcher_.Fetch(request_, part_, final_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->resumed);
  EXPECT_EQ(r->bytes_transferred, content_.size());
  EXPECT_EQ(*common::ReadFile(final_), content_);
  EXPECT_FALSE(common::PathExists(part_));
}

TEST_F(WinHttpFetcherTest, ResumesAPartialDownloadWithRange) {
  const size_t half = content_.size() / 2;
  ASSERT_TRUE(common::WriteFileAtomic(part_, content_.substr(0, half)).ok());
  auto r = fetcher_.Fetch(request_, part_, final_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->resumed);
  EXPECT_EQ(r->bytes_transferred, content_.size() - half);  // only the rest crossed the network
  EXPECT_EQ(*common::ReadFile(final_), content_);
}

TEST_F(WinHttpFetcherTest, APartialFileOfOtherBytesEndsInAHashMismatchAndIsDropped) {
  ASSERT_TRUE(common::WriteFileAtomic(part_, std::string(content_.size() / 2, 'x')).ok());
  auto r = fetcher_.Fetch(request_, part_, final_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(common::TrustReason(r.status()), kReasonArtifactHashMismatch) << r.status();
  EXPECT_FALSE(common::PathExists(part_));
  EXPECT_FALSE(common::PathExists(final_));
  // The next attempt starts over and succeeds.
  r = fetcher_.Fetch(request_, part_, final_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*common::ReadFile(final_), content_);
}

TEST_F(WinHttpFetcherTest, MoreBytesThanTheManifestDeclaresAreRefused) {
  request_.size = content_.size() / 2;
  auto r = fetcher_.Fetch(request_, part_, final_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(common::TrustReason(r.status()), kReasonArtifactSizeMismatch) << r.status();
  EXPECT_FALSE(common::PathExists(part_));
  EXPECT_FALSE(common::PathExists(final_));
}

TEST_F(WinHttpFetcherTest, AServerOutsideThePinnedCaIsRefused) {
  auto other = common::ReadFile(Env("PARC_TEST_OTHER_CA"));
  ASSERT_TRUE(other.ok());
  request_.ca_pem = *other;
  auto r = fetcher_.Fetch(request_, part_, final_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(common::TrustReason(r.status()), kReasonDownloadFailed) << r.status();
  EXPECT_FALSE(common::PathExists(final_));
}

}  // namespace
}  // namespace parc::agent
