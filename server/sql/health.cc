// Fleet health of SqlStore: the indicators per group, read from health_tally and device_tally
// (server/sql/health_sql.h), and the operating system versions with their end of support.
#include "server/health.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/sql/health_sql.h"
#include "server/sql/report_grouping.h"
#include "server/sql/scope_sql.h"
#include "server/sql/time_util.h"
#include "server/sql_store.h"

namespace parc::server {
namespace {

using Statement = sql::Stmt;
using sql::U32;
using sql::Unix;

// The indicator columns of a row, in the order the tally query returns them.
void SetCounts(parc::v1::HealthReportRow* r, const Statement& st, int first) {
  int c = first;
  r->set_devices(U32(st.Int(c++)));
  r->set_cannot_take_bundle(U32(st.Int(c++)));
  r->set_battery_below_60(U32(st.Int(c++)));
  r->set_battery_below_40(U32(st.Int(c++)));
  r->set_age_0_3(U32(st.Int(c++)));
  r->set_age_4_7(U32(st.Int(c++)));
  r->set_age_8_plus(U32(st.Int(c++)));
  r->set_age_unknown(U32(st.Int(c++)));
  r->set_os_unsupported(U32(st.Int(c++)));
  r->set_to_windows11(U32(st.Int(c++)));
  r->set_linux_candidates(U32(st.Int(c++)));
  r->set_os_support_unknown(U32(st.Int(c++)));
}

// Parameters: ?1 the first year of "0-3 years", ?2 the first of "4-7 years", ?3 today
// (YYYY-MM-DD), ?4 the scope's.
std::string HealthTallySql(const sql::Connection& db, const Scope& scope,
                           const sql::ReportGrouping& g) {
  const std::string b = absl::StrCat(static_cast<int>(sql::kHealthBattery));
  const std::string y = absl::StrCat(static_cast<int>(sql::kHealthFirmwareYear));
  const std::string o = absl::StrCat(static_cast<int>(sql::kHealthOs));
  const std::string f = absl::StrCat(static_cast<int>(sql::kHealthBundle));
  const std::string unsupported =
      absl::StrCat("t.family = ", o, " AND o.end_of_support <> '' AND o.end_of_support < ?3");
  const std::vector<std::string> counts = {
      absl::StrCat("t.family = ", b),
      absl::StrCat("t.family = ", f, " AND t.value = 1"),
      absl::StrCat("t.family = ", b, " AND t.value >= 2"),
      absl::StrCat("t.family = ", b, " AND t.value = 3"),
      absl::StrCat("t.family = ", y, " AND t.value >= ?1"),
      absl::StrCat("t.family = ", y, " AND t.value >= ?2 AND t.value < ?1"),
      absl::StrCat("t.family = ", y, " AND t.value > 0 AND t.value < ?2"),
      absl::StrCat("t.family = ", y, " AND t.value = 0"),
      unsupported,
      absl::StrCat(unsupported, " AND t.value % 2 = 1"),
      absl::StrCat(unsupported, " AND t.value % 2 = 0"),
      absl::StrCat("t.family = ", o, " AND (o.id IS NULL OR o.end_of_support = '')")};
  // Summed per establishment first, in the tally's own order, then per group: the join with
  // establishments runs once per establishment, not once per tally row.
  std::string inner = "SELECT t.uai";
  std::string outer = absl::StrCat("SELECT ", g.group);
  for (size_t i = 0; i < counts.size(); ++i) {
    absl::StrAppend(&inner, ", sum(CASE WHEN ", counts[i], " THEN t.n ELSE 0 END) AS c", i);
    absl::StrAppend(&outer, ", sum(x.c", i, ")");
  }
  return absl::StrCat(outer, " FROM (", inner,
                      " FROM health_tally t LEFT JOIN os_versions o ON t.family = ", o,
                      " AND o.id = t.value / 2 WHERE ", sql::ScopeSql(db, scope, "t.uai", 4),
                      " GROUP BY t.uai) x JOIN establishments e ON e.uai = x.uai GROUP BY 1");
}

}  // namespace

absl::StatusOr<parc::v1::HealthReportResponse> SqlStore::HealthReport(const std::string& by,
                                                                      absl::Time now,
                                                                      const Scope& scope) {
  PARC_ASSIGN_OR_RETURN(sql::ReportGrouping g, sql::GroupingFor(by, /*with_kind=*/false));
  const int year = UtcYear(now);
  const std::string today = UtcDay(now);
  parc::v1::HealthReportResponse out;
  out.set_as_of(today);
  auto* total = out.mutable_total();
  total->set_group("total");
  total->set_label("Total");
  ReaderLease db = AcquireReader();
  {
    PARC_ASSIGN_OR_RETURN(
        Statement target,
        db->Prepare("SELECT coalesce(b.name, ''), coalesce(b.version, ''), t.installed_bytes, "
                    "t.min_ram_bytes FROM health_target t LEFT JOIN bundles b ON b.id = "
                    "t.bundle_id"));
    PARC_ASSIGN_OR_RETURN(bool row, target.Step());
    if (row) {
      out.set_bundle_name(target.Text(0));
      out.set_bundle_version(target.Text(1));
      out.set_installed_bytes(static_cast<uint64_t>(target.Int(2)));
      out.set_min_ram_bytes(static_cast<uint64_t>(target.Int(3)));
    }
  }
  const std::string scope_param = sql::ScopeParam(*db, scope);
  std::map<std::string, parc::v1::HealthReportRow> by_group;
  PARC_ASSIGN_OR_RETURN(Statement counts, db->Prepare(HealthTallySql(*db, scope, g)));
  counts.BindAll(int64_t{year - kAgeRecentMax}, int64_t{year - kAgeMiddleMax}, today, scope_param);
  PARC_RETURN_IF_ERROR(sql::ForEachRow(
      counts, [&](const Statement&) { SetCounts(&by_group[counts.Text(0)], counts, 1); }));
  // Unseen: the day of the last check-in (-1: never) is kUnseenDays or more before today's.
  PARC_ASSIGN_OR_RETURN(
      Statement unseen,
      db->Prepare(absl::StrCat("SELECT ", g.group,
                               ", sum(x.n) FROM (SELECT t.uai, sum(t.n) AS n FROM device_tally t "
                               "WHERE t.seen_day <= ?1 AND ",
                               sql::ScopeSql(*db, scope, "t.uai", 2),
                               " GROUP BY t.uai) x JOIN establishments e ON e.uai = x.uai "
                               "GROUP BY 1")));
  unseen.BindAll(Unix(now) / 86400 - kUnseenDays, scope_param);
  PARC_RETURN_IF_ERROR(sql::ForEachRow(unseen, [&](const Statement&) {
    by_group[unseen.Text(0)].set_unseen_30_days(U32(unseen.Int(1)));
  }));
  // Every group of establishments in scope, with or without devices.
  PARC_ASSIGN_OR_RETURN(
      Statement groups,
      db->Prepare(absl::StrCat("SELECT ", g.group, ", max(", g.label, "), count(*), max(",
                               by == "departement"     ? "e.academie"
                               : by == "commune"       ? "e.departement"
                               : by == "establishment" ? "e.commune_code"
                                                       : "''",
                               ") FROM establishments e WHERE ",
                               sql::ScopeSql(*db, scope, "e.uai", 1), " GROUP BY 1 ORDER BY 1")));
  groups.Bind(1, scope_param);
  PARC_RETURN_IF_ERROR(sql::ForEachRow(groups, [&](const Statement&) {
    const std::string group = groups.Text(0);
    auto* r = out.add_rows();
    auto it = by_group.find(group);
    if (it != by_group.end()) *r = it->second;
    r->set_group(group);
    r->set_label(by == "departement" ? sql::DepartementLabel(group) : groups.Text(1));
    r->set_establishments(U32(groups.Int(2)));
    r->set_parent(groups.Text(3));
    AddHealthCounts(total, *r);
  }));
  return out;
}

namespace {

// The condition a device meets under an indicator (d: devices, o: its os_versions row), the
// rules of HealthTallySql. Parameters: ?3 the first year of "0-3 years"... as in
// ListHealthDevices.
std::string IndicatorSql(common::HealthIndicator indicator) {
  using common::HealthIndicator;
  const std::string unsupported = "(o.end_of_support <> '' AND o.end_of_support < ?4)";
  switch (indicator) {
    case HealthIndicator::kCannotTakeBundle:
      return absl::StrCat("(", sql::HealthValue(sql::kHealthBundle, "d"), ") = 1");
    case HealthIndicator::kBatteryBelow60:
      return "d.battery_health < 60";
    case HealthIndicator::kBatteryBelow40:
      return "d.battery_health < 40";
    case HealthIndicator::kAge8Plus:
      return "(d.firmware_year > 0 AND d.firmware_year < ?3)";
    case HealthIndicator::kAgeUnknown:
      return "d.firmware_year = 0";
    case HealthIndicator::kOsUnsupported:
      return unsupported;
    case HealthIndicator::kToWindows11:
      return absl::StrCat(unsupported, " AND d.win11 = 1");
    case HealthIndicator::kLinuxCandidate:
      return absl::StrCat(unsupported, " AND d.win11 = 0");
    case HealthIndicator::kOsSupportUnknown:
      return "(o.id IS NULL OR o.end_of_support = '')";
    case HealthIndicator::kUnseen30Days:
      return "coalesce(d.last_seen_at / 86400, -1) <= ?5";
  }
  return "1 = 1";
}

}  // namespace

absl::StatusOr<std::vector<HealthDevice>> SqlStore::ListHealthDevices(
    const std::string& uai, std::optional<common::HealthIndicator> indicator, absl::Time now,
    const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          "SELECT d.id, d.hostname, d.serial, d.kind, d.model, d.battery_health, "
          "d.firmware_year, CASE WHEN coalesce(o.label, '') <> '' THEN o.label ELSE d.os END, "
          "coalesce(o.end_of_support, ''), d.win11, d.free_bytes, d.ram_bytes, d.last_seen_at, ",
          sql::HealthValue(sql::kHealthBundle, "d"),
          " FROM devices d LEFT JOIN os_versions o ON o.id = d.os_id "
          "WHERE d.uai = ?1 AND ",
          sql::ScopeSql(*db, scope, "d.uai", 2),
          " AND CAST(?3 AS BIGINT) IS NOT NULL "
          "AND CAST(?4 AS TEXT) IS NOT NULL AND CAST(?5 AS BIGINT) IS NOT NULL AND ",
          indicator.has_value() ? IndicatorSql(*indicator) : "1 = 1",
          " ORDER BY d.hostname, d.id")));
  st.BindAll(uai, sql::ScopeParam(*db, scope), int64_t{UtcYear(now) - kAgeMiddleMax}, UtcDay(now),
             Unix(now) / 86400 - kUnseenDays);
  return sql::CollectRows(st, [](const Statement& row) {
    HealthDevice h;
    h.id = row.Text(0);
    h.hostname = row.Text(1);
    h.serial = row.Text(2);
    h.kind = static_cast<parc::v1::DeviceKind>(row.Int(3));
    h.model = row.Text(4);
    if (!row.IsNull(5)) h.battery_health = static_cast<int>(row.Int(5));
    h.firmware_year = static_cast<int>(row.Int(6));
    h.os = row.Text(7);
    h.end_of_support = row.Text(8);
    h.windows11_capable = row.Int(9) != 0;
    if (!row.IsNull(10)) h.free_bytes = static_cast<uint64_t>(row.Int(10));
    h.ram_bytes = static_cast<uint64_t>(row.Int(11));
    if (!row.IsNull(12)) h.last_seen = sql::FromUnix(row.Int(12));
    h.cannot_take_bundle = row.Int(13) != 0;
    return h;
  });
}

absl::StatusOr<std::vector<parc::v1::OsVersion>> SqlStore::ListOsVersions(const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          "SELECT o.os_name, o.os_version, o.label, o.end_of_support, o.updated_at, "
          "o.updated_by, (SELECT coalesce(sum(t.n), 0) FROM health_tally t WHERE t.family = ",
          static_cast<int>(sql::kHealthOs), " AND t.value / 2 = o.id AND ",
          sql::ScopeSql(*db, scope, "t.uai", 1),
          ") FROM os_versions o ORDER BY o.os_name, o.os_version")));
  st.Bind(1, sql::ScopeParam(*db, scope));
  return sql::CollectRows(st, [](const Statement& row) {
    parc::v1::OsVersion v;
    v.set_os_name(row.Text(0));
    v.set_os_version(row.Text(1));
    v.set_label(row.Text(2));
    v.set_end_of_support(row.Text(3));
    if (row.Int(4) > 0) v.mutable_updated_at()->set_seconds(row.Int(4));
    v.set_updated_by(row.Text(5));
    v.set_devices(U32(row.Int(6)));
    return v;
  });
}

void SqlStore::SetOsSupport(parc::v1::SetOsSupportRequest request, std::string operator_name,
                            absl::Time now, StoreCallback<parc::v1::OsVersion> done) {
  SubmitFor<parc::v1::OsVersion>(
      [request = std::move(request), operator_name = std::move(operator_name),
       now](sql::Connection* db) -> absl::StatusOr<parc::v1::OsVersion> {
        PARC_ASSIGN_OR_RETURN(
            Statement up,
            db->Prepare("INSERT INTO os_versions(os_name, os_version, label, end_of_support, "
                        "updated_at, updated_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                        "ON CONFLICT (os_name, os_version) DO UPDATE SET label = CASE WHEN ?3 = "
                        "'' THEN os_versions.label ELSE ?3 END, end_of_support = ?4, "
                        "updated_at = ?5, updated_by = ?6"));
        PARC_RETURN_IF_ERROR(up.BindAll(request.os_name(), request.os_version(), request.label(),
                                        request.end_of_support(), Unix(now), operator_name)
                                 .Run());
        PARC_ASSIGN_OR_RETURN(Statement get,
                              db->Prepare("SELECT label, end_of_support FROM os_versions WHERE "
                                          "os_name = ? AND os_version = ?"));
        get.BindAll(request.os_name(), request.os_version());
        PARC_ASSIGN_OR_RETURN(bool row, get.Step());
        if (!row) return absl::InternalError("operating system version not stored");
        parc::v1::OsVersion v;
        v.set_os_name(request.os_name());
        v.set_os_version(request.os_version());
        v.set_label(get.Text(0));
        v.set_end_of_support(get.Text(1));
        v.mutable_updated_at()->set_seconds(Unix(now));
        v.set_updated_by(operator_name);
        return v;
      },
      std::move(done));
}

}  // namespace parc::server
