#include "agent/core/daemon.h"
#include "agent/core/sqlite_state.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace parc::agent {
namespace {

using parc::testing::TempDir;

TEST(AgentState, IdentitySurvivesReopen) {
  TempDir dir;
  const std::string state_dir = dir.Sub("state");
  {
    auto state = SqliteAgentState::Open(state_dir);
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_FALSE((*state)->LoadIdentity()->has_value());
    Identity id;
    id.device_id = "d1";
    id.secret = "s";
    id.server = "localhost:1";
    id.ca_pem = "PEM";
    id.fingerprint = "fp";
    id.uai = "0310036W";
    id.kind = parc::v1::DEVICE_KIND_DISPLAY;
    id.enrolled_at = absl::FromUnixSeconds(1790000000);
    ASSERT_TRUE((*state)->SaveIdentity(id).ok());
  }
  auto state = SqliteAgentState::Open(state_dir);
  ASSERT_TRUE(state.ok());
  auto id = (*state)->LoadIdentity();
  ASSERT_TRUE(id.ok() && id->has_value());
  EXPECT_EQ((*id)->device_id, "d1");
  EXPECT_EQ((*id)->kind, parc::v1::DEVICE_KIND_DISPLAY);
  EXPECT_EQ((*id)->enrolled_at, absl::FromUnixSeconds(1790000000));
}

TEST(AgentState, OutboxIsBoundedOrderedAndCountsDrops) {
  TempDir dir;
  OutboxLimits limits;
  limits.max_entries = 3;
  auto state = SqliteAgentState::Open(dir.Sub("state"), limits);
  ASSERT_TRUE(state.ok());
  absl::Time now = absl::FromUnixSeconds(1790000000);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE((*state)->Enqueue("event", absl::StrCat("e", i), now).ok());
  }
  EXPECT_EQ(*(*state)->QueuedCount(), 3);
  EXPECT_EQ(*(*state)->DroppedCount(), 2u);
  auto oldest = (*state)->Oldest();
  ASSERT_TRUE(oldest.ok() && oldest->has_value());
  EXPECT_EQ((*oldest)->payload, "e2");  // the two oldest were dropped
  ASSERT_TRUE((*state)->Remove((*oldest)->seq).ok());
  EXPECT_EQ((**(*state)->Oldest()).payload, "e3");
}

TEST(AgentState, NewInventoryReplacesTheQueuedOne) {
  TempDir dir;
  auto state = SqliteAgentState::Open(dir.Sub("state"));
  absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE((*state)->Enqueue("inventory", "v1", now).ok());
  ASSERT_TRUE((*state)->Enqueue("inventory", "v2", now).ok());
  auto queued = (*state)->QueuedOfKind("inventory");
  ASSERT_EQ(queued->size(), 1u);
  EXPECT_EQ((*queued)[0].payload, "v2");
  EXPECT_EQ(*(*state)->DroppedCount(), 0u);
}

TEST(AgentState, ClearIdentityDropsQueuedReports) {
  TempDir dir;
  auto state = SqliteAgentState::Open(dir.Sub("state"));
  Identity id;
  id.device_id = "d1";
  ASSERT_TRUE((*state)->SaveIdentity(id).ok());
  ASSERT_TRUE((*state)->Enqueue("inventory", "v1", absl::Now()).ok());
  ASSERT_TRUE((*state)->ClearIdentity().ok());
  EXPECT_FALSE((*state)->LoadIdentity()->has_value());
  EXPECT_EQ(*(*state)->QueuedCount(), 0);
}

TEST(Backoff, FullJitterGrowsThenCaps) {
  std::mt19937_64 rng(42);
  const absl::Duration base = absl::Seconds(10), max = absl::Minutes(10);
  for (int attempt = 0; attempt < 12; ++attempt) {
    absl::Duration cap = std::min(base * (1 << attempt), max);
    absl::Duration longest = absl::ZeroDuration();
    for (int i = 0; i < 200; ++i) {
      absl::Duration d = BackoffDelay(base, max, attempt, rng);
      EXPECT_GE(d, absl::ZeroDuration());
      EXPECT_LE(d, cap);
      longest = std::max(longest, d);
    }
    // Full jitter spreads over the whole range.
    EXPECT_GT(longest, cap / 2) << attempt;
  }
  EXPECT_EQ(ClampCheckInInterval(0), absl::Seconds(1));
  EXPECT_EQ(ClampCheckInInterval(3600), absl::Hours(1));
  EXPECT_EQ(ClampCheckInInterval(100000000), absl::Hours(24 * 7));
}

}  // namespace
}  // namespace parc::agent
