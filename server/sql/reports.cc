// Operators, audit log and reports of SqlStore.
#include <map>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/inventory_util.h"
#include "common/status_macros.h"
#include "common/uai.h"
#include "server/sql/report_grouping.h"
#include "server/sql/scope_sql.h"
#include "server/sql/time_util.h"
#include "server/sql_store.h"

namespace parc::server {
namespace {

using Statement = sql::Stmt;
using sql::U32;
using sql::Unix;

void SetPercent(parc::v1::DeploymentReportRow* row) {
  row->set_percent_up_to_date(row->devices() == 0 ? 0.0
                                                  : 100.0 * row->up_to_date() / row->devices());
}

void AddInto(parc::v1::DeploymentReportRow* total, const parc::v1::DeploymentReportRow& r) {
  total->set_establishments(total->establishments() + r.establishments());
  total->set_devices(total->devices() + r.devices());
  total->set_up_to_date(total->up_to_date() + r.up_to_date());
  total->set_in_progress(total->in_progress() + r.in_progress());
  total->set_failed(total->failed() + r.failed());
  total->set_never_seen(total->never_seen() + r.never_seen());
  total->set_stale(total->stale() + r.stale());
}

}  // namespace

namespace {

using sql::DepartementLabel;
using sql::ReportGrouping;

absl::StatusOr<ReportGrouping> DeploymentGrouping(const std::string& by) {
  return sql::GroupingFor(by, /*with_kind=*/true);
}

// A group's counts, as both the counts and the scan produce them.
struct GroupCounts {
  int64_t establishments = 0, devices = 0, up = 0, prog = 0, failed = 0, never = 0, stale = 0;
};

// An empty report with its total row.
parc::v1::DeploymentReportResponse NewDeploymentReport() {
  parc::v1::DeploymentReportResponse out;
  out.mutable_total()->set_group("total");
  out.mutable_total()->set_label("Total");
  return out;
}

// Appends a group's row and adds it to the total.
void AddDeploymentRow(parc::v1::DeploymentReportResponse* out, const std::string& group,
                      const std::string& label, const GroupCounts& c) {
  auto* r = out->add_rows();
  r->set_group(group);
  r->set_label(label);
  r->set_establishments(U32(c.establishments));
  r->set_devices(U32(c.devices));
  r->set_up_to_date(U32(c.up));
  r->set_in_progress(U32(c.prog));
  r->set_failed(U32(c.failed));
  r->set_never_seen(U32(c.never));
  r->set_stale(U32(c.stale));
  SetPercent(r);
  AddInto(out->mutable_total(), *r);
}

// Columns: group, label, establishments, devices, up to date, in progress, failed, never seen,
// stale.
absl::Status ReadDeploymentRows(Statement& st, const std::string& by,
                                parc::v1::DeploymentReportResponse* out) {
  PARC_RETURN_IF_ERROR(sql::ForEachRow(st, [&](const Statement&) {
    std::string group = st.Text(0), label = st.Text(1);
    if (by == "departement") {
      label = DepartementLabel(group);
    } else if (by == "kind") {
      group = common::KindName(static_cast<parc::v1::DeviceKind>(st.Int(0)));
      label = group.empty() ? "unknown" : group;
    }
    AddDeploymentRow(
        out, group, label,
        GroupCounts{st.Int(2), st.Int(3), st.Int(4), st.Int(5), st.Int(6), st.Int(7), st.Int(8)});
  }));
  return absl::OkStatus();
}

// Staleness is counted in whole UTC days: a device is stale when its last check-in was before
// the day holding `stale_before` (so "7 days" means "not seen since midnight UTC 7 days ago").
int64_t StaleDay(absl::Time stale_before) {
  int64_t t = Unix(stale_before);
  return t >= 0 ? t / 86400 : 0;
}

}  // namespace

absl::StatusOr<parc::v1::DeploymentReportResponse> SqlStore::DeploymentReport(
    const std::string& bundle_name, uint64_t min_sequence, const std::string& by,
    absl::Time stale_before, const Scope& scope) {
  PARC_ASSIGN_OR_RETURN(ReportGrouping g, DeploymentGrouping(by));
  ReaderLease db = AcquireReader();
  // The counts hold each device's best state per bundle; when several bundles of the name reach
  // `min_sequence` (a report on last year's bundle), a device's best state across them needs
  // the scan.
  PARC_ASSIGN_OR_RETURN(Statement bundles,
                        db->Prepare("SELECT DISTINCT r.bundle_id FROM rollouts r JOIN bundles b "
                                    "ON b.id = r.bundle_id WHERE b.name = ?1 AND b.sequence >= ?2 "
                                    "LIMIT 2"));
  bundles.BindAll(bundle_name, static_cast<int64_t>(min_sequence));
  PARC_ASSIGN_OR_RETURN(std::vector<int64_t> bundle_ids,
                        sql::CollectRows(bundles, [](const Statement& row) { return row.Int(0); }));
  if (bundle_ids.size() > 1) {
    return DeploymentReportByScan(db.get(), bundle_name, min_sequence, by, stale_before, scope);
  }
  const int64_t bundle_id = bundle_ids.empty() ? -1 : bundle_ids.front();
  const int64_t stale_day = StaleDay(stale_before);
  const bool by_kind = by == "kind";

  // The establishments in scope with their group; then the rows of both tallies in scope,
  // summed here. Aggregating in SQL (a join of each tally with the establishments, then a
  // GROUP BY) cost PostgreSQL 5 to 10 times what reading the rows costs (at 1,000,000 devices
  // and 20,000 establishments: 60 ms per tally, against 4 ms to read its 40,000 rows). A row
  // of an establishment that is not in the table (devices without one) has no group and is
  // left out, as the join left it out.
  const std::string scope_param = sql::ScopeParam(*db, scope);
  PARC_ASSIGN_OR_RETURN(sql::EstablishmentGroups in_scope,
                        sql::ReadEstablishmentGroups(*db, by_kind ? "''" : g.group,
                                                     by_kind ? "''" : g.label, "''", scope));
  std::vector<GroupCounts> counts(in_scope.groups.size());
  for (size_t i = 0; i < counts.size(); ++i) {
    counts[i].establishments = in_scope.groups[i].establishments;
  }
  const int64_t establishments_in_scope = static_cast<int64_t>(in_scope.group_of.size());

  // By kind, the groups are the kinds: counts by kind, and the establishments with devices of
  // each kind (a tally row per day: an establishment is counted once per kind).
  std::map<int64_t, GroupCounts> kinds;
  absl::flat_hash_set<std::pair<std::string, int64_t>> kind_establishments;
  auto counts_for = [&](const std::string& uai, int64_t kind) -> GroupCounts* {
    const size_t* group = in_scope.Find(uai);
    if (group == nullptr) return nullptr;
    return by_kind ? &kinds[kind] : &counts[*group];
  };
  // A tally's rows in scope (the scope's condition on t.uai; over the whole region, a scan).
  auto tally_sql = [&](absl::string_view columns, absl::string_view table,
                       absl::string_view where) {
    return absl::StrCat("SELECT ", columns, " FROM ", table, " t WHERE ", where,
                        sql::ScopeSql(*db, scope, "t.uai", 1));
  };
  PARC_ASSIGN_OR_RETURN(Statement devices, db->Prepare(tally_sql("t.uai, t.kind, t.seen_day, t.n",
                                                                 "device_tally", "")));
  devices.Bind(1, scope_param);
  PARC_RETURN_IF_ERROR(sql::ForEachRow(devices, [&](const Statement&) {
    std::string uai = devices.Text(0);
    const int64_t kind = devices.Int(1), seen_day = devices.Int(2), n = devices.Int(3);
    GroupCounts* c = counts_for(uai, kind);
    if (c == nullptr) return;
    c->devices += n;
    if (seen_day < 0) {
      c->never += n;
    } else if (seen_day < stale_day) {
      c->stale += n;
    }
    if (by_kind && n > 0) kind_establishments.emplace(std::move(uai), kind);
  }));
  PARC_ASSIGN_OR_RETURN(Statement states,
                        db->Prepare(tally_sql("t.uai, t.kind, t.best, t.n", "bundle_tally",
                                              "t.bundle_id = ?2 AND ")));
  states.BindAll(scope_param, bundle_id);
  PARC_RETURN_IF_ERROR(sql::ForEachRow(states, [&](const Statement&) {
    GroupCounts* c = counts_for(states.Text(0), states.Int(1));
    if (c == nullptr) return;
    switch (states.Int(2)) {
      case 3:
        c->up += states.Int(3);
        break;
      case 1:
        c->prog += states.Int(3);
        break;
      case 2:
        c->failed += states.Int(3);
        break;
      default:
        break;
    }
  }));

  // Rows in the same shape as the scan's: every group of establishments in scope, with or
  // without devices, in the order of their keys (by kind: every kind with devices).
  parc::v1::DeploymentReportResponse out = NewDeploymentReport();
  if (by_kind) {
    for (const auto& [uai, kind] : kind_establishments) ++kinds[kind].establishments;
    for (const auto& [kind, c] : kinds) {
      if (c.devices <= 0) continue;
      std::string name = common::KindName(static_cast<parc::v1::DeviceKind>(kind));
      AddDeploymentRow(&out, name, name.empty() ? "unknown" : name, c);
    }
    // Establishments are counted once in the total, not once per kind.
    out.mutable_total()->set_establishments(U32(establishments_in_scope));
  } else {
    for (size_t i : in_scope.ByKey()) {
      const sql::EstablishmentGroups::Group& group = in_scope.groups[i];
      AddDeploymentRow(&out, group.key,
                       by == "departement" ? DepartementLabel(group.key) : group.label, counts[i]);
    }
  }
  SetPercent(out.mutable_total());
  return out;
}

absl::StatusOr<parc::v1::DeploymentReportResponse> SqlStore::DeploymentReportByScan(
    const std::string& bundle_name, uint64_t min_sequence, const std::string& by,
    absl::Time stale_before, const Scope& scope) {
  ReaderLease db = AcquireReader();
  return DeploymentReportByScan(db.get(), bundle_name, min_sequence, by, stale_before, scope);
}

absl::StatusOr<parc::v1::DeploymentReportResponse> SqlStore::DeploymentReportByScan(
    sql::Connection* db, const std::string& bundle_name, uint64_t min_sequence,
    const std::string& by, absl::Time stale_before, const Scope& scope) {
  PARC_ASSIGN_OR_RETURN(ReportGrouping g, DeploymentGrouping(by));
  if (by == "kind") g.group = g.label = "dev.kind";
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          "WITH dev AS (SELECT d.id, d.uai, d.kind, d.last_seen_at, "
          // Best state of the device for this bundle or a later one: installed > failed >
          // in progress.
          "(SELECT max(CASE dep.state WHEN 2 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 2 "
          "WHEN 1 THEN 1 ELSE 0 END) FROM deployments dep "
          "JOIN rollouts r ON r.id = dep.rollout_id JOIN bundles b ON b.id = r.bundle_id "
          "WHERE dep.device_id = d.id AND b.name = ?1 AND b.sequence >= ?2) AS st "
          "FROM devices d WHERE d.uai IS NOT NULL) "
          "SELECT ",
          g.group, ", max(", g.label,
          "), count(DISTINCT e.uai), count(dev.id), "
          "coalesce(sum(CASE WHEN dev.st = 3 THEN 1 ELSE 0 END), 0), coalesce(sum(CASE WHEN dev.st "
          "= 1 THEN 1 ELSE 0 END), 0), "
          "coalesce(sum(CASE WHEN dev.st = 2 THEN 1 ELSE 0 END), 0), "
          "coalesce(sum(CASE WHEN dev.id IS NOT NULL AND dev.last_seen_at IS NULL THEN 1 ELSE 0 "
          "END), 0), "
          "coalesce(sum(CASE WHEN dev.last_seen_at IS NOT NULL AND dev.last_seen_at / 86400 < "
          "CAST(?3 AS BIGINT) THEN 1 ELSE 0 END), 0) "
          "FROM establishments e LEFT JOIN dev ON dev.uai = e.uai "
          "WHERE ",
          sql::ScopeSql(*db, scope, "e.uai", 4), by == "kind" ? " AND dev.id IS NOT NULL " : " ",
          "GROUP BY 1 ORDER BY 1")));
  st.BindAll(bundle_name, static_cast<int64_t>(min_sequence), StaleDay(stale_before),
             sql::ScopeParam(*db, scope));
  parc::v1::DeploymentReportResponse out = NewDeploymentReport();
  PARC_RETURN_IF_ERROR(ReadDeploymentRows(st, by, &out));
  auto* total = out.mutable_total();
  if (by == "kind") {
    // Establishments are counted once in the total, not once per kind.
    PARC_ASSIGN_OR_RETURN(Statement count,
                          db->Prepare(absl::StrCat("SELECT count(*) FROM establishments e WHERE ",
                                                   sql::ScopeSql(*db, scope, "e.uai", 1))));
    count.Bind(1, sql::ScopeParam(*db, scope));
    PARC_ASSIGN_OR_RETURN(bool row, count.Step());
    if (row) total->set_establishments(U32(count.Int(0)));
  }
  SetPercent(total);
  return out;
}

absl::StatusOr<parc::v1::InventoryReportResponse> SqlStore::InventoryReport(const std::string& by,
                                                                            const Scope& scope) {
  std::string group;
  if (by == "model") {
    // Firmware often repeats the manufacturer in the product name ("HP" + "HP ProBook…").
    group =
        "trim(CASE WHEN lower(d.model) LIKE lower(d.manufacturer) || '%' THEN d.model "
        "ELSE d.manufacturer || ' ' || d.model END)";
  } else if (by == "os") {
    group = "d.os";
  } else if (by == "kind") {
    group = "d.kind";
  } else if (by == "departement") {
    group = "coalesce(e.departement, '')";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("by \"", by, "\": model, os, kind or departement"));
  }
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          "SELECT ", group,
          ", count(*), coalesce(sum(CASE WHEN d.battery_health < 60 THEN 1 ELSE 0 END), 0), "
          "coalesce(sum(d.rotational_disk), 0), coalesce(avg(d.ram_bytes), 0) "
          "FROM devices d LEFT JOIN establishments e ON e.uai = d.uai "
          "WHERE ",
          sql::ScopeSql(*db, scope, "d.uai", 1), " GROUP BY 1 ORDER BY 2 DESC, 1")));
  st.Bind(1, sql::ScopeParam(*db, scope));
  parc::v1::InventoryReportResponse out;
  auto* total = out.mutable_total();
  total->set_group("total");
  double ram_weighted = 0;
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  PARC_RETURN_IF_ERROR(sql::ForEachRow(st, [&](const Statement&) {
    auto* r = out.add_rows();
    r->set_group(by == "kind" ? common::KindName(static_cast<parc::v1::DeviceKind>(st.Int(0)))
                              : st.Text(0));
    if (r->group().empty()) r->set_group("unknown");
    r->set_devices(U32(st.Int(1)));
    r->set_battery_below_60(U32(st.Int(2)));
    r->set_rotational_disk(U32(st.Int(3)));
    r->set_average_ram_gib(st.Double(4) / kGiB);
    ram_weighted += st.Double(4) * r->devices();
    total->set_devices(total->devices() + r->devices());
    total->set_battery_below_60(total->battery_below_60() + r->battery_below_60());
    total->set_rotational_disk(total->rotational_disk() + r->rotational_disk());
  }));
  if (total->devices() > 0) total->set_average_ram_gib(ram_weighted / total->devices() / kGiB);
  return out;
}

namespace {

// Each device in scope (?3, and of kind ?4 unless 0) with the rollout of its best deployment
// of the bundle (?1, sequence ?2 or later): one index lookup per device, so the cost follows
// the establishment's size, not the region's.
// {scope}: the scope condition (ScopeCondition), so that SQLite can use devices_uai: a
// "?3 = '' OR d.uai IN (...)" would scan every device of the region.
constexpr char kDeviceStates[] =
    "WITH s AS (SELECT d.id, d.serial, d.uai, d.kind, d.manufacturer, d.model, "
    "(SELECT c.last_seen_at FROM device_checkins c WHERE c.device_id = d.id) AS last_seen_at, "
    "d.hostname, (SELECT dep.rollout_id FROM deployments dep "
    "JOIN rollouts r ON r.id = dep.rollout_id JOIN bundles b ON b.id = r.bundle_id "
    "WHERE dep.device_id = d.id AND b.name = ?1 AND b.sequence >= ?2 "
    "ORDER BY CASE dep.state WHEN 2 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 2 WHEN 1 THEN 1 ELSE 0 END "
    "DESC, dep.updated_at DESC LIMIT 1) AS best FROM devices d "
    "WHERE d.uai IS NOT NULL AND {scope} AND (CAST(?4 AS BIGINT) = 0 OR d.kind = ?4)) "
    "SELECT s.id, s.serial, s.uai, s.kind, s.manufacturer, s.model, s.last_seen_at, s.hostname, "
    "dep.state, coalesce(dep.reason, ''), coalesce(dep.message, '') FROM s "
    "LEFT JOIN deployments dep ON dep.rollout_id = s.best AND dep.device_id = s.id ";

std::string DeviceStatesSql(const sql::Connection& db, const Scope& scope) {
  return absl::StrReplaceAll(kDeviceStates, {{"{scope}", sql::ScopeSql(db, scope, "d.uai", 3)}});
}

const char* GroupCondition(DeviceStateQuery::Group g) {
  switch (g) {
    case DeviceStateQuery::Group::kNotYet:
      return "WHERE coalesce(dep.state, 0) = 0 ";
    case DeviceStateQuery::Group::kInProgress:
      return "WHERE dep.state = 1 ";
    case DeviceStateQuery::Group::kInstalled:
      return "WHERE dep.state = 2 ";
    case DeviceStateQuery::Group::kFailed:
      return "WHERE dep.state IN (3, 4) ";
    case DeviceStateQuery::Group::kAny:
      break;
  }
  return "";
}

std::string OrderBy(DeviceStateQuery::Sort sort, bool descending) {
  const char* dir = descending ? " DESC" : "";
  std::string key;
  switch (sort) {
    case DeviceStateQuery::Sort::kName:
      key = absl::StrCat("coalesce(nullif(s.hostname, ''), s.id)", dir);
      break;
    case DeviceStateQuery::Sort::kKind:
      key = absl::StrCat("s.kind", dir);
      break;
    case DeviceStateQuery::Sort::kModel:
      key = absl::StrCat("s.manufacturer", dir, ", s.model", dir);
      break;
    case DeviceStateQuery::Sort::kSerial:
      key = absl::StrCat("s.serial", dir);
      break;
    case DeviceStateQuery::Sort::kLastSeen:
      key = absl::StrCat("coalesce(s.last_seen_at, 0)", dir);
      break;
    case DeviceStateQuery::Sort::kState:
      key = absl::StrCat(
          "CASE dep.state WHEN 2 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 2 WHEN 1 THEN 1 ELSE 0 END", dir);
      break;
    case DeviceStateQuery::Sort::kError:
      key = absl::StrCat("coalesce(nullif(dep.message, ''), dep.reason, '')", dir);
      break;
    case DeviceStateQuery::Sort::kKindModel:
      key = absl::StrCat("s.kind", dir, ", s.model", dir);
      break;
  }
  return absl::StrCat("ORDER BY ", key, ", s.id", dir, " ");
}

}  // namespace

absl::StatusOr<std::vector<DeviceState>> SqlStore::ListDeviceStates(const DeviceStateQuery& q) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st, db->Prepare(absl::StrCat(DeviceStatesSql(*db, q.scope), GroupCondition(q.group),
                                             OrderBy(q.sort, q.descending), "LIMIT ?5 OFFSET ?6")));
  st.BindAll(q.bundle_name, static_cast<int64_t>(q.min_sequence), sql::ScopeParam(*db, q.scope),
             static_cast<int64_t>(q.kind), q.limit == 0 ? int64_t{INT64_MAX} : int64_t{q.limit},
             static_cast<int64_t>(q.offset));
  return sql::CollectRows(st, [](const Statement& row) {
    DeviceState s;
    s.device.set_id(row.Text(0));
    s.device.set_serial(row.Text(1));
    s.device.set_uai(row.Text(2));
    s.device.set_kind(static_cast<parc::v1::DeviceKind>(row.Int(3)));
    s.device.set_manufacturer(row.Text(4));
    s.device.set_model(row.Text(5));
    if (!row.IsNull(6)) s.device.mutable_last_seen_at()->set_seconds(row.Int(6));
    s.device.set_hostname(row.Text(7));
    if (!row.IsNull(8)) s.state = static_cast<parc::v1::DeploymentState>(row.Int(8));
    s.reason = row.Text(9);
    s.message = row.Text(10);
    return s;
  });
}

absl::StatusOr<std::vector<DeviceStateCount>> SqlStore::CountDeviceStates(
    const std::string& bundle_name, uint64_t min_sequence, const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat("SELECT kind, state, count(*) FROM (", DeviceStatesSql(*db, scope),
                               ") AS states GROUP BY 1, 2 ORDER BY 1, 2")));
  st.BindAll(bundle_name, static_cast<int64_t>(min_sequence), sql::ScopeParam(*db, scope),
             int64_t{0});
  return sql::CollectRows(st, [](const Statement& row) {
    DeviceStateCount c;
    c.kind = static_cast<parc::v1::DeviceKind>(row.Int(0));
    if (!row.IsNull(1)) c.state = static_cast<parc::v1::DeploymentState>(row.Int(1));
    c.devices = U32(row.Int(2));
    return c;
  });
}

absl::StatusOr<std::vector<parc::v1::PackageReport>> SqlStore::DevicePackages(
    const std::string& device_id) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare("SELECT package_id, version, state, reason, exit_status, output_tail, message, "
                  "bytes_downloaded FROM deployment_packages WHERE device_id = ?1 AND "
                  "rollout_id = (SELECT rollout_id FROM deployments WHERE device_id = ?1 "
                  "ORDER BY updated_at DESC LIMIT 1) ORDER BY package_id"));
  st.Bind(1, device_id);
  std::vector<parc::v1::PackageReport> out;
  PARC_RETURN_IF_ERROR(sql::ForEachRow(st, [&](const Statement&) {
    parc::v1::PackageReport p;
    p.set_package_id(st.Text(0));
    p.set_version(st.Text(1));
    p.set_state(static_cast<parc::v1::PackageState>(st.Int(2)));
    p.set_reason(st.Text(3));
    p.set_exit_status(static_cast<int32_t>(st.Int(4)));
    p.set_output_tail(st.Text(5));
    p.set_message(st.Text(6));
    p.set_bytes_downloaded(static_cast<uint64_t>(st.Int(7)));
    out.push_back(std::move(p));
  }));
  return out;
}

}  // namespace parc::server
