// The dashboard's "Santé du parc" pages: the fleet health indicators by académie, département,
// commune and establishment (Store::HealthReport, the numbers of `parcctl report health`), and
// an establishment's devices under one indicator: a technician's to-do list for one visit.
#include <httplib.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/health_indicators.h"
#include "common/inventory_format.h"
#include "common/uai.h"
#include "server/dashboard.h"
#include "server/dashboard_html.h"
#include "server/health.h"

namespace parc::server {

using common::HealthIndicator;
using common::HealthIndicators;
using web::Column;
using web::Html;
using web::KindLabel;
using web::Layout;
using web::SendCsv;
using web::SendHtml;
using web::SortedTable;
using web::TextCells;
using web::WantsCsv;

namespace {

// "12 (3 %)", or "—" for a group without devices (never "0 %").
std::string CountAndShare(uint32_t count, uint32_t devices) {
  if (devices == 0) return "—";
  return absl::StrFormat("%u (%.0f %%)", count, 100.0 * count / devices);
}

std::vector<Column> GroupColumns(const std::string& first) {
  std::vector<Column> columns = {
      {"nom", first}, {"etablissements", "Établissements", true}, {"appareils", "Appareils", true}};
  for (const auto& i : HealthIndicators()) columns.push_back({i.name, i.label, true});
  return columns;
}

// A table of groups (académies, départements, communes, establishments): sortable on the
// counts, each name linking to href(row) when not empty. CSV: counts and shares.
struct GroupTable {
  std::vector<std::vector<std::string>> values;
  std::vector<std::vector<Html>> cells;
  std::vector<std::vector<std::string>> csv;
};

GroupTable Groups(const parc::v1::HealthReportResponse& report,
                  const std::function<std::string(const parc::v1::HealthReportRow&)>& href) {
  GroupTable t;
  for (const auto& r : report.rows()) {
    std::vector<std::string> values = {r.label(), std::to_string(r.establishments()),
                                       std::to_string(r.devices())};
    std::vector<std::string> csv = {r.group(), r.label(), std::to_string(r.establishments()),
                                    std::to_string(r.devices())};
    std::vector<Html> cells;
    const std::string link = href(r);
    cells.push_back(link.empty() ? Html::Of(r.label())
                                 : Html::Of("<a href=\"", link, "\">", r.label(), "</a>"));
    cells.push_back(Html::Of(r.establishments()));
    cells.push_back(Html::Of(r.devices()));
    for (const auto& i : HealthIndicators()) {
      const uint32_t n = i.count(r);
      values.push_back(std::to_string(n));
      cells.push_back(Html::Of(CountAndShare(n, r.devices())));
      csv.push_back(std::to_string(n));
      csv.push_back(r.devices() == 0 ? "" : absl::StrFormat("%.1f", 100.0 * n / r.devices()));
    }
    t.values.push_back(std::move(values));
    t.cells.push_back(std::move(cells));
    t.csv.push_back(std::move(csv));
  }
  return t;
}

std::vector<std::string> GroupCsvHeader(const std::string& first) {
  std::vector<std::string> header = {"Code", first, "Établissements", "Appareils"};
  for (const auto& i : HealthIndicators()) {
    header.push_back(i.label);
    header.push_back(absl::StrCat(i.label, " (%)"));
  }
  return header;
}

// The reference bundle and the day, in a sentence.
Html Reference(const parc::v1::HealthReportResponse& r) {
  Html out = Html::Of("<p class=\"card\">Au ", r.as_of(), " (UTC). ");
  if (r.bundle_name().empty()) {
    out.Add(
        "Aucun lot publié ne déclare ses besoins (espace, mémoire) : « Ne peut pas recevoir "
        "le lot » reste à 0.");
  } else {
    out.Add("Lot de référence <strong>", r.bundle_name(), "@", r.bundle_version(),
            "</strong> : ", common::HumanBytes(r.installed_bytes(), false), " d'espace libre, ",
            common::HumanBytes(r.min_ram_bytes(), false), " de mémoire.");
  }
  out.Add(
      " Âge : années depuis la date du firmware. Fins de support : table tenue par "
      "l'administration régionale.</p>");
  return out;
}

Html NotFound(const Caller& caller, const std::string& csrf) {
  return Layout("Introuvable", &caller, csrf,
                Html::Of("<h1>Introuvable</h1><p>Rien à afficher ici.</p>"));
}

std::string Gib(uint64_t bytes) { return std::to_string(bytes >> 30); }

}  // namespace

void Dashboard::HealthOverview(const httplib::Request& req, const Caller& caller,
                               const Session& session, httplib::Response& res) {
  const absl::Time now = clock_->Now();
  // One report: the académies' rows are the sums of their départements' (each département
  // belongs to one académie), which costs nothing next to a second report (about 100 ms for the
  // region at 300,000 devices).
  auto departements = store_->HealthReport("departement", now, caller.scope);
  if (!departements.ok()) return web::SendServerError(res, "sante", departements.status());
  parc::v1::HealthReportResponse academies_report;
  std::map<std::string, parc::v1::HealthReportRow> by_academie;
  for (const auto& r : departements->rows()) AddHealthCounts(&by_academie[r.parent()], r);
  for (auto& [academie, row] : by_academie) {
    row.set_group(academie);
    row.set_label(academie);
    *academies_report.add_rows() = row;
  }
  absl::StatusOr<parc::v1::HealthReportResponse> academies = std::move(academies_report);
  GroupTable deps = Groups(*departements, [](const parc::v1::HealthReportRow& r) {
    return absl::StrCat("/sante/departement/", r.group());
  });
  if (WantsCsv(req)) {
    return SendCsv(res, "sante-departements.csv", GroupCsvHeader("Département"), deps.csv);
  }
  const auto& t = departements->total();
  Html body = Html::Of("<h1>Santé du parc</h1>");
  if (t.devices() == 0) {
    body.Add("<p>Aucun appareil inscrit dans votre périmètre.</p>");
  } else {
    body.Add("<p><strong>", t.devices(), "</strong> appareils dans ", t.establishments(),
             " établissements : ", CountAndShare(t.cannot_take_bundle(), t.devices()),
             " ne peuvent pas recevoir le lot, ", CountAndShare(t.battery_below_60(), t.devices()),
             " ont une batterie sous 60 %, ", CountAndShare(t.os_unsupported(), t.devices()),
             " ont un système hors support (dont ", t.to_windows11(),
             " pouvant passer à Windows 11), ", CountAndShare(t.unseen_30_days(), t.devices()),
             " ne se sont pas manifestés depuis 30 jours.</p>");
  }
  body.Add(Reference(*departements));
  GroupTable acs = Groups(*academies, [](const parc::v1::HealthReportRow&) { return ""; });
  body.Add("<h2>Par académie</h2>",
           SortedTable(req, "/sante", GroupColumns("Académie"), acs.values, acs.cells));
  body.Add(
      "<h2>Par département</h2><p class=\"actions\"><a class=\"btn light\" "
      "href=\"/sante?format=csv\">Télécharger (CSV)</a></p>",
      SortedTable(req, "/sante", GroupColumns("Département"), deps.values, deps.cells));
  SendHtml(res, Layout("Santé du parc", &caller, session.csrf, body));
}

void Dashboard::HealthArea(const httplib::Request& req, const Caller& caller,
                           const Session& session, httplib::Response& res, const std::string& kind,
                           const std::string& code) {
  auto area = AreaInScope(caller, kind, code);
  if (!area.ok()) return web::SendServerError(res, "sante", area.status());
  const std::set<std::string>& within = area->uais;
  if (within.empty()) {
    res.status = 404;
    return SendHtml(res, NotFound(caller, session.csrf));
  }
  const absl::Time now = clock_->Now();
  auto establishments = store_->HealthReport("establishment", now, Scope::Uais(within));
  if (!establishments.ok()) return web::SendServerError(res, "sante", establishments.status());
  GroupTable ests = Groups(*establishments, [](const parc::v1::HealthReportRow& r) {
    return absl::StrCat("/sante/etablissement/", r.group());
  });
  const std::string base = absl::StrCat("/sante/", kind, "/", code);
  if (WantsCsv(req)) {
    return SendCsv(res, absl::StrCat("sante-", kind, "-", code, ".csv"),
                   GroupCsvHeader("Établissement"), ests.csv);
  }
  const std::string title = absl::StrCat("Santé du parc — ", area->place);
  Html body = Html::Of("<h1>", title, "</h1>", Reference(*establishments));
  if (kind == "departement") {
    auto communes = store_->HealthReport("commune", now, Scope::Uais(within));
    if (!communes.ok()) return web::SendServerError(res, "sante", communes.status());
    GroupTable coms = Groups(*communes, [](const parc::v1::HealthReportRow& r) {
      return absl::StrCat("/sante/commune/", r.group());
    });
    body.Add("<h2>Par commune</h2>",
             SortedTable(req, base, GroupColumns("Commune"), coms.values, coms.cells));
  }
  body.Add("<h2>Par établissement</h2><p class=\"actions\"><a class=\"btn light\" href=\"",
           absl::StrCat(base, "?format=csv"), "\">Télécharger (CSV)</a></p>",
           SortedTable(req, base, GroupColumns("Établissement"), ests.values, ests.cells));
  SendHtml(res, Layout(title, &caller, session.csrf, body));
}

void Dashboard::HealthEstablishment(const httplib::Request& req, const Caller& caller,
                                    const Session& session, httplib::Response& res,
                                    const std::string& uai) {
  auto est = store_->GetEstablishment(uai);
  if (!est.ok() || !caller.scope.Contains(*est)) {
    res.status = 404;
    return SendHtml(res, NotFound(caller, session.csrf));
  }
  std::optional<HealthIndicator> indicator;
  const std::string wanted = req.has_param("indicateur") ? req.get_param_value("indicateur") : "";
  if (!wanted.empty()) {
    auto parsed = common::ParseHealthIndicator(wanted);
    if (!parsed.ok()) {
      res.status = 400;
      return SendHtml(res, Layout("Indicateur inconnu", &caller, session.csrf,
                                  Html::Of("<h1>Indicateur inconnu</h1><p>",
                                           std::string(parsed.status().message()), "</p>")));
    }
    indicator = *parsed;
  }
  const absl::Time now = clock_->Now();
  const Scope scope = Scope::Uais({uai});
  auto report = store_->HealthReport("establishment", now, scope);
  auto devices = store_->ListHealthDevices(uai, indicator, now, scope);
  if (!report.ok()) return web::SendServerError(res, "sante", report.status());
  if (!devices.ok()) return web::SendServerError(res, "sante", devices.status());

  const std::vector<Column> columns = {{"nom", "Appareil"},
                                       {"type", "Type"},
                                       {"modele", "Modèle"},
                                       {"serie", "N° de série"},
                                       {"batterie", "Batterie (%)", true},
                                       {"firmware", "Année du firmware", true},
                                       {"systeme", "Système"},
                                       {"support", "Fin de support"},
                                       {"w11", "Windows 11 possible"},
                                       {"libre", "Espace libre (Gio)", true},
                                       {"memoire", "Mémoire (Gio)", true},
                                       {"vu", "Dernier contact"},
                                       {"lot", "Lot de référence"}};
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<Html>> cells;
  for (const auto& d : *devices) {
    std::vector<std::string> v = {
        d.hostname.empty() ? d.id : d.hostname,
        KindLabel(d.kind),
        d.model,
        d.serial,
        d.battery_health.has_value() ? std::to_string(*d.battery_health) : "",
        d.firmware_year > 0 ? std::to_string(d.firmware_year) : "",
        d.os,
        d.end_of_support.empty() ? "inconnue" : d.end_of_support,
        d.windows11_capable ? "oui" : "non",
        d.free_bytes.has_value() ? Gib(*d.free_bytes) : "",
        d.ram_bytes > 0 ? Gib(d.ram_bytes) : "",
        d.last_seen.has_value()
            ? absl::FormatTime("%Y-%m-%d %H:%M", *d.last_seen, absl::LocalTimeZone())
            : "jamais",
        d.cannot_take_bundle ? "ne peut pas le recevoir" : ""};
    auto c = TextCells(v);
    c[0] = Html::Of("<a href=\"", absl::StrCat("/appareil/", d.id), "\">", v[0], "</a>");
    rows.push_back(std::move(v));
    cells.push_back(std::move(c));
  }
  const std::string filter_label = indicator ? common::InfoOf(*indicator).label : "";
  if (WantsCsv(req)) {
    std::vector<std::string> header;
    for (const auto& c : columns) header.push_back(c.label);
    return SendCsv(res,
                   absl::StrCat("sante-", uai, indicator ? "-" : "",
                                indicator ? common::InfoOf(*indicator).name : "", ".csv"),
                   header, rows);
  }
  const std::string base =
      absl::StrCat("/sante/etablissement/", uai,
                   indicator ? absl::StrCat("?indicateur=", common::InfoOf(*indicator).name) : "");
  const std::string title = absl::StrCat("Santé du parc — ", est->name());
  Html body = Html::Of("<h1>", title, "</h1><p>", est->uai(), " · ", est->commune_name(), " (",
                       est->departement(), ")</p>", Reference(*report));
  const parc::v1::HealthReportRow row =
      report->rows_size() > 0 ? report->rows(0) : parc::v1::HealthReportRow();
  body.Add("<p class=\"actions\">Filtrer : <a href=\"/sante/etablissement/", uai, "\">",
           indicator ? Html::Of("Tous") : Html::Of("<strong>Tous</strong>"), "</a> (",
           row.devices(), ")");
  for (const auto& i : HealthIndicators()) {
    const bool chosen = indicator && *indicator == i.indicator;
    body.Add(" · <a href=\"", absl::StrCat("/sante/etablissement/", uai, "?indicateur=", i.name),
             "\">",
             chosen ? Html::Of("<strong>", std::string(i.label), "</strong>")
                    : Html::Of(std::string(i.label)),
             "</a> (", i.count(row), ")");
  }
  body.Add("</p><h2>",
           indicator ? absl::StrCat(filter_label, " : ", devices->size(), " appareil(s)")
                     : absl::StrCat("Tous les appareils : ", devices->size()),
           "</h2><p class=\"actions\"><a class=\"btn light\" href=\"",
           absl::StrCat(base, indicator ? "&" : "?", "format=csv"),
           "\">Télécharger la liste (CSV)</a></p>", SortedTable(req, base, columns, rows, cells));
  SendHtml(res, Layout(title, &caller, session.csrf, body));
}

}  // namespace parc::server
