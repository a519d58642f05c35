#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/core/platform.h"
#include "agent/core/state.h"
#include "common/bundle_trust.h"
#include "common/clock.h"

namespace parc::agent {

struct DeployerOptions {
  // Publisher keys the agent pins, and how many must have signed a bundle.
  std::vector<common::PublicKey> keys;
  int threshold = 1;
  // Downloaded artifacts, by hash (<cache_dir>/<sha256>), kept across bundle versions.
  std::string cache_dir;
  // CA certificate (PEM) for https artifact URLs.
  std::string ca_pem;
  // Plain http:// artifact URLs: only with a plaintext test server on loopback (--insecure).
  bool allow_http = false;
  // For the download window, which is in device-local time.
  absl::TimeZone time_zone = absl::LocalTimeZone();
  // Install attempts of one package version before it stays failed until the next version.
  int max_attempts = 3;
  // Establishment relays are on the school's network: one that does not answer within this
  // long, or stops sending for this long, is passed over for the next source (and for the rest
  // of the run).
  // One that sends, but averages below relay_min_speed bytes/s over relay_stall_timeout, is
  // passed over too (a relay filling its cache from a slow link still sends each slice
  // within seconds: see packaging/relay/parc-relay.conf).
  absl::Duration relay_connect_timeout = absl::Seconds(5);
  absl::Duration relay_stall_timeout = absl::Seconds(20);
  uint64_t relay_min_speed = 32 * 1024;
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
};

struct DeployOutcome {
  // Nothing left to do for now (installed, failed for good, or refused).
  bool settled = true;
  // Downloads wait for the window, which opens after this long.
  bool waiting_for_window = false;
  absl::Duration window_opens_in = absl::ZeroDuration();
  // A download failed for a reason that may pass (network): try again after a backoff.
  bool retry = false;
  // Bytes received from the network by this run.
  uint64_t bytes_downloaded = 0;
};

// Carries out the assignment stored in the agent state: verifies the signed manifest against
// the pinned keys, then for every package meant for this device kind: detect, download (in the
// window, capped, resumable), verify, install, and remove packages the bundle no longer has.
// Each step is recorded in the state before it runs, so that after a crash or kill the next
// run resumes it: a partial download continues, an interrupted install is detected or redone,
// and nothing already installed is installed again. After every change, a cumulative
// DeploymentReport is queued in the outbox. Blocking; runs on the agent's deploy thread with
// its own state connection. The platform's package backend installs, removes and detects; its
// fetcher downloads.
class Deployer {
 public:
  Deployer(AgentState* state, const common::Clock* clock, DeployerOptions options,
           PackageBackend* packages, ArtifactFetcher* fetcher);
  DeployOutcome Run();

 private:
  // Downloads spec's artifact to cached from the assignment's relays, in order, then from the
  // centre (artifact_base_url): a relay that fails (unreachable, stalled, HTTP error, wrong
  // bytes) is noted in r.source_faults and passed over, for this run, for every artifact
  // (passed_over); a partial file is resumed from whichever source comes next (same content
  // address). r.source names the source that succeeded. The centre's error otherwise.
  absl::StatusOr<DownloadResult> FetchFromSources(const parc::v1::Assignment& a,
                                                  const parc::v1::PackageSpec& spec,
                                                  const std::string& cached, PackageRecord& r,
                                                  std::set<std::string>& passed_over);
  // The report to queue for the bundle's current state.
  absl::Status QueueReport(const std::string& rollout_id, const BundleState& bundle,
                           parc::v1::DeploymentState state, const std::string& reason,
                           const std::string& message, const std::vector<PackageRecord>& removed);

  AgentState* state_;
  const common::Clock* clock_;
  DeployerOptions options_;
  PackageBackend* packages_;
  ArtifactFetcher* fetcher_;
};

// Whether a package is meant for a device kind (no kinds listed: every kind).
bool PackageApplies(const parc::v1::PackageSpec& spec, parc::v1::DeviceKind kind);

// True when the file at path has the artifact's size and SHA-256.
bool CachedArtifactIsIntact(const std::string& path, const parc::v1::Artifact& artifact);

}  // namespace parc::agent
