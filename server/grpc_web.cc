#include "server/grpc_web.h"

#include <httplib.h>

#include <condition_variable>
#include <memory>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/grpc_web_codec.h"
#include "common/logging.h"
#include "common/sampled_log.h"
#include "server/rpc_util.h"

namespace parc::server {
namespace {

using common::kGrpcWebContentType;
using common::kGrpcWebFrameHeader;

common::SampledLog& MalformedLog() {
  static common::SampledLog log(std::chrono::seconds(10));
  return log;
}

void Reply(httplib::Response& res, absl::string_view message, const absl::Status& status) {
  res.status = 200;
  res.set_header("Cache-Control", "no-store");
  res.set_content(EncodeGrpcWebResponse(message, status), kGrpcWebContentType);
}

// A request refused before it reached a handler: counted like a gRPC call of that method.
void Refuse(httplib::Response& res, Metrics* metrics, const std::string& method,
            const absl::Status& status) {
  Reply(res, "", ClientStatus(metrics, method, status));
}

// Runs one call of AgentCalls and waits for its status (the handler thread is httplib's).
template <typename Request, typename Response, typename Handler>
void Serve(absl::string_view message, const AgentCaller& caller, const std::string& method,
           Metrics* metrics, const GrpcWebOptions& options, httplib::Response& res,
           Handler handler) {
  auto request = std::make_shared<Request>();
  if (!request->ParseFromArray(message.data(), static_cast<int>(message.size()))) {
    metrics->RecordUnparseable(method);
    uint64_t suppressed = 0;
    if (MalformedLog().Take(&suppressed)) {
      spdlog::warn("gRPC-Web {}: a request did not parse ({} more not logged)", method, suppressed);
    }
    Refuse(res, metrics, method,
           absl::InvalidArgumentError(
               absl::StrCat("the request is not a valid ", method, " message")));
    return;
  }
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    absl::Status status;
    Response response;
  };
  auto state = std::make_shared<State>();
  const absl::Time start = absl::Now();
  UnaryCall call(metrics, method, [state](const absl::Status& client_status) {
    std::lock_guard<std::mutex> lock(state->mu);
    state->status = client_status;
    state->done = true;
    state->cv.notify_all();
  });
  call.Finish(handler(caller, *request, &state->response, call));
  std::unique_lock<std::mutex> lock(state->mu);
  if (!state->cv.wait_for(lock, absl::ToChronoNanoseconds(options.call_timeout),
                          [&] { return state->done; })) {
    lock.unlock();
    Reply(res, "",
          absl::DeadlineExceededError(absl::StrCat(method, " did not finish within ",
                                                   absl::FormatDuration(options.call_timeout))));
    return;
  }
  metrics->ObserveRpcDuration(method, absl::ToDoubleSeconds(absl::Now() - start));
  Reply(res, state->status.ok() ? state->response.SerializeAsString() : std::string(),
        state->status);
}

}  // namespace

void RegisterGrpcWeb(httplib::Server* http, const std::atomic<AgentCalls*>* agent_calls,
                     Metrics* metrics, GrpcWebOptions options) {
  http->Post(
      R"(/parc\.v1\.AgentService/([A-Za-z]+))",
      [agent_calls, metrics, options](const httplib::Request& req, httplib::Response& res,
                                      const httplib::ContentReader& reader) {
        const std::string method = req.matches[1];
        AgentCalls* calls = agent_calls->load();
        std::string type = req.get_header_value("Content-Type");
        type = std::string(absl::StripAsciiWhitespace(type.substr(0, type.find(';'))));
        if (type != "application/grpc-web" && type != kGrpcWebContentType) {
          // As the gRPC-over-HTTP protocol says of a content type it does not serve.
          res.status = 415;
          res.set_header("grpc-status", "3");
          res.set_header("grpc-message", PercentEncodeGrpcMessage(absl::StrCat(
                                             "content type ", type.substr(0, 80),
                                             " is not served: use application/grpc-web+proto")));
          res.set_content("Use Content-Type: application/grpc-web+proto\n", "text/plain");
          return;
        }
        // A body over the limit is read to its end and dropped, up to twice the limit, so that
        // the client reads a clean RESOURCE_EXHAUSTED rather than a reset connection (HttpGuard
        // refuses larger ones before reading them).
        std::string body;
        const size_t max_body = options.max_message_bytes + kGrpcWebFrameHeader;
        size_t received = 0;
        const bool complete = reader([&](const char* data, size_t n) {
          received += n;
          if (received <= max_body) body.append(data, n);
          return received <= 2 * max_body;
        });
        if (received > max_body) {
          if (!complete) res.set_header("Connection", "close");
          Refuse(res, metrics, method,
                 absl::ResourceExhaustedError(absl::StrCat(
                     "gRPC-Web request of ", received, "+ bytes is over the limit of ", max_body)));
          return;
        }
        auto message = DecodeGrpcWebRequest(body, options.max_message_bytes);
        if (!message.ok()) {
          metrics->RecordUnparseable(method);
          uint64_t suppressed = 0;
          if (MalformedLog().Take(&suppressed)) {
            spdlog::warn("gRPC-Web {}: {} ({} more not logged)", method, message.status().message(),
                         suppressed);
          }
          Refuse(res, metrics, method, message.status());
          return;
        }
        if (calls == nullptr) {
          Reply(res, "", absl::UnavailableError("the server is starting; retry shortly"));
          return;
        }
        AgentCaller caller;
        caller.bearer = common::BearerFromHeader(req.get_header_value("authorization"));
        using namespace parc::v1;  // NOLINT(build/namespaces): the message types of one service
        auto bind = [calls](auto member) {
          return [calls, member](const auto& who, auto& request, auto* response, UnaryCall& call) {
            return (calls->*member)(who, request, response, call);
          };
        };
        if (method == "Enroll") {
          Serve<EnrollRequest, EnrollResponse>(*message, caller, method, metrics, options, res,
                                               bind(&AgentCalls::Enroll));
        } else if (method == "CheckEnrollment") {
          Serve<EnrollRequest, CheckEnrollmentResponse>(*message, caller, method, metrics, options,
                                                        res, bind(&AgentCalls::CheckEnrollment));
        } else if (method == "CheckIn") {
          Serve<CheckInRequest, CheckInResponse>(*message, caller, method, metrics, options, res,
                                                 bind(&AgentCalls::CheckIn));
        } else if (method == "ReportInventory") {
          Serve<InventoryRequest, ReportInventoryResponse>(
              *message, caller, method, metrics, options, res, bind(&AgentCalls::ReportInventory));
        } else if (method == "ReportDeployment") {
          Serve<DeploymentReport, ReportDeploymentResponse>(
              *message, caller, method, metrics, options, res, bind(&AgentCalls::ReportDeployment));
        } else {
          // Not counted by method: the name is the client's.
          Reply(res, "",
                absl::UnimplementedError(
                    absl::StrCat("unknown method parc.v1.AgentService/", method.substr(0, 64))));
        }
      });
}

}  // namespace parc::server
