#include "agent/linux/curl_fetcher.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/linux/curl_ca.h"
#include "common/bundle_trust.h"
#include "common/crypto.h"
#include "common/file_util.h"

namespace parc::agent {
namespace {

struct Transfer {
  CURL* curl = nullptr;
  int fd = -1;
  uint64_t expected = 0;
  uint64_t have = 0;         // bytes in the file
  uint64_t transferred = 0;  // bytes received by this call
  bool checked_status = false;
  bool restarted = false;
  bool oversize = false;
  bool write_error = false;
  common::Sha256* hash = nullptr;
  std::unique_ptr<common::Sha256> fresh_hash;
  // Pacing for the bandwidth cap (0: none).
  uint64_t rate = 0;
  absl::Time started;
};

size_t OnData(char* data, size_t size, size_t nmemb, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const size_t n = size * nmemb;
  if (!t->checked_status) {
    t->checked_status = true;
    long code = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code == 200 && t->have > 0) {
      // The server sent the whole artifact instead of the range: start over.
      if (::ftruncate(t->fd, 0) != 0 || ::lseek(t->fd, 0, SEEK_SET) != 0) {
        t->write_error = true;
        return 0;
      }
      t->have = 0;
      t->restarted = true;
      t->fresh_hash = std::make_unique<common::Sha256>();
      t->hash = t->fresh_hash.get();
    }
  }
  if (t->have + n > t->expected) {
    t->oversize = true;
    return 0;  // aborts: never read past the declared size
  }
  size_t off = 0;
  while (off < n) {
    ssize_t w = ::write(t->fd, data + off, n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      t->write_error = true;
      return 0;
    }
    off += static_cast<size_t>(w);
  }
  t->hash->Update(absl::string_view(data, n));
  t->have += n;
  t->transferred += n;
  if (t->rate > 0) {
    // libcurl 7.88's own limit (CURLOPT_MAX_RECV_SPEED_LARGE) overshoots about twice on a
    // fast link (measured here), so the transfer is paced here instead: while ahead of
    // schedule the callback waits, the socket is not read, and TCP slows the sender down.
    absl::Time due = t->started + absl::Seconds(static_cast<double>(t->transferred) /
                                                static_cast<double>(t->rate));
    absl::Duration ahead = due - absl::Now();
    if (ahead > absl::ZeroDuration()) absl::SleepFor(ahead);
  }
  return n;
}

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

absl::StatusOr<DownloadResult> DownloadArtifact(const DownloadRequest& request,
                                                const std::string& part_path,
                                                const std::string& final_path) {
  InitCurlOnce();
  DownloadResult result;
  common::Sha256 hash;
  Transfer t;
  t.expected = request.size;
  t.hash = &hash;
  t.fd = ::open(part_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (t.fd < 0) return common::ErrnoStatus("cannot open", part_path, errno);
  struct stat st;
  ::fstat(t.fd, &st);
  t.have = static_cast<uint64_t>(st.st_size);
  if (t.have > request.size) {
    if (::ftruncate(t.fd, 0) != 0) return common::ErrnoStatus("cannot truncate", part_path, errno);
    t.have = 0;
  }
  if (t.have > 0) {
    // Hash what an earlier attempt already wrote.
    char buf[1 << 16];
    uint64_t left = t.have;
    off_t pos = 0;
    while (left > 0) {
      ssize_t r = ::pread(t.fd, buf, std::min<uint64_t>(sizeof(buf), left), pos);
      if (r <= 0) return common::ErrnoStatus("cannot read", part_path, errno);
      hash.Update(absl::string_view(buf, static_cast<size_t>(r)));
      left -= static_cast<uint64_t>(r);
      pos += r;
    }
    result.resumed = true;
  }
  ::lseek(t.fd, static_cast<off_t>(t.have), SEEK_SET);

  absl::Status status;
  if (t.have < request.size) {
    CURL* curl = curl_easy_init();
    t.curl = curl;
    curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnData);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(request.connect_timeout)));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT,
                     static_cast<long>(std::max<uint64_t>(1, request.min_speed)));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(absl::ToInt64Seconds(request.stall_timeout)));
    t.rate = request.rate_limit;
    t.started = absl::Now();
    if (request.rate_limit > 0) {
      // Small receive buffer: fine-grained pacing.
      curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 16384L);
    }
    PinCa(curl, request.ca_pem);
    struct curl_slist* headers = nullptr;
    std::string range;
    if (t.have > 0) {
      range = absl::StrCat(t.have, "-");
      curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
      headers =
          curl_slist_append(headers, absl::StrCat("If-Range: \"", request.sha256, "\"").c_str());
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    }
    char error[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (t.oversize) {
      status = common::WithReason(
          absl::DataLossError(absl::StrCat("artifact ", request.sha256,
                                           ": the server sent more than "
                                           "the ",
                                           request.size, " bytes the manifest declares")),
          kReasonArtifactSizeMismatch);
    } else if (t.write_error) {
      status =
          common::WithReason(absl::ResourceExhaustedError(absl::StrCat("cannot write ", part_path)),
                             kReasonDownloadFailed);
    } else if (rc != CURLE_OK) {
      status = common::WithReason(
          absl::UnavailableError(absl::StrCat("download of ", request.url, " failed: ",
                                              error[0] != '\0' ? error : curl_easy_strerror(rc))),
          kReasonDownloadFailed);
    }
  }
  result.bytes_transferred = t.transferred;
  if (t.restarted) result.resumed = false;
  if (status.ok() && t.have < request.size) {
    status = common::WithReason(
        absl::UnavailableError(absl::StrCat("download of ", request.url, " ended after ", t.have,
                                            " of ", request.size, " bytes")),
        kReasonDownloadFailed);
  }
  if (!status.ok()) {
    ::close(t.fd);
    if (common::TrustReason(status) == kReasonArtifactSizeMismatch) ::unlink(part_path.c_str());
    return status;
  }
  std::string actual = t.hash->FinishHex();
  if (actual != request.sha256) {
    ::close(t.fd);
    ::unlink(part_path.c_str());
    return common::WithReason(
        absl::DataLossError(absl::StrCat("artifact ", request.sha256, ": downloaded bytes hash to ",
                                         actual, " — refusing it")),
        kReasonArtifactHashMismatch);
  }
  ::fsync(t.fd);
  ::close(t.fd);
  if (::rename(part_path.c_str(), final_path.c_str()) != 0) {
    return common::ErrnoStatus("cannot rename to", final_path, errno);
  }
  return result;
}

}  // namespace parc::agent
