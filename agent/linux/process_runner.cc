#include "agent/linux/process_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace parc::agent {
namespace {

std::string ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs =
      path != nullptr ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (absl::string_view dir : absl::StrSplit(dirs, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout, size_t tail_bytes) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  std::string program = ResolveProgram(argv[0]);
  struct stat st;
  if (program.empty() || ::stat(program.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("command not found: ", argv[0]));
  }
  // Everything the child needs is prepared before fork: it only calls async-signal-safe
  // functions.
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return absl::ResourceExhaustedError("fork failed");
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(pipe_fds[1], 1);
    ::dup2(pipe_fds[1], 2);
    ::execv(program.c_str(), cargv.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  ::close(pipe_fds[1]);
  CommandResult result;
  std::string tail;
  const absl::Time deadline = absl::Now() + timeout;
  char buf[8192];
  bool open = true;
  while (open) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    struct pollfd pfd = {pipe_fds[0], POLLIN, 0};
    int ms = static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left), 1000));
    int r = ::poll(&pfd, 1, ms);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    ssize_t n = ::read(pipe_fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      open = false;
      break;
    }
    tail.append(buf, static_cast<size_t>(n));
    if (tail.size() > 2 * tail_bytes) tail.erase(0, tail.size() - tail_bytes);
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &status, result.timed_out ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (w == 0) {
      // Output closed but the process lingers (it closed its stdout): wait, within the timeout.
      if (absl::Now() >= deadline) {
        result.timed_out = true;
        ::kill(-pid, SIGKILL);
        continue;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  // Grandchildren left behind in the group do not outlive the install.
  ::kill(-pid, SIGKILL);
  if (WIFEXITED(status)) {
    result.exit_status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_status = 128 + WTERMSIG(status);
  }
  if (tail.size() > tail_bytes) tail.erase(0, tail.size() - tail_bytes);
  result.output_tail = std::move(tail);
  return result;
}

}  // namespace parc::agent
