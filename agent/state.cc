#include "agent/state.h"

#include <sys/stat.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

const std::vector<common::Migration>& Migrations() {
  static const std::vector<common::Migration> kMigrations = {{1, kSchemaV1}};
  return kMigrations;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentState>> AgentState::Open(const std::string& state_dir,
                                                             OutboxLimits limits) {
  PARC_RETURN_IF_ERROR(common::MakeDirs(state_dir, 0700));
  ::chmod(state_dir.c_str(), 0700);  // holds the device secret
  common::Database::Options options;
  // The agent survives power loss without losing acknowledged state: FULL sync.
  PARC_ASSIGN_OR_RETURN(auto db, common::Database::Open(state_dir + "/agent.db", options));
  PARC_RETURN_IF_ERROR(common::Migrate(db.get(), Migrations()));
  return std::unique_ptr<AgentState>(new AgentState(std::move(db), state_dir, limits));
}

absl::StatusOr<std::optional<Identity>> AgentState::LoadIdentity() {
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

absl::Status AgentState::SaveIdentity(const Identity& id) {
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
  return db_->Exec("COMMIT");
}

absl::Status AgentState::ClearIdentity() {
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

absl::Status AgentState::Enqueue(const std::string& kind, const std::string& payload,
                                 absl::Time now) {
  PARC_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> absl::Status {
    if (kind == "inventory") {
      PARC_ASSIGN_OR_RETURN(common::Statement del,
                            db_->Prepare("DELETE FROM outbox WHERE kind = 'inventory'"));
      PARC_RETURN_IF_ERROR(del.Run());
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

absl::StatusOr<std::optional<OutboxEntry>> AgentState::Oldest() {
  PARC_ASSIGN_OR_RETURN(
      common::Statement st,
      db_->Prepare("SELECT seq, kind, payload, created_at FROM outbox ORDER BY seq LIMIT 1"));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<OutboxEntry>();
  return std::optional<OutboxEntry>(
      OutboxEntry{st.Int(0), st.Text(1), st.Blob(2), absl::FromUnixSeconds(st.Int(3))});
}

absl::StatusOr<std::vector<OutboxEntry>> AgentState::QueuedOfKind(const std::string& kind) {
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

absl::Status AgentState::Remove(int64_t seq) {
  PARC_ASSIGN_OR_RETURN(common::Statement st, db_->Prepare("DELETE FROM outbox WHERE seq = ?"));
  return st.Bind(1, seq).Run();
}

absl::StatusOr<int64_t> AgentState::QueuedCount() {
  PARC_ASSIGN_OR_RETURN(common::Statement st, db_->Prepare("SELECT count(*) FROM outbox"));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : 0;
}

absl::StatusOr<uint64_t> AgentState::DroppedCount() {
  PARC_ASSIGN_OR_RETURN(std::string v, Get("dropped_reports"));
  uint64_t n = 0;
  return absl::SimpleAtoi(v, &n) ? n : 0;
}

absl::StatusOr<std::string> AgentState::Get(const std::string& key) {
  PARC_ASSIGN_OR_RETURN(common::Statement st, db_->Prepare("SELECT value FROM meta WHERE key = ?"));
  st.Bind(1, key);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Text(0) : std::string();
}

absl::Status AgentState::Set(const std::string& key, const std::string& value) {
  PARC_ASSIGN_OR_RETURN(common::Statement st,
                        db_->Prepare("INSERT INTO meta(key, value) VALUES (?1, ?2) "
                                     "ON CONFLICT(key) DO UPDATE SET value = ?2"));
  return st.BindAll(key, value).Run();
}

}  // namespace parc::agent
