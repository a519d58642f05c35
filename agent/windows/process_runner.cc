#include "agent/windows/process_runner.h"

#include <windows.h>

#include "absl/strings/str_cat.h"
#include "common/windows_util.h"

namespace parc::agent {
namespace {

struct Handle {
  HANDLE h = nullptr;
  ~Handle() {
    if (h != nullptr && h != INVALID_HANDLE_VALUE) CloseHandle(h);
  }
};

void KeepTail(std::string* tail, const char* data, size_t n, size_t max) {
  tail->append(data, n);
  if (tail->size() > max) tail->erase(0, tail->size() - max);
}

}  // namespace

std::wstring WindowsCommandLine(const std::vector<std::string>& argv) {
  std::wstring line;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i > 0) line += L' ';
    const std::wstring arg = common::Widen(argv[i]);
    if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) {
      line += arg;
      continue;
    }
    // Quoted: backslashes are literal except before a quote, where they are doubled.
    line += L'"';
    size_t backslashes = 0;
    for (wchar_t c : arg) {
      if (c == L'\\') {
        ++backslashes;
      } else if (c == L'"') {
        line.append(backslashes * 2 + 1, L'\\');
        line += c;
        backslashes = 0;
      } else {
        line.append(backslashes, L'\\');
        line += c;
        backslashes = 0;
      }
    }
    line.append(backslashes * 2, L'\\');
    line += L'"';
  }
  return line;
}

absl::StatusOr<CommandResult> WindowsProcessRunner::Run(const std::vector<std::string>& argv,
                                                        absl::Duration timeout,
                                                        size_t tail_bytes) const {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  Handle read_end, write_end, null_in;
  if (!CreatePipe(&read_end.h, &write_end.h, &inherit, 0)) {
    return common::WindowsErrorStatus("cannot create a pipe for", argv[0], GetLastError());
  }
  SetHandleInformation(read_end.h, HANDLE_FLAG_INHERIT, 0);
  null_in.h = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                          OPEN_EXISTING, 0, nullptr);

  Handle job;
  job.h = CreateJobObjectW(nullptr, nullptr);
  if (job.h == nullptr) {
    return common::WindowsErrorStatus("cannot create a job for", argv[0], GetLastError());
  }
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits{};
  limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  SetInformationJobObject(job.h, JobObjectExtendedLimitInformation, &limits, sizeof(limits));

  STARTUPINFOW si{};
  si.cb = sizeof(si);
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = null_in.h;
  si.hStdOutput = write_end.h;
  si.hStdError = write_end.h;
  PROCESS_INFORMATION pi{};
  std::wstring line = WindowsCommandLine(argv);
  if (!CreateProcessW(nullptr, line.data(), nullptr, nullptr, TRUE,
                      CREATE_SUSPENDED | CREATE_NO_WINDOW | CREATE_UNICODE_ENVIRONMENT, nullptr,
                      nullptr, &si, &pi)) {
    DWORD err = GetLastError();
    if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) {
      return absl::NotFoundError(absl::StrCat("no such program: ", argv[0]));
    }
    return common::WindowsErrorStatus("cannot start", argv[0], err);
  }
  Handle process, thread;
  process.h = pi.hProcess;
  thread.h = pi.hThread;
  AssignProcessToJobObject(job.h, process.h);
  ResumeThread(thread.h);
  CloseHandle(write_end.h);  // the child holds the only write end now
  write_end.h = nullptr;

  CommandResult result;
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  bool exited = false;
  while (true) {
    DWORD available = 0;
    // Drain what is there; ReadFile does not block when PeekNamedPipe says there is data.
    while (PeekNamedPipe(read_end.h, nullptr, 0, nullptr, &available, nullptr) && available > 0) {
      DWORD got = 0;
      if (!::ReadFile(read_end.h, buf, std::min<DWORD>(available, sizeof(buf)), &got, nullptr) ||
          got == 0) {
        break;
      }
      KeepTail(&result.output_tail, buf, got, tail_bytes);
    }
    if (exited) break;
    DWORD wait = WaitForSingleObject(process.h, 20);
    if (wait == WAIT_OBJECT_0) {
      exited = true;  // one more pass drains what it wrote last
      continue;
    }
    if (absl::Now() >= deadline) {
      TerminateJobObject(job.h, 1);
      WaitForSingleObject(process.h, 5000);
      result.timed_out = true;
      exited = true;
    }
  }
  DWORD code = 0;
  GetExitCodeProcess(process.h, &code);
  result.exit_status = static_cast<int>(code);
  // Whatever the program left running dies with the job when job.h closes.
  return result;
}

}  // namespace parc::agent
