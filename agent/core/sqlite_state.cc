#include "agent/core/sqlite_state.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace parc::agent {
namespace {

constexpr char kSchemaV1[] = R"sql(
CREATE TABLE identity (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  device_id TEXT NOT NULL,
  secret TEXT NOT NULL,
  server TEXT NOT NULL,
  ca_pem TEXT NOT NULL,
  insecure INTEGER NOT NULL DEFAULT 0,
  fingerprint TEXT NOT NULL,
  uai TEXT NOT NULL DEFAULT '',
  establishment_name TEXT NOT NULL DEFAULT '',
  kind INTEGER NOT NULL DEFAULT 0,
  enrolled_at INTEGER NOT NULL
);
CREATE TABLE outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  payload BLOB NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql";

constexpr char kSchemaV2[] = R"sql(
CREATE TABLE assignment (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  assignment BLOB NOT NULL
);
CREATE TABLE bundles (
  name TEXT PRIMARY KEY,
  version TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  rollout_id TEXT NOT NULL,
  state TEXT NOT NULL,
  manifest BLOB NOT NULL
);
CREATE TABLE packages (
  bundle_name TEXT NOT NULL,
  package_id TEXT NOT NULL,
  version TEXT NOT NULL,
  state INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  exit_status INTEGER NOT NULL DEFAULT 0,
  output_tail TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  bytes_downloaded INTEGER NOT NULL DEFAULT 0,
  spec BLOB NOT NULL,
  PRIMARY KEY (bundle_name, package_id)
);
)sql";

// Where each package's artifact came from (establishment relays), and which sources failed.
constexpr char kSchemaV3[] = R"sql(
ALTER TABLE packages ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE packages ADD COLUMN source_faults BLOB NOT NULL DEFAULT x'';
)sql";

const std::vector<common::Migration>& Migrations() {
  static const std::vector<common::Migration> kMigrations = {
      {1, kSchemaV1}, {2, kSchemaV2}, {3, kSchemaV3}};
  return kMigrations;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentState>> SqliteAgentState::Open(const std::string& state_dir,
                                                                   OutboxLimits limits) {
  PARC_RETURN_IF_ERROR(common::MakeDirs(state_dir, 0700));
  ::chmod(state_dir.c_str(), 0700);  // holds the device secret
  const std::string path = state_dir + "/agent.db";
  common::Database::Options options;
  // The agent survives power loss without losing acknowledged state: FULL sync.
  auto open = [&]() -> absl::StatusOr<std::unique_ptr<common::Database>> {
    PARC_ASSIGN_OR_RETURN(auto db, common::Database::Open(path, options));
    PARC_ASSIGN_OR_RETURN(common::Statement check, db->Prepare("PRAGMA quick_check"));
    PARC_ASSIGN_OR_RETURN(bool row, check.Step());
    if (!row || check.Text(0) != "ok") {
      return absl::DataLossError(absl::StrCat(path, ": quick_check: ", row ? check.Text(0) : ""));
    }
    PARC_RETURN_IF_ERROR(common::Migrate(db.get(), Migrations()));
    return db;
  };
  auto db = open();
  std::string recovered_from;
  if (!db.ok() && (absl::IsDataLoss(db.status()) ||
                   absl::StrContains(db.status().message(), "not a database"))) {
    // A damaged state leaves the device silent until a technician acts: keep the damaged
    // file for diagnosis and start again (the daemon re-enrolls; see SpareCredential).
    recovered_from = absl::StrCat(path, ".damaged-", absl::ToUnixSeconds(absl::Now()));
    if (::rename(path.c_str(), recovered_from.c_str()) != 0) return db.status();
    for (const char* suffix : {"-wal", "-shm", "-journal"}) {
      (void)::rename(absl::StrCat(path, suffix).c_str(),
                     absl::StrCat(recovered_from, suffix).c_str());
    }
    db = open();
  }
  if (!db.ok()) return db.status();
  std::unique_ptr<SqliteAgentState> state(new SqliteAgentState(std::move(*db), state_dir, limits));
  state->recovered_from_ = std::move(recovered_from);
  return std::unique_ptr<AgentState>(std::move(state));
}

absl::StatusOr<std::unique_ptr<AgentState>> SqliteAgentState::OpenAnother() const {
  return Open(state_dir_, limits_);
}

std::string SqliteAgentState::SpareCredential(const std::string& fingerprint) const {
  auto text = common::ReadFile(state_dir_ + "/credential", 4096);
  if (!text.ok()) return "";
  std::vector<std::string> lines = absl::StrSplit(*text, '\n');
  if (lines.size() < 2 || lines[1] != fingerprint) return "";
  return lines[0];
}

absl::StatusOr<std::optional<Identity>> SqliteAgentState::LoadIdentity() {
  PARC_ASSIGN_OR_RETURN(
      common::Statement st,
      db_->Prepare("SELECT device_id, secret, server, ca_pem, insecure, fingerprint, uai, "
                   "establishment_name, kind, enrolled_at FROM identity WHERE id = 1"));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<Identity>();
  Identity id;
  id.device_id = st.Text(0);
  id.secret = st.Text(1);
  id.server = st.Text(2);
  id.ca_pem = st.Text(3);
  id.insecure = st.Int(4) != 0;
  id.fingerprint = st.Text(5);
  id.uai = st.Text(6);
  id.establishment_name = st.Text(7);
  id.kind = static_cast<parc::v1::DeviceKind>(st.Int(8));
  id.enrolled_at = absl::FromUnixSeconds(st.Int(9));
  return std::optional<Identity>(std::move(id));
}

absl::Status SqliteAgentState::SaveIdentity(const Identity& id) {
  PARC_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto st = db_->Prepare(
      "INSERT OR REPLACE INTO identity(id, device_id, secret, server, ca_pem, insecure, "
      "fingerprint, uai, establishment_name, kind, enrolled_at) "
      "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  absl::Status s = st.status();
  if (s.ok()) {
    s = st->BindAll(id.device_id, id.secret, id.server, id.ca_pem, id.insecure, id.fingerprint,
                    id.uai, id.establishment_name, static_cast<int64_t>(id.kind),
                    absl::ToUnixSeconds(id.enrolled_at))
            .Run();
  }
  // A new identity starts with a new inventory: the server knows nothing of this device.
  if (s.ok()) s = db_->Exec("DELETE FROM meta WHERE key = 'inventory_hash_queued'");
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return s;
  }
  PARC_RETURN_IF_ERROR(db_->Exec("COMMIT"));
  // A spare copy of the credential, outside the database, for when the database is damaged.
  return common::WriteFileAtomic(
      state_dir_ + "/credential",
      absl::StrCat(id.device_id, ".", id.secret, "\n", id.fingerprint, "\n"), 0600);
}

absl::Status SqliteAgentState::ClearIdentity() {
  (void)::unlink((state_dir_ + "/credential").c_str());
  PARC_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  absl::Status s = db_->Exec(
      "DELETE FROM identity; DELETE FROM outbox; "
      "DELETE FROM meta WHERE key IN ('inventory_hash_queued', 'last_checkin_at')");
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return s;
  }
  return db_->Exec("COMMIT");
}

absl::Status SqliteAgentState::Enqueue(const std::string& kind, const std::string& payload,
                                       absl::Time now) {
  PARC_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> absl::Status {
    if (kind == "inventory" || kind == "deployment") {
      // Both are cumulative: only the latest matters.
      PARC_ASSIGN_OR_RETURN(common::Statement del,
                            db_->Prepare("DELETE FROM outbox WHERE kind = ?"));
      PARC_RETURN_IF_ERROR(del.Bind(1, kind).Run());
    }
    PARC_ASSIGN_OR_RETURN(
        common::Statement ins,
        db_->Prepare("INSERT INTO outbox(kind, payload, created_at) VALUES (?, ?, ?)"));
    ins.Bind(1, kind).BindBlob(2, payload).Bind(3, absl::ToUnixSeconds(now));
    PARC_RETURN_IF_ERROR(ins.Run());
    // Enforce the bounds, oldest first, never dropping the entry just added.
    int64_t dropped = 0;
    while (true) {
      PARC_ASSIGN_OR_RETURN(
          common::Statement size,
          db_->Prepare("SELECT count(*), coalesce(sum(length(payload)), 0), min(seq) FROM outbox"));
      PARC_ASSIGN_OR_RETURN(bool row, size.Step());
      if (!row) break;
      int64_t count = size.Int(0);
      int64_t bytes = size.Int(1);
      int64_t oldest = size.Int(2);
      if (count <= 1 || (count <= limits_.max_entries && bytes <= limits_.max_bytes)) break;
      PARC_ASSIGN_OR_RETURN(common::Statement drop,
                            db_->Prepare("DELETE FROM outbox WHERE seq = ?"));
      PARC_RETURN_IF_ERROR(drop.Bind(1, oldest).Run());
      ++dropped;
    }
    if (dropped > 0) {
      PARC_ASSIGN_OR_RETURN(
          common::Statement count,
          db_->Prepare("INSERT INTO meta(key, value) VALUES ('dropped_reports', ?1) "
                       "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?1"));
      PARC_RETURN_IF_ERROR(count.Bind(1, dropped).Run());
    }
    return absl::OkStatus();
  };
  absl::Status s = body();
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return s;
  }
  return db_->Exec("COMMIT");
}

absl::StatusOr<std::optional<OutboxEntry>> SqliteAgentState::Oldest() {
  PARC_ASSIGN_OR_RETURN(
      common::Statement st,
      db_->Prepare("SELECT seq, kind, payload, created_at FROM outbox ORDER BY seq LIMIT 1"));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<OutboxEntry>();
  return std::optional<OutboxEntry>(
      OutboxEntry{st.Int(0), st.Text(1), st.Blob(2), absl::FromUnixSeconds(st.Int(3))});
}

absl::StatusOr<std::vector<OutboxEntry>> SqliteAgentState::QueuedOfKind(const std::string& kind) {
  PARC_ASSIGN_OR_RETURN(common::Statement st,
                        db_->Prepare("SELECT seq, kind, payload, created_at FROM outbox "
                                     "WHERE kind = ? ORDER BY seq"));
  st.Bind(1, kind);
  std::vector<OutboxEntry> out;
  while (true) {
    PARC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back({st.Int(0), st.Text(1), st.Blob(2), absl::FromUnixSeconds(st.Int(3))});
  }
  return out;
}

absl::Status SqliteAgentState::Remove(int64_t seq) {
  PARC_ASSIGN_OR_RETURN(common::Statement st, db_->Prepare("DELETE FROM outbox WHERE seq = ?"));
  return st.Bind(1, seq).Run();
}

absl::StatusOr<int64_t> SqliteAgentState::QueuedCount() {
  PARC_ASSIGN_OR_RETURN(common::Statement st, db_->Prepare("SELECT count(*) FROM outbox"));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : 0;
}

absl::Status SqliteAgentState::DropRefused(int64_t seq, const absl::Status& refusal,
                                           absl::Time now) {
  PARC_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> absl::Status {
    PARC_RETURN_IF_ERROR(Remove(seq));
    PARC_ASSIGN_OR_RETURN(
        common::Statement count,
        db_->Prepare("INSERT INTO meta(key, value) VALUES ('dropped_reports', 1) "
                     "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"));
    PARC_RETURN_IF_ERROR(count.Run());
    return Set("last_refused",
               absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M UTC", now, absl::UTCTimeZone()), ": ",
                            refusal.ToString()));
  };
  absl::Status s = body();
  if (!s.ok()) {
    (void)db_->Exec("ROLLBACK");
    return s;
  }
  return db_->Exec("COMMIT");
}

absl::StatusOr<uint64_t> SqliteAgentState::DroppedCount() {
  PARC_ASSIGN_OR_RETURN(std::string v, Get("dropped_reports"));
  uint64_t n = 0;
  return absl::SimpleAtoi(v, &n) ? n : 0;
}

absl::StatusOr<std::optional<parc::v1::Assignment>> SqliteAgentState::LoadAssignment() {
  PARC_ASSIGN_OR_RETURN(common::Statement st,
                        db_->Prepare("SELECT assignment FROM assignment WHERE id = 1"));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<parc::v1::Assignment>();
  parc::v1::Assignment a;
  if (!a.ParseFromString(st.Blob(0))) {
    return absl::DataLossError("stored assignment is unreadable");
  }
  return std::optional<parc::v1::Assignment>(std::move(a));
}

absl::Status SqliteAgentState::SaveAssignment(const parc::v1::Assignment& assignment) {
  PARC_ASSIGN_OR_RETURN(
      common::Statement st,
      db_->Prepare("INSERT OR REPLACE INTO assignment(id, assignment) VALUES (1, ?)"));
  return st.BindBlob(1, assignment.SerializeAsString()).Run();
}

absl::Status SqliteAgentState::ClearAssignment() { return db_->Exec("DELETE FROM assignment"); }

namespace {

BundleState BundleFromRow(const common::Statement& st) {
  BundleState b;
  b.name = st.Text(0);
  b.version = st.Text(1);
  b.sequence = static_cast<uint64_t>(st.Int(2));
  b.rollout_id = st.Text(3);
  b.state = st.Text(4);
  (void)b.manifest.ParseFromString(st.Blob(5));
  return b;
}

}  // namespace

absl::StatusOr<std::optional<BundleState>> SqliteAgentState::LoadBundle(const std::string& name) {
  PARC_ASSIGN_OR_RETURN(common::Statement st,
                        db_->Prepare("SELECT name, version, sequence, rollout_id, state, manifest "
                                     "FROM bundles WHERE name = ?"));
  st.Bind(1, name);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<BundleState>();
  return std::optional<BundleState>(BundleFromRow(st));
}

absl::StatusOr<std::vector<BundleState>> SqliteAgentState::LoadBundles() {
  PARC_ASSIGN_OR_RETURN(common::Statement st,
                        db_->Prepare("SELECT name, version, sequence, rollout_id, state, manifest "
                                     "FROM bundles ORDER BY name"));
  std::vector<BundleState> out;
  while (true) {
    PARC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(BundleFromRow(st));
  }
  return out;
}

absl::Status SqliteAgentState::SaveBundle(const BundleState& b) {
  PARC_ASSIGN_OR_RETURN(
      common::Statement st,
      db_->Prepare("INSERT OR REPLACE INTO bundles(name, version, sequence, rollout_id, state, "
                   "manifest) VALUES (?, ?, ?, ?, ?, ?)"));
  st.BindAll(b.name, b.version, static_cast<int64_t>(b.sequence), b.rollout_id, b.state);
  return st.BindBlob(6, b.manifest.SerializeAsString()).Run();
}

absl::StatusOr<std::vector<PackageRecord>> SqliteAgentState::LoadPackages(
    const std::string& bundle_name) {
  PARC_ASSIGN_OR_RETURN(
      common::Statement st,
      db_->Prepare("SELECT bundle_name, package_id, version, state, reason, exit_status, "
                   "output_tail, message, attempts, bytes_downloaded, spec, source, source_faults "
                   "FROM packages "
                   "WHERE bundle_name = ? ORDER BY package_id"));
  st.Bind(1, bundle_name);
  std::vector<PackageRecord> out;
  while (true) {
    PARC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    PackageRecord p;
    p.bundle_name = st.Text(0);
    p.package_id = st.Text(1);
    p.version = st.Text(2);
    p.state = static_cast<parc::v1::PackageState>(st.Int(3));
    p.reason = st.Text(4);
    p.exit_status = static_cast<int>(st.Int(5));
    p.output_tail = st.Text(6);
    p.message = st.Text(7);
    p.attempts = static_cast<int>(st.Int(8));
    p.bytes_downloaded = static_cast<uint64_t>(st.Int(9));
    (void)p.spec.ParseFromString(st.Blob(10));
    p.source = st.Text(11);
    parc::v1::PackageReport faults;  // only its source_faults
    if (faults.ParseFromString(st.Blob(12))) {
      p.source_faults.assign(faults.source_faults().begin(), faults.source_faults().end());
    }
    out.push_back(std::move(p));
  }
  return out;
}

absl::Status SqliteAgentState::SavePackage(const PackageRecord& p) {
  PARC_ASSIGN_OR_RETURN(
      common::Statement st,
      db_->Prepare("INSERT OR REPLACE INTO packages(bundle_name, package_id, version, state, "
                   "reason, exit_status, output_tail, message, attempts, bytes_downloaded, spec, "
                   "source, source_faults) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  st.BindAll(p.bundle_name, p.package_id, p.version, static_cast<int64_t>(p.state), p.reason,
             p.exit_status, p.output_tail, p.message, p.attempts,
             static_cast<int64_t>(p.bytes_downloaded));
  st.BindBlob(11, p.spec.SerializeAsString());
  st.Bind(12, p.source);
  parc::v1::PackageReport faults;
  for (const auto& f : p.source_faults) *faults.add_source_faults() = f;
  return st.BindBlob(13, faults.SerializeAsString()).Run();
}

absl::Status SqliteAgentState::DeletePackage(const std::string& bundle_name,
                                             const std::string& package_id) {
  PARC_ASSIGN_OR_RETURN(
      common::Statement st,
      db_->Prepare("DELETE FROM packages WHERE bundle_name = ? AND package_id = ?"));
  return st.BindAll(bundle_name, package_id).Run();
}

absl::StatusOr<std::string> SqliteAgentState::Get(const std::string& key) {
  PARC_ASSIGN_OR_RETURN(common::Statement st, db_->Prepare("SELECT value FROM meta WHERE key = ?"));
  st.Bind(1, key);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Text(0) : std::string();
}

absl::Status SqliteAgentState::Set(const std::string& key, const std::string& value) {
  PARC_ASSIGN_OR_RETURN(common::Statement st,
                        db_->Prepare("INSERT INTO meta(key, value) VALUES (?1, ?2) "
                                     "ON CONFLICT(key) DO UPDATE SET value = ?2"));
  return st.BindAll(key, value).Run();
}

}  // namespace parc::agent
