#include "server/dashboard_html.h"

#include <httplib.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/csv.h"
#include "common/logging.h"
#include "common/sampled_log.h"

namespace parc::server::web {

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

namespace {

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

}  // namespace

Html Layout(const std::string& title, const Caller* caller, const std::string& csrf,
            const Html& body) {
  Html nav;
  if (caller != nullptr) {
    nav.Add(
        "<nav><a href=\"/\">Vue d'ensemble</a></nav><nav><a href=\"/deploiements\">"
        "Déploiements</a></nav><nav><a href=\"/sante\">Santé du parc</a></nav>"
        "<span class=\"who\">",
        caller->record.name, " — ", caller->scope.text(),
        " <form method=\"post\" action=\"/deconnexion\"><input type=\"hidden\" name=\"csrf\" "
        "value=\"",
        csrf, "\"><button type=\"submit\">Se déconnecter</button></form></span>");
  }
  return Html::Of(
      "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>",
      title, " — Parc</title><style>", kStyle,
      "</style></head><body><header>"
      "<a href=\"/\">Parc</a>",
      nav, "</header><main>", body, "</main></body></html>");
}

void SendHtml(httplib::Response& res, const Html& page) {
  res.set_content(page.str(), "text/html; charset=utf-8");
}

Html BarChart(const std::string& title, const std::vector<Bar>& bars) {
  const int row = 28, label_width = 210, width = 640;
  const int height = static_cast<int>(bars.size()) * row + 10;
  Html svg =
      Html::Of("<figure class=\"card\"><figcaption>", title,
               "</figcaption><svg role=\"img\" aria-label=\"", title, "\" viewBox=\"0 0 ", width,
               " ", height, "\" width=\"100%\" preserveAspectRatio=\"xMinYMin meet\">");
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    int y = static_cast<int>(i) * row + 5;
    double w = std::clamp(b.percent, 0.0, 100.0) / 100.0 * (width - label_width - 70);
    Html label = Html::Of("<text x=\"0\" y=\"", y + 17, "\">", b.label, "</text>");
    if (!b.href.empty()) label = Html::Of("<a href=\"", b.href, "\">", label, "</a>");
    svg.Add(label, "<rect x=\"", label_width, "\" y=\"", y + 4, "\" width=\"",
            width - label_width - 70, "\" height=\"16\" fill=\"#e5e5f4\"/>",
            "<rect class=\"bar\" x=\"", label_width, "\" y=\"", y + 4, "\" width=\"",
            absl::StrFormat("%.1f", w), "\" height=\"16\" fill=\"#000091\"><title>", b.label, " : ",
            Percent(b.percent), b.detail, "</title></rect><text x=\"", width - 62, "\" y=\"",
            y + 17, "\">", Percent(b.percent), "</text>");
  }
  svg.Add("</svg></figure>");
  return svg;
}

std::vector<Html> TextCells(const std::vector<std::string>& values) {
  std::vector<Html> cells;
  cells.reserve(values.size());
  for (const auto& v : values) cells.push_back(Html::Of(v));
  return cells;
}

SortChoice RequestedSort(const httplib::Request& req, const std::vector<Column>& columns) {
  SortChoice choice;
  const std::string key = req.has_param("tri") ? req.get_param_value("tri") : "";
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].key == key) choice.column = static_cast<int>(i);
  }
  choice.descending = req.has_param("ordre") && req.get_param_value("ordre") == "desc";
  return choice;
}

Html Table(const std::string& base, const std::vector<Column>& columns, SortChoice sort,
           const std::vector<std::vector<Html>>& cells) {
  const std::string sep = base.find('?') == std::string::npos ? "?" : "&";
  Html html = Html::Of("<div class=\"wrap\"><table><thead><tr>");
  for (size_t i = 0; i < columns.size(); ++i) {
    const bool active = static_cast<int>(i) == sort.column;
    const bool desc = active && sort.descending;
    std::string next = active && !desc ? "desc" : "asc";
    std::string arrow = active ? (desc ? " ▼" : " ▲") : "";
    html.Add("<th scope=\"col\"", columns[i].numeric ? Html::Of(" class=\"n\"") : Html());
    if (active) html.Add(" aria-sort=\"", std::string(desc ? "descending" : "ascending"), "\"");
    html.Add("><a href=\"", absl::StrCat(base, sep, "tri=", columns[i].key, "&ordre=", next), "\">",
             columns[i].label, arrow, "</a></th>");
  }
  html.Add("</tr></thead><tbody>");
  for (const auto& row : cells) {
    html.Add("<tr>");
    for (size_t c = 0; c < columns.size() && c < row.size(); ++c) {
      const Html numeric = columns[c].numeric ? Html::Of(" class=\"n\"") : Html();
      if (c == 0) {
        html.Add("<th scope=\"row\"", numeric, ">", row[c], "</th>");
      } else {
        html.Add("<td", numeric, ">", row[c], "</td>");
      }
    }
    html.Add("</tr>");
  }
  html.Add("</tbody></table></div>");
  return html;
}

Html SortedTable(const httplib::Request& req, const std::string& base,
                 const std::vector<Column>& columns, std::vector<std::vector<std::string>> rows,
                 std::vector<std::vector<Html>> cells) {
  const SortChoice sort = RequestedSort(req, columns);
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (sort.column >= 0) {
    const auto col = static_cast<size_t>(sort.column);
    const bool numeric = columns[col].numeric, desc = sort.descending;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const auto& x = rows[a][col];
      const auto& y = rows[b][col];
      if (numeric) {
        double dx = 0, dy = 0;
        (void)absl::SimpleAtod(x, &dx);
        (void)absl::SimpleAtod(y, &dy);
        return desc ? dx > dy : dx < dy;
      }
      return desc ? x > y : x < y;
    });
  }
  std::vector<std::vector<Html>> sorted;
  sorted.reserve(order.size());
  for (size_t r : order) sorted.push_back(std::move(cells[r]));
  return Table(base, columns, sort, sorted);
}

void SendServerError(httplib::Response& res, absl::string_view page, const absl::Status& cause) {
  static common::SampledLog log(std::chrono::seconds(10));
  uint64_t suppressed = 0;
  if (log.Take(&suppressed)) {
    spdlog::error("dashboard {}: {} ({} more not logged)", std::string(page), cause.ToString(),
                  suppressed);
  }
  res.status = 500;
  res.set_content(
      "Erreur du serveur : la page n'a pas pu être construite (détails dans le "
      "journal du serveur).\n",
      "text/plain; charset=utf-8");
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

}  // namespace parc::server::web
