// Bundles, rollouts and deployment reports of SqlStore.
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "parc/v1/bundle.pb.h"
#include "server/rollout_policy.h"
#include "server/sql/health_sql.h"
#include "server/sql/scope_sql.h"
#include "server/sql/time_util.h"
#include "server/sql_store.h"

namespace parc::server {
namespace {

using Statement = sql::Stmt;
using sql::FromUnix;
using sql::U32;
using sql::Unix;

constexpr char kBundleColumns[] =
    "id, name, version, sequence, manifest_sha256, signed_manifest, published_at, expires_at, "
    "package_count, total_bytes, signers, published_by, installed_bytes, min_ram_bytes";

BundleRecord BundleFromRow(const Statement& st) {
  BundleRecord b;
  b.id = st.Int(0);
  b.name = st.Text(1);
  b.version = st.Text(2);
  b.sequence = static_cast<uint64_t>(st.Int(3));
  b.manifest_sha256 = st.Text(4);
  b.signed_manifest = st.Blob(5);
  b.published_at = FromUnix(st.Int(6));
  b.expires_at = FromUnix(st.Int(7));
  b.package_count = U32(st.Int(8));
  b.total_bytes = static_cast<uint64_t>(st.Int(9));
  b.signers = absl::StrSplit(st.Text(10), ',', absl::SkipEmpty());
  b.published_by = st.Text(11);
  b.installed_bytes = static_cast<uint64_t>(st.Int(12));
  b.min_ram_bytes = static_cast<uint64_t>(st.Int(13));
  return b;
}

constexpr char kRolloutSelect[] =
    "SELECT r.id, r.bundle_id, b.name, b.version, r.target, r.kinds, r.waves, r.pilots, "
    "r.success_percent, r.max_failures_percent, r.max_failures_count, r.window_start, "
    "r.window_end, r.rate_limit, r.state, r.state_reason, r.current_wave, r.wave_count, "
    "r.created_at, r.started_at, r.created_by FROM rollouts r JOIN bundles b ON b.id = "
    "r.bundle_id ";

template <typename T>
std::string JoinNumbers(const std::vector<T>& values) {
  std::vector<std::string> parts;
  for (const auto& v : values) parts.push_back(std::to_string(static_cast<int64_t>(v)));
  return absl::StrJoin(parts, ",");
}

RolloutRecord RolloutFromRow(const Statement& st) {
  RolloutRecord r;
  r.id = st.Text(0);
  r.bundle_id = st.Int(1);
  r.bundle_name = st.Text(2);
  r.bundle_version = st.Text(3);
  r.target = st.Text(4);
  for (absl::string_view k : absl::StrSplit(st.Text(5), ',', absl::SkipEmpty())) {
    int v = 0;
    if (absl::SimpleAtoi(k, &v)) r.kinds.push_back(static_cast<parc::v1::DeviceKind>(v));
  }
  for (absl::string_view w : absl::StrSplit(st.Text(6), ',', absl::SkipEmpty())) {
    uint32_t v = 0;
    if (absl::SimpleAtoi(w, &v)) r.waves.push_back(v);
  }
  r.pilots = absl::StrSplit(st.Text(7), ',', absl::SkipEmpty());
  r.success_percent = U32(st.Int(8));
  r.max_failures_percent = U32(st.Int(9));
  r.max_failures_count = U32(st.Int(10));
  r.window_start = U32(st.Int(11));
  r.window_end = U32(st.Int(12));
  r.rate_limit = static_cast<uint64_t>(st.Int(13));
  r.state = st.Text(14);
  r.state_reason = st.Text(15);
  r.current_wave = U32(st.Int(16));
  r.wave_count = U32(st.Int(17));
  r.created_at = FromUnix(st.Int(18));
  if (!st.IsNull(19)) r.started_at = FromUnix(st.Int(19));
  r.created_by = st.Text(20);
  return r;
}

absl::StatusOr<RolloutRecord> LoadRollout(sql::Connection* db, const std::string& id) {
  PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare(absl::StrCat(kRolloutSelect, "WHERE r.id = ?")));
  st.Bind(1, id);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no rollout with id ", id));
  return RolloutFromRow(st);
}

// Per wave and establishment: devices targeted and their deployment states.
absl::StatusOr<std::vector<EstablishmentCounts>> ComputeCounts(sql::Connection* db,
                                                               const RolloutRecord& r,
                                                               const Scope& scope) {
  const std::string kinds = JoinNumbers(r.kinds);
  // Day granularity (device_tally): "not seen" counts the devices not seen since the day the
  // rollout started (UTC), all of them before it starts.
  const int64_t started_day = r.started_at.has_value() ? Unix(*r.started_at) / 86400 : INT64_MAX;
  // Targeted and not-seen devices per establishment from device_tally, states from
  // rollout_tally: the cost follows the number of establishments, not of devices.
  PARC_ASSIGN_OR_RETURN(
      Statement st, db->Prepare(absl::StrCat(
                        "SELECT re.wave, re.uai, max(e.name), coalesce(sum(t.n), 0), "
                        "coalesce(sum(t.n) FILTER (WHERE t.seen_day < CAST(?3 AS BIGINT)), 0) "
                        "FROM rollout_establishments re JOIN establishments e ON e.uai = re.uai "
                        "LEFT JOIN device_tally t ON t.uai = re.uai AND (?2 = '' OR "
                        "(',' || CAST(?2 AS TEXT) || ',') LIKE ('%,' || t.kind || ',%')) "
                        "WHERE re.rollout_id = ?1 AND ",
                        sql::ScopeSql(*db, scope, "re.uai", 4),
                        " GROUP BY re.wave, re.uai ORDER BY re.wave, re.uai")));
  st.BindAll(r.id, kinds, started_day, sql::ScopeParam(*db, scope));
  std::vector<EstablishmentCounts> out;
  std::map<std::pair<uint32_t, std::string>, size_t> index;
  std::map<std::string, size_t> by_uai;
  PARC_RETURN_IF_ERROR(sql::ForEachRow(st, [&](const Statement&) {
    EstablishmentCounts c;
    c.wave = U32(st.Int(0));
    c.uai = st.Text(1);
    c.name = st.Text(2);
    c.targeted = U32(st.Int(3));
    c.not_seen = U32(st.Int(4));
    index[{c.wave, c.uai}] = out.size();
    by_uai[c.uai] = out.size();
    out.push_back(std::move(c));
  }));
  PARC_ASSIGN_OR_RETURN(
      Statement states,
      db->Prepare("SELECT uai, state, sum(n) FROM rollout_tally WHERE rollout_id = ?1 "
                  "AND (?2 = '' OR (',' || CAST(?2 AS TEXT) || ',') LIKE ('%,' || kind || ',%')) "
                  "GROUP BY uai, state"));
  states.BindAll(r.id, kinds);
  PARC_RETURN_IF_ERROR(sql::ForEachRow(states, [&](const Statement&) {
    auto it = by_uai.find(states.Text(0));
    if (it == by_uai.end()) return;  // out of scope
    EstablishmentCounts& c = out[it->second];
    const auto n = U32(states.Int(2));
    switch (states.Int(1)) {
      case 2:
        c.installed += n;
        break;
      case 1:
        c.in_progress += n;
        break;
      case 3:
      case 4:
        c.failed += n;
        break;
      default:
        break;
    }
  }));
  PARC_ASSIGN_OR_RETURN(
      Statement errors,
      db->Prepare("SELECT re.wave, re.uai, dep.reason, count(*), max(dep.message) "
                  "FROM deployments dep JOIN devices d ON d.id = dep.device_id "
                  "JOIN rollout_establishments re ON re.rollout_id = dep.rollout_id "
                  "AND re.uai = d.uai WHERE dep.rollout_id = ? AND dep.state IN (3, 4) "
                  "GROUP BY re.wave, re.uai, dep.reason ORDER BY count(*) DESC, dep.reason"));
  errors.Bind(1, r.id);
  PARC_RETURN_IF_ERROR(sql::ForEachRow(errors, [&](const Statement&) {
    auto it = index.find({U32(errors.Int(0)), errors.Text(1)});
    if (it == index.end()) return;
    out[it->second].errors.push_back({errors.Text(2), U32(errors.Int(3)), errors.Text(4)});
  }));
  return out;
}

}  // namespace

void SqlStore::InsertBundle(BundleRecord b, StoreCallback<bool> done) {
  SubmitFor<bool>(
      [b = std::move(b)](sql::Connection* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(
            Statement same,
            db->Prepare("SELECT manifest_sha256 FROM bundles WHERE name = ? AND version = ?"));
        same.BindAll(b.name, b.version);
        PARC_ASSIGN_OR_RETURN(bool exists, same.Step());
        if (exists) {
          if (same.Text(0) == b.manifest_sha256) return false;
          return absl::FailedPreconditionError(
              absl::StrCat(b.name, "@", b.version,
                           " is already published with other content: publish a new version"));
        }
        PARC_ASSIGN_OR_RETURN(Statement latest,
                              db->Prepare("SELECT max(sequence) FROM bundles WHERE name = ?"));
        latest.Bind(1, b.name);
        PARC_ASSIGN_OR_RETURN(bool row, latest.Step());
        if (row && !latest.IsNull(0) && static_cast<uint64_t>(latest.Int(0)) >= b.sequence) {
          return absl::FailedPreconditionError(
              absl::StrCat("sequence ", b.sequence, " of ", b.name, "@", b.version,
                           " is not above the latest published ", b.name, " (sequence ",
                           latest.Int(0), "): agents would refuse it as a rollback"));
        }
        PARC_ASSIGN_OR_RETURN(
            Statement ins,
            db->Prepare("INSERT INTO bundles(name, version, sequence, manifest_sha256, "
                        "signed_manifest, published_at, expires_at, package_count, total_bytes, "
                        "signers, published_by, installed_bytes, min_ram_bytes) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        ins.BindAll(b.name, b.version, static_cast<int64_t>(b.sequence), b.manifest_sha256);
        ins.BindBlob(5, b.signed_manifest);
        ins.Bind(6, Unix(b.published_at)).Bind(7, Unix(b.expires_at)).Bind(8, b.package_count);
        ins.Bind(9, static_cast<int64_t>(b.total_bytes)).Bind(10, absl::StrJoin(b.signers, ","));
        ins.Bind(11, b.published_by).Bind(12, static_cast<int64_t>(b.installed_bytes));
        ins.Bind(13, static_cast<int64_t>(b.min_ram_bytes));
        PARC_RETURN_IF_ERROR(ins.Run());
        // A bundle declaring requirements becomes the one fleet health measures devices
        // against: each device's "cannot take the bundle" is decided again, in this transaction.
        if (b.installed_bytes > 0 || b.min_ram_bytes > 0) {
          PARC_ASSIGN_OR_RETURN(
              Statement target,
              db->Prepare("UPDATE health_target SET bundle_id = (SELECT id FROM bundles WHERE "
                          "name = ? AND version = ?), installed_bytes = ?, min_ram_bytes = ?"));
          target.BindAll(b.name, b.version, static_cast<int64_t>(b.installed_bytes),
                         static_cast<int64_t>(b.min_ram_bytes));
          PARC_RETURN_IF_ERROR(target.Run());
          PARC_RETURN_IF_ERROR(db->Exec(sql::RebuildHealthBundleSql()));
        }
        return true;
      },
      std::move(done));
}

absl::StatusOr<std::vector<BundleRecord>> SqlStore::ListBundles(const std::string& name) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st,
                        db->Prepare(absl::StrCat("SELECT ", kBundleColumns,
                                                 " FROM bundles WHERE ?1 = '' OR name = ?1 "
                                                 "ORDER BY name, sequence DESC")));
  st.Bind(1, name);
  return sql::CollectRows(st, BundleFromRow);
}

absl::StatusOr<BundleRecord> SqlStore::GetBundle(const std::string& name,
                                                 const std::string& version) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st,
                        db->Prepare(absl::StrCat("SELECT ", kBundleColumns,
                                                 " FROM bundles WHERE name = ? AND version = ?")));
  st.BindAll(name, version);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no published bundle ", name, "@", version));
  return BundleFromRow(st);
}

void SqlStore::CreateRollout(RolloutRecord r, std::vector<RolloutEstablishment> members,
                             StoreCallback<RolloutRecord> done) {
  SubmitFor<RolloutRecord>(
      [r = std::move(r),
       members = std::move(members)](sql::Connection* db) -> absl::StatusOr<RolloutRecord> {
        PARC_ASSIGN_OR_RETURN(
            Statement ins,
            db->Prepare(
                "INSERT INTO rollouts(id, bundle_id, target, kinds, waves, pilots, "
                "success_percent, max_failures_percent, max_failures_count, "
                "window_start, window_end, rate_limit, state, wave_count, created_at, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?)"));
        PARC_RETURN_IF_ERROR(ins.BindAll(r.id, r.bundle_id, r.target, JoinNumbers(r.kinds),
                                         JoinNumbers(r.waves), absl::StrJoin(r.pilots, ","),
                                         r.success_percent, r.max_failures_percent,
                                         r.max_failures_count, r.window_start, r.window_end,
                                         static_cast<int64_t>(r.rate_limit), r.wave_count,
                                         Unix(r.created_at), r.created_by)
                                 .Run());
        PARC_ASSIGN_OR_RETURN(
            Statement member,
            db->Prepare(
                "INSERT INTO rollout_establishments(rollout_id, uai, wave) VALUES (?, ?, ?)"));
        for (const auto& m : members) {
          PARC_RETURN_IF_ERROR(member.BindAll(r.id, m.uai, m.wave).Run());
        }
        db->Notify(kCacheChannel, "assignments");
        return LoadRollout(db, r.id);
      },
      AfterRolloutWrite(std::move(done)));
}

StoreCallback<RolloutRecord> SqlStore::AfterRolloutWrite(StoreCallback<RolloutRecord> done) {
  // Which devices a rollout assigns may have changed (state, wave): check-ins read again.
  return [this, done = std::move(done)](absl::StatusOr<RolloutRecord> r) {
    cache_.InvalidateAssignments();
    done(std::move(r));
  };
}

void SqlStore::UpdateRolloutState(std::string id, std::string action, std::string reason,
                                  absl::Time now, StoreCallback<RolloutRecord> done) {
  SubmitFor<RolloutRecord>(
      [id = std::move(id), action = std::move(action), reason = std::move(reason),
       now](sql::Connection* db) -> absl::StatusOr<RolloutRecord> {
        PARC_ASSIGN_OR_RETURN(RolloutRecord r, LoadRollout(db, id));
        PARC_ASSIGN_OR_RETURN(std::string next, NextRolloutState(r, action));
        PARC_ASSIGN_OR_RETURN(Statement up,
                              db->Prepare("UPDATE rollouts SET state = ?1, state_reason = ?2, "
                                          "started_at = coalesce(started_at, CASE WHEN ?1 = "
                                          "'running' THEN CAST(?3 AS BIGINT) END) "
                                          "WHERE id = ?4"));
        PARC_RETURN_IF_ERROR(up.BindAll(next, reason, Unix(now), id).Run());
        db->Notify(kCacheChannel, "assignments");
        return LoadRollout(db, id);
      },
      AfterRolloutWrite(std::move(done)));
}

namespace {

// Rollouts that target at least one establishment of the scope (alias r).
std::string RolloutInScope(const sql::Connection& db, const Scope& scope, int param) {
  if (scope.is_region()) return absl::StrCat("CAST(?", param, " AS TEXT) IS NOT NULL");
  return absl::StrCat(
      "EXISTS (SELECT 1 FROM rollout_establishments scope_re WHERE "
      "scope_re.rollout_id = r.id AND ",
      sql::ScopeSql(db, scope, "scope_re.uai", param), ")");
}

absl::StatusOr<RolloutRecord> LoadVisibleRollout(sql::Connection* db, const std::string& id,
                                                 const Scope& scope) {
  PARC_ASSIGN_OR_RETURN(Statement st,
                        db->Prepare(absl::StrCat(kRolloutSelect, "WHERE r.id = ?1 AND ",
                                                 RolloutInScope(*db, scope, 2))));
  st.BindAll(id, sql::ScopeParam(*db, scope));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no rollout with id ", id));
  return RolloutFromRow(st);
}

}  // namespace

absl::StatusOr<RolloutRecord> SqlStore::GetRollout(const std::string& id, const Scope& scope) {
  ReaderLease db = AcquireReader();
  return LoadVisibleRollout(db.get(), id, scope);
}

absl::StatusOr<std::vector<RolloutRecord>> SqlStore::ListRollouts(const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare(absl::StrCat(kRolloutSelect, "WHERE ",
                                                               RolloutInScope(*db, scope, 1),
                                                               " ORDER BY r.created_at, r.id")));
  st.Bind(1, sql::ScopeParam(*db, scope));
  return sql::CollectRows(st, RolloutFromRow);
}

absl::StatusOr<std::vector<EstablishmentCounts>> SqlStore::RolloutCounts(const std::string& id,
                                                                         const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(RolloutRecord r, LoadVisibleRollout(db.get(), id, scope));
  return ComputeCounts(db.get(), r, scope);
}

absl::StatusOr<std::vector<EstablishmentCounts>> SqlStore::RolloutCountsByScan(
    const std::string& id, const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(RolloutRecord r, LoadVisibleRollout(db.get(), id, scope));
  const int64_t started_day = r.started_at.has_value() ? Unix(*r.started_at) / 86400 : INT64_MAX;
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(
          "SELECT re.wave, re.uai, max(e.name), count(d.id), "
          "coalesce(sum(CASE WHEN dep.state = 2 THEN 1 ELSE 0 END), 0), coalesce(sum(CASE WHEN "
          "dep.state = 1 THEN 1 ELSE 0 END), 0), "
          "coalesce(sum(CASE WHEN dep.state IN (3, 4) THEN 1 ELSE 0 END), 0), "
          "coalesce(sum(CASE WHEN d.id IS NOT NULL AND "
          "coalesce(d.last_seen_at / 86400, -1) < CAST(?3 AS BIGINT) THEN 1 ELSE 0 END), 0) "
          "FROM rollout_establishments re JOIN establishments e ON e.uai = re.uai "
          "LEFT JOIN devices d ON d.uai = re.uai AND (?2 = '' OR "
          "(',' || CAST(?2 AS TEXT) || ',') LIKE ('%,' || d.kind || ',%')) "
          "LEFT JOIN deployments dep ON dep.rollout_id = re.rollout_id "
          "AND dep.device_id = d.id "
          "WHERE re.rollout_id = ?1 AND " +
          sql::ScopeSql(*db, scope, "re.uai", 4) +
          " GROUP BY re.wave, re.uai ORDER BY re.wave, re.uai"));
  st.BindAll(r.id, JoinNumbers(r.kinds), started_day, sql::ScopeParam(*db, scope));
  return sql::CollectRows(st, [](const Statement& row) {
    EstablishmentCounts c;
    c.wave = U32(row.Int(0));
    c.uai = row.Text(1);
    c.name = row.Text(2);
    c.targeted = U32(row.Int(3));
    c.installed = U32(row.Int(4));
    c.in_progress = U32(row.Int(5));
    c.failed = U32(row.Int(6));
    c.not_seen = U32(row.Int(7));
    return c;
  });
}

void SqlStore::EvaluateRollout(std::string id, absl::Time now, StoreCallback<RolloutRecord> done) {
  (void)now;
  // The aggregate over every targeted device runs on a reader connection, so deployment
  // reports and check-ins keep flowing through the writer meanwhile; only a transition takes
  // the writer, and it applies only if the rollout is still where the evaluation saw it (an
  // operator may have paused it in between).
  absl::StatusOr<RolloutRecord> loaded;
  absl::StatusOr<std::vector<EstablishmentCounts>> counts;
  {
    ReaderLease db = AcquireReader();
    loaded = LoadRollout(db.get(), id);
    if (loaded.ok() && loaded->state == "running")
      counts = ComputeCounts(db.get(), *loaded, Scope::Region());
  }
  if (!loaded.ok()) return done(loaded.status());
  RolloutRecord r = *std::move(loaded);
  if (r.state != "running") return done(std::move(r));
  if (!counts.ok()) return done(counts.status());
  RolloutDecision d = DecideRollout(r, *counts);
  if (!d.changed) return done(std::move(r));
  SubmitFor<RolloutRecord>(
      [r, d](sql::Connection* db) -> absl::StatusOr<RolloutRecord> {
        PARC_ASSIGN_OR_RETURN(
            Statement up,
            db->Prepare("UPDATE rollouts SET state = ?, state_reason = ?, current_wave = ? "
                        "WHERE id = ? AND state = 'running' AND current_wave = ?"));
        PARC_RETURN_IF_ERROR(
            up.BindAll(d.state, d.reason, d.current_wave, r.id, r.current_wave).Run());
        db->Notify(kCacheChannel, "assignments");
        return LoadRollout(db, r.id);
      },
      AfterRolloutWrite(std::move(done)));
}

absl::StatusOr<std::shared_ptr<const ActiveAssignment>> SqlStore::AssignmentFor(
    const DeviceAuth& device) {
  const int kind = static_cast<int>(device.kind);
  if (auto cached = cache_.GetAssignment(device.uai, kind)) return *std::move(cached);
  const uint64_t generation = cache_.Generation();
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare("SELECT r.id, b.manifest_sha256, b.signed_manifest, r.window_start, "
                  "r.window_end, r.rate_limit FROM rollout_establishments re "
                  "JOIN rollouts r ON r.id = re.rollout_id JOIN bundles b ON b.id = r.bundle_id "
                  "WHERE re.uai = ?1 AND r.state IN ('running', 'completed') "
                  "AND re.wave <= r.current_wave "
                  "AND (r.kinds = '' OR (',' || CAST(r.kinds AS TEXT) || ',') LIKE ('%,' || "
                  "CAST(?2 AS TEXT) || ',%')) "
                  "ORDER BY b.sequence DESC, r.created_at DESC LIMIT 1"));
  st.BindAll(device.uai, int64_t{kind});
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  std::shared_ptr<const ActiveAssignment> out;
  if (row) {
    auto a = std::make_shared<ActiveAssignment>();
    a->rollout_id = st.Text(0);
    a->manifest_sha256 = st.Text(1);
    a->signed_manifest = st.Blob(2);
    a->window_start = U32(st.Int(3));
    a->window_end = U32(st.Int(4));
    a->rate_limit = static_cast<uint64_t>(st.Int(5));
    PARC_ASSIGN_OR_RETURN(
        Statement relays,
        db->Prepare("SELECT url FROM relay_establishments WHERE uai = ?1 ORDER BY url"));
    relays.Bind(1, device.uai);
    PARC_ASSIGN_OR_RETURN(a->relay_urls,
                          sql::CollectRows(relays, [](const Statement& r) { return r.Text(0); }));
    out = std::move(a);
  }
  cache_.PutAssignment(generation, device.uai, kind, out);
  return out;
}

void SqlStore::RecordDeployment(std::string device_id, parc::v1::DeploymentReport report,
                                absl::Time now, StoreCallback<bool> done) {
  SubmitFor<bool>(
      [device_id = std::move(device_id), report = std::move(report),
       now](sql::Connection* db) -> absl::StatusOr<bool> {
        // Only a rollout that targets the device (its establishment and kind), and only the
        // packages of that rollout's bundle: a device cannot grow the database with made-up
        // rollouts or packages.
        PARC_ASSIGN_OR_RETURN(
            Statement target,
            db->Prepare("SELECT b.signed_manifest, b.name, b.version FROM rollouts r "
                        "JOIN bundles b ON b.id = r.bundle_id JOIN devices d ON d.id = ?2 "
                        "JOIN rollout_establishments re ON re.rollout_id = r.id "
                        "AND re.uai = d.uai WHERE r.id = ?1 AND (r.kinds = '' OR "
                        "(',' || CAST(r.kinds AS TEXT) || ',') LIKE ('%,' || d.kind || ',%'))"));
        target.BindAll(report.rollout_id(), device_id);
        PARC_ASSIGN_OR_RETURN(bool targeted, target.Step());
        if (!targeted) {
          return absl::NotFoundError(
              absl::StrCat("no rollout with id ", report.rollout_id(), " for this device"));
        }
        if ((!report.bundle_name().empty() && report.bundle_name() != target.Text(1)) ||
            (!report.bundle_version().empty() && report.bundle_version() != target.Text(2))) {
          return absl::InvalidArgumentError(absl::StrCat("bundle: rollout ", report.rollout_id(),
                                                         " installs ", target.Text(1), "@",
                                                         target.Text(2)));
        }
        // The bundle's packages, and those of its earlier versions (which the device
        // reports as removed when a version drops them).
        auto ids_of = [](const std::string& blob, std::set<std::string>* ids) {
          parc::v1::SignedManifest signed_manifest;
          parc::v1::BundleManifest manifest;
          if (!signed_manifest.ParseFromString(blob) ||
              !manifest.ParseFromString(signed_manifest.manifest())) {
            return false;
          }
          for (const auto& p : manifest.packages()) ids->insert(p.id());
          return true;
        };
        std::set<std::string> current, earlier;
        if (!ids_of(target.Blob(0), &current)) {
          return absl::InternalError("a published manifest does not parse");
        }
        PARC_ASSIGN_OR_RETURN(
            Statement previous,
            db->Prepare("SELECT b.signed_manifest FROM bundles b JOIN rollouts r ON r.id = ?1 "
                        "JOIN bundles this ON this.id = r.bundle_id WHERE b.name = this.name "
                        "AND b.sequence < this.sequence"));
        previous.Bind(1, report.rollout_id());
        PARC_RETURN_IF_ERROR(sql::ForEachRow(
            previous, [&](const Statement&) { (void)ids_of(previous.Blob(0), &earlier); }));
        earlier.insert(current.begin(), current.end());
        if (static_cast<size_t>(report.packages_size()) > earlier.size()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "packages: ", report.packages_size(), " reported, the bundle has ", current.size()));
        }
        for (int i = 0; i < report.packages_size(); ++i) {
          const auto& p = report.packages(i);
          const bool removed = p.state() == parc::v1::PACKAGE_STATE_REMOVED;
          if ((removed ? earlier : current).count(p.package_id()) == 0) {
            return absl::InvalidArgumentError(
                absl::StrCat("packages[", i, "].package_id \"", p.package_id().substr(0, 64),
                             "\" is not in ", target.Text(1), "@", target.Text(2),
                             removed ? " nor in its earlier versions" : ""));
          }
        }
        std::string message = report.message();
        if (message.empty()) {
          for (const auto& p : report.packages()) {
            if (p.state() != parc::v1::PACKAGE_STATE_FAILED) continue;
            std::string tail = p.output_tail();
            while (!tail.empty() && tail.back() == '\n') tail.pop_back();
            size_t nl = tail.find_last_of('\n');
            message = absl::StrCat(
                p.package_id(), ": ", p.reason(),
                p.exit_status() != 0 ? absl::StrCat(" (exit ", p.exit_status(), ")") : "",
                p.message().empty() ? "" : absl::StrCat(": ", p.message()),
                tail.empty() ? "" : absl::StrCat(": ", tail.substr(nl + 1)));
            break;
          }
        }
        PARC_ASSIGN_OR_RETURN(
            Statement up,
            db->Prepare("INSERT INTO deployments(rollout_id, device_id, state, reason, message, "
                        "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                        "ON CONFLICT(rollout_id, device_id) DO UPDATE SET state = ?3, "
                        "reason = ?4, message = ?5, updated_at = ?6"));
        PARC_RETURN_IF_ERROR(up.BindAll(report.rollout_id(), device_id,
                                        static_cast<int64_t>(report.state()), report.reason(),
                                        message.substr(0, 1024), Unix(now))
                                 .Run());
        PARC_ASSIGN_OR_RETURN(
            Statement pkg,
            db->Prepare("INSERT INTO deployment_packages(rollout_id, device_id, package_id, "
                        "version, state, reason, exit_status, output_tail, message, "
                        "bytes_downloaded, updated_at, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                        "?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT(rollout_id, device_id, "
                        "package_id) DO UPDATE SET version = ?4, state = ?5, reason = ?6, "
                        "exit_status = ?7, output_tail = ?8, message = ?9, "
                        "bytes_downloaded = ?10, updated_at = ?11, source = ?12"));
        // Faults are kept for the relays of the device's own establishment only: a device
        // cannot blame another establishment's relay. A report sent again changes nothing.
        PARC_ASSIGN_OR_RETURN(
            Statement fault,
            db->Prepare("INSERT INTO relay_faults(url, device_id, package_id, version, reason, "
                        "count, updated_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS ("
                        "SELECT 1 FROM relay_establishments re JOIN devices d ON d.uai = re.uai "
                        "WHERE re.url = ?1 AND d.id = ?2) ON CONFLICT(url, device_id, "
                        "package_id, version, reason) DO UPDATE SET count = ?6, updated_at = ?7 "
                        "WHERE relay_faults.count < ?6"));
        for (const auto& p : report.packages()) {
          PARC_RETURN_IF_ERROR(
              pkg.BindAll(report.rollout_id(), device_id, p.package_id(), p.version(),
                          static_cast<int64_t>(p.state()), p.reason(),
                          static_cast<int64_t>(p.exit_status()), p.output_tail().substr(0, 4096),
                          p.message().substr(0, 1024), static_cast<int64_t>(p.bytes_downloaded()),
                          Unix(now), p.source())
                  .Run());
          for (const auto& f : p.source_faults()) {
            PARC_RETURN_IF_ERROR(fault
                                     .BindAll(f.url(), device_id, p.package_id(), p.version(),
                                              f.reason(), int64_t{f.count()}, Unix(now))
                                     .Run());
          }
        }
        return true;
      },
      std::move(done));
}

}  // namespace parc::server
