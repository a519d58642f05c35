#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/core/deployer.h"
#include "agent/core/enrollment.h"
#include "agent/core/platform.h"
#include "agent/core/state.h"
#include "asio.hpp"
#include "common/clock.h"

namespace parc::agent {

// A refusal of a report that resending cannot fix (the report is then dropped): invalid,
// unknown rollout, too large. Busy servers, failing storage and network errors are not.
bool IsFinalRefusal(const absl::Status& status);

struct DaemonOptions {
  // Used to enroll when the device has no identity or was cloned (preseeded config).
  std::optional<EnrollParams> enroll;
  // The master image's machine (AgentConfig::image_fingerprint): not enrolled from here.
  std::string image_fingerprint;
  // Retries after a failure wait uniform(0, min(retry_max, retry_base * 2^attempt)).
  absl::Duration retry_base = absl::Seconds(10);
  absl::Duration retry_max = absl::Hours(1);
  // The first cycle starts after uniform(0, initial_splay), so that a classroom of laptops
  // switched on together does not check in at the same instant.
  absl::Duration initial_splay = absl::Seconds(10);
  // Stop after one cycle (parc-agent run --once). When the platform's service host says a
  // supervisor started this cycle, the delay to the next one goes to it (NextCycleIn) and the
  // retry attempt is kept in the state, so that backoff grows across cycles.
  bool once = false;
  // Bundle installs: the pinned keys and where artifacts are cached. deploy.kind and
  // deploy.ca_pem are filled from the identity at run time.
  DeployerOptions deploy;
  // Called once when the daemon stops (after a signal or the --once cycle), on the loop's
  // thread: lets the owner cancel its own waits so that the io_context runs out of work.
  std::function<void()> on_stop;
};

// Exponential backoff with full jitter: uniform(0, min(max, base * 2^attempt)).
absl::Duration BackoffDelay(absl::Duration base, absl::Duration max, int attempt,
                            std::mt19937_64& rng);

// Seconds to the next check-in as asked by the server, kept within [1 s, 7 days].
absl::Duration ClampCheckInInterval(uint32_t server_seconds);

// The agent daemon. One asio::io_context (the caller's) owns all state; collection and
// network calls run on a one-thread pool and post their results back, so the state needs no
// locks. A cycle: collect → (enroll if needed) → queue the inventory if it changed → check in
// → deliver queued reports in order → deploy the assignment → deliver what the deployment
// queued → wait for the time the server asked for. Every failure ends the cycle and retries
// after a backoff. Everything the cycle asks of the system goes through platform (its host
// may be null: no supervisor, nothing to release between cycles).
class Daemon {
 public:
  Daemon(asio::io_context& io, Platform* platform, AgentState* state, DaemonOptions options,
         const common::Clock* clock);
  ~Daemon();

  // REQUIRES: called on the io_context's thread, or before it runs.
  void Start();
  // Cancels calls in flight and timers; the io_context then runs out of work.
  void Stop();
  // Starts a cycle now (SIGHUP).
  void TriggerNow();

  // Outcome of the most recent cycle, and how many ran.
  const absl::Status& last_status() const { return last_status_; }
  int cycles() const { return cycles_; }

 private:
  struct Snapshot {
    parc::v1::Inventory inventory;
    std::string inventory_hash;
    std::string software_hash;
    parc::v1::HardwareIdentity identity;
    std::string fingerprint;
  };

  // Runs work on a pool thread (the calls pool unless another is given) and then on the loop.
  template <typename Result>
  void Offload(std::function<Result()> work, std::function<void(Result)> then,
               asio::thread_pool* pool = nullptr);

  void ScheduleCycle(absl::Duration delay);
  void BeginCycle();
  void OnSnapshot(std::shared_ptr<Snapshot> snapshot);
  void OnEnrolled(std::shared_ptr<Snapshot> snapshot,
                  absl::StatusOr<parc::v1::EnrollResponse> response);
  void CheckIn(std::shared_ptr<Snapshot> snapshot);
  void OnCheckIn(std::shared_ptr<Snapshot> snapshot,
                 absl::StatusOr<parc::v1::CheckInResponse> response);
  void DeliverNext();
  // After the outbox is delivered: carries out the current assignment on the deploy thread.
  void Deploy();
  void OnDeployed(DeployOutcome outcome);
  void OnDelivered(int64_t seq, bool stripped_software, absl::Status status);
  // Forgets a credential the server rejected; the next cycle enrolls again if it can.
  void OnCredentialRejected(const absl::Status& status);
  void EndCycle(absl::Status status);
  absl::Status EnsureClient(const Identity& identity);
  bool supervised() const;

  asio::io_context& io_;
  asio::thread_pool pool_{1};
  // Downloads and installs: long, so on their own thread, with their own state connection.
  asio::thread_pool deploy_pool_{1};
  std::unique_ptr<AgentState> deploy_state_;
  asio::steady_timer timer_;
  Platform* platform_;
  AgentState* state_;
  DaemonOptions options_;
  const common::Clock* clock_;
  std::mt19937_64 rng_;

  std::unique_ptr<AgentTransport> client_;
  std::string client_server_;
  std::optional<Identity> identity_;
  bool in_cycle_ = false;
  bool stopping_ = false;
  int attempt_ = 0;
  int cycles_ = 0;
  absl::Status last_status_;
  absl::Duration next_interval_ = absl::Hours(1);
  // From the last check-in: whether the server already holds software_hash_.
  bool send_software_ = true;
  std::string software_hash_;
  // Per cycle: whether the deployer ran, and what it said.
  bool deployed_ = false;
  DeployOutcome deploy_outcome_;
  parc::v1::DeviceKind device_kind_ = parc::v1::DEVICE_KIND_UNSPECIFIED;
};

}  // namespace parc::agent
