#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace parc::sim {

// One call to make: the serialized request and the bearer credential (may be empty).
struct Call {
  std::string method;  // "/parc.v1.AgentService/CheckIn"
  // Passed back to on_response (e.g. the device the call is for).
  uint64_t tag = 0;
  std::string request;
  std::string bearer;
};

struct LoadOptions {
  // Calls are spread over these channels (one HTTP/2 connection each).
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  // The i-th call of the run. Called from gRPC's threads: must be thread-safe.
  std::function<Call(uint64_t i)> make_call;
  // Each response (optional), from gRPC's threads.
  std::function<void(const Call& call, const grpc::Status& status, const std::string& response)>
      on_response;
  // Stop after this many calls (0: run for duration).
  uint64_t max_calls = 0;
  // Closed loop: this many calls in flight, each completion starts the next (maximum rate).
  int concurrency = 64;
  // Open loop when > 0: calls start at this fixed rate whatever the completions; latency is
  // measured from the intended start, so a server that falls behind shows it.
  double rate = 0;
  absl::Duration duration = absl::Seconds(10);
  // Calls completing during the warm-up are not counted.
  absl::Duration warmup = absl::Seconds(1);
  // A call in flight for longer is cancelled (checked every 100 ms) and counted as
  // DEADLINE_EXCEEDED.
  absl::Duration deadline = absl::Seconds(10);
  // When > 0, the CPU time of this process (the server) over the measured window is reported
  // per call as well (from /proc/PID/stat).
  int server_pid = 0;
};

struct LoadResult {
  uint64_t calls = 0;  // completed in the measured window
  uint64_t errors = 0;
  // Calls started over the whole run, warm-up and the calls past the window included: the
  // indexes make_call was asked for (0 .. started - 1).
  uint64_t started = 0;
  std::map<std::string, uint64_t> errors_by_code;
  double seconds = 0;
  double throughput = 0;  // successful calls per second
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  double offered_rate = 0;  // open loop
  // CPU time (user + system) per call over the measured window: this process's (the load
  // generator's) and the server's when its pid was given (-1: not measured).
  double client_cpu_us_per_call = 0;
  double server_cpu_us_per_call = -1;
  std::string ToJson() const;
};

// Drives unary calls through grpc::GenericStub, so the same generator (same bytes, same
// threads) measures parc-server and the reference echo server.
LoadResult RunLoad(const LoadOptions& options);

}  // namespace parc::sim
