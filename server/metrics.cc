#include "server/metrics.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/sampled_log.h"
#include "google/protobuf/descriptor.h"

namespace parc::server {

void Metrics::RecordRpc(absl::string_view method, grpc::StatusCode code) {
  std::lock_guard<std::mutex> lock(mu_);
  ++rpcs_[{std::string(method), static_cast<int>(code)}];
}

uint64_t Metrics::RpcCount(absl::string_view method, grpc::StatusCode code) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = rpcs_.find({std::string(method), static_cast<int>(code)});
  return it == rpcs_.end() ? 0 : it->second;
}

void Metrics::RecordInventory(bool with_software) {
  std::lock_guard<std::mutex> lock(mu_);
  ++(with_software ? inventories_with_software_ : inventories_deduplicated_);
}

uint64_t Metrics::InventoryCount(bool with_software) const {
  std::lock_guard<std::mutex> lock(mu_);
  return with_software ? inventories_with_software_ : inventories_deduplicated_;
}

void Metrics::RecordRolloutEvaluation() {
  std::lock_guard<std::mutex> lock(mu_);
  ++rollout_evaluations_;
}

uint64_t Metrics::RolloutEvaluations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rollout_evaluations_;
}

void Metrics::RecordStorageFailure() {
  std::lock_guard<std::mutex> lock(mu_);
  ++storage_failures_;
}

uint64_t Metrics::StorageFailures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return storage_failures_;
}

void Metrics::RecordUnparseable(absl::string_view method) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = unparseable_.find(method);
  if (it == unparseable_.end()) it = unparseable_.emplace(std::string(method), 0).first;
  ++it->second;
}

uint64_t Metrics::Unparseable() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = 0;
  for (const auto& [method, count] : unparseable_) n += count;
  return n;
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  ++counts[i];
  sum += value;
  ++count;
}

void Histogram::Render(absl::string_view name, absl::string_view labels, std::string* out) const {
  uint64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += counts[i];
    absl::StrAppend(out, name, "_bucket{", labels, sep, "le=\"",
                    i < bounds.size() ? absl::StrCat(bounds[i]) : std::string("+Inf"), "\"} ",
                    cumulative, "\n");
  }
  const std::string braces = labels.empty() ? "" : absl::StrCat("{", labels, "}");
  absl::StrAppend(out, name, "_sum", braces, " ", sum, "\n", name, "_count", braces, " ", count,
                  "\n");
}

void Metrics::ObserveCommit(double seconds, size_t writes) {
  std::lock_guard<std::mutex> lock(mu_);
  commits_.Observe(seconds);
  commit_writes_ += writes;
}

void Metrics::ObserveRpcDuration(absl::string_view method, double seconds) {
  static const std::vector<double> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                              0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  std::lock_guard<std::mutex> lock(mu_);
  auto it = rpc_durations_.find(method);
  if (it == rpc_durations_.end()) {
    it = rpc_durations_.emplace(std::string(method), Histogram(kBounds)).first;
  }
  it->second.Observe(seconds);
}

uint64_t Metrics::RpcDurationCount(absl::string_view method, double le) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = rpc_durations_.find(method);
  if (it == rpc_durations_.end()) return 0;
  uint64_t n = 0;
  for (size_t i = 0; i < it->second.bounds.size() && it->second.bounds[i] <= le; ++i) {
    n += it->second.counts[i];
  }
  return n;
}

std::string Metrics::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out =
      "# HELP parc_rpcs_total Finished gRPC calls by method and status code.\n"
      "# TYPE parc_rpcs_total counter\n";
  for (const auto& [key, count] : rpcs_) {
    absl::StrAppend(&out, "parc_rpcs_total{method=\"", key.first, "\",code=\"",
                    common::StatusCodeName(static_cast<grpc::StatusCode>(key.second)), "\"} ",
                    count, "\n");
  }
  absl::StrAppend(
      &out,
      "# HELP parc_inventories_stored_total Inventories stored, by whether they carried "
      "their software list or referred to one the server already held.\n"
      "# TYPE parc_inventories_stored_total counter\n"
      "parc_inventories_stored_total{software=\"sent\"} ",
      inventories_with_software_, "\n", "parc_inventories_stored_total{software=\"known\"} ",
      inventories_deduplicated_, "\n");
  absl::StrAppend(&out,
                  "# HELP parc_rollout_evaluations_total Evaluations of running rollouts "
                  "(deployment reports are coalesced into them).\n"
                  "# TYPE parc_rollout_evaluations_total counter\n"
                  "parc_rollout_evaluations_total ",
                  rollout_evaluations_, "\n");
  absl::StrAppend(&out,
                  "# HELP parc_storage_failures_total Calls answered \"storage unavailable\" "
                  "(disk full, I/O error, database locked).\n"
                  "# TYPE parc_storage_failures_total counter\nparc_storage_failures_total ",
                  storage_failures_, "\n");
  absl::StrAppend(&out,
                  "# HELP parc_unparseable_requests_total Requests whose message did not "
                  "parse, by method.\n# TYPE parc_unparseable_requests_total counter\n");
  for (const auto& [method, count] : unparseable_) {
    absl::StrAppend(&out, "parc_unparseable_requests_total{method=\"", method, "\"} ", count, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP parc_store_commit_seconds Time to commit one batch of writes "
                  "(group commit).\n# TYPE parc_store_commit_seconds histogram\n");
  commits_.Render("parc_store_commit_seconds", "", &out);
  absl::StrAppend(&out,
                  "# HELP parc_rpc_duration_seconds Time from a call's arrival to its status, "
                  "by method.\n# TYPE parc_rpc_duration_seconds histogram\n");
  for (const auto& [method, h] : rpc_durations_) {
    h.Render("parc_rpc_duration_seconds", absl::StrCat("method=\"", method, "\""), &out);
  }
  absl::StrAppend(&out,
                  "# HELP parc_store_writes_total Writes committed by the store.\n"
                  "# TYPE parc_store_writes_total counter\n"
                  "parc_store_writes_total ",
                  commit_writes_, "\n");
  return out;
}

namespace {

class RpcDurationInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcDurationInterceptor(grpc::experimental::ServerRpcInfo* info, Metrics* metrics)
      : info_(info), metrics_(metrics), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      absl::string_view method = info_->method();
      method.remove_prefix(std::min(method.size(), method.rfind('/') + 1));
      metrics_->ObserveRpcDuration(method, absl::ToDoubleSeconds(absl::Now() - start_));
      // gRPC answers a request of a known method whose bytes do not parse with an empty
      // UNIMPLEMENTED: the client sent a bad request, and says so.
      grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty() && IsParcMethod(info_->method())) {
        metrics_->RecordUnparseable(method);
        uint64_t suppressed = 0;
        if (UnparseableLog().Take(&suppressed)) {
          spdlog::warn("{}: a request did not parse ({} more not logged)", std::string(method),
                       suppressed);
        }
        methods->ModifySendStatus(
            grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         absl::StrCat("the request is not a valid ", method, " message")));
      }
    }
    methods->Proceed();
  }

  // "/parc.v1.AgentService/CheckIn" names a method of Parc's services.
  static bool IsParcMethod(absl::string_view path) {
    if (path.size() < 2 || path[0] != '/') return false;
    std::string name(path.substr(1));
    size_t slash = name.find('/');
    if (slash == std::string::npos) return false;
    name[slash] = '.';
    return absl::StartsWith(name, "parc.") &&
           google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name) != nullptr;
  }

  static common::SampledLog& UnparseableLog() {
    static common::SampledLog log(std::chrono::seconds(10));
    return log;
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
  Metrics* metrics_;
  absl::Time start_;
};

}  // namespace

grpc::experimental::Interceptor* RpcDurationInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcDurationInterceptor(info, metrics_);
}

}  // namespace parc::server
