// The HTTPS port (artifacts, dashboard, /healthz) under hostile and careless clients: huge or
// endless requests, slow clients, too many connections, downloads crowding out the dashboard,
// weak cipher suites. A real parc-server over TLS on loopback; raw TLS clients from OpenSSL.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace parc::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Resident memory of this process (the server runs in it), in bytes.
uint64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// One TLS connection to the server, as a raw client writes it.
class TlsClient {
 public:
  // cipher_list empty: OpenSSL's defaults; otherwise TLS 1.2 with only those suites.
  explicit TlsClient(int port, const std::string& cipher_list = "") {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!cipher_list.empty()) {
      SSL_CTX_set_max_proto_version(ctx_, TLS1_2_VERSION);
      SSL_CTX_set_cipher_list(ctx_, cipher_list.c_str());
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    handshake_ok_ = SSL_connect(ssl_) == 1;
    ERR_clear_error();
  }
  ~TlsClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  bool handshake_ok() const { return handshake_ok_; }
  bool Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      int n = SSL_write(ssl_, data.data() + off, static_cast<int>(data.size() - off));
      if (n <= 0) {
        ERR_clear_error();
        return false;
      }
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads until the connection closes, the timeout passes, or a whole response head arrived
  // (when head_only).
  std::string Read(milliseconds timeout, bool head_only = true) {
    std::string out;
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (SSL_pending(ssl_) == 0) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) == 0) continue;
      }
      char buf[4096];
      int n = SSL_read(ssl_, buf, sizeof(buf));
      if (n <= 0) {
        ERR_clear_error();
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
      if (head_only && out.find("\r\n\r\n") != std::string::npos) break;
    }
    return out;
  }
  // True once the server has closed the connection (read returns end of stream).
  bool ClosedWithin(milliseconds timeout) {
    Read(timeout, /*head_only=*/false);
    return closed_;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool handshake_ok_ = false;
  bool closed_ = false;
};

class HttpGuardTest : public ::testing::Test {
 protected:
  void StartServer(std::function<void(server::HttpLimits&)> limits = nullptr) {
    server_ = std::make_unique<TestServer>(dir_.Sub("server"), 0, [&](server::ServerOptions& o) {
      o.artifact_listen = "127.0.0.1:0";
      o.http_limits.request_timeout = absl::Seconds(2);
      if (limits) limits(o.http_limits);
    });
    port_ = server_->server()->web_port();
  }
  std::unique_ptr<httplib::SSLClient> Client() {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", port_);
    c->enable_server_certificate_verification(false);
    c->set_connection_timeout(2, 0);
    c->set_read_timeout(3, 0);
    return c;
  }
  int Healthz() {
    auto c = Client();
    auto r = c->Get("/healthz");
    return r ? r->status : -1;
  }
  // Signs in to the dashboard with the admin token: 303 and a session cookie when it works.
  bool SignIn() {
    auto c = Client();
    httplib::Headers headers = {{"Origin", absl::StrCat("https://127.0.0.1:", port_)}};
    auto r =
        c->Post("/connexion", headers, absl::StrCat("jeton=", server_->admin_token(), "&suite=%2F"),
                "application/x-www-form-urlencoded");
    return r && r->status == 303 &&
           absl::StrContains(r->get_header_value("Set-Cookie"), "parc_session=");
  }
  const server::HttpGuardStats& stats() { return server_->server()->http_guard()->stats(); }

  TempDir dir_;
  std::unique_ptr<TestServer> server_;
  int port_ = 0;
};

TEST_F(HttpGuardTest, HugeBodiesAndEndlessHeadsAreRefusedBeforeTheyAreRead) {
  StartServer();
  ASSERT_EQ(Healthz(), 200);
  const uint64_t before = ResidentBytes();
  const std::string chunk(64 << 10, 'a');

  // A 1 GB sign-in form: refused on its Content-Length, the body is never read.
  {
    TlsClient c(port_);
    ASSERT_TRUE(c.handshake_ok());
    ASSERT_TRUE(
        c.Send("POST /connexion HTTP/1.1\r\nHost: x\r\nContent-Type: "
               "application/x-www-form-urlencoded\r\nContent-Length: 1073741824\r\n\r\n"));
    std::string head = c.Read(seconds(3));
    EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 413")) << head;
    uint64_t sent = 0;
    while (sent < (uint64_t{1} << 30) && c.Send(chunk)) sent += chunk.size();
    EXPECT_LT(sent, uint64_t{64} << 20) << "the server kept reading the body";
  }
  // Chunked, compressed or unannounced bodies, and bodies on GET.
  for (const std::string& request :
       {std::string("POST /connexion HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
        std::string("POST /connexion HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                    "Content-Encoding: gzip\r\n\r\n"),
        std::string("POST /connexion HTTP/1.1\r\nHost: x\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")}) {
    TlsClient c(port_);
    ASSERT_TRUE(c.Send(request));
    std::string head = c.Read(seconds(3));
    EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 411") || absl::StartsWith(head, "HTTP/1.1 400"))
        << request << " -> " << head;
    EXPECT_TRUE(c.ClosedWithin(seconds(3))) << request;
  }
  // A request line that never ends, then headers that never end.
  for (const std::string& start : {std::string("GET /"), std::string("GET / HTTP/1.1\r\nX: ")}) {
    TlsClient c(port_);
    ASSERT_TRUE(c.Send(start));
    uint64_t sent = 0;
    while (sent < (uint64_t{256} << 20) && c.Send(chunk)) sent += chunk.size();
    EXPECT_LT(sent, uint64_t{64} << 20) << start;
  }
  EXPECT_GE(stats().oversized_heads.load(), 2u);
  EXPECT_GE(stats().refused_bodies.load(), 6u);
  EXPECT_LT(ResidentBytes(), before + (uint64_t{48} << 20));
  EXPECT_EQ(Healthz(), 200);
}

TEST_F(HttpGuardTest, SlowClientsDoNotStopHealthChecksOrASignIn) {
  StartServer();
  // 64 clients that trickle a request one header byte at a time, and 64 that connect and say
  // nothing.
  std::atomic<bool> stop{false};
  std::atomic<int> cut_off{0};
  std::vector<std::thread> slow;
  for (int i = 0; i < 64; ++i) {
    slow.emplace_back([&] {
      TlsClient c(port_);
      if (!c.handshake_ok() || !c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")) return;
      while (!stop) {
        if (!c.Send("a") || c.ClosedWithin(milliseconds(200))) {
          ++cut_off;
          return;
        }
      }
    });
  }
  std::vector<int> silent;
  for (int i = 0; i < 64; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    silent.push_back(fd);
  }
  std::this_thread::sleep_for(milliseconds(500));
  for (int i = 0; i < 3; ++i) {
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(Healthz(), 200);
    EXPECT_TRUE(SignIn());
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(2));
  }
  // The trickling clients are cut off once the request deadline (2 s here) passes.
  std::this_thread::sleep_for(seconds(3));
  stop = true;
  for (auto& t : slow) t.join();
  for (int fd : silent) ::close(fd);
  EXPECT_EQ(cut_off.load(), 64);
  EXPECT_GE(stats().timed_out.load(), 64u);
}

TEST_F(HttpGuardTest, ConnectionsBeyondTheLimitAreRefusedClearlyThenServedAgain) {
  StartServer([](server::HttpLimits& l) {
    l.max_connections = 8;
    l.max_downloads = 4;
  });
  std::vector<std::unique_ptr<TlsClient>> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(std::make_unique<TlsClient>(port_));
    ASSERT_TRUE(held.back()->handshake_ok());
  }
  TlsClient extra(port_);
  ASSERT_TRUE(extra.handshake_ok());
  ASSERT_TRUE(extra.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string head = extra.Read(seconds(3));
  EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 503")) << head;
  EXPECT_TRUE(absl::StrContains(head, "Retry-After: 10")) << head;
  EXPECT_GE(stats().refused_connections.load(), 1u);

  held.clear();
  bool served = false;
  for (int i = 0; i < 40 && !served; ++i) {
    served = Healthz() == 200;
    if (!served) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(served);
}

TEST_F(HttpGuardTest, DownloadsCannotTakeTheDashboardsConnections) {
  StartServer([](server::HttpLimits& l) {
    l.max_connections = 16;
    l.max_downloads = 2;
  });
  // A 32 MiB artifact; the two downloads below read none of it, so they stay in progress.
  const std::string sha(64, 'a');
  {
    std::ofstream f(server_->server()->artifacts()->PathOf(sha), std::ios::binary);
    std::string mib(1 << 20, 'x');
    for (int i = 0; i < 32; ++i) f << mib;
  }
  const std::string get = absl::StrCat("GET /artifacts/", sha, " HTTP/1.1\r\nHost: x\r\n\r\n");
  std::vector<std::unique_ptr<TlsClient>> downloads;
  for (int i = 0; i < 2; ++i) {
    downloads.push_back(std::make_unique<TlsClient>(port_));
    ASSERT_TRUE(downloads.back()->Send(get));
    EXPECT_TRUE(absl::StartsWith(downloads.back()->Read(seconds(3)), "HTTP/1.1 200"));
  }
  TlsClient third(port_);
  ASSERT_TRUE(third.Send(get));
  std::string head = third.Read(seconds(3));
  EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 503")) << head;
  EXPECT_TRUE(absl::StrContains(head, "Retry-After: 30")) << head;
  EXPECT_EQ(Healthz(), 200);
  EXPECT_TRUE(SignIn());

  downloads.clear();
  bool served = false;
  for (int i = 0; i < 40 && !served; ++i) {
    auto c = Client();
    auto r = c->Get(absl::StrCat("/artifacts/", sha).c_str(), {{"Range", "bytes=0-9"}});
    served = r && r->status == 206 && r->body == "xxxxxxxxxx";
    if (!served) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(served);
}

TEST_F(HttpGuardTest, OnlyAeadCipherSuitesWithForwardSecrecy) {
  StartServer();
  EXPECT_FALSE(TlsClient(port_, "AES128-SHA:AES256-SHA").handshake_ok());
  EXPECT_FALSE(TlsClient(port_, "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA").handshake_ok());
  EXPECT_TRUE(
      TlsClient(port_, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256").handshake_ok());
  EXPECT_TRUE(TlsClient(port_).handshake_ok());  // TLS 1.3
}

}  // namespace
}  // namespace parc::testing
