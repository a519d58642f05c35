// The artifact download load of P12: many devices fetching artifacts at the same moment. Opens
// --concurrency HTTPS downloads at once with libcurl's multi interface (one connection each,
// as that many devices would), reads every byte and throws it away. A 503 is retried after its
// Retry-After (as the agent does, capped by --max-retry-after); another failure is counted.
//
//   parc-bench-download --url https://host:port/artifacts/<sha> [--url ...] --ca ca.pem
//       [--concurrency 2000] [--downloads N (default: --concurrency)] [--max-retry-after 5]
//
// Prints {"completed", "failed", "retried_503", "bytes", "seconds", "mib_per_s",
// "client_cpu_s"} on stdout.
#include <curl/curl.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/openssl_exit.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Download {
  CURL* easy = nullptr;
  std::string url;
  uint64_t bytes = 0;
  long retry_after = 0;
  Clock::time_point not_before{};
  int attempts = 0;
};

size_t Discard(char*, size_t size, size_t n, void* user) {
  static_cast<Download*>(user)->bytes += size * n;
  return size * n;
}

size_t Header(char* buffer, size_t size, size_t n, void* user) {
  std::string line(buffer, size * n);
  static constexpr char kRetry[] = "retry-after:";
  if (line.size() > sizeof(kRetry) - 1) {
    std::string name = line.substr(0, sizeof(kRetry) - 1);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == kRetry) {
      static_cast<Download*>(user)->retry_after =
          std::strtol(line.c_str() + sizeof(kRetry) - 1, nullptr, 10);
    }
  }
  return size * n;
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  parc::common::KeepOpenSslStateAtExit();  // common/openssl_exit.h: libcurl's TLS
  std::vector<std::string> urls;
  std::string ca;
  int concurrency = 2000;
  int downloads = 0;
  long max_retry_after = 5;
  CLI::App app{"P12's load: concurrent HTTPS artifact downloads"};
  app.add_option("--url", urls, "Artifact URL (repeat: taken in turn)")->required();
  app.add_option("--ca", ca, "CA certificate of the server")->required();
  app.add_option("--concurrency", concurrency, "Downloads in flight at once")
      ->check(CLI::Range(1, 20000));
  app.add_option("--downloads", downloads, "Downloads in all (default: --concurrency)");
  app.add_option("--max-retry-after", max_retry_after, "Cap on a 503's Retry-After, seconds");
  CLI11_PARSE(app, argc, argv);
  if (downloads <= 0) downloads = concurrency;

  rlimit fds{};
  getrlimit(RLIMIT_NOFILE, &fds);
  fds.rlim_cur = fds.rlim_max;
  setrlimit(RLIMIT_NOFILE, &fds);

  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(concurrency));
  std::vector<Download> all(static_cast<size_t>(downloads));
  std::deque<Download*> waiting;
  for (size_t i = 0; i < all.size(); ++i) {
    all[i].url = urls[i % urls.size()];
    waiting.push_back(&all[i]);
  }
  auto start_one = [&](Download* d) {
    if (d->easy == nullptr) d->easy = curl_easy_init();
    CURL* e = d->easy;
    curl_easy_reset(e);
    d->bytes = 0;
    d->retry_after = 0;
    d->attempts++;
    curl_easy_setopt(e, CURLOPT_URL, d->url.c_str());
    curl_easy_setopt(e, CURLOPT_CAINFO, ca.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, Discard);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, Header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(e, CURLOPT_PRIVATE, d);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
    // Every device is its own connection.
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_multi_add_handle(multi, e);
  };

  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  int in_flight = 0, completed = 0, failed = 0, retried = 0;
  uint64_t bytes = 0;
  std::vector<Download*> later;  // 503s waiting for their Retry-After
  while (completed + failed < downloads) {
    const auto now = Clock::now();
    for (auto it = later.begin(); it != later.end();) {
      if ((*it)->not_before <= now) {
        waiting.push_front(*it);
        it = later.erase(it);
      } else {
        ++it;
      }
    }
    while (in_flight < concurrency && !waiting.empty()) {
      start_one(waiting.front());
      waiting.pop_front();
      in_flight++;
    }
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Download* d = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &d);
      long code = 0;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
      const CURLcode result = msg->data.result;
      curl_multi_remove_handle(multi, msg->easy_handle);
      in_flight--;
      if (result == CURLE_OK && code == 200) {
        completed++;
        bytes += d->bytes;
        curl_easy_cleanup(d->easy);
        d->easy = nullptr;
      } else if (result == CURLE_OK && code == 503 && d->attempts < 100) {
        retried++;
        const long wait = std::min(std::max(d->retry_after, 1L), max_retry_after);
        d->not_before = Clock::now() + std::chrono::seconds(wait);
        later.push_back(d);
      } else {
        failed++;
        std::cerr << "download " << d->url << ": "
                  << (result != CURLE_OK ? curl_easy_strerror(result) : "HTTP") << " (HTTP " << code
                  << ")\n";
        curl_easy_cleanup(d->easy);
        d->easy = nullptr;
      }
    }
    if (in_flight > 0) {
      curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    } else if (!later.empty()) {
      struct timespec pause = {0, 50 * 1000 * 1000};
      nanosleep(&pause, nullptr);
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  curl_multi_cleanup(multi);
  curl_global_cleanup();
  std::printf(
      "{\"completed\": %d, \"failed\": %d, \"retried_503\": %d, \"bytes\": %llu, "
      "\"seconds\": %.3f, \"mib_per_s\": %.1f, \"client_cpu_s\": %.2f}\n",
      completed, failed, retried, static_cast<unsigned long long>(bytes), seconds,
      static_cast<double>(bytes) / 1048576.0 / seconds, CpuSeconds() - cpu0);
  return failed == 0 ? 0 : 1;
}
