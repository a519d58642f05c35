// AdminService: bundles (artifact upload, publication) and rollouts.
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/admin_service.h"
#include "server/report_validation.h"
#include "server/rollout_plan.h"
#include "server/rpc_util.h"

namespace parc::server {
namespace {

parc::v1::BundleSummary SummaryProto(const BundleRecord& b) {
  parc::v1::BundleSummary s;
  s.set_name(b.name);
  s.set_version(b.version);
  s.set_sequence(b.sequence);
  s.mutable_published_at()->set_seconds(absl::ToUnixSeconds(b.published_at));
  s.mutable_expires_at()->set_seconds(absl::ToUnixSeconds(b.expires_at));
  s.set_packages(b.package_count);
  s.set_total_bytes(b.total_bytes);
  for (const auto& k : b.signers) s.add_signer_key_ids(k);
  s.set_manifest_sha256(b.manifest_sha256);
  s.set_installed_bytes(b.installed_bytes);
  s.set_min_ram_bytes(b.min_ram_bytes);
  return s;
}

void AddCounts(parc::v1::DeploymentCounts* to, const EstablishmentCounts& c) {
  to->set_targeted(to->targeted() + c.targeted);
  to->set_installed(to->installed() + c.installed);
  to->set_in_progress(to->in_progress() + c.in_progress);
  to->set_failed(to->failed() + c.failed);
  to->set_not_seen(to->not_seen() + c.not_seen);
  for (const auto& e : c.errors) {
    parc::v1::ErrorCount* found = nullptr;
    for (auto& existing : *to->mutable_top_errors()) {
      if (existing.reason() == e.reason) found = &existing;
    }
    if (found == nullptr) {
      found = to->add_top_errors();
      found->set_reason(e.reason);
      found->set_example(e.example);
    }
    found->set_devices(found->devices() + e.devices);
  }
  std::sort(to->mutable_top_errors()->begin(), to->mutable_top_errors()->end(),
            [](const auto& a, const auto& b) { return a.devices() > b.devices(); });
  while (to->top_errors_size() > 3) to->mutable_top_errors()->RemoveLast();
}

// Receives one artifact from a client stream into the artifact store.
class UploadReactor final : public grpc::ServerReadReactor<parc::v1::ArtifactChunk> {
 public:
  UploadReactor(ArtifactStore* store, Metrics* metrics, absl::Status authorized,
                parc::v1::UploadArtifactResponse* response)
      : store_(store), metrics_(metrics), response_(response) {
    if (!authorized.ok()) {
      Done(authorized);
      return;
    }
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return Done(Complete());
    absl::Status s = Consume();
    if (!s.ok()) return Done(s);
    chunk_.Clear();
    StartRead(&chunk_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Consume() {
    if (sha256_.empty()) {
      sha256_ = chunk_.sha256();
      size_ = chunk_.size();
      if (store_->Has(sha256_)) {
        already_present_ = true;
      } else {
        PARC_ASSIGN_OR_RETURN(upload_, store_->BeginUpload(sha256_, size_));
      }
    } else if (!chunk_.sha256().empty() && chunk_.sha256() != sha256_) {
      return absl::InvalidArgumentError("all chunks of an upload must be of one artifact");
    }
    if (already_present_) return absl::OkStatus();
    return upload_->Append(chunk_.data());
  }

  absl::Status Complete() {
    if (sha256_.empty()) return absl::InvalidArgumentError("no artifact was sent");
    response_->set_sha256(sha256_);
    response_->set_size(size_);
    response_->set_already_present(already_present_);
    if (already_present_) return absl::OkStatus();
    return upload_->Commit();
  }

  void Done(const absl::Status& status) {
    grpc::Status g = common::ToGrpcStatus(status);
    metrics_->RecordRpc("UploadArtifact", g.error_code());
    Finish(g);
  }

  ArtifactStore* store_;
  Metrics* metrics_;
  parc::v1::UploadArtifactResponse* response_;
  parc::v1::ArtifactChunk chunk_;
  std::string sha256_;
  uint64_t size_ = 0;
  bool already_present_ = false;
  std::unique_ptr<ArtifactStore::Upload> upload_;
};

}  // namespace

parc::v1::Rollout RolloutProto(const RolloutRecord& r) {
  parc::v1::Rollout p;
  p.set_id(r.id);
  p.set_bundle_name(r.bundle_name);
  p.set_bundle_version(r.bundle_version);
  p.set_target(r.target);
  for (auto k : r.kinds) p.add_kinds(k);
  for (auto w : r.waves) p.add_waves(w);
  for (const auto& u : r.pilots) p.add_pilots(u);
  p.set_success_percent(r.success_percent);
  p.set_max_failures_percent(r.max_failures_percent);
  p.set_max_failures_count(r.max_failures_count);
  p.mutable_window()->set_start_minute(r.window_start);
  p.mutable_window()->set_end_minute(r.window_end);
  p.set_rate_limit_bytes_per_second(r.rate_limit);
  p.set_state(r.state);
  p.set_state_reason(r.state_reason);
  p.set_current_wave(r.current_wave);
  p.set_wave_count(r.wave_count);
  p.mutable_created_at()->set_seconds(absl::ToUnixSeconds(r.created_at));
  if (r.started_at.has_value()) {
    p.mutable_started_at()->set_seconds(absl::ToUnixSeconds(*r.started_at));
  }
  return p;
}

namespace {

constexpr std::initializer_list<absl::string_view> kPublishers = {kRoleAdmin, kRolePublisher};

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::MissingArtifacts(
    grpc::CallbackServerContext* context, const parc::v1::MissingArtifactsRequest* request,
    parc::v1::MissingArtifactsResponse* response) {
  return Handle(context, "MissingArtifacts", kPublishers,
                [&](const Caller&, UnaryCall&) -> absl::Status {
                  if (request->sha256_size() > 10000) {
                    return absl::InvalidArgumentError("at most 10000 hashes per call");
                  }
                  for (const auto& sha : request->sha256()) {
                    if (!ArtifactStore::IsSha256(sha)) {
                      return absl::InvalidArgumentError(
                          absl::StrCat("\"", sha.substr(0, 80), "\" is not a SHA-256 in hex"));
                    }
                    if (!bundles_.artifacts->Has(sha)) response->add_sha256(sha);
                  }
                  return absl::OkStatus();
                });
}

grpc::ServerReadReactor<parc::v1::ArtifactChunk>* AdminServiceImpl::UploadArtifact(
    grpc::CallbackServerContext* context, parc::v1::UploadArtifactResponse* response) {
  auto op = Authorize(*context, kPublishers);
  return new UploadReactor(bundles_.artifacts, metrics_, op.status(), response);
}

grpc::ServerUnaryReactor* AdminServiceImpl::PublishBundle(
    grpc::CallbackServerContext* context, const parc::v1::PublishBundleRequest* request,
    parc::v1::BundleSummary* response) {
  return Handle(
      context, "PublishBundle", kPublishers,
      [&](const Caller& op, UnaryCall& call) -> absl::Status {
        if (bundles_.publisher_keys.empty()) {
          return absl::FailedPreconditionError(
              "this server has no publisher keys: start parc-server with --publisher-key FILE.pub "
              "for each académie's key");
        }
        common::TrustPolicy policy;
        policy.holder = "this server";
        policy.keys = bundles_.publisher_keys;
        policy.threshold = bundles_.signature_threshold;
        policy.now = clock_->Now();
        auto manifest = common::VerifyManifest(request->bundle(), policy);
        if (!manifest.ok()) {
          return absl::Status(manifest.status().code(),
                              absl::StrCat("refused (", common::TrustReason(manifest.status()),
                                           "): ", manifest.status().message()));
        }
        BundleRecord b;
        b.name = manifest->name();
        b.version = manifest->version();
        b.sequence = manifest->sequence();
        b.signed_manifest = request->bundle().SerializeAsString();
        b.manifest_sha256 = common::Sha256Hex(b.signed_manifest);
        b.published_at = clock_->Now();
        b.expires_at = absl::FromUnixSeconds(manifest->expires_at());
        b.package_count = static_cast<uint32_t>(manifest->packages_size());
        b.published_by = op.record.name;
        b.installed_bytes = manifest->requirements().installed_bytes();
        b.min_ram_bytes = manifest->requirements().min_ram_bytes();
        if (b.installed_bytes > kMaxDiskBytes || b.min_ram_bytes > kMaxDiskBytes) {
          return absl::InvalidArgumentError(
              "manifest requirements: installed_bytes or min_ram_bytes is above 1 PiB");
        }
        std::vector<std::string> missing;
        for (const auto& pkg : manifest->packages()) {
          b.total_bytes += pkg.artifact().size();
          if (!bundles_.artifacts->Has(pkg.artifact().sha256())) {
            missing.push_back(absl::StrCat(pkg.id(), " (", pkg.artifact().sha256(), ")"));
          }
        }
        if (!missing.empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("artifacts not uploaded yet: ", absl::StrJoin(missing, ", ")));
        }
        for (const auto& sig : request->bundle().signatures()) b.signers.push_back(sig.key_id());
        *response = SummaryProto(b);
        store_->InsertBundle(std::move(b),
                             [done = call.Later()](absl::StatusOr<bool> r) { done(r.status()); });
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListBundles(grpc::CallbackServerContext* context,
                                                        const parc::v1::ListBundlesRequest* request,
                                                        parc::v1::ListBundlesResponse* response) {
  return Handle(context, "ListBundles", kEveryRole, [&](const Caller&, UnaryCall&) -> absl::Status {
    PARC_ASSIGN_OR_RETURN(auto bundles, store_->ListBundles(request->name()));
    for (const auto& b : bundles) *response->add_bundles() = SummaryProto(b);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateRollout(
    grpc::CallbackServerContext* context, const parc::v1::CreateRolloutRequest* request,
    parc::v1::Rollout* response) {
  return Handle(
      context, "CreateRollout", kPublishers,
      [&](const Caller& op, UnaryCall& call) -> absl::Status {
        PARC_ASSIGN_OR_RETURN(BundleRecord bundle,
                              store_->GetBundle(request->bundle_name(), request->bundle_version()));
        RolloutRecord r;
        r.bundle_id = bundle.id;
        r.target = request->target().empty() ? "all" : request->target();
        for (int k : request->kinds()) {
          if (!parc::v1::DeviceKind_IsValid(k) || k == 0) {
            return absl::InvalidArgumentError("kinds: unknown device kind");
          }
          r.kinds.push_back(static_cast<parc::v1::DeviceKind>(k));
        }
        r.waves.assign(request->waves().begin(), request->waves().end());
        if (r.waves.empty()) r.waves = {100};
        r.success_percent = request->success_percent() == 0 ? 95 : request->success_percent();
        if (r.success_percent > 100) {
          return absl::InvalidArgumentError("success: a percentage from 1 to 100");
        }
        r.max_failures_percent = request->max_failures_percent();
        r.max_failures_count = request->max_failures_count();
        if (r.max_failures_percent > 100) {
          return absl::InvalidArgumentError("max-failures: a percentage up to 100");
        }
        r.window_start = request->window().start_minute();
        r.window_end = request->window().end_minute();
        if (r.window_start >= 1440 || r.window_end >= 1440) {
          return absl::InvalidArgumentError("window: minutes since midnight, below 1440");
        }
        r.rate_limit = request->rate_limit_bytes_per_second();
        r.created_at = clock_->Now();
        r.created_by = op.record.name;
        PARC_ASSIGN_OR_RETURN(std::string id, common::RandomHex(4));
        r.id = absl::StrCat("r", id);

        // An operator rolls out within its own scope only.
        PARC_ASSIGN_OR_RETURN(auto all, store_->ListEstablishments({}, op.scope));
        PARC_ASSIGN_OR_RETURN(auto selected, SelectEstablishments(r.target, all));
        if (selected.empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("target \"", r.target, "\" selects no establishment"));
        }
        std::vector<std::string> pilots(request->pilots().begin(), request->pilots().end());
        PARC_ASSIGN_OR_RETURN(auto members,
                              PlanWaves(r.id, selected, pilots, r.waves, &r.wave_count));
        for (const auto& m : members) {
          if (m.wave == 0 && !pilots.empty()) r.pilots.push_back(m.uai);
        }
        const auto establishments = static_cast<uint32_t>(members.size());
        store_->CreateRollout(
            std::move(r), std::move(members),
            [response, establishments, done = call.Later()](absl::StatusOr<RolloutRecord> created) {
              if (created.ok()) {
                *response = RolloutProto(*created);
                response->set_establishments(establishments);
              }
              done(created.status());
            });
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::UpdateRollout(
    grpc::CallbackServerContext* context, const parc::v1::UpdateRolloutRequest* request,
    parc::v1::Rollout* response) {
  // Every role may ask: RolloutActions answers who may change what (same rule as the
  // dashboard).
  return Handle(
      context, "UpdateRollout", {}, [&](const Caller& op, UnaryCall& call) -> absl::Status {
        bundles_.rollouts->Apply(op, request->id(), request->action(),
                                 [response, done = call.Later()](absl::StatusOr<RolloutRecord> r) {
                                   if (r.ok()) *response = RolloutProto(*r);
                                   done(r.status());
                                 });
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetRolloutStatus(
    grpc::CallbackServerContext* context, const parc::v1::GetRolloutStatusRequest* request,
    parc::v1::RolloutStatus* response) {
  return Handle(
      context, "GetRolloutStatus", kEveryRole, [&](const Caller& op, UnaryCall&) -> absl::Status {
        PARC_ASSIGN_OR_RETURN(RolloutRecord rollout, bundles_.rollouts->Visible(op, request->id()));
        PARC_ASSIGN_OR_RETURN(auto counts, store_->RolloutCounts(request->id(), op.scope));
        *response->mutable_rollout() = RolloutProto(rollout);
        std::set<std::string> establishments;
        for (uint32_t w = 0; w < rollout.wave_count; ++w) {
          auto* wave = response->add_waves();
          wave->set_index(w);
          bool started = rollout.state != "draft" && w <= rollout.current_wave;
          bool done = rollout.state == "completed" || (started && w < rollout.current_wave);
          wave->set_state(done ? "done" : started ? "active" : "pending");
          wave->mutable_counts();
        }
        for (const auto& c : counts) {
          if (c.wave >= rollout.wave_count) continue;
          establishments.insert(c.uai);
          auto* wave = response->mutable_waves(static_cast<int>(c.wave));
          auto* e = wave->add_establishments();
          e->set_uai(c.uai);
          e->set_name(c.name);
          AddCounts(e->mutable_counts(), c);
          AddCounts(wave->mutable_counts(), c);
          AddCounts(response->mutable_total(), c);
        }
        response->mutable_rollout()->set_establishments(
            static_cast<uint32_t>(establishments.size()));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListRollouts(grpc::CallbackServerContext* context,
                                                         const parc::v1::ListRolloutsRequest*,
                                                         parc::v1::ListRolloutsResponse* response) {
  return Handle(context, "ListRollouts", kEveryRole,
                [&](const Caller& op, UnaryCall&) -> absl::Status {
                  PARC_ASSIGN_OR_RETURN(auto rollouts, bundles_.rollouts->ListVisible(op));
                  for (const auto& r : rollouts) *response->add_rollouts() = RolloutProto(r);
                  return absl::OkStatus();
                });
}

// ---------------------------------------------------------------------------------------------
// Operators, audit, reports

namespace {

parc::v1::Operator OperatorProto(const OperatorRecord& op) {
  parc::v1::Operator p;
  p.set_id(op.id);
  p.set_name(op.name);
  p.set_role(op.role);
  p.set_scope(op.scope);
  p.mutable_created_at()->set_seconds(absl::ToUnixSeconds(op.created_at));
  if (op.revoked_at.has_value()) {
    p.mutable_revoked_at()->set_seconds(absl::ToUnixSeconds(*op.revoked_at));
  }
  return p;
}

}  // namespace

absl::StatusOr<std::vector<OperatorRecord>> AdminServiceImpl::VisibleOperators(
    const Caller& caller) {
  PARC_ASSIGN_OR_RETURN(std::vector<OperatorRecord> all, store_->ListOperators());
  if (caller.scope.is_region()) return all;
  // Operators whose scope lies within the caller's: they see nothing it does not.
  PARC_ASSIGN_OR_RETURN(auto establishments, store_->ListEstablishments({}, Scope::Region()));
  const auto mine = caller.scope.Resolve(establishments);
  std::vector<OperatorRecord> out;
  for (auto& o : all) {
    auto scope = Scope::Parse(o.scope);
    if (!scope.ok() || scope->is_region()) continue;
    const auto theirs = scope->Resolve(establishments);
    if (!mine.has_value() || !theirs.has_value()) continue;
    bool within = true;
    for (const auto& uai : *theirs) within = within && mine->count(uai) > 0;
    if (within) out.push_back(std::move(o));
  }
  return out;
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateOperator(
    grpc::CallbackServerContext* context, const parc::v1::CreateOperatorRequest* request,
    parc::v1::CreateOperatorResponse* response) {
  return Handle(
      context, "CreateOperator", {kRoleAdmin},
      [&](const Caller& op, UnaryCall& call) -> absl::Status {
        if (!op.scope.is_region()) {
          return absl::PermissionDeniedError("creating operators needs a region-wide admin");
        }
        const std::string& role = request->role();
        if (role != kRoleAdmin && role != kRolePublisher && role != kRoleTechnician &&
            role != kRoleViewer) {
          return absl::InvalidArgumentError("role: admin, publisher, technician or viewer");
        }
        if (request->name().empty() || request->name().size() > 64) {
          return absl::InvalidArgumentError("name: 1 to 64 characters");
        }
        if (request->scope().empty()) {
          // No default: a forgotten scope must not give an operator the whole region.
          return absl::InvalidArgumentError(
              "scope is required (\"region\" for the whole territory, or academie:, departement:, "
              "commune:, uai:, collectivite:…)");
        }
        PARC_ASSIGN_OR_RETURN(Scope scope, Scope::Parse(request->scope()));
        PARC_ASSIGN_OR_RETURN(common::Credential credential, common::NewCredential("o", 6));
        OperatorRecord rec;
        rec.id = credential.id;
        rec.name = request->name();
        rec.secret_hash = common::Sha256Hex(credential.secret);
        rec.role = role;
        rec.scope = scope.text();
        rec.created_at = clock_->Now();
        response->set_token(common::FormatCredential(credential));
        *response->mutable_operator_() = OperatorProto(rec);
        store_->CreateOperator(std::move(rec),
                               [response, done = call.Later()](absl::StatusOr<bool> r) {
                                 if (!r.ok()) response->clear_token();
                                 done(r.status());
                               });
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListOperators(
    grpc::CallbackServerContext* context, const parc::v1::ListOperatorsRequest*,
    parc::v1::ListOperatorsResponse* response) {
  return Handle(context, "ListOperators", {kRoleAdmin},
                [&](const Caller& op, UnaryCall&) -> absl::Status {
                  PARC_ASSIGN_OR_RETURN(auto ops, VisibleOperators(op));
                  for (const auto& o : ops) *response->add_operators() = OperatorProto(o);
                  return absl::OkStatus();
                });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeOperator(
    grpc::CallbackServerContext* context, const parc::v1::RevokeOperatorRequest* request,
    parc::v1::Operator* response) {
  return Handle(
      context, "RevokeOperator", {kRoleAdmin},
      [&](const Caller& op, UnaryCall& call) -> absl::Status {
        if (!op.scope.is_region()) {
          return absl::PermissionDeniedError("revoking operators needs a region-wide admin");
        }
        if (request->operator_() == op.record.id || request->operator_() == op.record.name) {
          return absl::FailedPreconditionError("an operator cannot revoke itself");
        }
        store_->RevokeOperator(request->operator_(), clock_->Now(),
                               [response, done = call.Later()](absl::StatusOr<OperatorRecord> r) {
                                 if (r.ok()) *response = OperatorProto(*r);
                                 done(r.status());
                               });
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListAudit(grpc::CallbackServerContext* context,
                                                      const parc::v1::ListAuditRequest* request,
                                                      parc::v1::ListAuditResponse* response) {
  return Handle(
      context, "ListAudit", {kRoleAdmin}, [&](const Caller& op, UnaryCall&) -> absl::Status {
        uint32_t limit = request->limit() == 0 ? 1000 : std::min(request->limit(), 100000u);
        // A scoped admin reads what the operators of its scope did, not the region's.
        std::optional<std::set<std::string>> authors;
        if (!op.scope.is_region()) {
          PARC_ASSIGN_OR_RETURN(auto visible, VisibleOperators(op));
          authors.emplace();
          for (const auto& o : visible) authors->insert(o.id);
        }
        PARC_ASSIGN_OR_RETURN(auto entries,
                              store_->ListAudit(absl::FromUnixSeconds(request->since_unix()),
                                                request->operator_(), limit));
        for (const auto& e : entries) {
          if (authors.has_value() && authors->count(e.operator_id) == 0) continue;
          auto* p = response->add_entries();
          p->mutable_at()->set_seconds(absl::ToUnixSeconds(e.at));
          p->set_operator_name(e.operator_name);
          p->set_operator_id(e.operator_id);
          p->set_action(e.action);
          p->set_target(e.target);
          p->set_outcome(e.outcome);
          p->set_detail(e.detail);
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetDeploymentReport(
    grpc::CallbackServerContext* context, const parc::v1::DeploymentReportRequest* request,
    parc::v1::DeploymentReportResponse* response) {
  return Handle(
      context, "GetDeploymentReport", kEveryRole,
      [&](const Caller& op, UnaryCall&) -> absl::Status {
        BundleRecord bundle;
        if (request->bundle_version().empty()) {
          PARC_ASSIGN_OR_RETURN(auto all, store_->ListBundles(request->bundle_name()));
          if (all.empty()) {
            return absl::NotFoundError(
                absl::StrCat("no published bundle ", request->bundle_name()));
          }
          bundle = std::move(all.front());  // highest sequence first
        } else {
          PARC_ASSIGN_OR_RETURN(
              bundle, store_->GetBundle(request->bundle_name(), request->bundle_version()));
        }
        const Scope& scope = op.scope;
        absl::Duration stale = request->stale_seconds() == 0
                                   ? absl::Hours(24 * 7)
                                   : absl::Seconds(request->stale_seconds());
        PARC_ASSIGN_OR_RETURN(
            *response, store_->DeploymentReport(bundle.name, bundle.sequence,
                                                request->by().empty() ? "region" : request->by(),
                                                clock_->Now() - stale, scope));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetInventoryReport(
    grpc::CallbackServerContext* context, const parc::v1::InventoryReportRequest* request,
    parc::v1::InventoryReportResponse* response) {
  return Handle(
      context, "GetInventoryReport", kEveryRole, [&](const Caller& op, UnaryCall&) -> absl::Status {
        const Scope& scope = op.scope;
        PARC_ASSIGN_OR_RETURN(
            *response,
            store_->InventoryReport(request->by().empty() ? "model" : request->by(), scope));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetHealthReport(
    grpc::CallbackServerContext* context, const parc::v1::HealthReportRequest* request,
    parc::v1::HealthReportResponse* response) {
  return Handle(
      context, "GetHealthReport", kEveryRole, [&](const Caller& op, UnaryCall&) -> absl::Status {
        PARC_ASSIGN_OR_RETURN(*response,
                              store_->HealthReport(request->by().empty() ? "region" : request->by(),
                                                   clock_->Now(), op.scope));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListOsVersions(
    grpc::CallbackServerContext* context, const parc::v1::ListOsVersionsRequest* /*request*/,
    parc::v1::ListOsVersionsResponse* response) {
  return Handle(context, "ListOsVersions", kEveryRole,
                [&](const Caller& op, UnaryCall&) -> absl::Status {
                  PARC_ASSIGN_OR_RETURN(auto versions, store_->ListOsVersions(op.scope));
                  for (auto& v : versions) *response->add_versions() = std::move(v);
                  return absl::OkStatus();
                });
}

grpc::ServerUnaryReactor* AdminServiceImpl::SetOsSupport(
    grpc::CallbackServerContext* context, const parc::v1::SetOsSupportRequest* request,
    parc::v1::OsVersion* response) {
  return Handle(
      context, "SetOsSupport", {kRoleAdmin},
      [&](const Caller& op, UnaryCall& call) -> absl::Status {
        // One table for every establishment: the region's admins keep it.
        if (!op.scope.is_region()) {
          return absl::PermissionDeniedError(
              "the end-of-support table is kept by region-wide admins");
        }
        if (request->os_name().empty()) return absl::InvalidArgumentError("os_name is empty");
        PARC_RETURN_IF_ERROR(CheckLength("os_name", request->os_name(), kMaxShortField));
        PARC_RETURN_IF_ERROR(CheckLength("os_version", request->os_version(), kMaxShortField));
        PARC_RETURN_IF_ERROR(CheckLength("label", request->label(), kMaxShortField));
        const std::string& date = request->end_of_support();
        absl::Time parsed;
        std::string error;
        if (!date.empty() &&
            (date.size() != 10 ||
             !absl::ParseTime("%Y-%m-%d", date, absl::UTCTimeZone(), &parsed, &error))) {
          return absl::InvalidArgumentError(
              absl::StrCat("end_of_support: \"", date.substr(0, 16), "\" is not YYYY-MM-DD"));
        }
        store_->SetOsSupport(
            *request, op.record.name, clock_->Now(),
            [response, done = call.Later()](absl::StatusOr<parc::v1::OsVersion> r) {
              if (r.ok()) *response = *std::move(r);
              done(r.status());
            });
        return absl::OkStatus();
      });
}

}  // namespace parc::server
