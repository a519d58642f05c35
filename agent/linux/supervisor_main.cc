// parc-agentd: what the agent daemon is between two check-ins.
//
// `parc-agent run` replaces itself with this program (execv, same process: parc-agent ->
// parc-agent-full -> parc-agentd), which starts each cycle as a child
// `parc-agent-full run --once ...` and sleeps in between. Sleeping, it holds no
// connection, no thread and none of the agent's libraries (gRPC, libcurl, libarchive,
// protobuf: about 19 MiB mapped once loaded), only libc and libstdc++: the agent a student's
// laptop carries all day is this process, a few MiB, blocked in the kernel until its timer or
// a signal (P7 of docs/performance.md). It is deliberately free of the project's libraries, which
// is why it does not use Abseil like the rest of Parc.
//
//   parc-agentd --agent PATH --splay-ms N --retry-base-ms N -- ARGS...
//
// Each cycle runs `PATH run --once ARGS...` with PARC_AGENT_NEXT_CYCLE_FD=3, on which the
// cycle writes the milliseconds to wait before the next one (the server's interval, a
// backoff after a failure, the opening of an install window). A cycle that writes nothing
// (crashed, killed) is retried after an exponential backoff. SIGTERM/SIGINT: stop the cycle
// in progress (SIGTERM to it), wait for it, exit 0. SIGHUP while sleeping: check in now.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

enum class Woken { kTimeout, kStop, kNow };

int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Sleeps for ms milliseconds in sigtimedwait (no wake-up before the deadline unless a signal
// arrives). The signals of `set` are blocked, so none is lost between two waits.
Woken Sleep(const sigset_t& set, int64_t ms) {
  const int64_t deadline = NowMs() + ms;
  while (true) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return Woken::kTimeout;
    timespec ts{static_cast<time_t>(left / 1000), static_cast<long>((left % 1000) * 1000000)};
    siginfo_t info{};
    int sig = sigtimedwait(&set, &info, &ts);
    if (sig < 0) {
      if (errno == EAGAIN) return Woken::kTimeout;
      continue;  // EINTR
    }
    if (sig == SIGTERM || sig == SIGINT) return Woken::kStop;
    if (sig == SIGHUP) return Woken::kNow;
    // SIGCHLD of a cycle already reaped: keep sleeping.
  }
}

struct Cycle {
  bool stop = false;     // a stop signal arrived during the cycle
  int64_t next_ms = -1;  // what the cycle asked for; -1: nothing (it failed to say)
};

Cycle RunCycle(const std::string& agent, const std::vector<std::string>& args, const sigset_t& set,
               const sigset_t& original) {
  Cycle result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "parc-agentd: pipe: %s\n", std::strerror(errno));
    return result;
  }
  std::vector<std::string> argv_storage = {agent, "run", "--once"};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "parc-agentd: fork: %s\n", std::strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return result;
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &original, nullptr);
    if (dup2(fds[1], 3) < 0) _exit(127);  // dup2 clears close-on-exec on fd 3
    setenv("PARC_AGENT_NEXT_CYCLE_FD", "3", 1);
    execv(agent.c_str(), argv.data());
    std::fprintf(stderr, "parc-agentd: cannot run %s: %s\n", agent.c_str(), std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  while (true) {
    siginfo_t info{};
    int sig = sigwaitinfo(&set, &info);
    if (sig < 0) continue;  // EINTR
    if (sig == SIGTERM || sig == SIGINT) {
      result.stop = true;
      kill(pid, SIGTERM);
      continue;
    }
    if (sig == SIGCHLD) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) break;
    }
    // SIGHUP during a cycle: the agent is checking in already.
  }
  std::string text;
  char buf[64];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  char* end = nullptr;
  long long ms = std::strtoll(text.c_str(), &end, 10);
  if (!text.empty() && end != text.c_str() && ms >= 0) result.next_ms = ms;
  return result;
}

int64_t ParseMs(const char* flag, const char* value) {
  char* end = nullptr;
  long long v = std::strtoll(value, &end, 10);
  if (end == value || *end != '\0' || v < 0) {
    std::fprintf(stderr, "parc-agentd: %s: not a number of milliseconds: %s\n", flag, value);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string agent;
  int64_t splay_ms = 0, retry_base_ms = 10000;
  std::vector<std::string> args;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "parc-agentd: %s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "--agent") {
      agent = argv[++i];
    } else if (a == "--splay-ms") {
      splay_ms = ParseMs("--splay-ms", argv[++i]);
    } else if (a == "--retry-base-ms") {
      retry_base_ms = ParseMs("--retry-base-ms", argv[++i]);
    } else {
      std::fprintf(stderr, "parc-agentd: unknown option %s (it is started by `parc-agent run`)\n",
                   a.c_str());
      return 2;
    }
  }
  for (; i < argc; ++i) args.emplace_back(argv[i]);
  if (agent.empty()) {
    std::fprintf(stderr,
                 "parc-agentd: --agent PATH is required (it is started by `parc-agent run`)\n");
    return 2;
  }

  sigset_t set, original;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, &original);

  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  int64_t delay = static_cast<int64_t>(static_cast<double>(splay_ms) * uniform(rng));
  int failures = 0;
  constexpr int64_t kRetryMaxMs = 3600 * 1000;
  while (true) {
    if (delay > 0 && Sleep(set, delay) == Woken::kStop) return 0;
    Cycle cycle = RunCycle(agent, args, set, original);
    if (cycle.stop) return 0;
    if (cycle.next_ms >= 0) {
      failures = 0;
      delay = cycle.next_ms;
    } else {
      // The cycle said nothing: full-jitter exponential backoff, as the agent does.
      int64_t cap = retry_base_ms;
      for (int k = 0; k < failures && cap < kRetryMaxMs; ++k) cap *= 2;
      cap = std::min(cap, kRetryMaxMs);
      ++failures;
      delay = static_cast<int64_t>(static_cast<double>(cap) * uniform(rng));
    }
  }
}
