#include "server/metrics.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"

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

void Metrics::ObserveCommit(double seconds, size_t writes) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t i = 0;
  while (i < 7 && seconds > kCommitBuckets[i]) ++i;
  ++commit_buckets_[i];
  commit_seconds_sum_ += seconds;
  ++commit_count_;
  commit_writes_ += writes;
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
                  "# HELP parc_store_commit_seconds Time to commit one batch of writes "
                  "(group commit).\n# TYPE parc_store_commit_seconds histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < 7; ++i) {
    cumulative += commit_buckets_[i];
    absl::StrAppend(&out, "parc_store_commit_seconds_bucket{le=\"", kCommitBuckets[i], "\"} ",
                    cumulative, "\n");
  }
  cumulative += commit_buckets_[7];
  absl::StrAppend(&out, "parc_store_commit_seconds_bucket{le=\"+Inf\"} ", cumulative, "\n",
                  "parc_store_commit_seconds_sum ", commit_seconds_sum_, "\n",
                  "parc_store_commit_seconds_count ", commit_count_, "\n",
                  "# HELP parc_store_writes_total Writes committed by the store.\n"
                  "# TYPE parc_store_writes_total counter\n"
                  "parc_store_writes_total ",
                  commit_writes_, "\n");
  return out;
}

}  // namespace parc::server
