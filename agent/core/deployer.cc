#include "agent/core/deployer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/units.h"

namespace parc::agent {

bool CachedArtifactIsIntact(const std::string& path, const parc::v1::Artifact& artifact) {
  std::ifstream in(std::filesystem::u8path(path), std::ios::binary);
  if (!in) return false;
  common::Sha256 hash;
  uint64_t size = 0;
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    size += n;
    if (size > artifact.size()) return false;
    hash.Update(absl::string_view(buf.data(), n));
  }
  if (in.bad()) return false;
  return size == artifact.size() && hash.FinishHex() == artifact.sha256();
}

namespace {

// The artifact's name in the cache: its hash, and the extension of its source file (Windows
// runs a ".cmd" or an ".exe" by its extension); only a plain extension is kept.
std::string CachedArtifactName(const parc::v1::Artifact& artifact) {
  const std::string& name = artifact.filename();
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || name.size() - dot - 1 < 1 || name.size() - dot - 1 > 8) {
    return artifact.sha256();
  }
  for (size_t i = dot + 1; i < name.size(); ++i) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(name[i]))) return artifact.sha256();
  }
  return absl::StrCat(artifact.sha256(), absl::AsciiStrToLower(name.substr(dot)));
}

using parc::v1::PackageState;

bool Terminal(const PackageRecord& p, int max_attempts) {
  return p.state == parc::v1::PACKAGE_STATE_INSTALLED ||
         (p.state == parc::v1::PACKAGE_STATE_FAILED && p.attempts >= max_attempts);
}

uint32_t MinuteOfDay(absl::Time now, absl::TimeZone tz) {
  absl::CivilMinute m = absl::ToCivilMinute(now, tz);
  return static_cast<uint32_t>(m.hour() * 60 + m.minute());
}

}  // namespace

bool PackageApplies(const parc::v1::PackageSpec& spec, parc::v1::DeviceKind kind) {
  if (spec.kinds().empty()) return true;
  for (int k : spec.kinds()) {
    if (k == kind) return true;
  }
  return false;
}

Deployer::Deployer(AgentState* state, const common::Clock* clock, DeployerOptions options,
                   PackageBackend* packages, ArtifactFetcher* fetcher)
    : state_(state),
      clock_(clock),
      options_(std::move(options)),
      packages_(packages),
      fetcher_(fetcher) {}

namespace {

// Counts one failure of a source for a package version (one entry per source and reason).
void NoteSourceFault(PackageRecord& r, const std::string& url, const std::string& reason) {
  for (auto& f : r.source_faults) {
    if (f.url() == url && f.reason() == reason) {
      if (f.count() < 1000000) f.set_count(f.count() + 1);
      return;
    }
  }
  if (r.source_faults.size() >= 16) return;
  parc::v1::SourceFault f;
  f.set_url(url);
  f.set_reason(reason);
  f.set_count(1);
  r.source_faults.push_back(std::move(f));
}

}  // namespace

absl::StatusOr<DownloadResult> Deployer::FetchFromSources(const parc::v1::Assignment& a,
                                                          const parc::v1::PackageSpec& spec,
                                                          const std::string& cached,
                                                          PackageRecord& r,
                                                          std::set<std::string>& passed_over) {
  DownloadRequest d;
  d.ca_pem = options_.ca_pem;
  d.sha256 = spec.artifact().sha256();
  d.size = spec.artifact().size();
  d.rate_limit = a.rate_limit_bytes_per_second();
  for (const auto& relay : a.relay_urls()) {
    if (passed_over.count(relay) > 0) continue;
    if (!absl::StartsWith(relay, "https://") && !options_.allow_http) {
      passed_over.insert(relay);
      spdlog::warn("relay {} is not https://: not used", relay.substr(0, 200));
      continue;
    }
    DownloadRequest from_relay = d;
    from_relay.url = absl::StrCat(relay, "/", spec.artifact().sha256());
    from_relay.connect_timeout = options_.relay_connect_timeout;
    from_relay.stall_timeout = options_.relay_stall_timeout;
    // Under the rollout's bandwidth cap the agent itself slows the transfer down.
    from_relay.min_speed =
        d.rate_limit > 0
            ? std::max<uint64_t>(1, std::min(options_.relay_min_speed, d.rate_limit / 2))
            : options_.relay_min_speed;
    auto got = fetcher_->Fetch(from_relay, cached + ".part", cached);
    if (got.ok()) {
      r.source = relay;
      return got;
    }
    // Relays are untrusted and optional: whatever went wrong, the next source is tried, and a
    // relay that served wrong bytes has had its partial file deleted by the fetcher.
    const std::string reason = common::TrustReason(got.status());
    spdlog::warn("relay {}: {} ({}): trying the next source", relay, reason,
                 got.status().message());
    const bool wrong_bytes =
        reason == kReasonArtifactHashMismatch || reason == kReasonArtifactSizeMismatch;
    NoteSourceFault(r, relay, wrong_bytes ? reason : std::string(kReasonDownloadFailed));
    (void)state_->SavePackage(r);
    passed_over.insert(relay);
  }
  d.url = absl::StrCat(a.artifact_base_url(), "/", spec.artifact().sha256());
  auto got = fetcher_->Fetch(d, cached + ".part", cached);
  if (got.ok()) r.source = a.artifact_base_url();
  return got;
}

absl::Status Deployer::QueueReport(const std::string& rollout_id, const BundleState& bundle,
                                   parc::v1::DeploymentState state, const std::string& reason,
                                   const std::string& message,
                                   const std::vector<PackageRecord>& removed) {
  parc::v1::DeploymentReport report;
  report.set_rollout_id(rollout_id);
  report.set_bundle_name(bundle.name);
  report.set_bundle_version(bundle.version);
  report.set_state(state);
  report.set_reason(reason);
  report.set_message(message);
  report.set_reported_at(absl::ToUnixSeconds(clock_->Now()));
  auto packages = state_->LoadPackages(bundle.name);
  if (!packages.ok()) return packages.status();
  for (const auto& p : *packages) {
    auto* r = report.add_packages();
    r->set_package_id(p.package_id);
    r->set_version(p.version);
    r->set_state(p.state);
    r->set_reason(p.reason);
    r->set_exit_status(p.exit_status);
    r->set_output_tail(p.output_tail);
    r->set_message(p.message);
    r->set_bytes_downloaded(p.bytes_downloaded);
    r->set_source(p.source);
    for (const auto& f : p.source_faults) *r->add_source_faults() = f;
  }
  for (const auto& p : removed) {
    auto* r = report.add_packages();
    r->set_package_id(p.package_id);
    r->set_version(p.version);
    r->set_state(parc::v1::PACKAGE_STATE_REMOVED);
  }
  return state_->Enqueue("deployment", report.SerializeAsString(), clock_->Now());
}

DeployOutcome Deployer::Run() {
  DeployOutcome out;
  auto assignment = state_->LoadAssignment();
  if (!assignment.ok() || !assignment->has_value()) return out;
  const parc::v1::Assignment& a = **assignment;
  const std::string manifest_sha = common::Sha256Hex(a.bundle().SerializeAsString());

  // 1. Trust: the pinned keys, the threshold, expiry, and no rollback.
  parc::v1::BundleManifest peek;
  (void)peek.ParseFromString(a.bundle().manifest());
  auto current = state_->LoadBundle(peek.name());
  if (!current.ok()) return out;
  common::TrustPolicy policy;
  policy.keys = options_.keys;
  policy.threshold = options_.threshold;
  policy.now = clock_->Now();
  if (current->has_value()) policy.min_sequence = (*current)->sequence;
  auto manifest = common::VerifyManifest(a.bundle(), policy);
  if (!manifest.ok()) {
    // Reported once per manifest: the next check-in brings the same one back.
    auto refused = state_->Get("refused_manifest");
    if (refused.ok() && *refused == manifest_sha) return out;
    spdlog::error("refusing bundle from rollout {}: {}", a.rollout_id(),
                  manifest.status().ToString());
    BundleState shown;
    shown.name = peek.name();
    shown.version = peek.version();
    parc::v1::DeploymentReport report;
    report.set_rollout_id(a.rollout_id());
    report.set_bundle_name(peek.name());
    report.set_bundle_version(peek.version());
    report.set_state(parc::v1::DEPLOYMENT_STATE_REFUSED);
    report.set_reason(common::TrustReason(manifest.status()));
    report.set_message(std::string(manifest.status().message()));
    report.set_reported_at(absl::ToUnixSeconds(clock_->Now()));
    (void)state_->Enqueue("deployment", report.SerializeAsString(), clock_->Now());
    (void)state_->Set("refused_manifest", manifest_sha);
    // Shown by `parc-agent status` and `parc-agent bundles` until a bundle is accepted.
    (void)state_->Set(
        "refused_bundle",
        absl::StrCat(peek.name(), "@", peek.version(), " (rollout ", a.rollout_id(), ", ",
                     absl::FormatTime("%Y-%m-%d %H:%M UTC", clock_->Now(), absl::UTCTimeZone()),
                     "): ", report.reason(), ": ", report.message()));
    return out;
  }
  (void)state_->Set("refused_bundle", "");

  // 2. The bundle this device now follows.
  BundleState bundle;
  std::optional<BundleState> previous;
  if (current->has_value()) previous = **current;
  bundle.name = manifest->name();
  bundle.version = manifest->version();
  bundle.sequence = manifest->sequence();
  bundle.rollout_id = a.rollout_id();
  bundle.manifest = *manifest;
  bundle.state = previous.has_value() && previous->version == bundle.version
                     ? previous->state
                     : std::string("installing");
  if (!state_->SaveBundle(bundle).ok()) return out;

  auto records = state_->LoadPackages(bundle.name);
  if (!records.ok()) return out;
  std::map<std::string, PackageRecord> by_id;
  for (auto& r : *records) by_id[r.package_id] = std::move(r);

  {
    // Holds what this device installs: readable by the agent only.
    std::error_code ec;
    const auto dir = std::filesystem::u8path(options_.cache_dir);
    std::filesystem::create_directories(dir, ec);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  }
  const bool window_open = common::InDailyWindow(a.window().start_minute(), a.window().end_minute(),
                                                 MinuteOfDay(clock_->Now(), options_.time_zone));
  bool changed = false;
  auto save = [&](PackageRecord& r, PackageState s) {
    r.state = s;
    changed = true;
    (void)state_->SavePackage(r);
    (void)QueueReport(a.rollout_id(), bundle, parc::v1::DEPLOYMENT_STATE_IN_PROGRESS, "", "", {});
  };

  std::set<std::string> wanted;
  // Relays that failed during this run: not asked again for the next artifacts.
  std::set<std::string> passed_over;
  for (const auto& spec : manifest->packages()) {
    if (!PackageApplies(spec, options_.kind) || !packages_->Handles(spec)) continue;
    wanted.insert(spec.id());
    PackageRecord& r = by_id[spec.id()];
    if (r.package_id.empty() || r.version != spec.version()) {
      // New package, or a new version of it: start over.
      PackageRecord fresh;
      fresh.bundle_name = bundle.name;
      fresh.package_id = spec.id();
      fresh.version = spec.version();
      fresh.spec = spec;
      r = fresh;
      save(r, parc::v1::PACKAGE_STATE_QUEUED);
    }
    r.spec = spec;
    if (Terminal(r, options_.max_attempts)) continue;

    // Already there (installed by hand, by an earlier image, or by an install that completed
    // before a crash could record it)?
    if (r.state != parc::v1::PACKAGE_STATE_FAILED) {
      std::optional<bool> present = packages_->Detect(spec);
      if (present.value_or(false)) {
        r.reason = r.state == parc::v1::PACKAGE_STATE_QUEUED ? "already_installed" : "";
        save(r, parc::v1::PACKAGE_STATE_INSTALLED);
        continue;
      }
    }

    const std::string cached =
        absl::StrCat(options_.cache_dir, "/", CachedArtifactName(spec.artifact()));
    // A file already in the cache is checked again before it is installed: the cache is
    // only a directory, and what sits there may have changed since it was downloaded.
    const auto cached_path = std::filesystem::u8path(cached);
    std::error_code ec;
    if (std::filesystem::exists(cached_path, ec) &&
        !CachedArtifactIsIntact(cached, spec.artifact())) {
      spdlog::warn("cached artifact {} does not match the manifest: downloading it again",
                   spec.artifact().sha256());
      std::filesystem::remove(cached_path, ec);
    }
    if (!std::filesystem::exists(cached_path, ec)) {
      if (!window_open) {
        if (r.state != parc::v1::PACKAGE_STATE_WAITING) save(r, parc::v1::PACKAGE_STATE_WAITING);
        out.waiting_for_window = true;
        continue;
      }
      save(r, parc::v1::PACKAGE_STATE_DOWNLOADING);
      if (!absl::StartsWith(a.artifact_base_url(), "https://") && !options_.allow_http) {
        // The hash protects what is installed; HTTPS also keeps what a device installs, and
        // from where, private on school and home networks.
        r.reason = "insecure_url";
        r.message =
            absl::StrCat("artifact URL ", a.artifact_base_url().substr(0, 200), " is not https://");
        r.attempts = options_.max_attempts;
        save(r, parc::v1::PACKAGE_STATE_FAILED);
        continue;
      }
      absl::StatusOr<DownloadResult> got = FetchFromSources(a, spec, cached, r, passed_over);
      if (!got.ok()) {
        std::string reason = common::TrustReason(got.status());
        r.reason = reason;
        r.message = std::string(got.status().message());
        if (reason == kReasonDownloadFailed) {
          // Worth another try: keep the partial file, stay in DOWNLOADING.
          save(r, parc::v1::PACKAGE_STATE_DOWNLOADING);
          out.retry = true;
        } else {
          r.attempts = options_.max_attempts;  // the same bytes would fail again
          save(r, parc::v1::PACKAGE_STATE_FAILED);
        }
        continue;
      }
      out.bytes_downloaded += got->bytes_transferred;
      r.bytes_downloaded += got->bytes_transferred;
      r.reason.clear();
      r.message.clear();
      save(r, parc::v1::PACKAGE_STATE_DOWNLOADED);
    }

    save(r, parc::v1::PACKAGE_STATE_INSTALLING);
    InstallOutcome result = packages_->Install(spec, cached);
    if (result.ok && packages_->Detect(spec).value_or(true) == false) {
      result.ok = false;
      result.reason = "detect_failed";
      result.message = "installed, but the detection command still reports it absent";
    }
    r.exit_status = result.exit_status;
    r.output_tail = result.output_tail;
    r.message = result.message;
    if (result.ok) {
      r.reason = result.reboot_pending ? "reboot_pending" : "";
      r.attempts = 0;
      save(r, parc::v1::PACKAGE_STATE_INSTALLED);
    } else if (result.retry_later) {
      // Not this package's fault: the artifact stays verified in the cache for the next run.
      r.reason = result.reason;
      save(r, parc::v1::PACKAGE_STATE_DOWNLOADED);
      out.retry = true;
    } else {
      r.reason = result.reason;
      ++r.attempts;
      save(r, parc::v1::PACKAGE_STATE_FAILED);
      spdlog::error("package {} {}: {} ({})", spec.id(), spec.version(), result.reason,
                    result.message);
    }
  }

  // 3. Packages the bundle no longer has (or no longer for this kind) are removed.
  std::vector<PackageRecord> removed;
  for (auto& [id, r] : by_id) {
    if (wanted.count(id) > 0 || r.package_id.empty()) continue;
    if (r.state == parc::v1::PACKAGE_STATE_INSTALLED) {
      InstallOutcome result = packages_->Remove(r.spec);
      if (!result.ok) {
        r.reason = result.reason;
        r.message = result.message;
        r.exit_status = result.exit_status;
        r.output_tail = result.output_tail;
        save(r, parc::v1::PACKAGE_STATE_FAILED);
        continue;
      }
    }
    removed.push_back(r);
    (void)state_->DeletePackage(bundle.name, id);
    changed = true;
  }

  // 4. Overall state.
  bool all_installed = true, any_failed = false;
  std::string reason, message;
  for (const auto& id : wanted) {
    const PackageRecord& r = by_id[id];
    if (r.state != parc::v1::PACKAGE_STATE_INSTALLED) all_installed = false;
    if (r.state == parc::v1::PACKAGE_STATE_FAILED && r.attempts >= options_.max_attempts &&
        reason.empty()) {
      any_failed = true;
      reason = r.reason;
    }
  }
  parc::v1::DeploymentState overall = parc::v1::DEPLOYMENT_STATE_IN_PROGRESS;
  if (all_installed) {
    overall = parc::v1::DEPLOYMENT_STATE_INSTALLED;
    bundle.state = "installed";
  } else if (any_failed) {
    overall = parc::v1::DEPLOYMENT_STATE_FAILED;
    bundle.state = "failed";
  } else {
    // Failed packages with attempts left are retried on the next run.
    for (const auto& id : wanted) {
      if (by_id[id].state == parc::v1::PACKAGE_STATE_FAILED) out.retry = true;
    }
  }
  (void)state_->SaveBundle(bundle);
  auto last_state = state_->Get("reported_state");
  std::string fingerprint = absl::StrCat(manifest_sha, "/", static_cast<int>(overall));
  if (changed || !removed.empty() || !last_state.ok() || *last_state != fingerprint) {
    (void)QueueReport(a.rollout_id(), bundle, overall, reason, message, removed);
    (void)state_->Set("reported_state", fingerprint);
  }
  out.settled = overall != parc::v1::DEPLOYMENT_STATE_IN_PROGRESS;
  if (out.waiting_for_window) {
    uint32_t now_min = MinuteOfDay(clock_->Now(), options_.time_zone);
    uint32_t start = a.window().start_minute();
    uint32_t wait = (start + 1440 - now_min) % 1440;
    out.window_opens_in = absl::Minutes(wait);
    out.settled = false;
  }
  return out;
}

}  // namespace parc::agent
