#include "server/artifact_http.h"

#include <fcntl.h>
#include <httplib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/http_listen.h"
#include "common/logging.h"

namespace parc::server {
namespace {

// An open artifact file, shared by the content provider until the response is sent.
struct OpenFile {
  explicit OpenFile(int f) : fd(f) {}
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
  int fd;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ArtifactHttpServer>> ArtifactHttpServer::Start(
    const ArtifactStore* store, const Options& options) {
  std::unique_ptr<ArtifactHttpServer> s(new ArtifactHttpServer());
  s->guard_ = std::make_unique<HttpGuard>(options.limits);
  HttpGuard* guard = s->guard_.get();
  if (!options.cert_path.empty()) {
    absl::Status tls;
    auto ssl = std::make_unique<httplib::SSLServer>([&](SSL_CTX& ctx) {
      tls = guard->ConfigureTls(&ctx, options.cert_path, options.key_path);
      return tls.ok();
    });
    if (!tls.ok()) return tls;
    if (!ssl->is_valid()) return absl::InternalError("artifact server: no TLS context");
    s->http_ = std::move(ssl);
  } else {
    s->http_ = std::make_unique<httplib::Server>();
  }
  s->bytes_served_ = std::make_shared<std::atomic<uint64_t>>(0);
  auto served = s->bytes_served_;
  s->http_->new_task_queue = [guard] { return guard->NewTaskQueue(); };
  // httplib's default sets SO_REUSEPORT, which lets a second server bind the same port and
  // take half of the connections: the port is this server's alone.
  s->http_->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // A silent client is dropped after 5 s; HttpGuard bounds a trickling one.
  s->http_->set_read_timeout(5, 0);
  // Headers and body leave in separate writes: without this, Nagle and delayed ACKs hold
  // every response back ~40 ms.
  s->http_->set_tcp_nodelay(true);
  s->http_->set_write_timeout(60, 0);
  s->http_->set_keep_alive_timeout(5);
  s->http_->set_keep_alive_max_count(100);
  guard->Install(s->http_.get(), "/artifacts/");
  s->http_->Get(R"(/artifacts/([0-9a-f]{64}))", [store, served](const httplib::Request& req,
                                                                httplib::Response& res) {
    const std::string sha = req.matches[1];
    const std::string etag = absl::StrCat("\"", sha, "\"");
    // With several nodes, the first request for an artifact this node has not served yet
    // copies it from the database.
    if (absl::Status local = store->EnsureLocal(sha); !local.ok()) {
      res.status = absl::IsNotFound(local) ? 404 : 503;
      if (res.status == 503) {
        spdlog::error("artifact {}: {}", sha, local.ToString());
        res.set_header("Retry-After", "30");
      }
      res.set_content(res.status == 404 ? "unknown artifact\n" : "artifact unavailable\n",
                      "text/plain");
      return;
    }
    int fd = ::open(store->PathOf(sha).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      res.status = 404;
      res.set_content("unknown artifact\n", "text/plain");
      return;
    }
    auto file = std::make_shared<OpenFile>(fd);
    struct stat st;
    ::fstat(fd, &st);
    const auto size = static_cast<size_t>(st.st_size);
    res.set_header("ETag", etag);
    res.set_header("Accept-Ranges", "bytes");
    res.set_header("Cache-Control", "public, max-age=31536000, immutable");
    // If-Range with another validator: the client's partial copy is of something else, so
    // it gets the whole artifact (RFC 9110 13.1.5). httplib applies Range from req.ranges.
    auto& ranges = const_cast<httplib::Request&>(req).ranges;
    if (req.has_header("If-Range") && req.get_header_value("If-Range") != etag) ranges.clear();
    // httplib takes ranges as given: one past the end would announce bytes that do not exist.
    // Cut at the end, as RFC 9110 14.1.2 says (a relay asks for whole 1 MiB slices); a range
    // that starts past it cannot be satisfied (416).
    const auto end = static_cast<ssize_t>(size);
    for (auto& [first, last] : ranges) {
      if (first < 0) {  // the last `last` bytes
        last = std::min(last, end);
        continue;
      }
      if (first >= end) {
        res.status = 416;
        res.set_header("Content-Range", absl::StrCat("bytes */", size));
        return;
      }
      if (last < 0 || last >= end) last = end - 1;
    }
    res.set_content_provider(size, "application/octet-stream",
                             [file, served](size_t offset, size_t length, httplib::DataSink& sink) {
                               char buf[64 * 1024];
                               size_t n = std::min(length, sizeof(buf));
                               ssize_t r = ::pread(file->fd, buf, n, static_cast<off_t>(offset));
                               if (r <= 0) return false;
                               if (!sink.write(buf, static_cast<size_t>(r))) return false;
                               served->fetch_add(static_cast<uint64_t>(r));
                               return true;
                             });
  });
  if (options.register_routes) options.register_routes(s->http_.get());
  s->port_ = options.port == 0
                 ? s->http_->bind_to_any_port(options.host.c_str())
                 : (s->http_->bind_to_port(options.host.c_str(), options.port) ? options.port : -1);
  if (s->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("artifact server: cannot listen on ", options.host, ":", options.port));
  }
  httplib::Server* http = s->http_.get();
  s->thread_ = common::ListenInBackground(http);
  return s;
}

uint64_t ArtifactHttpServer::bytes_served() const { return bytes_served_->load(); }

void ArtifactHttpServer::Stop() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

ArtifactHttpServer::~ArtifactHttpServer() { Stop(); }

}  // namespace parc::server
