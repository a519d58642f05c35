// Fleet health of SqlStore: the indicators per group, read from health_tally and device_tally
// (server/sql/health_sql.h), and the operating system versions with their end of support.
#include "server/health.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/sql/health_counts.h"
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

// Adds n devices of one health_tally row (family, value; for the operating system family, the
// version's end of support, empty when unknown or not in os_versions) to a row: the rules of
// IndicatorSql, with the day's thresholds. first_recent and first_middle: the first firmware
// year of "0-3 years" and of "4-7 years"; today: YYYY-MM-DD.
void AddHealthTally(parc::v1::HealthReportRow* r, int64_t family, int64_t value, int64_t n,
                    const std::string& end_of_support, int64_t first_recent, int64_t first_middle,
                    const std::string& today) {
  const uint32_t k = U32(n);
  switch (family) {
    case sql::kHealthBattery:
      // Every device has one value per family: the battery family counts the devices.
      r->set_devices(r->devices() + k);
      if (value >= 2) r->set_battery_below_60(r->battery_below_60() + k);
      if (value == 3) r->set_battery_below_40(r->battery_below_40() + k);
      break;
    case sql::kHealthBundle:
      if (value == 1) r->set_cannot_take_bundle(r->cannot_take_bundle() + k);
      break;
    case sql::kHealthFirmwareYear:
      if (value >= first_recent) {
        r->set_age_0_3(r->age_0_3() + k);
      } else if (value >= first_middle) {
        r->set_age_4_7(r->age_4_7() + k);
      } else if (value > 0) {
        r->set_age_8_plus(r->age_8_plus() + k);
      } else if (value == 0) {
        r->set_age_unknown(r->age_unknown() + k);
      }
      break;
    case sql::kHealthOs:
      if (end_of_support.empty()) {
        r->set_os_support_unknown(r->os_support_unknown() + k);
      } else if (end_of_support < today) {
        r->set_os_unsupported(r->os_unsupported() + k);
        if (value % 2 == 1) {
          r->set_to_windows11(r->to_windows11() + k);
        } else {
          r->set_linux_candidates(r->linux_candidates() + k);
        }
      }
      break;
    default:
      break;
  }
}

// Every operating system version's end of support ("" when not set), by os_versions.id.
absl::StatusOr<std::vector<std::string>> EndsOfSupport(sql::Connection& db) {
  PARC_ASSIGN_OR_RETURN(Statement st, db.Prepare("SELECT id, end_of_support FROM os_versions"));
  std::vector<std::string> ends;
  PARC_RETURN_IF_ERROR(sql::ForEachRow(st, [&](const Statement& row) {
    const int64_t id = row.Int(0);
    if (id < 0 || id > 1'000'000) return;  // ids are a sequence from 1
    if (ends.size() <= static_cast<size_t>(id)) ends.resize(static_cast<size_t>(id) + 1);
    ends[static_cast<size_t>(id)] = row.Text(1);
  }));
  return ends;
}

// The end of support of the operating system family's value (os_versions.id × 2 + Windows 11).
const std::string& EndOfSupport(const std::vector<std::string>& ends, int64_t value) {
  static const std::string kUnknown;
  const int64_t id = value / 2;
  if (id < 0 || static_cast<size_t>(id) >= ends.size()) return kUnknown;
  return ends[static_cast<size_t>(id)];
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
  // The establishments in scope with their group, then the rows of health_tally (and of
  // device_tally, for "unseen") in scope, summed here: joining the tallies with the
  // establishments and grouping in SQL cost PostgreSQL several times what reading their rows
  // costs (see DeploymentReport). A row of an establishment not in the table is left out.
  const std::string scope_param = sql::ScopeParam(*db, scope);
  PARC_ASSIGN_OR_RETURN(sql::EstablishmentGroups in_scope,
                        sql::ReadEstablishmentGroups(*db, g.group, g.label,
                                                     by == "departement"     ? "e.academie"
                                                     : by == "commune"       ? "e.departement"
                                                     : by == "establishment" ? "e.commune_code"
                                                                             : "''",
                                                     scope));
  std::vector<parc::v1::HealthReportRow> rows(in_scope.groups.size());
  auto row_of = [&](const std::string& uai) -> parc::v1::HealthReportRow* {
    const size_t* group = in_scope.Find(uai);
    return group == nullptr ? nullptr : &rows[*group];
  };

  // Operating system versions: the family's value is the version's id × 2 (+ 1 when the
  // device could run Windows 11); an id not in os_versions is "support unknown".
  const std::string o = absl::StrCat(static_cast<int>(sql::kHealthOs));
  PARC_ASSIGN_OR_RETURN(
      Statement counts,
      db->Prepare(absl::StrCat("SELECT t.uai, t.family, t.value, t.n, coalesce(o.end_of_support, "
                               "'') FROM health_tally t LEFT JOIN os_versions o ON t.family = ",
                               o, " AND o.id = t.value / 2 WHERE ",
                               sql::ScopeSql(*db, scope, "t.uai", 1))));
  counts.Bind(1, scope_param);
  const int64_t first_recent = year - kAgeRecentMax, first_middle = year - kAgeMiddleMax;
  PARC_RETURN_IF_ERROR(sql::ForEachRow(counts, [&](const Statement&) {
    parc::v1::HealthReportRow* r = row_of(counts.Text(0));
    if (r == nullptr) return;
    AddHealthTally(r, counts.Int(1), counts.Int(2), counts.Int(3), counts.Text(4), first_recent,
                   first_middle, today);
  }));
  // SQLite: the families an inventory writes are counted in memory (sql::HealthCounts).
  if (const sql::HealthCounts* memory = engine_->health_counts(); memory != nullptr) {
    PARC_ASSIGN_OR_RETURN(std::vector<std::string> ends, EndsOfSupport(*db));
    memory->ForEach([&](const std::string& uai, int family, int64_t value, int64_t n) {
      parc::v1::HealthReportRow* r = row_of(uai);
      if (r == nullptr) return;
      AddHealthTally(r, family, value, n, family == sql::kHealthOs ? EndOfSupport(ends, value) : "",
                     first_recent, first_middle, today);
    });
  }
  // Unseen: the day of the last check-in (-1: never) is kUnseenDays or more before today's.
  PARC_ASSIGN_OR_RETURN(
      Statement unseen,
      db->Prepare(absl::StrCat("SELECT t.uai, t.n FROM device_tally t WHERE t.seen_day <= ?1 AND ",
                               sql::ScopeSql(*db, scope, "t.uai", 2))));
  unseen.BindAll(Unix(now) / 86400 - kUnseenDays, scope_param);
  PARC_RETURN_IF_ERROR(sql::ForEachRow(unseen, [&](const Statement&) {
    parc::v1::HealthReportRow* r = row_of(unseen.Text(0));
    if (r != nullptr) r->set_unseen_30_days(r->unseen_30_days() + U32(unseen.Int(1)));
  }));

  // Every group of establishments in scope, with or without devices, in the order of its key.
  for (size_t i : in_scope.ByKey()) {
    const sql::EstablishmentGroups::Group& group = in_scope.groups[i];
    auto* r = out.add_rows();
    *r = std::move(rows[i]);
    r->set_establishments(U32(group.establishments));
    r->set_group(group.key);
    r->set_label(by == "departement" ? sql::DepartementLabel(group.key) : group.label);
    r->set_parent(group.parent);
    AddHealthCounts(total, *r);
  }
  return out;
}

namespace {

// The condition a device meets under an indicator (d: devices, o: its os_versions row), the
// rules of AddHealthTally. Parameters: ?3 the first year of "0-3 years"... as in
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
          "coalesce(o.end_of_support, ''), d.win11, d.free_bytes, d.ram_bytes, c.last_seen_at, ",
          sql::HealthValue(sql::kHealthBundle, "d"),
          " FROM devices d LEFT JOIN os_versions o ON o.id = d.os_id "
          "LEFT JOIN device_checkins c ON c.device_id = d.id "
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
          "), o.id FROM os_versions o ORDER BY o.os_name, o.os_version")));
  st.Bind(1, sql::ScopeParam(*db, scope));
  // SQLite: the operating system family is counted in memory (sql::HealthCounts), for the
  // establishments in scope (every device, those without an establishment too, for the region).
  absl::flat_hash_map<int64_t, int64_t> in_memory;
  if (const sql::HealthCounts* memory = engine_->health_counts(); memory != nullptr) {
    std::optional<absl::flat_hash_set<std::string>> uais;
    if (!scope.is_region()) {
      PARC_ASSIGN_OR_RETURN(Statement in_scope,
                            db->Prepare(absl::StrCat("SELECT e.uai FROM establishments e WHERE ",
                                                     sql::ScopeSql(*db, scope, "e.uai", 1))));
      in_scope.Bind(1, sql::ScopeParam(*db, scope));
      uais.emplace();
      PARC_RETURN_IF_ERROR(
          sql::ForEachRow(in_scope, [&](const Statement& row) { uais->insert(row.Text(0)); }));
    }
    memory->ForEach([&](const std::string& uai, int family, int64_t value, int64_t n) {
      if (family != sql::kHealthOs || (uais.has_value() && uais->count(uai) == 0)) return;
      in_memory[value / 2] += n;
    });
  }
  return sql::CollectRows(st, [&in_memory](const Statement& row) {
    parc::v1::OsVersion v;
    v.set_os_name(row.Text(0));
    v.set_os_version(row.Text(1));
    v.set_label(row.Text(2));
    v.set_end_of_support(row.Text(3));
    if (row.Int(4) > 0) v.mutable_updated_at()->set_seconds(row.Int(4));
    v.set_updated_by(row.Text(5));
    auto counted = in_memory.find(row.Int(7));
    v.set_devices(U32(row.Int(6) + (counted == in_memory.end() ? 0 : counted->second)));
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
