#pragma once

#include "agent/core/platform.h"
#include "agent/windows/winhttp.h"

namespace parc::agent {

// The Windows agent's HTTP POSTs (gRPC-Web calls) with WinHTTP: the machine's proxy settings,
// the server checked against the pinned CA.
class WinHttpClient final : public HttpClient {
 public:
  absl::StatusOr<HttpAnswer> Post(const HttpPost& request) override;
  void CancelAll() override { session_.CancelAll(); }

 private:
  WinHttpSession session_;
};

}  // namespace parc::agent
