#include <httplib.h>

#include <algorithm>
#include <future>
#include <iterator>
#include <map>
#include <regex>
#include <set>

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
#include "common/status_macros.h"
#include "common/uai.h"
#include "server/dashboard.h"
#include "server/dashboard_html.h"
#include "server/relays.h"

namespace parc::server {

using web::Bar;
using web::BarChart;
using web::Column;
using web::Html;
using web::KindLabel;
using web::Layout;
using web::PackageStateLabel;
using web::Percent;
using web::SendCsv;
using web::SendHtml;
using web::SortedTable;
using web::StateLabel;
using web::TextCells;
using web::UrlEncode;
using web::WantsCsv;
using web::When;

namespace {

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

// How the dashboard names a relay's health (RelayHealth), worst first.
struct HealthLabel {
  const char* health;
  const char* label;
};
constexpr HealthLabel kRelayHealth[] = {{"flagged", "signalé (octets erronés)"},
                                        {"unreachable", "injoignable"},
                                        {"silent", "muet"},
                                        {"ok", "en service"}};

// An establishment's relays as the dashboard shows them: the worst health among them, and the
// share of the bundle's bytes the establishment's devices got from one.
struct RelaySummary {
  std::vector<std::string> urls;
  std::string health_label;
  bool healthy = true;
  std::optional<RelayShare> share;

  // "97 %", or "" when nothing was downloaded for the bundle yet.
  std::string SharePercent() const {
    if (!share.has_value() || share->bytes == 0) return "";
    return Percent(100.0 * static_cast<double>(share->relay_bytes) /
                   static_cast<double>(share->bytes));
  }
  std::string Text() const {
    if (urls.empty()) return "—";
    const std::string percent = SharePercent();
    return absl::StrCat(health_label, " · ", percent.empty() ? "—" : percent);
  }
};

absl::StatusOr<std::map<std::string, RelaySummary>> RelaySummaries(
    Store* store, const std::set<std::string>& uais, const std::optional<BundleRecord>& bundle,
    absl::Time now) {
  std::map<std::string, RelaySummary> out;
  PARC_ASSIGN_OR_RETURN(auto relays,
                        store->ListRelays("", Scope::Uais(uais), now - kRelayFaultWindow));
  std::map<std::string, size_t> worst;  // uai -> index in kRelayHealth
  for (const auto& r : relays) {
    const std::string health = RelayHealth(r, now);
    size_t rank = 0;
    while (rank + 1 < std::size(kRelayHealth) && health != kRelayHealth[rank].health) ++rank;
    for (const auto& uai : r.uais) {
      out[uai].urls.push_back(r.url);
      auto [it, first] = worst.emplace(uai, rank);
      if (!first) it->second = std::min(it->second, rank);
    }
  }
  for (auto& [uai, s] : out) {
    s.health_label = kRelayHealth[worst[uai]].label;
    s.healthy = std::string(kRelayHealth[worst[uai]].health) == "ok";
  }
  if (bundle.has_value() && !out.empty()) {
    std::vector<std::string> relayed;
    for (const auto& [uai, s] : out) relayed.push_back(uai);
    PARC_ASSIGN_OR_RETURN(auto shares, store->RelayShares(relayed, bundle->id));
    for (auto& [uai, share] : shares) out[uai].share = share;
  }
  return out;
}

}  // namespace

void Dashboard::Overview(const httplib::Request& req, const Caller& caller, const Session& session,
                         httplib::Response& res) {
  auto bundle = ChosenBundle(store_, req);
  const Scope& scope = caller.scope;
  Html body = Html::Of("<h1>Vue d'ensemble</h1>");
  if (!bundle.has_value()) {
    body.Add("<p class=\"card\">Aucun lot d'applications n'est encore publié.</p>");
    SendHtml(res, Layout("Vue d'ensemble", &caller, session.csrf, body));
    return;
  }
  const std::string lot = LotParam(bundle);
  absl::Time stale = clock_->Now() - absl::Hours(24 * 7);
  auto total = store_->DeploymentReport(bundle->name, bundle->sequence, "region", stale, scope);
  auto academies =
      store_->DeploymentReport(bundle->name, bundle->sequence, "academie", stale, scope);
  auto departements =
      store_->DeploymentReport(bundle->name, bundle->sequence, "departement", stale, scope);
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
  body.Add("<p>Lot <strong>", bundle->name, "@", bundle->version, "</strong> : <strong>",
           Percent(t.percent_up_to_date()), "</strong> des ", t.devices(), " appareils à jour (",
           t.up_to_date(), "), ", t.in_progress(), " en cours, ", t.failed(), " en échec, ",
           t.never_seen(), " jamais vus, dans ", t.establishments(), " établissements.</p>");
  std::vector<Bar> bars;
  for (const auto& r : academies->rows()) {
    bars.push_back({absl::StrCat("Académie de ", r.label()), r.percent_up_to_date(), "",
                    absl::StrCat(" (", r.up_to_date(), "/", r.devices(), ")")});
  }
  body.Add(BarChart("Part des appareils à jour, par académie", bars));
  bars.clear();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<Html>> cells;
  for (const auto& r : departements->rows()) {
    std::string href = absl::StrCat("/departement/", r.group(), "?", lot);
    bars.push_back({r.label(), r.percent_up_to_date(), href,
                    absl::StrCat(" (", r.up_to_date(), "/", r.devices(), ")")});
    rows.push_back(ReportCells(r));
    rows.back()[0] = r.group();
    auto c = TextCells(ReportCells(r));
    c[0] = Html::Of("<a href=\"", href, "\">", r.label(), "</a>");
    c[8] = Html::Of(Percent(r.percent_up_to_date()));
    cells.push_back(std::move(c));
  }
  body.Add(BarChart("Part des appareils à jour, par département", bars));
  body.Add("<h2>Par département</h2><p class=\"actions\"><a class=\"btn light\" href=\"",
           absl::StrCat("/?", lot, "&format=csv"), "\">Télécharger (CSV)</a></p>",
           SortedTable(req, absl::StrCat("/?", lot), ReportColumns("Département"), rows, cells));
  SendHtml(res, Layout("Vue d'ensemble", &caller, session.csrf, body));
}

absl::StatusOr<Dashboard::Area> Dashboard::AreaInScope(const Caller& caller,
                                                       const std::string& kind,
                                                       const std::string& code) {
  parc::v1::ListEstablishmentsRequest filter;
  if (kind == "departement") {
    filter.set_departement(common::NormalizeDepartement(code));
  } else {
    filter.set_commune(code);
  }
  auto in_area = store_->ListEstablishments(filter, caller.scope);
  if (!in_area.ok()) return in_area.status();
  Area area;
  for (const auto& e : *in_area) {
    area.uais.insert(e.uai());
    area.place = kind == "departement"
                     ? absl::StrCat(e.departement(), " ", common::DepartementName(e.departement()))
                     : e.commune_name();
  }
  return area;
}

void Dashboard::Establishments(const httplib::Request& req, const Caller& caller,
                               const Session& session, httplib::Response& res,
                               const std::string& kind, const std::string& code) {
  auto area = AreaInScope(caller, kind, code);
  if (!area.ok()) return web::SendServerError(res, "etablissements", area.status());
  const std::set<std::string>& within = area->uais;
  const std::string& place = area->place;
  auto bundle = ChosenBundle(store_, req);
  if (within.empty() || !bundle.has_value()) {
    res.status = 404;
    SendHtml(res, Layout("Introuvable", &caller, session.csrf,
                         Html::Of("<h1>Introuvable</h1><p>Rien à afficher ici.</p>")));
    return;
  }
  auto report = store_->DeploymentReport(bundle->name, bundle->sequence, "establishment",
                                         clock_->Now() - absl::Hours(24 * 7), Scope::Uais(within));
  if (!report.ok()) {
    res.status = 500;
    return;
  }
  const std::string lot = LotParam(bundle);
  const std::string title = kind == "departement" ? absl::StrCat("Département ", place)
                                                  : absl::StrCat("Commune : ", place);
  auto relays = RelaySummaries(store_, within, bundle, clock_->Now());
  if (!relays.ok()) return web::SendServerError(res, "etablissements", relays.status());
  std::vector<Column> columns = ReportColumns("Établissement");
  columns.insert(columns.begin() + 1, Column{"uai", "UAI"});
  columns.push_back(Column{"relais", "Relais (part des octets)"});
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<Html>> cells;
  for (const auto& r : report->rows()) {
    auto values = ReportCells(r);
    values.insert(values.begin() + 1, r.group());
    auto relay = relays->find(r.group());
    values.push_back(relay == relays->end() ? "—" : relay->second.Text());
    auto c = TextCells(values);
    if (relay != relays->end() && !relay->second.healthy) {
      c.back() = Html::Of("<span class=\"ko\">", values.back(), "</span>");
    }
    c[0] = Html::Of("<a href=\"", absl::StrCat("/etablissement/", r.group(), "?", lot), "\">",
                    r.label(), "</a>");
    c[9] = Html::Of(Percent(r.percent_up_to_date()));
    rows.push_back(std::move(values));
    cells.push_back(std::move(c));
  }
  if (WantsCsv(req)) {
    std::vector<std::string> header;
    for (const auto& c : columns) header.push_back(c.label);
    return SendCsv(res, absl::StrCat("etablissements-", kind, "-", code, ".csv"), header, rows);
  }
  std::string base = absl::StrCat("/", kind, "/", code, "?", lot);
  Html body =
      Html::Of("<h1>", title, "</h1><p>Lot ", bundle->name, "@", bundle->version, " : ",
               Percent(report->total().percent_up_to_date()), " des ", report->total().devices(),
               " appareils à jour.</p><p class=\"actions\"><a class=\"btn light\" href=\"",
               absl::StrCat(base, "&format=csv"), "\">Télécharger (CSV)</a></p>",
               SortedTable(req, base, columns, rows, cells));
  SendHtml(res, Layout(title, &caller, session.csrf, body));
}

namespace {

constexpr uint32_t kDevicesPerPage = 100;

struct KindKey {
  const char* key;
  parc::v1::DeviceKind kind;
};
constexpr KindKey kKindKeys[] = {{"portable", parc::v1::DEVICE_KIND_LAPTOP},
                                 {"tablette", parc::v1::DEVICE_KIND_TABLET},
                                 {"ecran", parc::v1::DEVICE_KIND_DISPLAY},
                                 {"fixe", parc::v1::DEVICE_KIND_DESKTOP},
                                 {"autre", parc::v1::DEVICE_KIND_OTHER}};

struct GroupKey {
  const char* key;
  const char* label;
  DeviceStateQuery::Group group;
};
constexpr GroupKey kGroupKeys[] = {{"ajour", "À jour", DeviceStateQuery::Group::kInstalled},
                                   {"encours", "En cours", DeviceStateQuery::Group::kInProgress},
                                   {"echec", "En échec", DeviceStateQuery::Group::kFailed},
                                   {"pasencore", "Pas encore", DeviceStateQuery::Group::kNotYet}};

DeviceStateQuery::Group GroupOf(parc::v1::DeploymentState s) {
  switch (s) {
    case parc::v1::DEPLOYMENT_STATE_INSTALLED:
      return DeviceStateQuery::Group::kInstalled;
    case parc::v1::DEPLOYMENT_STATE_IN_PROGRESS:
      return DeviceStateQuery::Group::kInProgress;
    case parc::v1::DEPLOYMENT_STATE_FAILED:
    case parc::v1::DEPLOYMENT_STATE_REFUSED:
      return DeviceStateQuery::Group::kFailed;
    default:
      return DeviceStateQuery::Group::kNotYet;
  }
}

std::string Param(const httplib::Request& req, const char* name) {
  return req.has_param(name) ? req.get_param_value(name) : "";
}

}  // namespace

void Dashboard::Establishment(const httplib::Request& req, const Caller& caller,
                              const Session& session, httplib::Response& res,
                              const std::string& uai) {
  auto est = store_->GetEstablishment(uai);
  auto bundle = ChosenBundle(store_, req);
  if (!est.ok() || !caller.scope.Contains(*est)) {
    res.status = 404;
    SendHtml(res, Layout("Introuvable", &caller, session.csrf,
                         Html::Of("<h1>Introuvable</h1><p>Aucun établissement de ce code.</p>")));
    return;
  }
  // Filters, sort and page, all done by the store: a lycée has hundreds of devices.
  DeviceStateQuery q(Scope::Uais({uai}));
  q.bundle_name = bundle ? bundle->name : "";
  q.min_sequence = bundle ? bundle->sequence : 0;
  const std::string type = Param(req, "type"), etat = Param(req, "etat");
  std::string kind_label, group_label;
  for (const auto& k : kKindKeys) {
    if (type == k.key) {
      q.kind = k.kind;
      kind_label = KindLabel(k.kind);
    }
  }
  for (const auto& g : kGroupKeys) {
    if (etat == g.key) {
      q.group = g.group;
      group_label = g.label;
    }
  }
  const std::vector<Column> columns = {{"appareil", "Appareil"},       {"type", "Type"},
                                       {"modele", "Modèle"},           {"serie", "N° de série"},
                                       {"contact", "Dernier contact"}, {"etat", "État du lot"},
                                       {"erreur", "Dernière erreur"}};
  constexpr DeviceStateQuery::Sort kSorts[] = {
      DeviceStateQuery::Sort::kName,     DeviceStateQuery::Sort::kKind,
      DeviceStateQuery::Sort::kModel,    DeviceStateQuery::Sort::kSerial,
      DeviceStateQuery::Sort::kLastSeen, DeviceStateQuery::Sort::kState,
      DeviceStateQuery::Sort::kError};
  const web::SortChoice sort = web::RequestedSort(req, columns);
  if (sort.column >= 0) q.sort = kSorts[sort.column];
  q.descending = sort.descending;

  auto counts = store_->CountDeviceStates(q.bundle_name, q.min_sequence, q.scope);
  if (!counts.ok()) return web::SendServerError(res, "etablissement", counts.status());
  // Devices per kind and state group; [kind][group], group 0 = all.
  std::map<parc::v1::DeviceKind, std::map<DeviceStateQuery::Group, uint32_t>> summary;
  uint32_t matching = 0, all = 0;
  for (const auto& c : *counts) {
    const auto group = GroupOf(c.state);
    summary[c.kind][group] += c.devices;
    summary[c.kind][DeviceStateQuery::Group::kAny] += c.devices;
    all += c.devices;
    if ((q.kind == parc::v1::DEVICE_KIND_UNSPECIFIED || q.kind == c.kind) &&
        (q.group == DeviceStateQuery::Group::kAny || q.group == group)) {
      matching += c.devices;
    }
  }
  const uint32_t pages = std::max<uint32_t>(1, (matching + kDevicesPerPage - 1) / kDevicesPerPage);
  uint32_t page = 1;
  if (!absl::SimpleAtoi(Param(req, "page"), &page) || page < 1) page = 1;
  page = std::min(page, pages);

  auto row_values = [](const DeviceState& d) {
    // Firmware often repeats the manufacturer in the product name ("HP" + "HP ProBook…").
    std::string model = absl::StartsWithIgnoreCase(d.device.model(), d.device.manufacturer())
                            ? d.device.model()
                            : absl::StrCat(d.device.manufacturer(), " ", d.device.model());
    return std::vector<std::string>{d.device.id(),
                                    KindLabel(d.device.kind()),
                                    std::string(absl::StripAsciiWhitespace(model)),
                                    d.device.serial(),
                                    When(d.device.last_seen_at()),
                                    StateLabel(d.state),
                                    d.message.empty() ? d.reason : d.message};
  };
  if (WantsCsv(req)) {
    // Every device that matches, not one page.
    auto devices = store_->ListDeviceStates(q);
    if (!devices.ok()) return web::SendServerError(res, "etablissement", devices.status());
    std::vector<std::vector<std::string>> rows;
    rows.reserve(devices->size());
    for (const auto& d : *devices) rows.push_back(row_values(d));
    std::vector<std::string> header;
    for (const auto& c : columns) header.push_back(c.label);
    return SendCsv(res, absl::StrCat("appareils-", uai, ".csv"), header, rows);
  }
  q.offset = (page - 1) * kDevicesPerPage;
  q.limit = kDevicesPerPage;
  auto devices = store_->ListDeviceStates(q);
  if (!devices.ok()) return web::SendServerError(res, "etablissement", devices.status());
  std::vector<std::vector<Html>> cells;
  for (const auto& d : *devices) {
    auto c = TextCells(row_values(d));
    c[0] = Html::Of("<a href=\"", absl::StrCat("/appareil/", d.device.id()), "\">",
                    d.device.hostname().empty() ? d.device.id() : d.device.hostname(), "</a>");
    bool ok = d.state == parc::v1::DEPLOYMENT_STATE_INSTALLED;
    bool ko = d.state == parc::v1::DEPLOYMENT_STATE_FAILED ||
              d.state == parc::v1::DEPLOYMENT_STATE_REFUSED;
    c[5] = Html::Of("<span class=\"",
                    std::string(ok   ? "ok"
                                : ko ? "ko"
                                     : "muted"),
                    "\">", c[5], "</span>");
    cells.push_back(std::move(c));
  }

  const std::string lot = LotParam(bundle);
  const std::string here = absl::StrCat("/etablissement/", uai, "?", lot);
  auto with = [&](const std::string& t, const std::string& e) {
    std::string url = here;
    if (!t.empty()) absl::StrAppend(&url, "&type=", t);
    if (!e.empty()) absl::StrAppend(&url, "&etat=", e);
    return url;
  };
  const std::string filtered =
      with(type == "" || kind_label.empty() ? "" : type, group_label.empty() ? "" : etat);
  const std::string sorted =
      sort.column < 0
          ? filtered
          : absl::StrCat(filtered, "&tri=", columns[static_cast<size_t>(sort.column)].key,
                         "&ordre=", sort.descending ? "desc" : "asc");

  Html body = Html::Of("<h1>", est->name(), "</h1><p>", uai, " — ", est->commune_name(), " (",
                       est->departement(), ") — équipement : ", est->collectivite_name(), "</p>");
  if (bundle) body.Add("<p>Lot ", bundle->name, "@", bundle->version, "</p>");
  // The establishment's relay: where its devices download from, and how well it does.
  auto relays = RelaySummaries(store_, {uai}, bundle, clock_->Now());
  if (!relays.ok()) return web::SendServerError(res, "etablissement", relays.status());
  if (auto r = relays->find(uai); r != relays->end()) {
    const RelaySummary& s = r->second;
    body.Add("<p class=\"relay\">Relais : ", absl::StrJoin(s.urls, ", "), " — <span class=\"",
             std::string(s.healthy ? "ok" : "ko"), "\">", s.health_label, "</span>");
    if (const std::string percent = s.SharePercent(); !percent.empty()) {
      body.Add(" — ", percent, " des octets téléchargés pour ce lot en sont venus");
    } else if (bundle) {
      body.Add(" — rien encore téléchargé pour ce lot");
    }
    body.Add(".</p>");
  } else {
    body.Add(
        "<p class=\"relay\">Pas de relais : les appareils téléchargent depuis le serveur "
        "central.</p>");
  }

  // The summary: devices per kind and state, each count a link to that list.
  body.Add(
      "<h2>Par type d'appareil</h2><div class=\"wrap\"><table><thead><tr>"
      "<th scope=\"col\">Type</th>");
  for (const auto& g : kGroupKeys)
    body.Add("<th scope=\"col\" class=\"n\">", std::string(g.label), "</th>");
  body.Add("<th scope=\"col\" class=\"n\">Total</th></tr></thead><tbody>");
  auto count_cell = [&](uint32_t n, const std::string& t, const std::string& e) {
    return n == 0 ? Html::Of("<td class=\"n\">0</td>")
                  : Html::Of("<td class=\"n\"><a href=\"", with(t, e), "\">", n, "</a></td>");
  };
  for (const auto& k : kKindKeys) {
    auto it = summary.find(k.kind);
    if (it == summary.end()) continue;
    body.Add("<tr><th scope=\"row\">", KindLabel(k.kind), "</th>");
    for (const auto& g : kGroupKeys) body.Add(count_cell(it->second[g.group], k.key, g.key));
    body.Add(count_cell(it->second[DeviceStateQuery::Group::kAny], k.key, ""), "</tr>");
  }
  body.Add("<tr><th scope=\"row\">Tous types</th>");
  for (const auto& g : kGroupKeys) {
    uint32_t n = 0;
    for (auto& [kind, groups] : summary) n += groups[g.group];
    body.Add(count_cell(n, "", g.key));
  }
  body.Add(count_cell(all, "", ""), "</tr></tbody></table></div>");

  body.Add("<h2>Appareils</h2>");
  if (!kind_label.empty() || !group_label.empty()) {
    body.Add("<p>Filtre : ", kind_label,
             std::string(kind_label.empty() || group_label.empty() ? "" : " · "), group_label,
             " — <a href=\"", here, "\">tout afficher</a></p>");
  }
  body.Add("<p class=\"actions\">");
  if (matching > 0) {
    body.Add("Appareils ", q.offset + 1, "–", q.offset + static_cast<uint32_t>(devices->size()),
             " sur ", matching, " ");
  } else {
    body.Add("Aucun appareil. ");
  }
  body.Add("<a class=\"btn light\" href=\"", absl::StrCat(sorted, "&format=csv"),
           "\">Télécharger la liste complète (CSV)</a></p>",
           web::Table(filtered, columns, sort, cells));
  if (pages > 1) {
    body.Add("<nav class=\"actions\" aria-label=\"Pages\">");
    if (page > 1) {
      body.Add("<a class=\"btn light\" rel=\"prev\" href=\"",
               absl::StrCat(sorted, "&page=", page - 1), "\">Précédents</a>");
    }
    body.Add("<span>Page ", page, " sur ", pages, "</span>");
    if (page < pages) {
      body.Add("<a class=\"btn light\" rel=\"next\" href=\"",
               absl::StrCat(sorted, "&page=", page + 1), "\">Suivants</a>");
    }
    body.Add("</nav>");
  }
  SendHtml(res, Layout(est->name(), &caller, session.csrf, body));
}

void Dashboard::Device(const httplib::Request&, const Caller& caller, const Session& session,
                       httplib::Response& res, const std::string& id) {
  auto details = store_->GetDevice(id, caller.scope);
  if (!details.ok()) {
    res.status = absl::IsNotFound(details.status()) ? 404 : 500;
    SendHtml(res, Layout("Introuvable", &caller, session.csrf,
                         Html::Of("<h1>Introuvable</h1><p>Aucun appareil de ce code.</p>")));
    return;
  }
  const auto& d = details->device;
  Html body = Html::Of(
      "<h1>", d.hostname().empty() ? d.id() : d.hostname(),
      "</h1><div class=\"card wrap\"><table><tbody>", "<tr><th scope=\"row\">Appareil</th><td>",
      d.id(), "</td></tr>", "<tr><th scope=\"row\">Établissement</th><td><a href=\"",
      absl::StrCat("/etablissement/", d.uai()), "\">", d.establishment_name(), "</a> (", d.uai(),
      ")</td></tr>", "<tr><th scope=\"row\">Type</th><td>", KindLabel(d.kind()), "</td></tr>",
      "<tr><th scope=\"row\">Modèle</th><td>", d.manufacturer(), " ", d.model(),
      "</td></tr><tr><th scope=\"row\">N° de série</th><td>", d.serial(), "</td></tr>",
      "<tr><th scope=\"row\">Système</th><td>", d.os(), "</td></tr>",
      "<tr><th scope=\"row\">Agent</th><td>", d.agent_version(), "</td></tr>",
      "<tr><th scope=\"row\">Inscrit le</th><td>", When(d.enrolled_at()), "</td></tr>",
      "<tr><th scope=\"row\">Dernier contact</th><td>", When(d.last_seen_at()), "</td></tr>",
      "</tbody></table></div>");
  auto packages = store_->DevicePackages(d.id());
  body.Add("<h2>Applications du lot</h2>");
  if (!packages.ok() || packages->empty()) {
    body.Add("<p class=\"muted\">Aucun déploiement pour cet appareil.</p>");
  } else {
    body.Add(
        "<div class=\"wrap\"><table><thead><tr><th scope=\"col\">Application</th>"
        "<th scope=\"col\">Version</th><th scope=\"col\">État</th><th scope=\"col\">"
        "Erreur</th></tr></thead><tbody>");
    for (const auto& p : *packages) {
      Html error = Html::Of(p.reason());
      if (p.exit_status() != 0) error.Add(" (code ", p.exit_status(), ")");
      if (!p.output_tail().empty()) {
        const std::string& tail = p.output_tail();
        error.Add("<pre>", tail.substr(tail.size() > 400 ? tail.size() - 400 : 0), "</pre>");
      }
      body.Add("<tr><th scope=\"row\">", p.package_id(), "</th><td>", p.version(), "</td><td>",
               PackageStateLabel(p.state()), "</td><td>", error, "</td></tr>");
    }
    body.Add("</tbody></table></div>");
  }
  body.Add("<h2>Derniers contacts</h2><p>Vu ",
           DaysSeenInLast30(details->seen_days, details->seen_day, clock_->Now()),
           " jour(s) sur les 30 derniers.</p><ul>");
  for (absl::Time t : details->recent_checkins) {
    google::protobuf::Timestamp ts;
    ts.set_seconds(absl::ToUnixSeconds(t));
    body.Add("<li>", When(ts), "</li>");
  }
  body.Add("</ul>");
  if (details->inventory.has_value()) {
    body.Add("<h2>Inventaire</h2><pre class=\"card\">",
             common::FormatInventoryText(*details->inventory), "</pre>");
  }
  SendHtml(res, Layout(d.id(), &caller, session.csrf, body));
}

void Dashboard::Rollouts(const httplib::Request& req, const Caller& caller, const Session& session,
                         httplib::Response& res) {
  auto rollouts = store_->ListRollouts(caller.scope);
  if (!rollouts.ok()) {
    res.status = 500;
    return;
  }
  Html body = Html::Of("<h1>Déploiements</h1>");
  static const std::map<std::string, std::string> kRefusals = {
      {"role", "Action refusée : votre rôle ne permet pas de modifier un déploiement."},
      {"perimetre",
       "Action refusée : ce déploiement a été créé par un autre opérateur et dépasse votre "
       "périmètre ; seuls son auteur et les administrateurs ou éditeurs régionaux peuvent le "
       "modifier."},
      {"etat", "Action impossible : l'état du déploiement a changé entre-temps."}};
  if (req.has_param("refus")) {
    auto it = kRefusals.find(req.get_param_value("refus"));
    body.Add("<p class=\"error\" role=\"alert\">",
             it != kRefusals.end() ? it->second : kRefusals.at("role"), "</p>");
  }
  if (rollouts->empty()) body.Add("<p class=\"card\">Aucun déploiement.</p>");
  for (auto it = rollouts->rbegin(); it != rollouts->rend(); ++it) {
    const RolloutRecord& r = *it;
    auto counts = store_->RolloutCounts(r.id, caller.scope);
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
    body.Add("<section class=\"card\"><h2>", r.bundle_name, "@", r.bundle_version, " — ",
             kStates.count(r.state) ? kStates.at(r.state) : r.state, "</h2><p class=\"muted\">",
             r.id, " · cible ", r.target);
    if (!r.state_reason.empty()) body.Add(" · ", r.state_reason);
    body.Add("</p>");
    std::vector<Bar> bars;
    for (size_t w = 0; w < waves.size(); ++w) {
      double pct = waves[w].targeted == 0 ? 0 : 100.0 * waves[w].installed / waves[w].targeted;
      bars.push_back({absl::StrCat("Vague ", w + 1,
                                   w <= r.current_wave && r.state != "draft" ? "" : " (à venir)"),
                      pct, "",
                      absl::StrCat(" : ", waves[w].installed, "/", waves[w].targeted,
                                   " installés, ", waves[w].failed, " en échec")});
    }
    body.Add(BarChart("Appareils installés par vague", bars));
    if (rollouts_->MayChange(caller, r).ok() && (r.state == "running" || r.state == "paused")) {
      std::string action = r.state == "running" ? "pause" : "reprise";
      body.Add("<form method=\"post\" action=\"", absl::StrCat("/deploiements/", r.id, "/", action),
               "\"><input type=\"hidden\" name=\"csrf\" value=\"", session.csrf,
               "\"><button class=\"btn\" type=\"submit\">",
               std::string(r.state == "running" ? "Mettre en pause" : "Reprendre"),
               "</button></form>");
    }
    body.Add("</section>");
  }
  SendHtml(res, Layout("Déploiements", &caller, session.csrf, body));
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
    SendHtml(res, Layout("Introuvable", &*caller, session.csrf,
                         Html::Of("<h1>Introuvable</h1><p>Aucun déploiement de ce code.</p>")));
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
