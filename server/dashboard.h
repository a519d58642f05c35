#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/metrics.h"
#include "server/operator_auth.h"
#include "server/rollout_actions.h"
#include "server/store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace parc::server {

// Where the dashboard sends an operator after signing in: suite when it is one of the
// dashboard's own pages (path and query), "/" otherwise.
std::string SafeNextPath(const std::string& suite);

// Whether /metrics answers a request (fleet-wide figures): from the server itself (loopback),
// or with the bearer token of a region-wide operator, whatever its role.
bool MetricsAllowed(Store* store, const std::string& remote_addr, const std::string& authorization);

// The web dashboard for collectivités and operators, served by parc-server over HTTPS:
// server-rendered French HTML with inline SVG charts, no external resources, every table
// downloadable as CSV. Login with an operator token opens a session (cookie HttpOnly, Secure,
// SameSite=Strict, 8 hours); every form that changes state carries the session's CSRF token
// and is refused without it. Every page shows only what the operator's scope covers, filtered
// in the store queries. Also serves /metrics (Prometheus text format) and /healthz.
class Dashboard {
 public:
  struct Options {
    // Secure cookies need HTTPS; off only for a plaintext test server.
    bool secure_cookies = true;
    absl::Duration session_lifetime = absl::Hours(8);
    // Extra metrics appended to /metrics (rollout progress…), computed at scrape time.
    std::function<std::string()> extra_metrics;
  };

  Dashboard(Store* store, const common::Clock* clock, Metrics* metrics, RolloutActions* rollouts,
            Options options);
  void Register(httplib::Server* http);

 private:
  struct Session {
    std::string operator_id;
    std::string csrf;
    absl::Time expires;
  };

  // The signed-in operator, or nullopt (the handler then redirects to the login page).
  std::optional<Caller> SignedIn(const httplib::Request& req, Session* session);
  // Wraps a page handler: sign-in required, errors rendered as pages.
  void Page(const httplib::Request& req, httplib::Response& res,
            const std::function<void(const Caller&, const Session&, httplib::Response&)>& body);
  bool CheckCsrf(const httplib::Request& req, const Session& session);

  // The establishments of a département or commune ("departement" or "commune", and its code)
  // that the caller may see, and the area's name as pages title it.
  struct Area {
    std::set<std::string> uais;
    std::string place;
  };
  absl::StatusOr<Area> AreaInScope(const Caller& caller, const std::string& kind,
                                   const std::string& code);

  void Login(const httplib::Request& req, httplib::Response& res);
  void Logout(const httplib::Request& req, httplib::Response& res);
  void Overview(const httplib::Request& req, const Caller& caller, const Session& session,
                httplib::Response& res);
  void Establishments(const httplib::Request& req, const Caller& caller, const Session& session,
                      httplib::Response& res, const std::string& kind, const std::string& code);
  void Establishment(const httplib::Request& req, const Caller& caller, const Session& session,
                     httplib::Response& res, const std::string& uai);
  void Device(const httplib::Request& req, const Caller& caller, const Session& session,
              httplib::Response& res, const std::string& id);
  void Rollouts(const httplib::Request& req, const Caller& caller, const Session& session,
                httplib::Response& res);
  // "Santé du parc" (dashboard_health.cc).
  void HealthOverview(const httplib::Request& req, const Caller& caller, const Session& session,
                      httplib::Response& res);
  void HealthArea(const httplib::Request& req, const Caller& caller, const Session& session,
                  httplib::Response& res, const std::string& kind, const std::string& code);
  void HealthEstablishment(const httplib::Request& req, const Caller& caller,
                           const Session& session, httplib::Response& res, const std::string& uai);
  void RolloutAction(const httplib::Request& req, httplib::Response& res, const std::string& id,
                     const std::string& action);

  Store* store_;
  const common::Clock* clock_;
  Metrics* metrics_;
  RolloutActions* rollouts_;
  Options options_;
};

}  // namespace parc::server
