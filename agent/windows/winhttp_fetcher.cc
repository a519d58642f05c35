#include "agent/windows/winhttp_fetcher.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/bundle_trust.h"
#include "common/crypto.h"
#include "common/windows_util.h"

namespace parc::agent {
namespace {

struct File {
  HANDLE h = INVALID_HANDLE_VALUE;
  ~File() { Close(); }
  void Close() {
    if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
    h = INVALID_HANDLE_VALUE;
  }
};

bool WriteAllTo(HANDLE h, const char* data, size_t n) {
  while (n > 0) {
    DWORD written = 0;
    if (!WriteFile(h, data, static_cast<DWORD>(std::min<size_t>(n, 1u << 30)), &written, nullptr)) {
      return false;
    }
    data += written;
    n -= written;
  }
  return true;
}

bool Truncate(HANDLE h) {
  LARGE_INTEGER zero{};
  return SetFilePointerEx(h, zero, nullptr, FILE_BEGIN) && SetEndOfFile(h);
}

absl::Status Failed(absl::Status status) {
  return common::WithReason(std::move(status), kReasonDownloadFailed);
}

}  // namespace

absl::StatusOr<DownloadResult> WinHttpFetcher::Fetch(const DownloadRequest& request,
                                                     const std::string& part_path,
                                                     const std::string& final_path) {
  DownloadResult result;
  const std::wstring wpart = common::Widen(part_path);
  File file;
  file.h = CreateFileW(wpart.c_str(), GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, nullptr,
                       OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (file.h == INVALID_HANDLE_VALUE) {
    return common::WindowsErrorStatus("cannot open", part_path, GetLastError());
  }
  LARGE_INTEGER size{};
  GetFileSizeEx(file.h, &size);
  uint64_t have = static_cast<uint64_t>(size.QuadPart);
  if (have > request.size) {
    if (!Truncate(file.h))
      return common::WindowsErrorStatus("cannot truncate", part_path, GetLastError());
    have = 0;
  }
  auto hash = std::make_unique<common::Sha256>();
  if (have > 0) {
    // Hash what an earlier attempt already wrote.
    char buf[1 << 16];
    uint64_t left = have;
    while (left > 0) {
      DWORD got = 0;
      if (!::ReadFile(file.h, buf, static_cast<DWORD>(std::min<uint64_t>(sizeof(buf), left)), &got,
                      nullptr) ||
          got == 0) {
        return common::WindowsErrorStatus("cannot read", part_path, GetLastError());
      }
      hash->Update(absl::string_view(buf, got));
      left -= got;
    }
    result.resumed = true;
  }

  absl::Status status;
  uint64_t transferred = 0;
  if (have < request.size) {
    WinHttpRequest r;
    r.method = L"GET";
    r.url = request.url;
    r.ca_pem = request.ca_pem;
    r.connect_timeout = request.connect_timeout;
    r.timeout = request.stall_timeout;  // each wait for data
    if (have > 0) {
      r.headers.emplace_back("Range", absl::StrCat("bytes=", have, "-"));
      r.headers.emplace_back("If-Range", absl::StrCat("\"", request.sha256, "\""));
    }
    auto exchange = session_.Send(r);
    if (!exchange.ok()) return Failed(exchange.status());
    const int code = (*exchange)->status();
    if (code == 200 && have > 0) {
      // The server sent the whole artifact instead of the range: start over.
      if (!Truncate(file.h))
        return common::WindowsErrorStatus("cannot truncate", part_path, GetLastError());
      have = 0;
      hash = std::make_unique<common::Sha256>();
      result.resumed = false;
    } else if (code != 200 && code != 206) {
      return Failed(absl::UnavailableError(
          absl::StrCat("download of ", request.url, " failed: HTTP ", code)));
    }
    const absl::Time started = absl::Now();
    // Over each stall_timeout, at least min_speed bytes/s on average (each read's own timeout
    // catches a silent server).
    absl::Time window_start = started;
    uint64_t window_bytes = 0;
    // Small reads under a bandwidth cap: fine-grained pacing.
    std::vector<char> buf(request.rate_limit > 0 ? 16384 : 65536);
    while (true) {
      auto n = (*exchange)->Read(buf.data(), buf.size());
      if (!n.ok()) {
        status = Failed(absl::UnavailableError(
            absl::StrCat("download of ", request.url, " failed: ", n.status().message())));
        break;
      }
      if (*n == 0) break;
      if (have + *n > request.size) {
        status =
            common::WithReason(absl::DataLossError(absl::StrCat(
                                   "artifact ", request.sha256, ": the server sent more than the ",
                                   request.size, " bytes the manifest declares")),
                               kReasonArtifactSizeMismatch);
        break;
      }
      if (!WriteAllTo(file.h, buf.data(), *n)) {
        status = Failed(common::WindowsErrorStatus("cannot write", part_path, GetLastError()));
        break;
      }
      hash->Update(absl::string_view(buf.data(), *n));
      have += *n;
      transferred += *n;
      if (request.min_speed > 1) {
        const absl::Duration window = absl::Now() - window_start;
        if (window >= request.stall_timeout) {
          const double rate =
              static_cast<double>(transferred - window_bytes) / absl::ToDoubleSeconds(window);
          if (rate < static_cast<double>(request.min_speed)) {
            status = Failed(absl::UnavailableError(absl::StrFormat(
                "download of %s too slow: %.0f bytes/s over the last %s, below %d", request.url,
                rate, absl::FormatDuration(window), request.min_speed)));
            break;
          }
          window_start = absl::Now();
          window_bytes = transferred;
        }
      }
      if (request.rate_limit > 0) {
        // While ahead of the cap, wait: the socket is not read and TCP slows the sender.
        const absl::Time due = started + absl::Seconds(static_cast<double>(transferred) /
                                                       static_cast<double>(request.rate_limit));
        const absl::Duration ahead = due - absl::Now();
        if (ahead > absl::ZeroDuration()) absl::SleepFor(ahead);
      }
    }
  }
  result.bytes_transferred = transferred;
  if (status.ok() && have < request.size) {
    status = Failed(absl::UnavailableError(absl::StrCat(
        "download of ", request.url, " ended after ", have, " of ", request.size, " bytes")));
  }
  if (!status.ok()) {
    file.Close();
    if (common::TrustReason(status) == kReasonArtifactSizeMismatch) DeleteFileW(wpart.c_str());
    return status;
  }
  const std::string actual = hash->FinishHex();
  if (actual != request.sha256) {
    file.Close();
    DeleteFileW(wpart.c_str());
    return common::WithReason(
        absl::DataLossError(absl::StrCat("artifact ", request.sha256, ": downloaded bytes hash to ",
                                         actual, " — refusing it")),
        kReasonArtifactHashMismatch);
  }
  FlushFileBuffers(file.h);
  file.Close();
  if (!MoveFileExW(wpart.c_str(), common::Widen(final_path).c_str(),
                   MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    return common::WindowsErrorStatus("cannot rename to", final_path, GetLastError());
  }
  return result;
}

}  // namespace parc::agent
