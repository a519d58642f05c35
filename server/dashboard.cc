#include "server/dashboard.h"

#include <httplib.h>

#include <algorithm>
#include <future>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/csv.h"
#include "common/grpc_util.h"
#include "common/inventory_format.h"
#include "common/inventory_util.h"
#include "common/logging.h"
#include "common/uai.h"
#include "server/dashboard_html.h"

namespace parc::server {

using web::CookieValue;
using web::Html;
using web::Layout;
using web::SendHtml;
using web::UrlEncode;

namespace {

constexpr char kCookie[] = "parc_session";

}  // namespace

bool MetricsAllowed(Store* store, const std::string& remote_addr,
                    const std::string& authorization) {
  const bool loopback = remote_addr == "::1" || absl::StartsWith(remote_addr, "127.") ||
                        absl::StartsWith(remote_addr, "::ffff:127.");
  if (loopback) return true;
  auto caller = AuthenticateOperator(store, common::BearerFromHeader(authorization), {});
  return caller.ok() && caller->scope.is_region();
}

std::string SafeNextPath(const std::string& suite) {
  // One of the dashboard's own pages, with a query of the characters its links use. Anything
  // else (absolute or protocol-relative URLs, backslashes, tabs and newlines that browsers
  // strip from "/\t/evil.example") goes to the overview.
  static const std::regex kPage(
      "/(departement/[0-9AB]{2,3}|commune/[0-9AB]{5}|etablissement/[0-9]{7}[A-Z]|"
      "appareil/d[0-9a-f]{16}|deploiements|sante|sante/(departement|commune)/[0-9AB]{2,5}|"
      "sante/etablissement/[0-9]{7}[A-Z])?(\\?[A-Za-z0-9=&%._@+-]*)?");
  return suite.size() <= 512 && std::regex_match(suite, kPage) ? suite : "/";
}

Dashboard::Dashboard(Store* store, const common::Clock* clock, Metrics* metrics,
                     RolloutActions* rollouts, Options options)
    : store_(store),
      clock_(clock),
      metrics_(metrics),
      rollouts_(rollouts),
      options_(std::move(options)) {}

std::optional<Caller> Dashboard::SignedIn(const httplib::Request& req, Session* session) {
  std::string id = CookieValue(req, kCookie);
  if (id.empty() || id.size() > 128) return std::nullopt;
  // In the database, so that any node answers for a session another node opened.
  auto stored = store_->GetSession(common::Sha256Hex(id), clock_->Now());
  if (!stored.ok()) {
    if (!absl::IsNotFound(stored.status())) {
      spdlog::warn("dashboard: cannot read a session: {}", stored.status().ToString());
    }
    return std::nullopt;
  }
  *session = Session{stored->operator_id, stored->csrf, stored->expires_at};
  // The operator may have been revoked since it signed in.
  auto op = store_->GetOperator(session->operator_id);
  if (!op.ok() || op->revoked_at.has_value()) return std::nullopt;
  auto scope = Scope::Parse(op->scope);
  if (!scope.ok()) return std::nullopt;
  return Caller{std::move(*op), std::move(*scope)};
}

bool Dashboard::CheckCsrf(const httplib::Request& req, const Session& session) {
  // A browser says where a request comes from: only our own pages may post.
  if (req.has_header("Sec-Fetch-Site")) {
    std::string site = req.get_header_value("Sec-Fetch-Site");
    if (site != "same-origin" && site != "none") return false;
  }
  if (req.has_header("Origin")) {
    std::string origin = req.get_header_value("Origin");
    std::string host = req.get_header_value("Host");
    if (origin != absl::StrCat("https://", host) && origin != absl::StrCat("http://", host)) {
      return false;
    }
  }
  std::string token = req.has_param("csrf") ? req.get_param_value("csrf") : "";
  return !token.empty() && common::ConstantTimeEquals(token, session.csrf);
}

void Dashboard::Page(
    const httplib::Request& req, httplib::Response& res,
    const std::function<void(const Caller&, const Session&, httplib::Response&)>& body) {
  Session session;
  auto caller = SignedIn(req, &session);
  if (!caller.has_value()) {
    res.status = 303;
    res.set_header("Location", absl::StrCat("/connexion?suite=", UrlEncode(req.target)));
    return;
  }
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Content-Security-Policy",
                 "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                 "form-action 'self'; frame-ancestors 'none'");
  body(*caller, session, res);
}

void Dashboard::Register(httplib::Server* http) {
  http->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    // Red when the database cannot be read, or while writes fail (disk full, I/O errors).
    auto ok = store_->CountOperators();
    const bool writable = store_->Writable();
    res.status = ok.ok() && writable ? 200 : 503;
    res.set_content(!ok.ok()    ? "storage unavailable: reads fail\n"
                    : !writable ? "storage unavailable: writes fail (disk full?)\n"
                                : "ok\n",
                    "text/plain");
  });
  http->Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    // Fleet-wide figures: for a scraper on the server itself, or one presenting the token of
    // a region-wide operator (Prometheus: authorization.credentials_file).
    if (!MetricsAllowed(store_, req.remote_addr, req.get_header_value("Authorization"))) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"parc metrics\"");
      res.set_content("metrics need a region-wide operator token (Authorization: Bearer)\n",
                      "text/plain; charset=utf-8");
      return;
    }
    std::string text = metrics_->RenderPrometheus();
    if (options_.extra_metrics) text += options_.extra_metrics();
    res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
  });
  http->Get("/connexion", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string suite =
        SafeNextPath(req.has_param("suite") ? req.get_param_value("suite") : "");
    Html error;
    if (req.has_param("erreur")) {
      error = Html::Of(
          "<p class=\"error\" role=\"alert\">Jeton refusé : vérifiez-le ou "
          "demandez-en un nouveau à votre administrateur.</p>");
    }
    SendHtml(res, Layout("Connexion", nullptr, "",
                         Html::Of("<div class=\"card\" style=\"max-width:32rem;margin:auto\">"
                                  "<h1>Connexion</h1>",
                                  error,
                                  "<form method=\"post\" action=\"/connexion\"><label "
                                  "for=\"jeton\">Jeton d'opérateur</label><input "
                                  "type=\"password\" id=\"jeton\" name=\"jeton\" "
                                  "autocomplete=\"current-password\" required>"
                                  "<input type=\"hidden\" name=\"suite\" value=\"",
                                  suite,
                                  "\"><p><button class=\"btn\" type=\"submit\">Se "
                                  "connecter</button></p></form></div>")));
  });
  http->Post("/connexion",
             [this](const httplib::Request& req, httplib::Response& res) { Login(req, res); });
  http->Post("/deconnexion",
             [this](const httplib::Request& req, httplib::Response& res) { Logout(req, res); });
  http->Get("/", [this](const httplib::Request& req, httplib::Response& res) {
    Page(req, res,
         [&](const Caller& c, const Session& s, httplib::Response& r) { Overview(req, c, s, r); });
  });
  http->Get(R"(/departement/([0-9AB]{2,3}))",
            [this](const httplib::Request& req, httplib::Response& res) {
              Page(req, res, [&](const Caller& c, const Session& s, httplib::Response& r) {
                Establishments(req, c, s, r, "departement", req.matches[1]);
              });
            });
  http->Get(R"(/commune/([0-9AB]{5}))",
            [this](const httplib::Request& req, httplib::Response& res) {
              Page(req, res, [&](const Caller& c, const Session& s, httplib::Response& r) {
                Establishments(req, c, s, r, "commune", req.matches[1]);
              });
            });
  http->Get(R"(/etablissement/([0-9]{7}[A-Z]))",
            [this](const httplib::Request& req, httplib::Response& res) {
              Page(req, res, [&](const Caller& c, const Session& s, httplib::Response& r) {
                Establishment(req, c, s, r, req.matches[1]);
              });
            });
  http->Get(R"(/appareil/(d[0-9a-f]{16}))",
            [this](const httplib::Request& req, httplib::Response& res) {
              Page(req, res, [&](const Caller& c, const Session& s, httplib::Response& r) {
                Device(req, c, s, r, req.matches[1]);
              });
            });
  http->Get("/deploiements", [this](const httplib::Request& req, httplib::Response& res) {
    Page(req, res,
         [&](const Caller& c, const Session& s, httplib::Response& r) { Rollouts(req, c, s, r); });
  });
  http->Get("/sante", [this](const httplib::Request& req, httplib::Response& res) {
    Page(req, res, [&](const Caller& c, const Session& s, httplib::Response& r) {
      HealthOverview(req, c, s, r);
    });
  });
  http->Get(R"(/sante/(departement|commune)/([0-9AB]{2,5}))",
            [this](const httplib::Request& req, httplib::Response& res) {
              Page(req, res, [&](const Caller& c, const Session& s, httplib::Response& r) {
                HealthArea(req, c, s, r, req.matches[1], req.matches[2]);
              });
            });
  http->Get(R"(/sante/etablissement/([0-9]{7}[A-Z]))",
            [this](const httplib::Request& req, httplib::Response& res) {
              Page(req, res, [&](const Caller& c, const Session& s, httplib::Response& r) {
                HealthEstablishment(req, c, s, r, req.matches[1]);
              });
            });
  http->Post(R"(/deploiements/(r[0-9a-f]{8})/(pause|reprise))",
             [this](const httplib::Request& req, httplib::Response& res) {
               RolloutAction(req, res, req.matches[1], req.matches[2]);
             });
}

void Dashboard::Login(const httplib::Request& req, httplib::Response& res) {
  const std::string suite =
      SafeNextPath(req.has_param("suite") ? req.get_param_value("suite") : "");
  if (req.has_header("Origin")) {
    std::string origin = req.get_header_value("Origin");
    std::string host = req.get_header_value("Host");
    if (origin != absl::StrCat("https://", host) && origin != absl::StrCat("http://", host)) {
      res.status = 403;
      res.set_content("Requête d'un autre site refusée.\n", "text/plain; charset=utf-8");
      return;
    }
  }
  auto caller =
      AuthenticateOperator(store_, req.has_param("jeton") ? req.get_param_value("jeton") : "", {});
  if (!caller.ok()) {
    res.status = 303;
    res.set_header("Location", absl::StrCat("/connexion?erreur=1&suite=", UrlEncode(suite)));
    return;
  }
  auto id = common::RandomHex(32);
  auto csrf = common::RandomHex(32);
  if (!id.ok() || !csrf.ok()) {
    res.status = 500;
    return;
  }
  std::promise<absl::StatusOr<bool>> created;
  store_->CreateSession(DashboardSession{common::Sha256Hex(*id), caller->record.id, *csrf,
                                         clock_->Now() + options_.session_lifetime},
                        clock_->Now(),
                        [&](absl::StatusOr<bool> r) { created.set_value(std::move(r)); });
  if (auto r = created.get_future().get(); !r.ok()) {
    spdlog::error("dashboard: cannot store a session: {}", r.status().ToString());
    res.status = 503;
    res.set_content("Service momentanément indisponible, réessayez dans un instant.\n",
                    "text/plain; charset=utf-8");
    return;
  }
  res.set_header("Set-Cookie",
                 absl::StrCat(kCookie, "=", *id, "; Path=/; HttpOnly; SameSite=Strict; Max-Age=",
                              absl::ToInt64Seconds(options_.session_lifetime),
                              options_.secure_cookies ? "; Secure" : ""));
  res.status = 303;
  res.set_header("Location", suite);
}

void Dashboard::Logout(const httplib::Request& req, httplib::Response& res) {
  Session session;
  auto caller = SignedIn(req, &session);
  if (caller.has_value() && !CheckCsrf(req, session)) {
    res.status = 403;
    res.set_content("Requête refusée (jeton anti-CSRF absent ou invalide).\n",
                    "text/plain; charset=utf-8");
    return;
  }
  if (caller.has_value()) {
    std::promise<absl::StatusOr<bool>> deleted;
    store_->DeleteSession(common::Sha256Hex(CookieValue(req, kCookie)),
                          [&](absl::StatusOr<bool> r) { deleted.set_value(std::move(r)); });
    if (auto r = deleted.get_future().get(); !r.ok()) {
      spdlog::error("dashboard: cannot end a session: {}", r.status().ToString());
      res.status = 503;
      res.set_content("Service momentanément indisponible, réessayez dans un instant.\n",
                      "text/plain; charset=utf-8");
      return;
    }
  }
  res.set_header("Set-Cookie", absl::StrCat(kCookie,
                                            "=; Path=/; HttpOnly; SameSite=Strict; "
                                            "Max-Age=0",
                                            options_.secure_cookies ? "; Secure" : ""));
  res.status = 303;
  res.set_header("Location", "/connexion");
}

}  // namespace parc::server
