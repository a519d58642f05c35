#include "server/relay_http.h"

#include <httplib.h>

#include <future>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/logging.h"

namespace parc::server {
namespace {

// The relay (its URL) whose token the request carries, or an HTTP status to answer with.
absl::StatusOr<std::string> AuthenticateRelay(const httplib::Request& req, Store* store) {
  const std::string token = common::BearerFromHeader(req.get_header_value("Authorization"));
  if (token.empty()) return absl::UnauthenticatedError("a relay token is required");
  auto credential = common::ParseCredential(token);
  if (!credential.ok()) return absl::UnauthenticatedError("not a relay token");
  auto relay = store->GetRelayCredential(credential->id);
  if (absl::IsNotFound(relay.status())) return absl::UnauthenticatedError("unknown relay token");
  if (!relay.ok()) return relay.status();
  if (!common::ConstantTimeEquals(relay->second.token_hash,
                                  common::Sha256Hex(credential->secret))) {
    return absl::UnauthenticatedError("unknown relay token");
  }
  return relay->first;
}

void Fail(httplib::Response& res, const absl::Status& status) {
  res.status = absl::IsUnauthenticated(status) ? 401 : absl::IsInvalidArgument(status) ? 400 : 503;
  if (res.status == 401) res.set_header("WWW-Authenticate", "Bearer");
  if (res.status == 503) {
    res.set_header("Retry-After", "60");
    spdlog::warn("relay API: {}", status.ToString());
  }
  res.set_content(absl::StrCat(status.message(), "\n"), "text/plain");
}

}  // namespace

void RegisterRelayRoutes(httplib::Server* http, Store* store, const common::Clock* clock) {
  http->Get("/relay/v1/artifacts", [store](const httplib::Request& req, httplib::Response& res) {
    auto url = AuthenticateRelay(req, store);
    if (!url.ok()) return Fail(res, url.status());
    auto artifacts = store->RelayArtifacts(*url);
    if (!artifacts.ok()) return Fail(res, artifacts.status());
    std::string body;
    for (const auto& a : *artifacts) {
      absl::StrAppend(&body, a.sha256, " ", a.size, " ", a.window_start, " ", a.window_end, "\n");
    }
    res.set_content(body, "text/plain");
  });
  http->Post("/relay/v1/report", [store, clock](const httplib::Request& req,
                                                httplib::Response& res) {
    auto url = AuthenticateRelay(req, store);
    if (!url.ok()) return Fail(res, url.status());
    RelayReport report;
    for (auto [name, field] :
         {std::pair<const char*, uint64_t*>{"cache_bytes", &report.cache_bytes},
          {"cache_max_bytes", &report.cache_max_bytes}}) {
      if (req.has_param(name) && !absl::SimpleAtoi(req.get_param_value(name), field)) {
        return Fail(
            res, absl::InvalidArgumentError(absl::StrCat(name, ": not a whole number of bytes")));
      }
    }
    if (req.has_param("artifacts_missing") &&
        !absl::SimpleAtoi(req.get_param_value("artifacts_missing"), &report.artifacts_missing)) {
      return Fail(res, absl::InvalidArgumentError("artifacts_missing: not a whole number"));
    }
    std::promise<absl::StatusOr<bool>> stored;
    store->RecordRelayReport(*url, report, clock->Now(),
                             [&stored](absl::StatusOr<bool> r) { stored.set_value(std::move(r)); });
    if (auto r = stored.get_future().get(); !r.ok()) return Fail(res, r.status());
    res.status = 204;
  });
}

}  // namespace parc::server
