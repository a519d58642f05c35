#include "server/http_guard.h"

#include <httplib.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/grpc_web.h"

namespace parc::server {

using SteadyTime = std::chrono::steady_clock::time_point;

// The state of one TLS connection, owned by its filter BIO. Read and changed only by the
// thread serving the connection (the BIO's reads and the request callbacks run there).
struct HttpGuard::Connection {
  HttpGuardStats* stats = nullptr;
  const HttpLimits* limits = nullptr;
  // The request head (or form body) must have arrived by then; max(): no deadline.
  SteadyTime deadline = SteadyTime::max();
  // Bytes read from the client so far, and how many it may have sent by now.
  uint64_t read = 0;
  uint64_t allowance = 0;
  // Ends the connection at its next read (after a refusal, a timeout or too long a head).
  bool closed = false;

  // Ready for the next request head.
  void ExpectHead(std::chrono::steady_clock::duration within) {
    deadline = std::chrono::steady_clock::now() + within;
    allowance = read + limits->max_head_bytes;
  }
};

namespace {

// This thread serves connections beyond max_connections: their requests are refused.
thread_local bool t_refusing = false;
// This thread's current request holds a download slot.
thread_local bool t_holds_download = false;
// The response being written ends its connection.
thread_local bool t_close_after = false;

// TLS overhead allowed on top of a body's length (record headers, tags, padding).
constexpr uint64_t kTlsSlack = 4096;
// A refused connection gets this long to say what it wants before it is closed.
constexpr auto kRefusalTimeout = std::chrono::seconds(2);
// Threads serving the connections beyond the limit.
constexpr size_t kRefusalThreads = 8;

std::chrono::steady_clock::duration ToSteady(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(d));
}

// --- The filter BIO -------------------------------------------------------------------------

int FilterRead(BIO* b, char* out, int len) {
  BIO_clear_retry_flags(b);
  BIO* next = BIO_next(b);
  if (next == nullptr || out == nullptr || len <= 0) return 0;
  auto* c = static_cast<HttpGuard::Connection*>(BIO_get_data(b));
  if (c != nullptr) {
    if (c->closed) return 0;
    if (std::chrono::steady_clock::now() > c->deadline) {
      c->closed = true;
      c->stats->timed_out.fetch_add(1);
      return 0;  // end of stream: the connection is dropped
    }
    if (c->read >= c->allowance) {
      c->closed = true;
      c->stats->oversized_heads.fetch_add(1);
      return 0;
    }
    len = static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(len), c->allowance - c->read));
  }
  int n = BIO_read(next, out, len);
  BIO_copy_next_retry(b);
  if (n > 0 && c != nullptr) c->read += static_cast<uint64_t>(n);
  return n;
}

int FilterWrite(BIO* b, const char* in, int len) {
  BIO_clear_retry_flags(b);
  BIO* next = BIO_next(b);
  if (next == nullptr) return 0;
  int n = BIO_write(next, in, len);
  BIO_copy_next_retry(b);
  return n;
}

long FilterCtrl(BIO* b, int cmd, long num, void* ptr) {  // NOLINT(runtime/int): OpenSSL's type
  BIO* next = BIO_next(b);
  if (next == nullptr) return 0;
  return BIO_ctrl(next, cmd, num, ptr);
}

int FilterCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

int FilterDestroy(BIO* b) {
  delete static_cast<HttpGuard::Connection*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

int FilterType() {
  static const int type = BIO_get_new_index() | BIO_TYPE_FILTER;
  return type;
}

BIO_METHOD* FilterMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(FilterType(), "parc request guard");
    BIO_meth_set_read(m, FilterRead);
    BIO_meth_set_write(m, FilterWrite);
    BIO_meth_set_ctrl(m, FilterCtrl);
    BIO_meth_set_create(m, FilterCreate);
    BIO_meth_set_destroy(m, FilterDestroy);
    return m;
  }();
  return method;
}

int GuardIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Called by OpenSSL as a server handshake starts, before any byte is read: puts the filter
// between the TLS engine and the socket.
void OnHandshakeStart(const SSL* const_ssl, int where, int /*ret*/) {
  if ((where & SSL_CB_HANDSHAKE_START) == 0) return;
  // OpenSSL passes the connection as const to info callbacks; it is ours to change here.
  SSL* ssl = const_cast<SSL*>(const_ssl);
  BIO* rbio = SSL_get_rbio(ssl);
  if (rbio == nullptr || BIO_method_type(rbio) == FilterType()) return;
  auto* g = static_cast<HttpGuard*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), GuardIndex()));
  if (g == nullptr) return;
  BIO* filter = BIO_new(FilterMethod());
  if (filter == nullptr) return;
  auto* c = new HttpGuard::Connection();
  c->stats = g->mutable_stats();
  c->limits = &g->limits();
  c->ExpectHead(t_refusing ? kRefusalTimeout : ToSteady(g->limits().request_timeout));
  BIO_set_data(filter, c);
  // The socket BIO is both rbio and wbio: the filter takes a reference of its own, and
  // SSL_set0_rbio gives up the one the rbio held.
  BIO_up_ref(rbio);
  BIO_push(filter, rbio);
  SSL_set0_rbio(ssl, filter);
}

HttpGuard::Connection* ConnectionOf(const httplib::Request& req) {
  if (req.ssl == nullptr) return nullptr;
  BIO* rbio = SSL_get_rbio(req.ssl);
  if (rbio == nullptr || BIO_method_type(rbio) != FilterType()) return nullptr;
  return static_cast<HttpGuard::Connection*>(BIO_get_data(rbio));
}

void Refuse(httplib::Response& res, int status, absl::string_view message, int retry_after = 0) {
  res.status = status;
  res.set_header("Connection", "close");
  if (retry_after > 0) res.set_header("Retry-After", std::to_string(retry_after));
  res.set_content(std::string(message), "text/plain; charset=utf-8");
  t_close_after = true;
}

}  // namespace

// --- Threads --------------------------------------------------------------------------------

// A thread per connection, started on demand up to max_connections; connections beyond the
// limit go to a few threads that answer them 503.
class HttpGuard::Pool : public httplib::TaskQueue {
 public:
  explicit Pool(HttpGuard* guard) : guard_(guard) {}
  ~Pool() override { Join(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    bool over;
    {
      std::lock_guard<std::mutex> open_lock(guard_->mu_);
      over = guard_->open_ >= guard_->limits_.max_connections;
      if (!over) ++guard_->open_;
    }
    if (over) {
      guard_->stats_.refused_connections.fetch_add(1);
      refusals_.push_back(std::move(fn));
      if (idle_refusers_ == 0 && refusers_ < kRefusalThreads) {
        ++refusers_;
        threads_.emplace_back([this] { Work(true); });
      } else {
        refusal_cv_.notify_one();
      }
      return;
    }
    jobs_.push_back(std::move(fn));
    if (idle_ >= jobs_.size()) {
      cv_.notify_one();
    } else {
      threads_.emplace_back([this] { Work(false); });
    }
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    refusal_cv_.notify_all();
    Join();
  }

 private:
  void Join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }

  void Work(bool refusing) {
    t_refusing = refusing;
    std::unique_lock<std::mutex> lock(mu_);
    auto& queue = refusing ? refusals_ : jobs_;
    auto& cv = refusing ? refusal_cv_ : cv_;
    size_t& idle = refusing ? idle_refusers_ : idle_;
    for (;;) {
      ++idle;
      cv.wait(lock, [&] { return shutdown_ || !queue.empty(); });
      --idle;
      if (queue.empty()) return;  // shutting down
      std::function<void()> fn = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      t_close_after = false;
      fn();  // serves the connection until it closes
      guard_->ReleaseDownload();
      if (!refusing) {
        std::lock_guard<std::mutex> open_lock(guard_->mu_);
        --guard_->open_;
      }
      lock.lock();
    }
  }

  HttpGuard* guard_;
  std::mutex mu_;
  std::condition_variable cv_, refusal_cv_;
  std::deque<std::function<void()>> jobs_, refusals_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0, idle_refusers_ = 0, refusers_ = 0;
  bool shutdown_ = false;
};

// --- The guard ------------------------------------------------------------------------------

HttpGuard::HttpGuard(HttpLimits limits) : limits_(limits) {}
HttpGuard::~HttpGuard() = default;

size_t HttpGuard::open_connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

httplib::TaskQueue* HttpGuard::NewTaskQueue() { return new Pool(this); }

absl::Status HttpGuard::ConfigureTls(SSL_CTX* ctx, const std::string& cert_path,
                                     const std::string& key_path) {
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  // TLS 1.3's suites are all AEAD; TLS 1.2 is limited to ECDHE with AES-GCM or ChaCha20.
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    return absl::InternalError("HTTPS: cannot set the TLS version and cipher policy");
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_path.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key_path.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("HTTPS: cannot use the TLS certificate ", cert_path, " and key ", key_path));
  }
  SSL_CTX_set_ex_data(ctx, GuardIndex(), this);
  SSL_CTX_set_info_callback(ctx, OnHandshakeStart);
  return absl::OkStatus();
}

bool HttpGuard::TryAcquireDownload() {
  if (t_holds_download) return true;
  size_t n = downloads_.load();
  do {
    if (n >= limits_.max_downloads) return false;
  } while (!downloads_.compare_exchange_weak(n, n + 1));
  t_holds_download = true;
  return true;
}

void HttpGuard::ReleaseDownload() {
  if (!t_holds_download) return;
  t_holds_download = false;
  downloads_.fetch_sub(1);
}

namespace {

// cpp-httplib 0.11 compresses with brotli whenever the browser accepts it, at brotli's default
// quality (11: about 0.5 MB/s here, 1.4 s for a 450 KB département page) and without a setting;
// its gzip (zlib's default level) does the same page in a few milliseconds for a similar size.
// So the server answers as if the browser accepted gzip only. The request object is the
// server's own (not const); the handler only receives a const view of it.
void OfferGzipOnly(const httplib::Request& req) {
  auto& headers = const_cast<httplib::Request&>(req).headers;  // NOLINT
  auto it = headers.find("Accept-Encoding");
  if (it == headers.end()) return;
  const bool gzip = absl::StrContains(absl::AsciiStrToLower(it->second), "gzip");
  headers.erase("Accept-Encoding");
  if (gzip) headers.emplace("Accept-Encoding", "gzip");
}

}  // namespace

void HttpGuard::Install(httplib::Server* http, std::string download_prefix) {
  // Forms are held to max_form_bytes above, before their bodies are read.
  http->set_payload_max_length(
      std::max<size_t>(limits_.max_form_bytes, 2 * (limits_.max_rpc_bytes + 5) * 9 / 8));
  http->set_pre_routing_handler([this, download_prefix](const httplib::Request& req,
                                                        httplib::Response& res) {
    using Outcome = httplib::Server::HandlerResponse;
    Connection* c = ConnectionOf(req);
    OfferGzipOnly(req);
    if (t_refusing) {
      Refuse(res, 503,
             "Serveur occupé : trop de connexions, réessayez dans un instant. / Too many "
             "connections, retry shortly.\n",
             10);
      return Outcome::Handled;
    }
    // Bodies are refused before they are read, unless they are small forms.
    const bool chunked = req.has_header("Transfer-Encoding");
    const std::string length_header = req.get_header_value("Content-Length");
    uint64_t length = 0;
    if (!length_header.empty() && !absl::SimpleAtoi(length_header, &length)) {
      stats_.refused_bodies.fetch_add(1);
      Refuse(res, 400, "Content-Length invalide / invalid Content-Length\n");
      return Outcome::Handled;
    }
    if (req.method == "POST" && absl::StartsWith(req.path, kGrpcWebPrefix)) {
      // A gRPC-Web call: its message is read whole by its handler, within the limits.
      // Its handler reads a body up to twice the limit (to answer it cleanly) and drops what
      // is over the limit; larger ones are refused unread.
      const uint64_t max_body = 2 * (limits_.max_rpc_bytes + 5);
      if (req.has_header("Content-Encoding") || length > max_body) {
        stats_.refused_bodies.fetch_add(1);
        res.status = 200;
        res.set_header("Connection", "close");
        res.set_content(
            EncodeGrpcWebResponse(
                "", req.has_header("Content-Encoding")
                        ? absl::UnimplementedError("compressed request bodies are not served")
                        : absl::ResourceExhaustedError(absl::StrCat("gRPC-Web request of ", length,
                                                                    " bytes is over the limit of ",
                                                                    limits_.max_rpc_bytes + 5))),
            "application/grpc-web+proto");
        t_close_after = true;
        return Outcome::Handled;
      }
      if (c != nullptr) {
        // Chunk headers add a few bytes per chunk: 1/8 more covers chunks of 64 bytes.
        const uint64_t body = chunked || length_header.empty() ? max_body + max_body / 8 : length;
        c->allowance = c->read + body + kTlsSlack;
        c->deadline = std::chrono::steady_clock::now() + ToSteady(limits_.rpc_body_timeout);
      }
    } else if (req.method == "POST") {
      if (chunked || req.has_header("Content-Encoding") || length_header.empty()) {
        stats_.refused_bodies.fetch_add(1);
        Refuse(res, 411,
               "Un formulaire a une longueur annoncée (Content-Length), sans compression. / "
               "A form needs a Content-Length and no transfer or content encoding.\n");
        return Outcome::Handled;
      }
      if (length > limits_.max_form_bytes) {
        stats_.refused_bodies.fetch_add(1);
        Refuse(res, 413,
               absl::StrCat("Requête trop grande (", limits_.max_form_bytes,
                            " octets au plus). / Request body over ", limits_.max_form_bytes,
                            " bytes.\n"));
        return Outcome::Handled;
      }
      // The body must arrive within the same deadline as the head.
      if (c != nullptr) c->allowance = c->read + length + kTlsSlack;
    } else if (req.method == "GET" || req.method == "HEAD") {
      if (chunked || length > 0) {
        stats_.refused_bodies.fetch_add(1);
        Refuse(res, 400, "Pas de corps pour GET ou HEAD. / GET and HEAD take no body.\n");
        return Outcome::Handled;
      }
      // The head is complete: writing the response is bounded by the write timeout.
      if (c != nullptr) c->deadline = SteadyTime::max();
    } else {
      Refuse(res, 405, "Méthode non prise en charge. / Method not allowed.\n");
      res.set_header("Allow", "GET, HEAD, POST");
      return Outcome::Handled;
    }
    if (absl::StartsWith(req.path, download_prefix) && !TryAcquireDownload()) {
      stats_.refused_downloads.fetch_add(1);
      Refuse(res, 503,
             "Trop de téléchargements en cours, réessayez plus tard. / Too many downloads in "
             "progress, retry later.\n",
             30);
      return Outcome::Handled;
    }
    return Outcome::Unhandled;
  });
  http->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    ReleaseDownload();
    Connection* c = ConnectionOf(req);
    if (c == nullptr) return;
    if (t_close_after || res.get_header_value("Connection") == "close") {
      // Whatever the client still sends (the rest of a refused body) is not read: the next
      // read sees the end of the stream and httplib closes the connection at once.
      c->closed = true;
      ::shutdown(SSL_get_fd(req.ssl), SHUT_RD);
      return;
    }
    // Next request on this connection: the keep-alive wait, then the same limits.
    c->ExpectHead(ToSteady(limits_.request_timeout) + std::chrono::seconds(5));
  });
}

std::string HttpGuard::RenderPrometheus() const {
  std::string out =
      "# HELP parc_http_refused_total HTTPS requests or connections refused by the port's "
      "limits.\n# TYPE parc_http_refused_total counter\n";
  absl::StrAppend(&out, "parc_http_refused_total{reason=\"connections\"} ",
                  stats_.refused_connections.load(), "\n");
  absl::StrAppend(&out, "parc_http_refused_total{reason=\"downloads\"} ",
                  stats_.refused_downloads.load(), "\n");
  absl::StrAppend(&out, "parc_http_refused_total{reason=\"body\"} ", stats_.refused_bodies.load(),
                  "\n");
  absl::StrAppend(&out, "parc_http_refused_total{reason=\"timeout\"} ", stats_.timed_out.load(),
                  "\n");
  absl::StrAppend(&out, "parc_http_refused_total{reason=\"head_size\"} ",
                  stats_.oversized_heads.load(), "\n");
  absl::StrAppend(&out,
                  "# HELP parc_http_open_connections Connections open on the HTTPS port.\n"
                  "# TYPE parc_http_open_connections gauge\nparc_http_open_connections ",
                  open_connections(), "\n");
  absl::StrAppend(&out,
                  "# HELP parc_http_downloads Artifact downloads in progress.\n"
                  "# TYPE parc_http_downloads gauge\nparc_http_downloads ",
                  active_downloads(), "\n");
  return out;
}

}  // namespace parc::server
