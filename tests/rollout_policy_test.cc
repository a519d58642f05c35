#include "server/rollout_policy.h"

#include <gtest/gtest.h>

namespace parc::server {
namespace {

RolloutRecord Running(uint32_t waves, uint32_t current) {
  RolloutRecord r;
  r.id = "r1";
  r.state = "running";
  r.wave_count = waves;
  r.current_wave = current;
  r.success_percent = 90;
  return r;
}

EstablishmentCounts Counts(uint32_t wave, const std::string& uai, uint32_t targeted,
                           uint32_t installed, uint32_t failed = 0) {
  EstablishmentCounts c;
  c.wave = wave;
  c.uai = uai;
  c.targeted = targeted;
  c.installed = installed;
  c.failed = failed;
  return c;
}

TEST(RolloutPolicy, OperatorActionsFollowTheStateMachine) {
  RolloutRecord r = Running(1, 0);
  r.state = "draft";
  EXPECT_EQ(*NextRolloutState(r, "start"), "running");
  EXPECT_EQ(*NextRolloutState(r, "cancel"), "cancelled");
  auto refused = NextRolloutState(r, "pause");
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status()));
  EXPECT_EQ(refused.status().message(), "cannot pause rollout r1: it is draft");
  r.state = "running";
  EXPECT_EQ(*NextRolloutState(r, "pause"), "paused");
  EXPECT_FALSE(NextRolloutState(r, "resume").ok());
  r.state = "paused";
  EXPECT_EQ(*NextRolloutState(r, "resume"), "running");
  r.state = "completed";
  for (const char* action : {"start", "pause", "resume", "cancel"}) {
    EXPECT_FALSE(NextRolloutState(r, action).ok()) << action;
  }
}

TEST(RolloutPolicy, AWaveStartsOnceTheCurrentOneReachedItsSuccessRatio) {
  RolloutRecord r = Running(3, 0);
  // Wave 0: 89 of 100 installed (two establishments): below 90 %.
  std::vector<EstablishmentCounts> counts = {Counts(0, "A", 60, 60), Counts(0, "B", 40, 29),
                                             Counts(1, "C", 10, 0), Counts(2, "D", 10, 0)};
  EXPECT_FALSE(DecideRollout(r, counts).changed);
  counts[1].installed = 30;  // 90 of 100
  RolloutDecision d = DecideRollout(r, counts);
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(d.state, "running");
  EXPECT_EQ(d.current_wave, 1u);
  // Waves already past their ratio are passed over at once, up to the last one.
  counts[2].installed = 10;
  d = DecideRollout(r, counts);
  EXPECT_EQ(d.current_wave, 2u);
  EXPECT_EQ(d.state, "running");
  // Completed once the last wave is started and every device installed.
  counts[1].installed = 40;
  counts[3].installed = 10;
  d = DecideRollout(Running(3, 2), counts);
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(d.state, "completed");
  EXPECT_EQ(d.reason, "every targeted device (120) installed");
}

TEST(RolloutPolicy, FailuresOfTheStartedWavesPauseItWithTheMostCommonError) {
  RolloutRecord r = Running(2, 0);
  r.max_failures_percent = 5;
  std::vector<EstablishmentCounts> counts = {Counts(0, "A", 100, 50, 5), Counts(1, "B", 100, 0)};
  EXPECT_FALSE(DecideRollout(r, counts).changed);  // 5 % is the limit, not over it
  counts[0].failed = 6;
  counts[0].errors = {{"download_failed", 2, "dev-1"}, {"disk_full", 4, "dev-2"}};
  // Failures of waves not started yet do not count.
  counts[1].failed = 100;
  RolloutDecision d = DecideRollout(r, counts);
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(d.state, "paused");
  EXPECT_EQ(d.current_wave, 0u);
  EXPECT_EQ(d.reason,
            "paused automatically: 6 of 100 devices of the started waves failed, over the limit "
            "of 5%; most common error: disk_full (4 devices), e.g. dev-2");
  // A count limit is reached at the count itself.
  r.max_failures_percent = 0;
  r.max_failures_count = 6;
  EXPECT_EQ(DecideRollout(r, counts).state, "paused");
  r.max_failures_count = 7;
  EXPECT_FALSE(DecideRollout(r, counts).changed);
}

}  // namespace
}  // namespace parc::server
