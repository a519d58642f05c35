#include "tools/sim/load.h"

#include <grpcpp/generic/generic_stub.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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

// One per channel: its own completion queue, drained by its own thread, and the figures of
// the calls that completed on it (written by that thread alone, merged at the end), so that
// a call costs the generator what it costs the minimal client of tools/bench: no lock, no
// callback executor.
struct InFlight;
struct Worker {
  explicit Worker(const std::shared_ptr<grpc::Channel>& channel) : stub(channel) {}
  grpc::GenericStub stub;
  grpc::CompletionQueue cq;
  std::thread thread;
  // The calls in flight on this worker, for the watchdog (a deadline timer per call would cost
  // the generator a tenth of a call).
  std::mutex mu;
  InFlight* calls = nullptr;  // guarded by mu; a doubly linked list
  uint64_t ok = 0, errors = 0;
  std::map<std::string, uint64_t> errors_by_code;
  std::vector<uint32_t> latencies_us;
};

struct Shared {
  const LoadOptions* options = nullptr;
  std::vector<std::unique_ptr<Worker>> workers;
  absl::Time start, measure_from, end;
  bool closed_loop = true;
  std::atomic<uint64_t> next{0};
  std::atomic<int64_t> in_flight{0};
};

struct InFlight {
  Worker* worker = nullptr;
  InFlight *prev = nullptr, *next = nullptr;  // guarded by worker->mu
  Call call;
  grpc::ClientContext ctx;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  absl::Time started;
};

// Starts the next call of the run on worker w (false when the run's calls are all started).
bool Start(Shared* s, Worker* w, absl::Time intended) {
  const uint64_t i = s->next.fetch_add(1);
  if (s->options->max_calls > 0 && i >= s->options->max_calls) return false;
  auto* f = new InFlight();
  f->worker = w;
  f->call = s->options->make_call(i);
  f->started = intended;
  if (!f->call.bearer.empty()) common::SetBearer(&f->ctx, f->call.bearer);
  grpc::Slice slice(f->call.request);
  const grpc::ByteBuffer request(&slice, 1);
  s->in_flight.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(w->mu);
    f->next = w->calls;
    if (w->calls != nullptr) w->calls->prev = f;
    w->calls = f;
  }
  f->reader = w->stub.PrepareUnaryCall(&f->ctx, f->call.method, request, &w->cq);
  f->reader->StartCall();
  f->reader->Finish(&f->response, &f->status, f);
  return true;
}

// Cancels the calls in flight for longer than the run's deadline (a stalled server).
void CancelLate(Shared* s) {
  const absl::Time late = absl::Now() - s->options->deadline;
  for (auto& w : s->workers) {
    std::lock_guard<std::mutex> lock(w->mu);
    for (InFlight* f = w->calls; f != nullptr; f = f->next) {
      if (f->started < late) f->ctx.TryCancel();
    }
  }
}

void Complete(Shared* s, InFlight* f) {
  Worker* w = f->worker;
  const absl::Time now = absl::Now();
  if (s->options->on_response) {
    std::string bytes;
    if (f->status.ok()) {
      std::vector<grpc::Slice> slices;
      (void)f->response.Dump(&slices);
      for (const auto& sl : slices) {
        bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
      }
    }
    s->options->on_response(f->call, f->status, bytes);
  }
  if (f->started >= s->measure_from && now <= s->end) {
    if (f->status.ok()) {
      ++w->ok;
      w->latencies_us.push_back(static_cast<uint32_t>(
          std::min<int64_t>(absl::ToInt64Microseconds(now - f->started), UINT32_MAX)));
    } else {
      ++w->errors;
      // A call the watchdog cancelled past the deadline counts as the deadline it missed.
      const bool late = f->status.error_code() == grpc::StatusCode::CANCELLED &&
                        now - f->started >= s->options->deadline;
      ++w->errors_by_code[common::StatusCodeName(late ? grpc::StatusCode::DEADLINE_EXCEEDED
                                                      : f->status.error_code())];
    }
  }
  // The next call starts before this one stops counting, so that in_flight reaches zero
  // only when the run is over.
  if (s->closed_loop && now < s->end) Start(s, w, now);
  {
    std::lock_guard<std::mutex> lock(w->mu);
    (f->prev != nullptr ? f->prev->next : w->calls) = f->next;
    if (f->next != nullptr) f->next->prev = f->prev;
  }
  delete f;
  s->in_flight.fetch_sub(1);
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
  for (const auto& ch : options.channels) s.workers.push_back(std::make_unique<Worker>(ch));
  s.start = absl::Now();
  s.measure_from = s.start + options.warmup;
  s.end = s.measure_from + options.duration;
  s.closed_loop = options.rate <= 0;
  for (auto& w : s.workers) {
    w->thread = std::thread([&s, worker = w.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (worker->cq.Next(&tag, &ok)) Complete(&s, static_cast<InFlight*>(tag));
    });
  }
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
  const size_t workers = s.workers.size();
  if (s.closed_loop) {
    for (int i = 0; i < options.concurrency; ++i) {
      Start(&s, s.workers[static_cast<size_t>(i) % workers].get(), absl::Now());
    }
    // Each completion starts the next call until the end (or the last counted call).
  } else {
    // Open loop: start call k at start + k / rate, whatever the completions.
    const absl::Duration interval = absl::Seconds(1.0 / options.rate);
    absl::Time next = s.start, checked = s.start;
    size_t k = 0;
    while (next < s.end) {
      absl::Time now = absl::Now();
      if (now - checked >= absl::Milliseconds(100)) {
        CancelLate(&s);
        checked = now;
      }
      if (now < next) {
        absl::SleepFor(std::min(next - now, absl::Milliseconds(1)));
        continue;
      }
      // Bound the calls in flight so that a stalled server does not exhaust memory.
      if (s.in_flight.load() < 20000) Start(&s, s.workers[k++ % workers].get(), next);
      next += interval;
    }
  }
  // Calls still in flight end by the run's end or their deadline.
  for (int tick = 0; s.in_flight.load() > 0; ++tick) {
    if (tick % 10 == 0) CancelLate(&s);
    absl::SleepFor(absl::Milliseconds(10));
  }
  for (auto& w : s.workers) {
    w->cq.Shutdown();
    w->thread.join();
  }
  if (sampler.joinable()) sampler.join();
  LoadResult r;
  uint64_t ok = 0, errors = 0;
  std::vector<uint32_t> latencies_us;
  for (const auto& w : s.workers) {
    ok += w->ok;
    errors += w->errors;
    for (const auto& [code, n] : w->errors_by_code) r.errors_by_code[code] += n;
    latencies_us.insert(latencies_us.end(), w->latencies_us.begin(), w->latencies_us.end());
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  r.calls = ok + errors;
  r.errors = errors;
  r.started = s.next.load();
  if (options.max_calls > 0) r.started = std::min(r.started, options.max_calls);
  r.seconds = options.max_calls > 0 ? absl::ToDoubleSeconds(absl::Now() - s.start)
                                    : absl::ToDoubleSeconds(options.duration);
  r.throughput = static_cast<double>(ok) / r.seconds;
  r.p50_ms = Percentile(latencies_us, 0.50);
  r.p99_ms = Percentile(latencies_us, 0.99);
  r.p999_ms = Percentile(latencies_us, 0.999);
  r.max_ms = latencies_us.empty() ? 0 : latencies_us.back() / 1000.0;
  r.offered_rate = options.rate;
  const double counted = static_cast<double>(std::max<uint64_t>(1, ok + errors));
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
      "{\"calls\": %d, \"errors\": %d, \"errors_by_code\": {%s}, \"started\": %d, "
      "\"seconds\": %.2f, "
      "\"throughput\": %.1f, \"offered_rate\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
      "\"p999_ms\": %.3f, \"max_ms\": %.3f, \"client_cpu_us_per_call\": %.1f, "
      "\"server_cpu_us_per_call\": %.1f}",
      calls, errors, errs, started, seconds, throughput, offered_rate, p50_ms, p99_ms, p999_ms,
      max_ms, client_cpu_us_per_call, server_cpu_us_per_call);
}

}  // namespace parc::sim
