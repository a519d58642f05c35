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

namespace parc::server {
namespace {

constexpr char kCookie[] = "parc_session";

std::string Esc(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string UrlEncode(absl::string_view s) {
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (absl::ascii_isalnum(c) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == '@') {
      out.push_back(ch);
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

}  // namespace

std::string SafeNextPath(const std::string& suite) {
  // One of the dashboard's own pages, with a query of the characters its links use. Anything
  // else (absolute or protocol-relative URLs, backslashes, tabs and newlines that browsers
  // strip from "/\t/evil.example") goes to the overview.
  static const std::regex kPage(
      "/(departement/[0-9AB]{2,3}|commune/[0-9AB]{5}|etablissement/[0-9]{7}[A-Z]|"
      "appareil/d[0-9a-f]{16}|deploiements)?(\\?[A-Za-z0-9=&%._@+-]*)?");
  return suite.size() <= 512 && std::regex_match(suite, kPage) ? suite : "/";
}

namespace {

std::string Percent(double p) { return absl::StrFormat("%.0f %%", p); }

std::string When(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0) return "jamais";
  return absl::FormatTime("%d/%m/%Y %H:%M", absl::FromUnixSeconds(ts.seconds()),
                          absl::LocalTimeZone());
}

std::string KindLabel(parc::v1::DeviceKind kind) {
  switch (kind) {
    case parc::v1::DEVICE_KIND_LAPTOP:
      return "ordinateur portable";
    case parc::v1::DEVICE_KIND_TABLET:
      return "tablette";
    case parc::v1::DEVICE_KIND_DISPLAY:
      return "écran interactif";
    case parc::v1::DEVICE_KIND_DESKTOP:
      return "poste fixe";
    case parc::v1::DEVICE_KIND_OTHER:
      return "autre";
    default:
      return "inconnu";
  }
}

std::string StateLabel(parc::v1::DeploymentState s) {
  switch (s) {
    case parc::v1::DEPLOYMENT_STATE_INSTALLED:
      return "à jour";
    case parc::v1::DEPLOYMENT_STATE_IN_PROGRESS:
      return "en cours";
    case parc::v1::DEPLOYMENT_STATE_FAILED:
      return "en échec";
    case parc::v1::DEPLOYMENT_STATE_REFUSED:
      return "refusé (signature)";
    default:
      return "pas encore";
  }
}

std::string PackageStateLabel(parc::v1::PackageState s) {
  switch (s) {
    case parc::v1::PACKAGE_STATE_QUEUED:
      return "en attente";
    case parc::v1::PACKAGE_STATE_DOWNLOADING:
      return "téléchargement";
    case parc::v1::PACKAGE_STATE_DOWNLOADED:
      return "téléchargé";
    case parc::v1::PACKAGE_STATE_INSTALLING:
      return "installation";
    case parc::v1::PACKAGE_STATE_INSTALLED:
      return "installé";
    case parc::v1::PACKAGE_STATE_FAILED:
      return "en échec";
    case parc::v1::PACKAGE_STATE_REMOVED:
      return "désinstallé";
    case parc::v1::PACKAGE_STATE_WAITING:
      return "attend la plage horaire";
    default:
      return "?";
  }
}

constexpr char kStyle[] = R"css(
*{box-sizing:border-box}body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,
sans-serif;color:#1e1e1e;background:#f6f6f6}header{background:#000091;color:#fff;padding:.6rem 1rem;
display:flex;flex-wrap:wrap;gap:1rem;align-items:center}header a{color:#fff;text-decoration:none;
font-weight:600}header .who{margin-left:auto;font-size:.9rem}header form{display:inline}
header button{background:none;border:1px solid #fff;color:#fff;padding:.2rem .6rem;
border-radius:4px;cursor:pointer}main{padding:1rem;max-width:72rem;margin:auto}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}.card{background:#fff;padding:1rem;
border-radius:6px;margin:1rem 0;box-shadow:0 1px 2px #0002}.wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.95rem}
th,td{padding:.45rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#eef;white-space:nowrap}td.n,th.n{text-align:right}a{color:#000091}
.ok{color:#18753c}.ko{color:#ce0500}.muted{color:#666}.actions{display:flex;gap:.5rem;
flex-wrap:wrap;align-items:center}.btn{display:inline-block;background:#000091;color:#fff;
border:0;padding:.45rem .9rem;border-radius:4px;text-decoration:none;cursor:pointer;font-size:1rem}
.btn.light{background:#fff;color:#000091;border:1px solid #000091}input[type=password]{width:100%;
padding:.6rem;font-size:1rem}.error{background:#fee;border-left:4px solid #ce0500;padding:.6rem}
svg text{font-size:12px;font-family:inherit}
)css";

std::string Layout(const std::string& title, const Caller* caller, const std::string& csrf,
                   const std::string& body) {
  std::string nav;
  if (caller != nullptr) {
    nav = absl::StrCat(
        "<nav><a href=\"/\">Vue d'ensemble</a></nav><nav><a href=\"/deploiements\">"
        "Déploiements</a></nav><span class=\"who\">",
        Esc(caller->record.name), " — ", Esc(caller->scope.text()),
        " <form method=\"post\" action=\"/deconnexion\"><input type=\"hidden\" name=\"csrf\" "
        "value=\"",
        Esc(csrf), "\"><button type=\"submit\">Se déconnecter</button></form></span>");
  }
  return absl::StrCat(
      "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>",
      Esc(title), " — Parc</title><style>", kStyle,
      "</style></head><body><header>"
      "<a href=\"/\">Parc</a>",
      nav, "</header><main>", body, "</main></body></html>");
}

// Horizontal bar chart of percentages (0-100), one bar per row, with optional links.
struct Bar {
  std::string label;
  double percent = 0;
  std::string href;
  std::string detail;
};

std::string BarChart(const std::string& title, const std::vector<Bar>& bars) {
  const int row = 28, label_width = 210, width = 640;
  const int height = static_cast<int>(bars.size()) * row + 10;
  std::string svg = absl::StrCat("<figure class=\"card\"><figcaption>", Esc(title),
                                 "</figcaption><svg role=\"img\" "
                                 "aria-label=\"",
                                 Esc(title), "\" viewBox=\"0 0 ", width, " ", height,
                                 "\" width=\"100%\" preserveAspectRatio=\"xMinYMin meet\">");
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    int y = static_cast<int>(i) * row + 5;
    double w = std::clamp(b.percent, 0.0, 100.0) / 100.0 * (width - label_width - 70);
    std::string label = absl::StrCat("<text x=\"0\" y=\"", y + 17, "\">", Esc(b.label), "</text>");
    if (!b.href.empty()) label = absl::StrCat("<a href=\"", Esc(b.href), "\">", label, "</a>");
    absl::StrAppend(&svg, label, "<rect x=\"", label_width, "\" y=\"", y + 4, "\" width=\"",
                    width - label_width - 70, "\" height=\"16\" fill=\"#e5e5f4\"/>",
                    "<rect class=\"bar\" x=\"", label_width, "\" y=\"", y + 4, "\" width=\"",
                    absl::StrFormat("%.1f", w), "\" height=\"16\" fill=\"#000091\"><title>",
                    Esc(b.label), " : ", Percent(b.percent), Esc(b.detail),
                    "</title></rect><text x=\"", width - 62, "\" y=\"", y + 17, "\">",
                    Percent(b.percent), "</text>");
  }
  svg += "</svg></figure>";
  return svg;
}

// A sortable table: header links set ?tri=<key>&ordre=asc|desc; the rows are sorted here.
struct Column {
  std::string key;
  std::string label;
  bool numeric = false;
};

std::string SortedTable(const httplib::Request& req, const std::string& base,
                        const std::vector<Column>& columns,
                        std::vector<std::vector<std::string>> rows,
                        std::vector<std::vector<std::string>> cells_html) {
  std::string sort = req.has_param("tri") ? req.get_param_value("tri") : "";
  bool desc = req.has_param("ordre") && req.get_param_value("ordre") == "desc";
  int index = -1;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].key == sort) index = static_cast<int>(i);
  }
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (index >= 0) {
    bool numeric = columns[static_cast<size_t>(index)].numeric;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const auto& x = rows[a][static_cast<size_t>(index)];
      const auto& y = rows[b][static_cast<size_t>(index)];
      bool less;
      if (numeric) {
        double dx = 0, dy = 0;
        (void)absl::SimpleAtod(x, &dx);
        (void)absl::SimpleAtod(y, &dy);
        less = dx < dy;
      } else {
        less = x < y;
      }
      if (desc) {
        bool greater;
        if (numeric) {
          double dx = 0, dy = 0;
          (void)absl::SimpleAtod(x, &dx);
          (void)absl::SimpleAtod(y, &dy);
          greater = dx > dy;
        } else {
          greater = x > y;
        }
        return greater;
      }
      return less;
    });
  }
  const std::string sep = base.find('?') == std::string::npos ? "?" : "&";
  std::string html = "<div class=\"wrap\"><table><thead><tr>";
  for (size_t i = 0; i < columns.size(); ++i) {
    bool active = static_cast<int>(i) == index;
    std::string next = active && !desc ? "desc" : "asc";
    std::string arrow = active ? (desc ? " ▼" : " ▲") : "";
    absl::StrAppend(
        &html, "<th scope=\"col\"", columns[i].numeric ? " class=\"n\"" : "",
        active ? absl::StrCat(" aria-sort=\"", desc ? "descending" : "ascending", "\"") : "",
        "><a href=\"", Esc(base), sep, "tri=", columns[i].key, "&amp;ordre=", next, "\">",
        Esc(columns[i].label), arrow, "</a></th>");
  }
  html += "</tr></thead><tbody>";
  for (size_t r : order) {
    html += "<tr>";
    for (size_t c = 0; c < columns.size(); ++c) {
      absl::StrAppend(&html, c == 0 ? "<th scope=\"row\"" : "<td",
                      columns[c].numeric ? " class=\"n\"" : "", ">", cells_html[r][c],
                      c == 0 ? "</th>" : "</td>");
    }
    html += "</tr>";
  }
  html += "</tbody></table></div>";
  return html;
}

void SendCsv(httplib::Response& res, const std::string& filename,
             const std::vector<std::string>& header,
             const std::vector<std::vector<std::string>>& rows) {
  std::string body = common::kCsvBom;
  body += common::CsvRow(header);
  for (const auto& r : rows) body += common::CsvExportRow(r);
  res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", filename, "\""));
  res.set_content(body, "text/csv; charset=utf-8");
}

bool WantsCsv(const httplib::Request& req) {
  return req.has_param("format") && req.get_param_value("format") == "csv";
}

std::string CookieValue(const httplib::Request& req, absl::string_view name) {
  std::string header = req.get_header_value("Cookie");
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::StartsWith(part, absl::StrCat(name, "="))) {
      return std::string(part.substr(name.size() + 1));
    }
  }
  return "";
}

// The bundle shown: ?lot=name@version, else the latest published.
std::optional<BundleRecord> ChosenBundle(Store* store, const httplib::Request& req) {
  auto bundles = store->ListBundles("");
  if (!bundles.ok() || bundles->empty()) return std::nullopt;
  if (req.has_param("lot")) {
    std::string lot = req.get_param_value("lot");
    for (const auto& b : *bundles) {
      if (absl::StrCat(b.name, "@", b.version) == lot) return b;
    }
  }
  return *std::max_element(bundles->begin(), bundles->end(), [](const auto& a, const auto& b) {
    return a.published_at < b.published_at;
  });
}

std::string LotParam(const std::optional<BundleRecord>& b) {
  return b.has_value() ? absl::StrCat("lot=", UrlEncode(absl::StrCat(b->name, "@", b->version)))
                       : "";
}

std::vector<Column> ReportColumns(const std::string& first) {
  return {{"nom", first},
          {"etablissements", "Établissements", true},
          {"appareils", "Appareils", true},
          {"ajour", "À jour", true},
          {"encours", "En cours", true},
          {"echec", "En échec", true},
          {"jamais", "Jamais vus", true},
          {"inactifs", "Inactifs (7 j)", true},
          {"pct", "% à jour", true}};
}

std::vector<std::string> ReportCells(const parc::v1::DeploymentReportRow& r) {
  return {r.label(),
          std::to_string(r.establishments()),
          std::to_string(r.devices()),
          std::to_string(r.up_to_date()),
          std::to_string(r.in_progress()),
          std::to_string(r.failed()),
          std::to_string(r.never_seen()),
          std::to_string(r.stale()),
          absl::StrFormat("%.1f", r.percent_up_to_date())};
}

}  // namespace

Dashboard::Dashboard(Store* store, const common::Clock* clock, Metrics* metrics,
                     RolloutActions* rollouts, Options options)
    : store_(store),
      clock_(clock),
      metrics_(metrics),
      rollouts_(rollouts),
      options_(std::move(options)) {}

std::optional<Caller> Dashboard::SignedIn(const httplib::Request& req, Session* session) {
  std::string id = CookieValue(req, kCookie);
  if (id.empty()) return std::nullopt;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return std::nullopt;
    if (it->second.expires <= clock_->Now()) {
      sessions_.erase(it);
      return std::nullopt;
    }
    *session = it->second;
  }
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
    const std::string& from = req.remote_addr;
    const bool loopback =
        from == "::1" || absl::StartsWith(from, "127.") || absl::StartsWith(from, "::ffff:127.");
    if (!loopback) {
      std::string header = req.get_header_value("Authorization");
      std::string token = absl::StartsWith(header, "Bearer ") ? header.substr(7) : "";
      auto caller = AuthenticateOperator(store_, token, {});
      if (!caller.ok() || !caller->scope.is_region()) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer realm=\"parc metrics\"");
        res.set_content("metrics need a region-wide operator token (Authorization: Bearer)\n",
                        "text/plain; charset=utf-8");
        return;
      }
    }
    std::string text = metrics_->RenderPrometheus();
    if (options_.extra_metrics) text += options_.extra_metrics();
    res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
  });
  http->Get("/connexion", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string suite =
        SafeNextPath(req.has_param("suite") ? req.get_param_value("suite") : "");
    std::string error = req.has_param("erreur")
                            ? "<p class=\"error\" role=\"alert\">Jeton refusé : vérifiez-le ou "
                              "demandez-en un nouveau à votre administrateur.</p>"
                            : "";
    res.set_content(
        Layout("Connexion", nullptr, "",
               absl::StrCat("<div class=\"card\" style=\"max-width:32rem;margin:auto\">"
                            "<h1>Connexion</h1>",
                            error,
                            "<form method=\"post\" action=\"/connexion\"><label for=\"jeton\">"
                            "Jeton d'opérateur</label><input type=\"password\" id=\"jeton\" "
                            "name=\"jeton\" autocomplete=\"current-password\" required>"
                            "<input type=\"hidden\" name=\"suite\" value=\"",
                            Esc(suite),
                            "\"><p><button class=\"btn\" type=\"submit\">Se connecter</button>"
                            "</p></form></div>")),
        "text/html; charset=utf-8");
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Forget expired sessions now and then.
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      it = it->second.expires <= clock_->Now() ? sessions_.erase(it) : std::next(it);
    }
    sessions_[*id] = Session{caller->record.id, *csrf, clock_->Now() + options_.session_lifetime};
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    sessions_.erase(CookieValue(req, kCookie));
  }
  res.set_header("Set-Cookie", absl::StrCat(kCookie,
                                            "=; Path=/; HttpOnly; SameSite=Strict; "
                                            "Max-Age=0",
                                            options_.secure_cookies ? "; Secure" : ""));
  res.status = 303;
  res.set_header("Location", "/connexion");
}

void Dashboard::Overview(const httplib::Request& req, const Caller& caller, const Session& session,
                         httplib::Response& res) {
  auto bundle = ChosenBundle(store_, req);
  auto scope = ScopeFilter(store_, caller);
  if (!scope.ok()) {
    res.status = 500;
    return;
  }
  std::string body = "<h1>Vue d'ensemble</h1>";
  if (!bundle.has_value()) {
    body += "<p class=\"card\">Aucun lot d'applications n'est encore publié.</p>";
    res.set_content(Layout("Vue d'ensemble", &caller, session.csrf, body),
                    "text/html; charset=utf-8");
    return;
  }
  const std::string lot = LotParam(bundle);
  absl::Time stale = clock_->Now() - absl::Hours(24 * 7);
  auto total = store_->DeploymentReport(bundle->name, bundle->sequence, "region", stale, *scope);
  auto academies =
      store_->DeploymentReport(bundle->name, bundle->sequence, "academie", stale, *scope);
  auto departements =
      store_->DeploymentReport(bundle->name, bundle->sequence, "departement", stale, *scope);
  if (!total.ok() || !academies.ok() || !departements.ok()) {
    res.status = 500;
    return;
  }
  if (WantsCsv(req)) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : departements->rows()) rows.push_back(ReportCells(r));
    auto cols = ReportColumns("Département");
    std::vector<std::string> header;
    for (const auto& c : cols) header.push_back(c.label);
    return SendCsv(
        res, absl::StrCat("deploiement-", bundle->name, "-", bundle->version, "-departements.csv"),
        header, rows);
  }
  const auto& t = total->total();
  absl::StrAppend(&body, "<p>Lot <strong>", Esc(bundle->name), "@", Esc(bundle->version),
                  "</strong> : <strong>", Percent(t.percent_up_to_date()), "</strong> des ",
                  t.devices(), " appareils à jour (", t.up_to_date(), "), ", t.in_progress(),
                  " en cours, ", t.failed(), " en échec, ", t.never_seen(), " jamais vus, dans ",
                  t.establishments(), " établissements.</p>");
  std::vector<Bar> bars;
  for (const auto& r : academies->rows()) {
    bars.push_back({absl::StrCat("Académie de ", r.label()), r.percent_up_to_date(), "",
                    absl::StrCat(" (", r.up_to_date(), "/", r.devices(), ")")});
  }
  body += BarChart("Part des appareils à jour, par académie", bars);
  bars.clear();
  std::vector<std::vector<std::string>> rows, cells;
  for (const auto& r : departements->rows()) {
    std::string href = absl::StrCat("/departement/", r.group(), "?", lot);
    bars.push_back({r.label(), r.percent_up_to_date(), href,
                    absl::StrCat(" (", r.up_to_date(), "/", r.devices(), ")")});
    rows.push_back(ReportCells(r));
    rows.back()[0] = r.group();
    auto c = ReportCells(r);
    for (auto& x : c) x = Esc(x);
    c[0] = absl::StrCat("<a href=\"", Esc(href), "\">", Esc(r.label()), "</a>");
    c[8] = Percent(r.percent_up_to_date());
    cells.push_back(c);
  }
  body += BarChart("Part des appareils à jour, par département", bars);
  absl::StrAppend(
      &body,
      "<h2>Par département</h2><p class=\"actions\"><a class=\"btn light\" "
      "href=\"/?",
      lot, "&amp;format=csv\">Télécharger (CSV)</a></p>",
      SortedTable(req, absl::StrCat("/?", lot), ReportColumns("Département"), rows, cells));
  res.set_content(Layout("Vue d'ensemble", &caller, session.csrf, body),
                  "text/html; charset=utf-8");
}

void Dashboard::Establishments(const httplib::Request& req, const Caller& caller,
                               const Session& session, httplib::Response& res,
                               const std::string& kind, const std::string& code) {
  parc::v1::ListEstablishmentsRequest filter;
  if (kind == "departement") {
    filter.set_departement(common::NormalizeDepartement(code));
  } else {
    filter.set_commune(code);
  }
  auto in_area = store_->ListEstablishments(filter);
  if (!in_area.ok()) {
    res.status = 500;
    return;
  }
  std::set<std::string> within;
  std::string place;
  for (const auto& e : *in_area) {
    within.insert(e.uai());
    place = kind == "departement"
                ? absl::StrCat(e.departement(), " ", common::DepartementName(e.departement()))
                : e.commune_name();
  }
  auto scope = ScopeFilter(store_, caller, within);
  auto bundle = ChosenBundle(store_, req);
  if (!scope.ok() || *scope == "[]" || !bundle.has_value()) {
    res.status = 404;
    res.set_content(Layout("Introuvable", &caller, session.csrf,
                           "<h1>Introuvable</h1><p>Rien à afficher ici.</p>"),
                    "text/html; charset=utf-8");
    return;
  }
  auto report = store_->DeploymentReport(bundle->name, bundle->sequence, "establishment",
                                         clock_->Now() - absl::Hours(24 * 7), *scope);
  if (!report.ok()) {
    res.status = 500;
    return;
  }
  const std::string lot = LotParam(bundle);
  const std::string title = kind == "departement" ? absl::StrCat("Département ", place)
                                                  : absl::StrCat("Commune : ", place);
  std::vector<Column> columns = ReportColumns("Établissement");
  columns.insert(columns.begin() + 1, Column{"uai", "UAI"});
  std::vector<std::vector<std::string>> rows, cells;
  for (const auto& r : report->rows()) {
    auto values = ReportCells(r);
    values.insert(values.begin() + 1, r.group());
    rows.push_back(values);
    std::vector<std::string> c;
    for (const auto& v : values) c.push_back(Esc(v));
    c[0] = absl::StrCat("<a href=\"/etablissement/", Esc(r.group()), "?", lot, "\">",
                        Esc(r.label()), "</a>");
    c[9] = Percent(r.percent_up_to_date());
    cells.push_back(c);
  }
  if (WantsCsv(req)) {
    std::vector<std::string> header;
    for (const auto& c : columns) header.push_back(c.label);
    return SendCsv(res, absl::StrCat("etablissements-", kind, "-", code, ".csv"), header, rows);
  }
  std::string base = absl::StrCat("/", kind, "/", code, "?", lot);
  std::string body = absl::StrCat(
      "<h1>", Esc(title), "</h1><p>Lot ", Esc(bundle->name), "@", Esc(bundle->version), " : ",
      Percent(report->total().percent_up_to_date()), " des ", report->total().devices(),
      " appareils à jour.</p><p class=\"actions\"><a class=\"btn light\" href=\"", Esc(base),
      "&amp;format=csv\">Télécharger (CSV)</a></p>", SortedTable(req, base, columns, rows, cells));
  res.set_content(Layout(title, &caller, session.csrf, body), "text/html; charset=utf-8");
}

void Dashboard::Establishment(const httplib::Request& req, const Caller& caller,
                              const Session& session, httplib::Response& res,
                              const std::string& uai) {
  auto est = store_->GetEstablishment(uai);
  auto bundle = ChosenBundle(store_, req);
  if (!est.ok() || !caller.scope.Contains(*est)) {
    res.status = 404;
    res.set_content(Layout("Introuvable", &caller, session.csrf,
                           "<h1>Introuvable</h1><p>Aucun établissement de ce code.</p>"),
                    "text/html; charset=utf-8");
    return;
  }
  auto scope = ScopeFilter(store_, caller, std::set<std::string>{uai});
  auto devices = scope.ok() ? store_->ListDeviceStates(bundle ? bundle->name : "",
                                                       bundle ? bundle->sequence : 0, *scope)
                            : absl::StatusOr<std::vector<DeviceState>>(scope.status());
  if (!devices.ok()) {
    res.status = 500;
    return;
  }
  std::vector<Column> columns = {{"appareil", "Appareil"},       {"type", "Type"},
                                 {"modele", "Modèle"},           {"serie", "N° de série"},
                                 {"contact", "Dernier contact"}, {"etat", "État du lot"},
                                 {"erreur", "Dernière erreur"}};
  std::vector<std::vector<std::string>> rows, cells;
  for (const auto& d : *devices) {
    // Firmware often repeats the manufacturer in the product name ("HP" + "HP ProBook…").
    std::string model = absl::StartsWithIgnoreCase(d.device.model(), d.device.manufacturer())
                            ? d.device.model()
                            : absl::StrCat(d.device.manufacturer(), " ", d.device.model());
    std::vector<std::string> values = {d.device.id(),
                                       KindLabel(d.device.kind()),
                                       std::string(absl::StripAsciiWhitespace(model)),
                                       d.device.serial(),
                                       When(d.device.last_seen_at()),
                                       StateLabel(d.state),
                                       d.message.empty() ? d.reason : d.message};
    rows.push_back(values);
    std::vector<std::string> c;
    for (const auto& v : values) c.push_back(Esc(v));
    c[0] = absl::StrCat("<a href=\"/appareil/", Esc(d.device.id()), "\">",
                        Esc(d.device.hostname().empty() ? d.device.id() : d.device.hostname()),
                        "</a>");
    bool ok = d.state == parc::v1::DEPLOYMENT_STATE_INSTALLED;
    bool ko = d.state == parc::v1::DEPLOYMENT_STATE_FAILED ||
              d.state == parc::v1::DEPLOYMENT_STATE_REFUSED;
    c[5] = absl::StrCat("<span class=\"", ok ? "ok" : ko ? "ko" : "muted", "\">", c[5], "</span>");
    cells.push_back(c);
  }
  if (WantsCsv(req)) {
    std::vector<std::string> header;
    for (const auto& c : columns) header.push_back(c.label);
    return SendCsv(res, absl::StrCat("appareils-", uai, ".csv"), header, rows);
  }
  const std::string base = absl::StrCat("/etablissement/", uai, "?", LotParam(bundle));
  std::string body = absl::StrCat(
      "<h1>", Esc(est->name()), "</h1><p>", Esc(uai), " — ", Esc(est->commune_name()), " (",
      Esc(est->departement()), ") — équipement : ", Esc(est->collectivite_name()), "</p>",
      bundle ? absl::StrCat("<p>Lot ", Esc(bundle->name), "@", Esc(bundle->version), "</p>") : "",
      "<p class=\"actions\"><a class=\"btn light\" href=\"", Esc(base),
      "&amp;format=csv\">Télécharger (CSV)</a></p>", SortedTable(req, base, columns, rows, cells));
  res.set_content(Layout(est->name(), &caller, session.csrf, body), "text/html; charset=utf-8");
}

void Dashboard::Device(const httplib::Request&, const Caller& caller, const Session& session,
                       httplib::Response& res, const std::string& id) {
  auto scope = ScopeFilter(store_, caller);
  auto details =
      scope.ok() ? store_->GetDevice(id, *scope) : absl::StatusOr<DeviceDetails>(scope.status());
  if (!details.ok()) {
    res.status = absl::IsNotFound(details.status()) ? 404 : 500;
    res.set_content(Layout("Introuvable", &caller, session.csrf,
                           "<h1>Introuvable</h1><p>Aucun appareil de ce code.</p>"),
                    "text/html; charset=utf-8");
    return;
  }
  const auto& d = details->device;
  std::string body = absl::StrCat(
      "<h1>", Esc(d.hostname().empty() ? d.id() : d.hostname()),
      "</h1><div class=\"card wrap\">"
      "<table><tbody>",
      "<tr><th scope=\"row\">Appareil</th><td>", Esc(d.id()), "</td></tr>",
      "<tr><th scope=\"row\">Établissement</th><td><a href=\"/etablissement/", Esc(d.uai()), "\">",
      Esc(d.establishment_name()), "</a> (", Esc(d.uai()), ")</td></tr>",
      "<tr><th scope=\"row\">Type</th><td>", Esc(KindLabel(d.kind())), "</td></tr>",
      "<tr><th scope=\"row\">Modèle</th><td>", Esc(d.manufacturer()), " ", Esc(d.model()),
      "</td></tr><tr><th scope=\"row\">N° de série</th><td>", Esc(d.serial()), "</td></tr>",
      "<tr><th scope=\"row\">Système</th><td>", Esc(d.os()), "</td></tr>",
      "<tr><th scope=\"row\">Agent</th><td>", Esc(d.agent_version()), "</td></tr>",
      "<tr><th scope=\"row\">Inscrit le</th><td>", When(d.enrolled_at()), "</td></tr>",
      "<tr><th scope=\"row\">Dernier contact</th><td>", When(d.last_seen_at()), "</td></tr>",
      "</tbody></table></div>");
  auto packages = store_->DevicePackages(d.id());
  body += "<h2>Applications du lot</h2>";
  if (!packages.ok() || packages->empty()) {
    body += "<p class=\"muted\">Aucun déploiement pour cet appareil.</p>";
  } else {
    body +=
        "<div class=\"wrap\"><table><thead><tr><th scope=\"col\">Application</th>"
        "<th scope=\"col\">Version</th><th scope=\"col\">État</th><th scope=\"col\">"
        "Erreur</th></tr></thead><tbody>";
    for (const auto& p : *packages) {
      std::string error = Esc(p.reason());
      if (p.exit_status() != 0) absl::StrAppend(&error, " (code ", p.exit_status(), ")");
      if (!p.output_tail().empty()) {
        absl::StrAppend(&error, "<pre>",
                        Esc(p.output_tail().substr(
                            p.output_tail().size() > 400 ? p.output_tail().size() - 400 : 0)),
                        "</pre>");
      }
      absl::StrAppend(&body, "<tr><th scope=\"row\">", Esc(p.package_id()), "</th><td>",
                      Esc(p.version()), "</td><td>", Esc(PackageStateLabel(p.state())), "</td><td>",
                      error, "</td></tr>");
    }
    body += "</tbody></table></div>";
  }
  body += "<h2>Derniers contacts</h2><ul>";
  for (absl::Time t : details->recent_checkins) {
    google::protobuf::Timestamp ts;
    ts.set_seconds(absl::ToUnixSeconds(t));
    absl::StrAppend(&body, "<li>", When(ts), "</li>");
  }
  body += "</ul>";
  if (details->inventory.has_value()) {
    absl::StrAppend(&body, "<h2>Inventaire</h2><pre class=\"card\">",
                    Esc(common::FormatInventoryText(*details->inventory)), "</pre>");
  }
  res.set_content(Layout(d.id(), &caller, session.csrf, body), "text/html; charset=utf-8");
}

void Dashboard::Rollouts(const httplib::Request& req, const Caller& caller, const Session& session,
                         httplib::Response& res) {
  auto rollouts = rollouts_->ListVisible(caller);
  auto scope = ScopeFilter(store_, caller);
  if (!rollouts.ok() || !scope.ok()) {
    res.status = 500;
    return;
  }
  std::string body = "<h1>Déploiements</h1>";
  static const std::map<std::string, std::string> kRefusals = {
      {"role", "Action refusée : votre rôle ne permet pas de modifier un déploiement."},
      {"perimetre",
       "Action refusée : ce déploiement a été créé par un autre opérateur et dépasse votre "
       "périmètre ; seuls son auteur et les administrateurs ou éditeurs régionaux peuvent le "
       "modifier."},
      {"etat", "Action impossible : l'état du déploiement a changé entre-temps."}};
  if (req.has_param("refus")) {
    auto it = kRefusals.find(req.get_param_value("refus"));
    body += absl::StrCat("<p class=\"error\" role=\"alert\">",
                         it != kRefusals.end() ? it->second : kRefusals.at("role"), "</p>");
  }
  if (rollouts->empty()) body += "<p class=\"card\">Aucun déploiement.</p>";
  for (auto it = rollouts->rbegin(); it != rollouts->rend(); ++it) {
    const RolloutRecord& r = *it;
    auto counts = store_->RolloutCounts(r.id, *scope);
    if (!counts.ok()) continue;
    std::vector<EstablishmentCounts> waves(r.wave_count);
    for (const auto& c : *counts) {
      if (c.wave >= waves.size()) continue;
      waves[c.wave].targeted += c.targeted;
      waves[c.wave].installed += c.installed;
      waves[c.wave].failed += c.failed;
      waves[c.wave].in_progress += c.in_progress;
    }
    static const std::map<std::string, std::string> kStates = {{"draft", "en préparation"},
                                                               {"running", "en cours"},
                                                               {"paused", "en pause"},
                                                               {"completed", "terminé"},
                                                               {"cancelled", "annulé"}};
    absl::StrAppend(&body, "<section class=\"card\"><h2>", Esc(r.bundle_name), "@",
                    Esc(r.bundle_version), " — ",
                    Esc(kStates.count(r.state) ? kStates.at(r.state) : r.state),
                    "</h2><p class=\"muted\">", Esc(r.id), " · cible ", Esc(r.target),
                    r.state_reason.empty() ? "" : absl::StrCat(" · ", Esc(r.state_reason)), "</p>");
    std::vector<Bar> bars;
    for (size_t w = 0; w < waves.size(); ++w) {
      double pct = waves[w].targeted == 0 ? 0 : 100.0 * waves[w].installed / waves[w].targeted;
      bars.push_back({absl::StrCat("Vague ", w + 1,
                                   w <= r.current_wave && r.state != "draft" ? "" : " (à venir)"),
                      pct, "",
                      absl::StrCat(" : ", waves[w].installed, "/", waves[w].targeted,
                                   " installés, ", waves[w].failed, " en échec")});
    }
    body += BarChart("Appareils installés par vague", bars);
    if (rollouts_->MayChange(caller, r).ok() && (r.state == "running" || r.state == "paused")) {
      std::string action = r.state == "running" ? "pause" : "reprise";
      absl::StrAppend(&body, "<form method=\"post\" action=\"/deploiements/", Esc(r.id), "/",
                      action, "\"><input type=\"hidden\" name=\"csrf\" value=\"", Esc(session.csrf),
                      "\"><button class=\"btn\" type=\"submit\">",
                      r.state == "running" ? "Mettre en pause" : "Reprendre", "</button></form>");
    }
    body += "</section>";
  }
  res.set_content(Layout("Déploiements", &caller, session.csrf, body), "text/html; charset=utf-8");
}

void Dashboard::RolloutAction(const httplib::Request& req, httplib::Response& res,
                              const std::string& id, const std::string& action) {
  Session session;
  auto caller = SignedIn(req, &session);
  if (!caller.has_value()) {
    res.status = 303;
    res.set_header("Location", "/connexion");
    return;
  }
  if (!CheckCsrf(req, session)) {
    res.status = 403;
    res.set_content("Requête refusée (jeton anti-CSRF absent ou invalide).\n",
                    "text/plain; charset=utf-8");
    return;
  }
  // The same action as parcctl's (RolloutActions): same rule, same answers, same audit.
  const std::string verb = action == "pause" ? "pause" : "resume";
  std::promise<absl::StatusOr<RolloutRecord>> done;
  rollouts_->Apply(*caller, id, verb,
                   [&](absl::StatusOr<RolloutRecord> r) { done.set_value(std::move(r)); });
  const absl::Status outcome = done.get_future().get().status();
  AuditRecord audit;
  audit.at = clock_->Now();
  audit.operator_id = caller->record.id;
  audit.operator_name = caller->record.name;
  audit.action = "UpdateRollout";
  audit.target = absl::StrCat("id: \"", id, "\" action: \"", verb, "\" (tableau de bord)");
  audit.outcome =
      outcome.ok() ? "ok" : common::StatusCodeName(static_cast<grpc::StatusCode>(outcome.code()));
  audit.detail = std::string(outcome.message()).substr(0, 300);
  store_->AppendAudit(std::move(audit), [](absl::StatusOr<bool>) {});
  if (absl::IsNotFound(outcome)) {
    res.status = 404;
    res.set_content(Layout("Introuvable", &*caller, session.csrf,
                           "<h1>Introuvable</h1><p>Aucun déploiement de ce code.</p>"),
                    "text/html; charset=utf-8");
    return;
  }
  res.status = 303;
  const char* refusal = outcome.ok()                                    ? nullptr
                        : absl::IsFailedPrecondition(outcome)           ? "etat"
                        : caller->HasRole({kRoleAdmin, kRolePublisher}) ? "perimetre"
                                                                        : "role";
  res.set_header("Location", refusal == nullptr ? std::string("/deploiements")
                                                : absl::StrCat("/deploiements?refus=", refusal));
}

}  // namespace parc::server
