#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace parc::server {

// Counters of the server's activity, rendered in the Prometheus text format. Thread-safe.
class Metrics {
 public:
  // One finished RPC of method (e.g. "CheckIn") with its status code.
  void RecordRpc(absl::string_view method, grpc::StatusCode code);
  uint64_t RpcCount(absl::string_view method, grpc::StatusCode code) const;
  // One stored inventory, with its software list or pointing to a list already held.
  void RecordInventory(bool with_software);
  uint64_t InventoryCount(bool with_software) const;
  // One committed storage batch: how long it took and how many writes it carried.
  void ObserveCommit(double seconds, size_t writes);
  std::string RenderPrometheus() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> rpcs_;
  // Commit latency histogram (seconds); kCommitBuckets are the upper bounds.
  static constexpr double kCommitBuckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0};
  uint64_t commit_buckets_[8] = {};
  double commit_seconds_sum_ = 0;
  uint64_t commit_count_ = 0;
  uint64_t commit_writes_ = 0;
  uint64_t inventories_with_software_ = 0;
  uint64_t inventories_deduplicated_ = 0;
};

}  // namespace parc::server
