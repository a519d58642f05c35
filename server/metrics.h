#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include <grpcpp/support/status.h>

namespace parc::server {

// Counters of the server's activity, rendered in the Prometheus text format. Thread-safe.
class Metrics {
 public:
  // One finished RPC of method (e.g. "CheckIn") with its status code.
  void RecordRpc(absl::string_view method, grpc::StatusCode code);
  uint64_t RpcCount(absl::string_view method, grpc::StatusCode code) const;
  std::string RenderPrometheus() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> rpcs_;
};

}  // namespace parc::server
