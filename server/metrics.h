#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace parc::server {

// A Prometheus histogram: counts per upper bound (cumulated when rendered), sum and count.
struct Histogram {
  explicit Histogram(std::vector<double> upper_bounds)
      : bounds(std::move(upper_bounds)), counts(bounds.size() + 1) {}
  void Observe(double value);
  // Appends the _bucket, _sum and _count lines of name with the given labels ("" or
  // "method=\"CheckIn\"").
  void Render(absl::string_view name, absl::string_view labels, std::string* out) const;
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t count = 0;
};

// Counters of the server's activity, rendered in the Prometheus text format. Thread-safe.
class Metrics {
 public:
  // One finished RPC of method (e.g. "CheckIn") with its status code.
  void RecordRpc(absl::string_view method, grpc::StatusCode code);
  uint64_t RpcCount(absl::string_view method, grpc::StatusCode code) const;
  // One stored inventory, with its software list or pointing to a list already held.
  void RecordInventory(bool with_software);
  uint64_t InventoryCount(bool with_software) const;
  // One evaluation of a running rollout (wave progression, automatic pause).
  void RecordRolloutEvaluation();
  uint64_t RolloutEvaluations() const;
  // Time from a call's arrival to its status being sent, by method.
  void ObserveRpcDuration(absl::string_view method, double seconds);
  // Calls of method observed with a duration up to le seconds (a bucket bound).
  uint64_t RpcDurationCount(absl::string_view method, double le) const;
  // A call answered "storage unavailable" (disk full, I/O error…), and an unparseable request.
  void RecordStorageFailure();
  uint64_t StorageFailures() const;
  void RecordUnparseable(absl::string_view method);
  uint64_t Unparseable() const;
  // One committed storage batch: how long it took and how many writes it carried.
  void ObserveCommit(double seconds, size_t writes);
  std::string RenderPrometheus() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> rpcs_;
  Histogram commits_{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0}};
  std::map<std::string, Histogram, std::less<>> rpc_durations_;
  uint64_t commit_writes_ = 0;
  uint64_t inventories_with_software_ = 0;
  uint64_t inventories_deduplicated_ = 0;
  uint64_t rollout_evaluations_ = 0;
  uint64_t storage_failures_ = 0;
  std::map<std::string, uint64_t, std::less<>> unparseable_;
};

// Observes every call's duration into Metrics (parc_rpc_duration_seconds). A gRPC server
// interceptor: from the call's creation to its status being sent, so it covers the handler
// and the wait for the store, not the network.
class RpcDurationInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcDurationInterceptorFactory(Metrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics* metrics_;
};

}  // namespace parc::server
