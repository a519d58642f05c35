#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "parc/v1/bundle.pb.h"
#include "server/sql/scope_sql.h"
#include "server/sql/time_util.h"
#include "server/sql_store.h"

namespace parc::server {

using Statement = sql::Stmt;
using sql::Unix;

// ---------------------------------------------------------------------------------------------
// Establishment relays

namespace {

// Reasons an agent gives for a source that failed (parc.v1.SourceFault).
constexpr char kWrongBytesReasons[] = "('artifact_hash_mismatch', 'artifact_size_mismatch')";

// The relay with its establishments in scope and the faults reported since faults_since;
// NOT_FOUND when there is no such relay.
absl::StatusOr<RelayRecord> LoadRelay(sql::Connection* db, const std::string& url,
                                      const Scope& scope, absl::Time faults_since) {
  RelayRecord r;
  r.url = url;
  PARC_ASSIGN_OR_RETURN(Statement relay,
                        db->Prepare("SELECT created_at, reported_at, cache_bytes, cache_max_bytes, "
                                    "artifacts_missing FROM relays WHERE url = ?"));
  relay.Bind(1, url);
  PARC_ASSIGN_OR_RETURN(bool found, relay.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no relay ", url));
  r.created_at = sql::FromUnix(relay.Int(0));
  if (!relay.IsNull(1)) r.reported_at = sql::FromUnix(relay.Int(1));
  r.cache_bytes = static_cast<uint64_t>(relay.Int(2));
  r.cache_max_bytes = static_cast<uint64_t>(relay.Int(3));
  r.artifacts_missing = sql::U32(relay.Int(4));

  PARC_ASSIGN_OR_RETURN(
      Statement uais,
      db->Prepare(absl::StrCat("SELECT re.uai FROM relay_establishments re WHERE re.url = ?1 AND ",
                               sql::ScopeSql(*db, scope, "re.uai", 2), " ORDER BY re.uai")));
  uais.BindAll(url, sql::ScopeParam(*db, scope));
  PARC_ASSIGN_OR_RETURN(r.uais,
                        sql::CollectRows(uais, [](const Statement& st) { return st.Text(0); }));

  PARC_ASSIGN_OR_RETURN(
      Statement faults,
      db->Prepare(absl::StrCat(
          "SELECT coalesce(SUM(CASE WHEN reason IN ", kWrongBytesReasons,
          " THEN count ELSE 0 END), 0), coalesce(SUM(CASE WHEN reason NOT IN ", kWrongBytesReasons,
          " THEN count ELSE 0 END), 0) FROM relay_faults WHERE url = ?1 AND updated_at >= ?2")));
  faults.BindAll(url, Unix(faults_since));
  PARC_ASSIGN_OR_RETURN(bool counted, faults.Step());
  if (counted) {
    r.wrong_bytes = static_cast<uint64_t>(faults.Int(0));
    r.unreachable = static_cast<uint64_t>(faults.Int(1));
  }
  PARC_ASSIGN_OR_RETURN(
      Statement last, db->Prepare("SELECT reason, updated_at FROM relay_faults WHERE url = ?1 "
                                  "AND updated_at >= ?2 ORDER BY updated_at DESC, reason LIMIT 1"));
  last.BindAll(url, Unix(faults_since));
  PARC_ASSIGN_OR_RETURN(bool any, last.Step());
  if (any) {
    r.last_fault = last.Text(0);
    r.last_fault_at = sql::FromUnix(last.Int(1));
  }

  PARC_ASSIGN_OR_RETURN(Statement bytes,
                        db->Prepare("SELECT coalesce(SUM(bytes_downloaded), 0) FROM "
                                    "deployment_packages WHERE source = ?1"));
  bytes.Bind(1, url);
  PARC_ASSIGN_OR_RETURN(bool summed, bytes.Step());
  if (summed) r.bytes_served = static_cast<uint64_t>(bytes.Int(0));
  return r;
}

}  // namespace

void SqlStore::AddRelay(std::string url, std::vector<std::string> uais, Scope scope,
                        RelayCredential credential, bool replace_credential, absl::Time now,
                        StoreCallback<RelayRecord> done) {
  SubmitFor<RelayRecord>(
      [url = std::move(url), uais = std::move(uais), scope = std::move(scope),
       credential = std::move(credential), replace_credential,
       now](sql::Connection* db) -> absl::StatusOr<RelayRecord> {
        PARC_ASSIGN_OR_RETURN(Statement known,
                              db->Prepare("SELECT 1 FROM establishments WHERE uai = ?"));
        for (const auto& uai : uais) {
          known.Bind(1, uai);
          PARC_ASSIGN_OR_RETURN(bool exists, known.Step());
          if (!exists) return absl::NotFoundError(absl::StrCat("no establishment with UAI ", uai));
        }
        PARC_ASSIGN_OR_RETURN(
            Statement relay,
            db->Prepare("INSERT INTO relays(url, created_at, id, token_hash) VALUES (?1, ?2, ?3, "
                        "?4) ON CONFLICT(url) DO NOTHING RETURNING url"));
        relay.BindAll(url, Unix(now), credential.id, credential.token_hash);
        PARC_ASSIGN_OR_RETURN(bool created, relay.Step());
        if (created) {
          PARC_ASSIGN_OR_RETURN(bool more, relay.Step());  // finishes the statement
          (void)more;
        }
        bool stored = created;
        if (!created && replace_credential) {
          PARC_ASSIGN_OR_RETURN(
              Statement rekey,
              db->Prepare("UPDATE relays SET id = ?2, token_hash = ?3 WHERE url = ?1"));
          PARC_RETURN_IF_ERROR(rekey.BindAll(url, credential.id, credential.token_hash).Run());
          stored = true;
        }
        PARC_ASSIGN_OR_RETURN(Statement serves,
                              db->Prepare("INSERT INTO relay_establishments(url, uai) VALUES "
                                          "(?1, ?2) ON CONFLICT(url, uai) DO NOTHING"));
        for (const auto& uai : uais) PARC_RETURN_IF_ERROR(serves.BindAll(url, uai).Run());
        db->Notify(kCacheChannel, "assignments");
        PARC_ASSIGN_OR_RETURN(RelayRecord r, LoadRelay(db, url, scope, now - kRelayFaultWindow));
        r.credential_stored = stored;
        return r;
      },
      AfterRelayWrite(std::move(done)));
}

void SqlStore::RemoveRelay(std::string url, std::vector<std::string> uais, Scope scope,
                           absl::Time now, StoreCallback<RelayRecord> done) {
  SubmitFor<RelayRecord>(
      [url = std::move(url), uais = std::move(uais), scope = std::move(scope),
       now](sql::Connection* db) mutable -> absl::StatusOr<RelayRecord> {
        PARC_ASSIGN_OR_RETURN(RelayRecord before,
                              LoadRelay(db, url, scope, now - kRelayFaultWindow));
        if (before.uais.empty()) return absl::NotFoundError(absl::StrCat("no relay ", url));
        if (uais.empty()) uais = before.uais;
        for (const auto& uai : uais) {
          if (!std::binary_search(before.uais.begin(), before.uais.end(), uai)) {
            return absl::NotFoundError(absl::StrCat("relay ", url, " does not serve UAI ", uai));
          }
        }
        PARC_ASSIGN_OR_RETURN(
            Statement drop,
            db->Prepare("DELETE FROM relay_establishments WHERE url = ?1 AND uai = ?2"));
        for (const auto& uai : uais) PARC_RETURN_IF_ERROR(drop.BindAll(url, uai).Run());
        // A relay left serving nobody is gone, with the faults reported about it.
        PARC_ASSIGN_OR_RETURN(
            Statement orphan,
            db->Prepare("DELETE FROM relays WHERE url = ?1 AND NOT EXISTS (SELECT 1 FROM "
                        "relay_establishments re WHERE re.url = ?1)"));
        PARC_RETURN_IF_ERROR(orphan.Bind(1, url).Run());
        db->Notify(kCacheChannel, "assignments");
        auto after = LoadRelay(db, url, scope, now - kRelayFaultWindow);
        if (absl::IsNotFound(after.status())) {
          before.uais.clear();
          return before;
        }
        return after;
      },
      AfterRelayWrite(std::move(done)));
}

StoreCallback<RelayRecord> SqlStore::AfterRelayWrite(StoreCallback<RelayRecord> done) {
  // The relays travel with each establishment's assignment: check-ins read them again.
  return [this, done = std::move(done)](absl::StatusOr<RelayRecord> r) {
    cache_.InvalidateAssignments();
    done(std::move(r));
  };
}

absl::StatusOr<std::vector<RelayRecord>> SqlStore::ListRelays(const std::string& uai,
                                                              const Scope& scope,
                                                              absl::Time faults_since) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement urls,
      db->Prepare(absl::StrCat("SELECT DISTINCT re.url FROM relay_establishments re WHERE (?1 = "
                               "'' OR re.uai = ?1) AND ",
                               sql::ScopeSql(*db, scope, "re.uai", 2), " ORDER BY re.url")));
  urls.BindAll(uai, sql::ScopeParam(*db, scope));
  PARC_ASSIGN_OR_RETURN(std::vector<std::string> found,
                        sql::CollectRows(urls, [](const Statement& st) { return st.Text(0); }));
  std::vector<RelayRecord> out;
  out.reserve(found.size());
  for (const auto& url : found) {
    PARC_ASSIGN_OR_RETURN(RelayRecord r, LoadRelay(db.get(), url, scope, faults_since));
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::map<std::string, RelayShare>> SqlStore::RelayShares(
    const std::vector<std::string>& uais, int64_t bundle_id) {
  ReaderLease db = AcquireReader();
  // One establishment at a time (those with a relay: a few per page): each rollout of the
  // bundle, then each device of the establishment (UAI index), then its rows (primary key).
  // CROSS JOIN keeps SQLite from scanning a whole rollout's rows instead.
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare("SELECT coalesce(SUM(p.bytes_downloaded), 0), coalesce(SUM(CASE WHEN EXISTS "
                  "(SELECT 1 FROM relay_establishments x WHERE x.uai = d.uai AND x.url = "
                  "p.source) THEN p.bytes_downloaded ELSE 0 END), 0), COUNT(*) FROM rollouts r "
                  "CROSS JOIN devices d JOIN deployment_packages p ON p.rollout_id = r.id AND "
                  "p.device_id = d.id WHERE r.bundle_id = ?2 AND d.uai = ?1"));
  std::map<std::string, RelayShare> out;
  for (const auto& uai : uais) {
    st.BindAll(uai, bundle_id);
    PARC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.Int(2) == 0) continue;
    out[uai] = RelayShare{static_cast<uint64_t>(st.Int(0)), static_cast<uint64_t>(st.Int(1))};
  }
  return out;
}

absl::StatusOr<std::pair<std::string, RelayCredential>> SqlStore::GetRelayCredential(
    const std::string& id) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st,
                        db->Prepare("SELECT url, id, token_hash FROM relays WHERE id = ?"));
  st.Bind(1, id);
  PARC_ASSIGN_OR_RETURN(bool found, st.Step());
  if (!found) return absl::NotFoundError("no such relay");
  return std::make_pair(st.Text(0), RelayCredential{st.Text(1), st.Text(2)});
}

absl::StatusOr<std::vector<RelayArtifact>> SqlStore::RelayArtifacts(const std::string& url) {
  ReaderLease db = AcquireReader();
  // Each bundle once, with the widest window among the rollouts assigning it (any time wins).
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare("SELECT DISTINCT b.id, b.signed_manifest, r.window_start, r.window_end "
                  "FROM relay_establishments x JOIN rollout_establishments re ON re.uai = x.uai "
                  "JOIN rollouts r ON r.id = re.rollout_id JOIN bundles b ON b.id = r.bundle_id "
                  "WHERE x.url = ?1 AND r.state IN ('running', 'completed') "
                  "AND re.wave <= r.current_wave ORDER BY b.id"));
  st.Bind(1, url);
  std::vector<RelayArtifact> out;
  std::set<std::string> seen;
  while (true) {
    PARC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    parc::v1::SignedManifest signed_manifest;
    parc::v1::BundleManifest manifest;
    if (!signed_manifest.ParseFromString(st.Blob(1)) ||
        !manifest.ParseFromString(signed_manifest.manifest())) {
      return absl::DataLossError("stored signed manifest is unreadable");
    }
    const auto start = sql::U32(st.Int(2)), end = sql::U32(st.Int(3));
    for (const auto& p : manifest.packages()) {
      const auto& a = p.artifact();
      if (!seen.insert(a.sha256()).second) {
        // Already listed: keep the widest window (any time when either allows any time).
        for (auto& o : out) {
          if (o.sha256 == a.sha256() && start == end) o.window_start = o.window_end = 0;
        }
        continue;
      }
      out.push_back({a.sha256(), a.size(), start, end});
    }
  }
  return out;
}

void SqlStore::RecordRelayReport(std::string url, RelayReport report, absl::Time now,
                                 StoreCallback<bool> done) {
  SubmitFor<bool>(
      [url = std::move(url), report, now](sql::Connection* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(
            Statement up,
            db->Prepare("UPDATE relays SET reported_at = ?2, cache_bytes = ?3, "
                        "cache_max_bytes = ?4, artifacts_missing = ?5 WHERE url = ?1"));
        PARC_RETURN_IF_ERROR(up.BindAll(url, Unix(now), static_cast<int64_t>(report.cache_bytes),
                                        static_cast<int64_t>(report.cache_max_bytes),
                                        int64_t{report.artifacts_missing})
                                 .Run());
        return true;
      },
      std::move(done));
}

}  // namespace parc::server
