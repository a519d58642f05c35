#pragma once

// HTTPS with WinHTTP, for the Windows agent's gRPC-Web calls and artifact downloads. WinHTTP
// follows the machine's proxy configuration (the automatic proxy settings or `netsh winhttp set
// proxy`, as school networks set them). The server must chain to Parc's pinned CA: WinHTTP's own
// check against the Windows root store is replaced by PinnedCa (the CA is not added to the
// machine's trusted roots, where it would vouch for every site), while WinHTTP still checks the
// host name and the validity dates.

#include <windows.h>
// windows.h first.
#include <wincrypt.h>
#include <winhttp.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace parc::agent {

// The CA certificates (PEM, one or more) a server's certificate must chain to.
class PinnedCa {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PinnedCa>> FromPem(const std::string& pem);
  ~PinnedCa();
  PinnedCa(const PinnedCa&) = delete;
  PinnedCa& operator=(const PinnedCa&) = delete;

  // OK when leaf is one of the CAs or is signed by one of them, directly or through the
  // intermediate CAs the server sent (at most 4), every certificate within its dates.
  [[nodiscard]] absl::Status Check(PCCERT_CONTEXT leaf) const;

 private:
  PinnedCa() = default;
  std::vector<PCCERT_CONTEXT> anchors_;
};

struct WinHttpRequest {
  std::wstring method = L"POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // PEM of the pinned CA; "" for http:// URLs.
  std::string ca_pem;
  // For each of resolving, connecting, sending and each wait for data.
  absl::Duration timeout = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(15);
  // The request carries a secret (an enrollment token, a device credential): the server's
  // certificate is checked on a request without it first (see WinHttpSession::Send).
  bool carries_secret = false;
};

// One request whose answer's status line and headers have arrived; the body is read with Read.
class WinHttpExchange {
 public:
  ~WinHttpExchange();
  int status() const { return status_; }
  // Header names lower-cased.
  const std::map<std::string, std::string>& headers() const { return headers_; }
  // Up to n bytes of the body; 0 at its end.
  [[nodiscard]] absl::StatusOr<size_t> Read(char* buf, size_t n);

 private:
  friend class WinHttpSession;
  WinHttpExchange() = default;
  class WinHttpSession* session_ = nullptr;
  HINTERNET connect_ = nullptr;
  HINTERNET request_ = nullptr;
  std::string url_;
  int status_ = 0;
  std::map<std::string, std::string> headers_;
};

// A WinHTTP session (its connections are reused between requests). Thread-safe.
class WinHttpSession {
 public:
  WinHttpSession();
  ~WinHttpSession();
  WinHttpSession(const WinHttpSession&) = delete;
  WinHttpSession& operator=(const WinHttpSession&) = delete;

  // Sends the request and waits for the answer's headers. UNAVAILABLE when no answer came
  // (name resolution, connection, TLS, a certificate not from the pinned CA),
  // DEADLINE_EXCEEDED on a timeout, CANCELLED after CancelAll.
  //
  // The pinned CA is checked in WinHTTP's SENDING_REQUEST callback, after the TLS handshake and
  // before the request leaves (a refused request's handle is closed there, which aborts it on
  // Windows), and again once the answer has arrived. Wine's WinHTTP sends the request whatever
  // the callback does, so a request carrying a secret is preceded, until one succeeds on this
  // session, by GET /healthz without it: a server outside the pinned CA never sees the secret,
  // on Windows or under Wine, and the request then normally reuses the checked connection.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<WinHttpExchange>> Send(const WinHttpRequest& r);
  // Ends the requests in flight and makes later ones fail with CANCELLED.
  void CancelAll();
  bool cancelled() const { return cancelled_; }

 private:
  friend class WinHttpExchange;
  void Forget(HINTERNET request);

  // One exchange, without the preflight.
  absl::StatusOr<std::unique_ptr<WinHttpExchange>> SendOnce(const WinHttpRequest& r);

  HINTERNET session_ = nullptr;
  std::atomic<bool> cancelled_{false};
  // Origins (scheme://host:port) whose certificate passed the check on this session.
  std::set<std::string> verified_origins_;
  std::mutex mu_;
  std::set<HINTERNET> in_flight_;
};

}  // namespace parc::agent
