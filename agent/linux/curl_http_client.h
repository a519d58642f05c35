#pragma once

#include <atomic>

#include "agent/core/platform.h"

namespace parc::agent {

// HTTP POSTs with libcurl, over HTTP/1.1 (gRPC-Web), through the proxy the environment names
// (https_proxy, no_proxy: libcurl reads them), checking the server against the given CA.
class CurlHttpClient final : public HttpClient {
 public:
  absl::StatusOr<HttpAnswer> Post(const HttpPost& request) override;
  void CancelAll() override { cancelled_ = true; }

 private:
  std::atomic<bool> cancelled_{false};
};

}  // namespace parc::agent
