#include "tools/sim/load.h"

#include <grpcpp/generic/generic_stub.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/grpc_util.h"

namespace parc::sim {
namespace {

struct Shared {
  const LoadOptions* options = nullptr;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  absl::Time start, measure_from, end;
  std::atomic<uint64_t> next{0};
  std::atomic<int64_t> in_flight{0};
  std::mutex mu;
  std::condition_variable done_cv;
  std::vector<uint32_t> latencies_us;  // guarded by mu
  uint64_t ok = 0, errors = 0;
  std::map<std::string, uint64_t> errors_by_code;
};

struct InFlight {
  Call call;
  grpc::ClientContext ctx;
  grpc::ByteBuffer request, response;
  absl::Time started;
};

void Start(Shared* s, absl::Time intended, bool closed_loop);

void Finish(Shared* s, InFlight* f, const grpc::Status& status, bool closed_loop) {
  absl::Time now = absl::Now();
  if (s->options->on_response) {
    std::string bytes;
    if (status.ok()) {
      std::vector<grpc::Slice> slices;
      (void)f->response.Dump(&slices);
      for (const auto& sl : slices) {
        bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
      }
    }
    s->options->on_response(f->call, status, bytes);
  }
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (f->started >= s->measure_from && now <= s->end) {
      if (status.ok()) {
        ++s->ok;
        s->latencies_us.push_back(static_cast<uint32_t>(
            std::min<int64_t>(absl::ToInt64Microseconds(now - f->started), UINT32_MAX)));
      } else {
        ++s->errors;
        ++s->errors_by_code[common::StatusCodeName(status.error_code())];
      }
    }
  }
  delete f;
  const uint64_t max = s->options->max_calls;
  if (closed_loop && now < s->end && (max == 0 || s->next.load() < max)) {
    Start(s, now, true);
  }
  if (s->in_flight.fetch_sub(1) == 1) s->done_cv.notify_all();
}

void Start(Shared* s, absl::Time intended, bool closed_loop) {
  uint64_t i = s->next.fetch_add(1);
  if (s->options->max_calls > 0 && i >= s->options->max_calls) return;
  auto* f = new InFlight();
  f->call = s->options->make_call(i);
  const Call& call = f->call;
  grpc::Slice slice(call.request);
  f->request = grpc::ByteBuffer(&slice, 1);
  f->started = intended;
  if (!call.bearer.empty()) common::SetBearer(&f->ctx, call.bearer);
  common::SetDeadline(&f->ctx, s->options->deadline);
  s->in_flight.fetch_add(1);
  auto& stub = *s->stubs[i % s->stubs.size()];
  stub.UnaryCall(&f->ctx, call.method, grpc::StubOptions(), &f->request, &f->response,
                 [s, f, closed_loop](grpc::Status status) { Finish(s, f, status, closed_loop); });
}

// CPU time (user + system) of this process.
absl::Duration OwnCpu() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return absl::DurationFromTimeval(ru.ru_utime) + absl::DurationFromTimeval(ru.ru_stime);
}

// CPU time of another process, from /proc/PID/stat (utime and stime, fields 14 and 15).
absl::Duration ProcessCpu(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return absl::ZeroDuration();
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(text).substr(close + 2), ' ', absl::SkipEmpty());
  int64_t utime = 0, stime = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &utime) || !absl::SimpleAtoi(f[12], &stime)) {
    return absl::ZeroDuration();
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return absl::Seconds(static_cast<double>(utime + stime) / static_cast<double>(ticks));
}

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t index = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[index] / 1000.0;
}

}  // namespace

LoadResult RunLoad(const LoadOptions& options) {
  Shared s;
  s.options = &options;
  for (const auto& ch : options.channels)
    s.stubs.push_back(std::make_unique<grpc::GenericStub>(ch));
  s.start = absl::Now();
  s.measure_from = s.start + options.warmup;
  s.end = s.measure_from + options.duration;
  const bool closed = options.rate <= 0;
  // CPU over the measured window, sampled from a thread of its own (the open loop's thread
  // is busy pacing calls).
  absl::Duration own_cpu = absl::ZeroDuration(), server_cpu = absl::ZeroDuration();
  std::thread sampler;
  if (options.max_calls == 0) {
    sampler = std::thread([&] {
      absl::SleepFor(s.measure_from - absl::Now());
      const absl::Duration own0 = OwnCpu();
      const absl::Duration server0 =
          options.server_pid > 0 ? ProcessCpu(options.server_pid) : absl::ZeroDuration();
      absl::SleepFor(s.end - absl::Now());
      own_cpu = OwnCpu() - own0;
      if (options.server_pid > 0) server_cpu = ProcessCpu(options.server_pid) - server0;
    });
  }
  if (closed) {
    for (int i = 0; i < options.concurrency; ++i) Start(&s, absl::Now(), true);
    if (options.max_calls > 0) {
      // Counted runs end when every call has completed.
      while (s.next.load() < options.max_calls || s.in_flight.load() > 0) {
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
  } else {
    // Open loop: start call k at start + k / rate.
    const absl::Duration interval = absl::Seconds(1.0 / options.rate);
    absl::Time next = s.start;
    while (next < s.end) {
      absl::Time now = absl::Now();
      if (now < next) {
        absl::SleepFor(std::min(next - now, absl::Milliseconds(1)));
        continue;
      }
      // Bound the calls in flight so that a stalled server does not exhaust memory.
      if (s.in_flight.load() < 20000) Start(&s, next, false);
      next += interval;
    }
  }
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.done_cv.wait_for(lock, absl::ToChronoMilliseconds(options.deadline + absl::Seconds(5)),
                       [&] { return s.in_flight.load() == 0; });
  }
  // Calls still in flight reference s: wait for them (their deadline bounds this).
  while (s.in_flight.load() > 0) absl::SleepFor(absl::Milliseconds(10));
  if (sampler.joinable()) sampler.join();
  LoadResult r;
  std::lock_guard<std::mutex> lock(s.mu);
  std::sort(s.latencies_us.begin(), s.latencies_us.end());
  r.calls = s.ok + s.errors;
  r.errors = s.errors;
  r.errors_by_code = s.errors_by_code;
  r.seconds = options.max_calls > 0 ? absl::ToDoubleSeconds(absl::Now() - s.start)
                                    : absl::ToDoubleSeconds(options.duration);
  r.throughput = static_cast<double>(s.ok) / r.seconds;
  r.p50_ms = Percentile(s.latencies_us, 0.50);
  r.p99_ms = Percentile(s.latencies_us, 0.99);
  r.p999_ms = Percentile(s.latencies_us, 0.999);
  r.max_ms = s.latencies_us.empty() ? 0 : s.latencies_us.back() / 1000.0;
  r.offered_rate = options.rate;
  const double counted = static_cast<double>(std::max<uint64_t>(1, s.ok + s.errors));
  if (options.max_calls == 0) {
    r.client_cpu_us_per_call = absl::ToDoubleMicroseconds(own_cpu) / counted;
    if (options.server_pid > 0) {
      r.server_cpu_us_per_call = absl::ToDoubleMicroseconds(server_cpu) / counted;
    }
  }
  return r;
}

std::string LoadResult::ToJson() const {
  std::string errs;
  for (const auto& [code, n] : errors_by_code) {
    absl::StrAppend(&errs, errs.empty() ? "" : ", ", "\"", code, "\": ", n);
  }
  return absl::StrFormat(
      "{\"calls\": %d, \"errors\": %d, \"errors_by_code\": {%s}, \"seconds\": %.2f, "
      "\"throughput\": %.1f, \"offered_rate\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
      "\"p999_ms\": %.3f, \"max_ms\": %.3f, \"client_cpu_us_per_call\": %.1f, "
      "\"server_cpu_us_per_call\": %.1f}",
      calls, errors, errs, seconds, throughput, offered_rate, p50_ms, p99_ms, p999_ms, max_ms,
      client_cpu_us_per_call, server_cpu_us_per_call);
}

}  // namespace parc::sim
