#include "server/sqlite_store.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/sampled_log.h"
#include "common/status_macros.h"
#include "server/software_sets.h"
#include "server/sqlite/scope_sql.h"
#include "server/sqlite_util.h"

namespace parc::server {
namespace {

using common::Database;
using common::Statement;

constexpr char kSchemaV1[] = R"sql(
CREATE TABLE establishments (
  uai TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  category TEXT NOT NULL,
  sector TEXT NOT NULL DEFAULT '',
  commune_code TEXT NOT NULL DEFAULT '',
  commune_name TEXT NOT NULL DEFAULT '',
  departement TEXT NOT NULL,
  academie TEXT NOT NULL DEFAULT '',
  collectivite_kind TEXT NOT NULL,
  collectivite_code TEXT NOT NULL,
  collectivite_name TEXT NOT NULL,
  tags TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX establishments_departement ON establishments(departement);
CREATE INDEX establishments_commune ON establishments(commune_code);

CREATE TABLE operators (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  secret_hash TEXT NOT NULL,
  role TEXT NOT NULL,
  scope TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);

CREATE TABLE enrollment_tokens (
  id TEXT PRIMARY KEY,
  secret_hash TEXT NOT NULL,
  uai TEXT REFERENCES establishments(uai),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  max_uses INTEGER NOT NULL DEFAULT 0,
  uses INTEGER NOT NULL DEFAULT 0,
  revoked_at INTEGER,
  note TEXT NOT NULL DEFAULT '',
  created_by TEXT NOT NULL DEFAULT ''
);

CREATE TABLE preassignments (
  serial TEXT PRIMARY KEY,
  uai TEXT NOT NULL REFERENCES establishments(uai),
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE software_sets (
  id INTEGER PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  package_count INTEGER NOT NULL,
  packages BLOB NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  secret_hash TEXT NOT NULL,
  hw_key TEXT NOT NULL UNIQUE,
  serial TEXT NOT NULL DEFAULT '',
  uai TEXT REFERENCES establishments(uai),
  kind INTEGER NOT NULL DEFAULT 0,
  kind_source TEXT NOT NULL DEFAULT 'detected',
  manufacturer TEXT NOT NULL DEFAULT '',
  model TEXT NOT NULL DEFAULT '',
  hostname TEXT NOT NULL DEFAULT '',
  os TEXT NOT NULL DEFAULT '',
  agent_version TEXT NOT NULL DEFAULT '',
  enrolled_at INTEGER NOT NULL,
  last_enrolled_at INTEGER NOT NULL,
  enroll_count INTEGER NOT NULL DEFAULT 1,
  last_seen_at INTEGER,
  inventory_hash TEXT NOT NULL DEFAULT '',
  software_hash TEXT NOT NULL DEFAULT '',
  inventory_at INTEGER,
  token_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX devices_uai ON devices(uai);
CREATE INDEX devices_serial ON devices(serial);

CREATE TABLE inventories (
  id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  received_at INTEGER NOT NULL,
  collected_at INTEGER NOT NULL,
  inventory_hash TEXT NOT NULL,
  hardware BLOB NOT NULL,
  software_hash TEXT NOT NULL REFERENCES software_sets(hash)
);
CREATE INDEX inventories_device ON inventories(device_id, id);
CREATE INDEX inventories_received ON inventories(received_at);
CREATE INDEX inventories_software ON inventories(software_hash);
)sql";

constexpr char kSchemaV2[] = R"sql(
CREATE TABLE bundles (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  manifest_sha256 TEXT NOT NULL UNIQUE,
  signed_manifest BLOB NOT NULL,
  published_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  package_count INTEGER NOT NULL,
  total_bytes INTEGER NOT NULL,
  signers TEXT NOT NULL,
  published_by TEXT NOT NULL,
  UNIQUE (name, version)
);

CREATE TABLE rollouts (
  id TEXT PRIMARY KEY,
  bundle_id INTEGER NOT NULL REFERENCES bundles(id),
  target TEXT NOT NULL,
  kinds TEXT NOT NULL DEFAULT '',
  waves TEXT NOT NULL,
  pilots TEXT NOT NULL DEFAULT '',
  success_percent INTEGER NOT NULL,
  max_failures_percent INTEGER NOT NULL,
  max_failures_count INTEGER NOT NULL,
  window_start INTEGER NOT NULL,
  window_end INTEGER NOT NULL,
  rate_limit INTEGER NOT NULL,
  state TEXT NOT NULL,
  state_reason TEXT NOT NULL DEFAULT '',
  current_wave INTEGER NOT NULL DEFAULT 0,
  wave_count INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  created_by TEXT NOT NULL
);

CREATE TABLE rollout_establishments (
  rollout_id TEXT NOT NULL REFERENCES rollouts(id),
  uai TEXT NOT NULL REFERENCES establishments(uai),
  wave INTEGER NOT NULL,
  PRIMARY KEY (rollout_id, uai)
) WITHOUT ROWID;
CREATE INDEX rollout_establishments_uai ON rollout_establishments(uai, wave);

CREATE TABLE deployments (
  rollout_id TEXT NOT NULL REFERENCES rollouts(id),
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  state INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (rollout_id, device_id)
) WITHOUT ROWID;

CREATE TABLE deployment_packages (
  rollout_id TEXT NOT NULL,
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  package_id TEXT NOT NULL,
  version TEXT NOT NULL,
  state INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  exit_status INTEGER NOT NULL DEFAULT 0,
  output_tail TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  bytes_downloaded INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (rollout_id, device_id, package_id)
) WITHOUT ROWID;
)sql";

constexpr char kSchemaV3[] = R"sql(
ALTER TABLE devices ADD COLUMN recent_checkins TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN ram_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN battery_health INTEGER;
ALTER TABLE devices ADD COLUMN rotational_disk INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deployments_device ON deployments(device_id);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  operator_id TEXT NOT NULL,
  operator_name TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  outcome TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit(at);
)sql";

// Software lists close to another one are stored as a delta against it (base_hash set).
constexpr char kSchemaV4[] = R"sql(
ALTER TABLE software_sets ADD COLUMN base_hash TEXT;
CREATE INDEX software_sets_base ON software_sets(base_hash);
)sql";

// Counts the deployment report reads instead of scanning every device (P5 of docs/performance.md):
// devices per (establishment, kind, UTC day of last check-in; -1: never seen), each device's
// best state per bundle over its rollouts, and devices per (bundle, establishment, kind, best
// state). Triggers keep them, so every write path (enrollment, check-in, move, retirement,
// deployment report) updates them in the same transaction. A check-in touches them only on the
// device's first check-in of the day. Best state: 3 installed, 2 failed or refused, 1 in
// progress, 0 assigned.
constexpr char kSchemaV5[] = R"sql(
CREATE TABLE device_tally (
  uai TEXT NOT NULL,
  kind INTEGER NOT NULL,
  seen_day INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (uai, kind, seen_day)
) WITHOUT ROWID;
CREATE TABLE bundle_device (
  bundle_id INTEGER NOT NULL,
  device_id TEXT NOT NULL,
  uai TEXT NOT NULL,
  kind INTEGER NOT NULL,
  best INTEGER NOT NULL,
  PRIMARY KEY (bundle_id, device_id)
) WITHOUT ROWID;
CREATE INDEX bundle_device_device ON bundle_device(device_id);
CREATE TABLE bundle_tally (
  bundle_id INTEGER NOT NULL,
  uai TEXT NOT NULL,
  kind INTEGER NOT NULL,
  best INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (bundle_id, uai, kind, best)
) WITHOUT ROWID;

INSERT INTO device_tally
  SELECT coalesce(uai, ''), kind, coalesce(last_seen_at / 86400, -1), count(*) FROM devices
  GROUP BY 1, 2, 3;
INSERT INTO bundle_device
  SELECT r.bundle_id, dep.device_id, coalesce(d.uai, ''), d.kind,
         max(CASE dep.state WHEN 2 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 2 WHEN 1 THEN 1 ELSE 0 END)
  FROM deployments dep JOIN rollouts r ON r.id = dep.rollout_id
  JOIN devices d ON d.id = dep.device_id GROUP BY 1, 2;
INSERT INTO bundle_tally
  SELECT bundle_id, uai, kind, best, count(*) FROM bundle_device GROUP BY 1, 2, 3, 4;

CREATE TRIGGER device_tally_insert AFTER INSERT ON devices BEGIN
  INSERT INTO device_tally VALUES
    (coalesce(new.uai, ''), new.kind, coalesce(new.last_seen_at / 86400, -1), 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER device_tally_delete AFTER DELETE ON devices BEGIN
  UPDATE device_tally SET n = n - 1 WHERE uai = coalesce(old.uai, '') AND kind = old.kind
    AND seen_day = coalesce(old.last_seen_at / 86400, -1);
  DELETE FROM device_tally WHERE uai = coalesce(old.uai, '') AND kind = old.kind
    AND seen_day = coalesce(old.last_seen_at / 86400, -1) AND n <= 0;
END;
CREATE TRIGGER device_tally_update AFTER UPDATE OF uai, kind, last_seen_at ON devices
WHEN old.uai IS NOT new.uai OR old.kind IS NOT new.kind
  OR coalesce(old.last_seen_at / 86400, -1) != coalesce(new.last_seen_at / 86400, -1) BEGIN
  UPDATE device_tally SET n = n - 1 WHERE uai = coalesce(old.uai, '') AND kind = old.kind
    AND seen_day = coalesce(old.last_seen_at / 86400, -1);
  DELETE FROM device_tally WHERE uai = coalesce(old.uai, '') AND kind = old.kind
    AND seen_day = coalesce(old.last_seen_at / 86400, -1) AND n <= 0;
  INSERT INTO device_tally VALUES
    (coalesce(new.uai, ''), new.kind, coalesce(new.last_seen_at / 86400, -1), 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER bundle_device_moves AFTER UPDATE OF uai, kind ON devices
WHEN old.uai IS NOT new.uai OR old.kind IS NOT new.kind BEGIN
  UPDATE bundle_device SET uai = coalesce(new.uai, ''), kind = new.kind WHERE device_id = new.id;
END;

CREATE TRIGGER bundle_device_insert AFTER INSERT ON deployments BEGIN
  INSERT INTO bundle_device
    SELECT r.bundle_id, d.id, coalesce(d.uai, ''), d.kind,
      (SELECT max(CASE dep.state WHEN 2 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 2 WHEN 1 THEN 1 ELSE 0 END)
       FROM deployments dep JOIN rollouts r2 ON r2.id = dep.rollout_id
       WHERE dep.device_id = d.id AND r2.bundle_id = r.bundle_id)
    FROM rollouts r JOIN devices d ON d.id = new.device_id WHERE r.id = new.rollout_id
    ON CONFLICT DO UPDATE SET best = excluded.best WHERE best != excluded.best;
END;
CREATE TRIGGER bundle_device_update AFTER UPDATE OF state ON deployments
WHEN old.state != new.state BEGIN
  INSERT INTO bundle_device
    SELECT r.bundle_id, d.id, coalesce(d.uai, ''), d.kind,
      (SELECT max(CASE dep.state WHEN 2 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 2 WHEN 1 THEN 1 ELSE 0 END)
       FROM deployments dep JOIN rollouts r2 ON r2.id = dep.rollout_id
       WHERE dep.device_id = d.id AND r2.bundle_id = r.bundle_id)
    FROM rollouts r JOIN devices d ON d.id = new.device_id WHERE r.id = new.rollout_id
    ON CONFLICT DO UPDATE SET best = excluded.best WHERE best != excluded.best;
END;
CREATE TRIGGER bundle_device_delete AFTER DELETE ON deployments BEGIN
  DELETE FROM bundle_device WHERE device_id = old.device_id
    AND bundle_id = (SELECT bundle_id FROM rollouts WHERE id = old.rollout_id)
    AND NOT EXISTS (SELECT 1 FROM deployments dep JOIN rollouts r2 ON r2.id = dep.rollout_id
                    WHERE dep.device_id = old.device_id
                    AND r2.bundle_id = (SELECT bundle_id FROM rollouts WHERE id = old.rollout_id));
  UPDATE bundle_device SET best =
      (SELECT max(CASE dep.state WHEN 2 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 2 WHEN 1 THEN 1 ELSE 0 END)
       FROM deployments dep JOIN rollouts r2 ON r2.id = dep.rollout_id
       WHERE dep.device_id = old.device_id AND r2.bundle_id = bundle_device.bundle_id)
    WHERE device_id = old.device_id
    AND bundle_id = (SELECT bundle_id FROM rollouts WHERE id = old.rollout_id);
END;

CREATE TRIGGER bundle_tally_insert AFTER INSERT ON bundle_device BEGIN
  INSERT INTO bundle_tally VALUES (new.bundle_id, new.uai, new.kind, new.best, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER bundle_tally_delete AFTER DELETE ON bundle_device BEGIN
  UPDATE bundle_tally SET n = n - 1 WHERE bundle_id = old.bundle_id AND uai = old.uai
    AND kind = old.kind AND best = old.best;
  DELETE FROM bundle_tally WHERE bundle_id = old.bundle_id AND uai = old.uai
    AND kind = old.kind AND best = old.best AND n <= 0;
END;
CREATE TRIGGER bundle_tally_update AFTER UPDATE ON bundle_device
WHEN old.uai != new.uai OR old.kind != new.kind OR old.best != new.best BEGIN
  UPDATE bundle_tally SET n = n - 1 WHERE bundle_id = old.bundle_id AND uai = old.uai
    AND kind = old.kind AND best = old.best;
  DELETE FROM bundle_tally WHERE bundle_id = old.bundle_id AND uai = old.uai
    AND kind = old.kind AND best = old.best AND n <= 0;
  INSERT INTO bundle_tally VALUES (new.bundle_id, new.uai, new.kind, new.best, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
)sql";

using sqlite_util::FromUnix;
using sqlite_util::SetTimestamp;
using sqlite_util::U32;
using sqlite_util::Unix;

constexpr char kEstablishmentColumns[] =
    "uai, name, type, category, sector, commune_code, commune_name, departement, academie, "
    "collectivite_kind, collectivite_code, collectivite_name, tags";

parc::v1::Establishment EstablishmentFromRow(const Statement& st) {
  parc::v1::Establishment e;
  e.set_uai(st.Text(0));
  e.set_name(st.Text(1));
  e.set_type(st.Text(2));
  e.set_category(st.Text(3));
  e.set_sector(st.Text(4));
  e.set_commune_code(st.Text(5));
  e.set_commune_name(st.Text(6));
  e.set_departement(st.Text(7));
  e.set_academie(st.Text(8));
  e.set_collectivite_kind(st.Text(9));
  e.set_collectivite_code(st.Text(10));
  e.set_collectivite_name(st.Text(11));
  std::string tags = st.Text(12);
  if (!tags.empty()) {
    for (absl::string_view t : absl::StrSplit(tags, ',')) e.add_tags(std::string(t));
  }
  return e;
}

constexpr char kTokenColumns[] =
    "id, secret_hash, coalesce(uai, ''), created_at, expires_at, max_uses, uses, revoked_at, "
    "note, created_by, reenroll";

EnrollmentTokenRecord TokenFromRow(const Statement& st) {
  EnrollmentTokenRecord t;
  t.id = st.Text(0);
  t.secret_hash = st.Text(1);
  t.uai = st.Text(2);
  t.created_at = FromUnix(st.Int(3));
  t.expires_at = FromUnix(st.Int(4));
  t.max_uses = U32(st.Int(5));
  t.uses = U32(st.Int(6));
  if (!st.IsNull(7)) t.revoked_at = FromUnix(st.Int(7));
  t.note = st.Text(8);
  t.created_by = st.Text(9);
  t.reenroll = st.Int(10) != 0;
  return t;
}

constexpr char kDeviceSelect[] =
    "SELECT d.id, d.serial, coalesce(d.uai, ''), coalesce(e.name, ''), "
    "coalesce(e.departement, ''), d.kind, d.kind_source, d.manufacturer, d.model, d.hostname, "
    "d.os, d.agent_version, d.enrolled_at, d.last_enrolled_at, d.last_seen_at, "
    "d.inventory_at, d.inventory_hash, d.software_hash, coalesce(s.package_count, 0), "
    "d.enroll_count "
    "FROM devices d LEFT JOIN establishments e ON e.uai = d.uai "
    "LEFT JOIN software_sets s ON s.hash = d.software_hash ";

parc::v1::Device DeviceFromRow(const Statement& st) {
  parc::v1::Device d;
  d.set_id(st.Text(0));
  d.set_serial(st.Text(1));
  d.set_uai(st.Text(2));
  d.set_establishment_name(st.Text(3));
  d.set_departement(st.Text(4));
  d.set_kind(static_cast<parc::v1::DeviceKind>(st.Int(5)));
  d.set_kind_source(st.Text(6));
  d.set_manufacturer(st.Text(7));
  d.set_model(st.Text(8));
  d.set_hostname(st.Text(9));
  d.set_os(st.Text(10));
  d.set_agent_version(st.Text(11));
  SetTimestamp(d.mutable_enrolled_at(), st.Int(12));
  SetTimestamp(d.mutable_last_enrolled_at(), st.Int(13));
  if (!st.IsNull(14)) SetTimestamp(d.mutable_last_seen_at(), st.Int(14));
  if (!st.IsNull(15)) SetTimestamp(d.mutable_inventory_at(), st.Int(15));
  d.set_inventory_hash(st.Text(16));
  d.set_software_hash(st.Text(17));
  d.set_software_packages(U32(st.Int(18)));
  d.set_enroll_count(U32(st.Int(19)));
  return d;
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", t, absl::UTCTimeZone());
}

// The token with this id if its secret matches and it may enroll one more device now.
absl::StatusOr<EnrollmentTokenRecord> UsableToken(Database* db, const std::string& id,
                                                  const std::string& secret_hash, absl::Time now) {
  PARC_ASSIGN_OR_RETURN(
      Statement tok,
      db->Prepare(absl::StrCat("SELECT ", kTokenColumns, " FROM enrollment_tokens WHERE id = ?")));
  tok.Bind(1, id);
  PARC_ASSIGN_OR_RETURN(bool found, tok.Step());
  EnrollmentTokenRecord token;
  if (found) token = TokenFromRow(tok);
  if (!found || !common::ConstantTimeEquals(token.secret_hash, secret_hash)) {
    return absl::UnauthenticatedError("enrollment token not recognized");
  }
  if (token.revoked_at.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "enrollment token ", token.id, " was revoked on ", FormatUtc(*token.revoked_at)));
  }
  if (now >= token.expires_at) {
    return absl::UnauthenticatedError(
        absl::StrCat("enrollment token ", token.id, " expired on ", FormatUtc(token.expires_at)));
  }
  if (token.max_uses > 0 && token.uses >= token.max_uses) {
    return absl::PermissionDeniedError(absl::StrCat("enrollment token ", token.id,
                                                    " has already been used ", token.uses,
                                                    " times, its maximum"));
  }
  return token;
}

}  // namespace

// Re-enrollment tokens (a hardware identity already enrolled is re-keyed only with the
// device's credential or such a token).
constexpr char kSchemaV6[] = R"sql(
ALTER TABLE enrollment_tokens ADD COLUMN reenroll INTEGER NOT NULL DEFAULT 0;
)sql";

// Devices per (rollout, establishment, kind, deployment state), kept by triggers as the
// deployment report's counts are (schema 5): a rollout's status, its evaluation and the
// dashboard's deployments page read these instead of joining every targeted device. A device
// that moves or changes kind takes its deployments' counts along; a deleted device's
// deployments go just before it (not by the foreign key's cascade, which runs after the device
// row is gone), so the delete trigger still sees where it was.
constexpr char kSchemaV7[] = R"sql(
CREATE TABLE rollout_tally (
  rollout_id TEXT NOT NULL,
  uai TEXT NOT NULL,
  kind INTEGER NOT NULL,
  state INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (rollout_id, uai, kind, state)
) WITHOUT ROWID;
CREATE INDEX deployments_state ON deployments(rollout_id, state);

INSERT INTO rollout_tally
  SELECT dep.rollout_id, coalesce(d.uai, ''), d.kind, dep.state, count(*)
  FROM deployments dep JOIN devices d ON d.id = dep.device_id GROUP BY 1, 2, 3, 4;

CREATE TRIGGER rollout_tally_insert AFTER INSERT ON deployments BEGIN
  INSERT INTO rollout_tally
    SELECT new.rollout_id, coalesce(d.uai, ''), d.kind, new.state, 1 FROM devices d
    WHERE d.id = new.device_id
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER rollout_tally_update AFTER UPDATE OF state ON deployments
WHEN old.state != new.state BEGIN
  UPDATE rollout_tally SET n = n - 1 WHERE rollout_id = old.rollout_id AND state = old.state
    AND (uai, kind) = (SELECT coalesce(d.uai, ''), d.kind FROM devices d
                       WHERE d.id = old.device_id);
  INSERT INTO rollout_tally
    SELECT new.rollout_id, coalesce(d.uai, ''), d.kind, new.state, 1 FROM devices d
    WHERE d.id = new.device_id
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER rollout_tally_delete AFTER DELETE ON deployments BEGIN
  UPDATE rollout_tally SET n = n - 1 WHERE rollout_id = old.rollout_id AND state = old.state
    AND (uai, kind) = (SELECT coalesce(d.uai, ''), d.kind FROM devices d
                       WHERE d.id = old.device_id);
END;
CREATE TRIGGER devices_delete_deployments BEFORE DELETE ON devices BEGIN
  DELETE FROM deployments WHERE device_id = old.id;
END;
CREATE TRIGGER rollout_tally_moves AFTER UPDATE OF uai, kind ON devices
WHEN old.uai IS NOT new.uai OR old.kind IS NOT new.kind BEGIN
  UPDATE rollout_tally SET n = n - 1 WHERE uai = coalesce(old.uai, '') AND kind = old.kind
    AND (rollout_id, state) IN (SELECT rollout_id, state FROM deployments
                                WHERE device_id = new.id);
  INSERT INTO rollout_tally
    SELECT rollout_id, coalesce(new.uai, ''), new.kind, state, 1 FROM deployments
    WHERE device_id = new.id
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
)sql";

const std::vector<common::Migration>& SqliteStore::Migrations() {
  static const std::vector<common::Migration> kMigrations = {
      {1, kSchemaV1}, {2, kSchemaV2}, {3, kSchemaV3}, {4, kSchemaV4},
      {5, kSchemaV5}, {6, kSchemaV6}, {7, kSchemaV7}};
  return kMigrations;
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const Options& options) {
  Database::Options wopts;
  PARC_ASSIGN_OR_RETURN(auto writer, Database::Open(options.path, wopts));
  PARC_RETURN_IF_ERROR(common::Migrate(writer.get(), Migrations()));
  // Checkpoints (copying the WAL back into the database file, with its fsync) run on their
  // own connection and thread, every checkpoint_pages of WAL, not in the writer's commit path
  // where they held up every request of the batch behind them for tens of milliseconds (the
  // WAL hook replaces SQLite's automatic checkpoint). SQLite reuses the WAL from its start
  // only when a write transaction begins on a fully checkpointed WAL, which a background
  // checkpoint racing the next batch never leaves: so once the WAL reaches wal_restart_pages,
  // the writer itself copies the frames committed since the last background checkpoint,
  // between two batches (a pause of one fsync, a few milliseconds, every few seconds under
  // load), and the WAL restarts and is truncated back to journal_size_limit.
  PARC_RETURN_IF_ERROR(writer->Exec(absl::StrCat(
      "PRAGMA journal_size_limit=", int64_t{options.wal_restart_pages} * 4096 + (4 << 20))));
  PARC_ASSIGN_OR_RETURN(auto checkpointer, Database::Open(options.path, wopts));
  std::unique_ptr<SqliteStore> store(
      new SqliteStore(std::move(writer), options.max_cached_devices));
  store->max_batch_ = options.max_batch;
  store->max_pending_checkins_ = options.max_pending_checkins;
  store->max_queued_writes_ = options.max_queued_writes;
  store->checkpoint_pages_ = options.checkpoint_pages;
  store->wal_restart_pages_ = options.wal_restart_pages;
  store->checkpointer_db_ = std::move(checkpointer);
  sqlite3_wal_hook(
      store->writer_db_->raw(),
      [](void* self, sqlite3*, const char*, int pages) {
        static_cast<SqliteStore*>(self)->OnWalCommit(pages);
        return SQLITE_OK;
      },
      store.get());
  store->checkpointer_thread_ = std::thread([s = store.get()] { s->CheckpointLoop(); });
  for (int i = 0; i < options.readers; ++i) {
    PARC_ASSIGN_OR_RETURN(auto reader, Database::Open(options.path, wopts));
    PARC_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only=1"));
    store->readers_.push_back(std::move(reader));
  }
  store->writer_thread_ = std::thread([s = store.get()] { s->WriterLoop(); });
  return store;
}

SqliteStore::SqliteStore(std::unique_ptr<Database> writer, size_t max_cached_devices)
    : writer_db_(std::move(writer)), cache_(max_cached_devices) {}

SqliteStore::~SqliteStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_thread_.joinable()) writer_thread_.join();
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    checkpoint_stop_ = true;
  }
  checkpoint_cv_.notify_all();
  if (checkpointer_thread_.joinable()) checkpointer_thread_.join();
  if (writer_db_) sqlite3_wal_hook(writer_db_->raw(), nullptr, nullptr);
}

void SqliteStore::OnWalCommit(int pages) {
  if (pages < wal_mark_) wal_mark_ = 0;  // the WAL restarted
  // One checkpoint at a time: a checkpointer running again while the writer tries to restart
  // the WAL would hold the locks the restart needs.
  if (pages - wal_mark_ < checkpoint_pages_ || checkpoint_busy_.exchange(true)) return;
  wal_mark_ = pages;
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    checkpoint_wanted_ = true;
    restart_wanted_ = pages >= wal_restart_pages_;
  }
  checkpoint_cv_.notify_one();
}

void SqliteStore::CheckpointLoop() {
  pthread_setname_np(pthread_self(), "parc-checkpoint");
  while (true) {
    bool restart = false;
    {
      std::unique_lock<std::mutex> lock(checkpoint_mu_);
      checkpoint_cv_.wait(lock, [&] { return checkpoint_stop_ || checkpoint_wanted_; });
      if (checkpoint_stop_) return;
      checkpoint_wanted_ = false;
      restart = restart_wanted_;
    }
    // PASSIVE: copies what no reader still needs, never waits for the writer or readers.
    int rc = sqlite3_wal_checkpoint_v2(checkpointer_db_->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                       nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      spdlog::warn("store: checkpoint failed: {}",
                   checkpointer_db_->Error(rc, "checkpoint").message());
      checkpoint_busy_ = false;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++checkpoints_;
    }
    if (restart) {
      finish_checkpoint_ = true;  // the writer finishes it and clears checkpoint_busy_
    } else {
      checkpoint_busy_ = false;
    }
  }
}

uint64_t SqliteStore::checkpoints() const {
  std::lock_guard<std::mutex> lock(mu_);
  return checkpoints_;
}

uint64_t SqliteStore::batches_committed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

uint64_t SqliteStore::writes_applied() const {
  std::lock_guard<std::mutex> lock(mu_);
  return writes_;
}

void SqliteStore::Submit(WriteOp op, WriteDone done) {
  size_t queued = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued = queue_.size();
    if (!stopping_ && queued < max_queued_writes_) {
      queue_.push_back(PendingWrite{std::move(op), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  if (queued >= max_queued_writes_) {
    done(common::RetryLater(
        absl::ResourceExhaustedError(
            absl::StrCat("server busy: ", queued, " writes are waiting for the disk; retry later")),
        absl::Seconds(10)));
    return;
  }
  done(absl::UnavailableError("store is shutting down"));
}

namespace {

common::SampledLog& WriteFailureLog() {
  static common::SampledLog log(std::chrono::seconds(10));
  return log;
}

}  // namespace

void SqliteStore::WriterLoop() {
  pthread_setname_np(pthread_self(), "parc-writer");
  Database* db = writer_db_.get();
  std::vector<PendingWrite> batch;
  std::vector<absl::Status> results;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (finish_checkpoint_.exchange(false)) {
      // The background checkpoint copied the bulk; the frames committed since are few.
      int rc = sqlite3_wal_checkpoint_v2(db->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                         nullptr);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        spdlog::warn("store: checkpoint failed: {}", db->Error(rc, "checkpoint").message());
      }
      checkpoint_busy_ = false;
    }
    results.assign(batch.size(), absl::OkStatus());
    const absl::Time batch_start = absl::Now();
    absl::Status begin = db->Exec("BEGIN IMMEDIATE");
    if (!begin.ok()) {
      for (auto& r : results) r = begin;
    } else {
      for (size_t i = 0; i < batch.size(); ++i) {
        absl::Status sp = db->Exec("SAVEPOINT w");
        if (!sp.ok()) {
          results[i] = sp;
          continue;
        }
        results[i] = batch[i].op(db);
        if (!results[i].ok()) (void)db->Exec("ROLLBACK TO w");
        (void)db->Exec("RELEASE w");
      }
      absl::Status commit = db->Exec("COMMIT");
      if (!commit.ok()) {
        (void)db->Exec("ROLLBACK");
        for (auto& r : results) {
          if (r.ok()) r = commit;
        }
      }
    }
    // The storage's own failures (not refused requests) turn the store's health red until a
    // batch goes through again.
    const absl::Status* storage_failure = nullptr;
    for (const auto& r : results) {
      if (common::IsStorageError(r)) storage_failure = &r;
    }
    if (storage_failure != nullptr) {
      writable_ = false;
      failed_batches_.fetch_add(1);
      uint64_t suppressed = 0;
      if (WriteFailureLog().Take(&suppressed)) {
        spdlog::error("store: a batch of {} writes failed: {} ({} more failed batches not logged)",
                      batch.size(), storage_failure->ToString(), suppressed);
      }
    } else {
      writable_ = true;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++batches_;
      writes_ += batch.size();
    }
    if (commit_observer_) commit_observer_(absl::Now() - batch_start, batch.size());
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
    batch.clear();
  }
}

SqliteStore::ReaderLease::~ReaderLease() {
  if (db_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(store_->readers_mu_);
    store_->readers_.push_back(std::move(db_));
  }
  store_->readers_cv_.notify_one();
}

SqliteStore::ReaderLease SqliteStore::AcquireReader() {
  std::unique_lock<std::mutex> lock(readers_mu_);
  readers_cv_.wait(lock, [&] { return !readers_.empty(); });
  auto db = std::move(readers_.back());
  readers_.pop_back();
  return ReaderLease(this, std::move(db));
}

// ---------------------------------------------------------------------------------------------
// Operators

void SqliteStore::CreateOperator(OperatorRecord op, StoreCallback<bool> done) {
  SubmitFor<bool>(
      [op = std::move(op)](Database* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(
            Statement st,
            db->Prepare("INSERT INTO operators(id, name, secret_hash, role, scope, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)"));
        absl::Status s =
            st.BindAll(op.id, op.name, op.secret_hash, op.role, op.scope, Unix(op.created_at))
                .Run();
        if (absl::IsFailedPrecondition(s)) {
          return absl::AlreadyExistsError(
              absl::StrCat("an operator named \"", op.name, "\" already exists"));
        }
        PARC_RETURN_IF_ERROR(s);
        return true;
      },
      std::move(done));
}

absl::StatusOr<OperatorRecord> SqliteStore::GetOperator(const std::string& id) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st,
                        db->Prepare("SELECT id, name, secret_hash, role, scope, created_at, "
                                    "revoked_at FROM operators WHERE id = ?"));
  st.Bind(1, id);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError("operator not found");
  OperatorRecord op;
  op.id = st.Text(0);
  op.name = st.Text(1);
  op.secret_hash = st.Text(2);
  op.role = st.Text(3);
  op.scope = st.Text(4);
  op.created_at = FromUnix(st.Int(5));
  if (!st.IsNull(6)) op.revoked_at = FromUnix(st.Int(6));
  return op;
}

absl::StatusOr<int64_t> SqliteStore::CountOperators() {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare("SELECT count(*) FROM operators"));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : 0;
}

// ---------------------------------------------------------------------------------------------
// Establishments

void SqliteStore::UpsertEstablishments(std::vector<parc::v1::Establishment> rows, absl::Time now,
                                       StoreCallback<ImportCounts> done) {
  SubmitFor<ImportCounts>(
      [rows = std::move(rows), now](Database* db) -> absl::StatusOr<ImportCounts> {
        ImportCounts counts;
        for (const auto& e : rows) {
          std::string tags = absl::StrJoin(e.tags(), ",");
          PARC_ASSIGN_OR_RETURN(Statement sel,
                                db->Prepare(absl::StrCat("SELECT ", kEstablishmentColumns,
                                                         " FROM establishments WHERE uai = ?")));
          sel.Bind(1, e.uai());
          PARC_ASSIGN_OR_RETURN(bool exists, sel.Step());
          if (exists) {
            parc::v1::Establishment old = EstablishmentFromRow(sel);
            if (old.SerializeAsString() == e.SerializeAsString()) {
              ++counts.unchanged;
              continue;
            }
          }
          PARC_ASSIGN_OR_RETURN(
              Statement up,
              db->Prepare(
                  "INSERT INTO establishments(uai, name, type, category, sector, commune_code, "
                  "commune_name, departement, academie, collectivite_kind, collectivite_code, "
                  "collectivite_name, tags, created_at, updated_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14) "
                  "ON CONFLICT(uai) DO UPDATE SET name = ?2, type = ?3, category = ?4, "
                  "sector = ?5, commune_code = ?6, commune_name = ?7, departement = ?8, "
                  "academie = ?9, collectivite_kind = ?10, collectivite_code = ?11, "
                  "collectivite_name = ?12, tags = ?13, updated_at = ?14"));
          PARC_RETURN_IF_ERROR(
              up.BindAll(e.uai(), e.name(), e.type(), e.category(), e.sector(), e.commune_code(),
                         e.commune_name(), e.departement(), e.academie(), e.collectivite_kind(),
                         e.collectivite_code(), e.collectivite_name(), tags, Unix(now))
                  .Run());
          if (exists) {
            ++counts.updated;
          } else {
            ++counts.inserted;
          }
        }
        return counts;
      },
      std::move(done));
}

absl::StatusOr<std::vector<parc::v1::Establishment>> SqliteStore::ListEstablishments(
    const parc::v1::ListEstablishmentsRequest& filter, const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          "SELECT ", kEstablishmentColumns,
          ", (SELECT coalesce(sum(t.n), 0) FROM device_tally t WHERE t.uai = e.uai) FROM "
          "establishments e "
          "WHERE (?1 = '' OR departement = ?1) AND (?2 = '' OR lower(academie) = lower(?2)) "
          "AND (?3 = '' OR category = ?3) "
          "AND (?4 = '' OR commune_code = ?4 OR lower(commune_name) = lower(?4)) "
          "AND ",
          sqlite::ScopeSql(scope, "e.uai", 5), " ORDER BY departement, commune_name, name, uai")));
  st.BindAll(filter.departement(), filter.academie(), filter.category(), filter.commune(),
             sqlite::ScopeParam(scope));
  return common::CollectRows(st, [](const Statement& row) {
    parc::v1::Establishment e = EstablishmentFromRow(row);
    e.set_device_count(U32(row.Int(13)));
    return e;
  });
}

absl::StatusOr<parc::v1::Establishment> SqliteStore::GetEstablishment(const std::string& uai) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st, db->Prepare(absl::StrCat(
                        "SELECT ", kEstablishmentColumns,
                        ", (SELECT coalesce(sum(t.n), 0) FROM device_tally t WHERE t.uai = e.uai) "
                        "FROM establishments e WHERE uai = ?")));
  st.Bind(1, uai);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no establishment with UAI ", uai));
  parc::v1::Establishment e = EstablishmentFromRow(st);
  e.set_device_count(U32(st.Int(13)));
  return e;
}

// ---------------------------------------------------------------------------------------------
// Enrollment tokens

void SqliteStore::CreateEnrollmentToken(EnrollmentTokenRecord t, StoreCallback<bool> done) {
  SubmitFor<bool>(
      [t = std::move(t)](Database* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(
            Statement st,
            db->Prepare("INSERT INTO enrollment_tokens(id, secret_hash, uai, created_at, "
                        "expires_at, max_uses, note, created_by, reenroll) "
                        "VALUES (?, ?, nullif(?, ''), ?, ?, ?, ?, ?, ?)"));
        PARC_RETURN_IF_ERROR(st.BindAll(t.id, t.secret_hash, t.uai, Unix(t.created_at),
                                        Unix(t.expires_at), t.max_uses, t.note, t.created_by,
                                        t.reenroll)
                                 .Run());
        return true;
      },
      std::move(done));
}

namespace {

// Tokens of establishments in scope, and region-wide tokens (uai NULL) for the region scope.
std::string TokenInScope(const Scope& scope, int param) {
  return absl::StrCat("(", sqlite::ScopeSql(scope, "uai", param), " AND ",
                      scope.is_region() ? "1" : "uai IS NOT NULL", ")");
}

}  // namespace

absl::StatusOr<std::vector<EnrollmentTokenRecord>> SqliteStore::ListEnrollmentTokens(
    const Scope& scope) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat("SELECT ", kTokenColumns, " FROM enrollment_tokens WHERE ",
                               TokenInScope(scope, 1), " ORDER BY created_at, id")));
  st.Bind(1, sqlite::ScopeParam(scope));
  return common::CollectRows(st, TokenFromRow);
}

void SqliteStore::RevokeEnrollmentToken(std::string id, Scope scope, absl::Time now,
                                        StoreCallback<EnrollmentTokenRecord> done) {
  SubmitFor<EnrollmentTokenRecord>(
      [id = std::move(id), scope = std::move(scope),
       now](Database* db) -> absl::StatusOr<EnrollmentTokenRecord> {
        PARC_ASSIGN_OR_RETURN(
            Statement visible,
            db->Prepare(absl::StrCat("SELECT 1 FROM enrollment_tokens WHERE id = ?1 AND ",
                                     TokenInScope(scope, 2))));
        visible.BindAll(id, sqlite::ScopeParam(scope));
        PARC_ASSIGN_OR_RETURN(bool found, visible.Step());
        if (!found) return absl::NotFoundError(absl::StrCat("no enrollment token with id ", id));
        PARC_ASSIGN_OR_RETURN(Statement up,
                              db->Prepare("UPDATE enrollment_tokens SET revoked_at = ? "
                                          "WHERE id = ? AND revoked_at IS NULL"));
        PARC_RETURN_IF_ERROR(up.BindAll(Unix(now), id).Run());
        PARC_ASSIGN_OR_RETURN(Statement sel,
                              db->Prepare(absl::StrCat("SELECT ", kTokenColumns,
                                                       " FROM enrollment_tokens WHERE id = ?")));
        sel.Bind(1, id);
        PARC_ASSIGN_OR_RETURN(bool row, sel.Step());
        if (!row) return absl::NotFoundError(absl::StrCat("no enrollment token with id ", id));
        return TokenFromRow(sel);
      },
      std::move(done));
}

// ---------------------------------------------------------------------------------------------
// Preassignment

namespace {

// Why a delivery-list row may not be applied with this scope ("" when it may): its
// establishment is outside the scope, or the serial is already delivered to, or enrolled in,
// an establishment the scope does not cover.
absl::StatusOr<std::string> PreassignmentScopeProblem(Database* db, const Preassignment& p,
                                                      const Scope& scope) {
  if (scope.is_region()) return std::string();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          "SELECT 'target' WHERE NOT ", sqlite::ScopeSql(scope, "?3", 2),
          " UNION ALL SELECT 'delivered' FROM preassignments WHERE serial = ?1 AND NOT ",
          sqlite::ScopeSql(scope, "uai", 2),
          " UNION ALL SELECT 'enrolled' FROM devices WHERE serial = ?1 AND uai IS NOT NULL AND "
          "NOT ",
          sqlite::ScopeSql(scope, "uai", 2), " LIMIT 1")));
  st.BindAll(p.serial, sqlite::ScopeParam(scope), p.uai);
  PARC_ASSIGN_OR_RETURN(bool found, st.Step());
  if (!found) return std::string();
  if (st.Text(0) == "target") {
    return absl::StrCat("the establishment ", p.uai, " is outside your scope");
  }
  return absl::StrCat("serial ", p.serial, " is ", st.Text(0),
                      " in an establishment outside your scope: only an operator whose scope "
                      "covers both establishments can move it");
}

}  // namespace

absl::StatusOr<std::vector<std::pair<uint32_t, std::string>>> SqliteStore::PreassignmentsOutOfScope(
    const std::vector<Preassignment>& rows, const Scope& scope) {
  std::vector<std::pair<uint32_t, std::string>> out;
  if (scope.is_region()) return out;
  ReaderLease db = AcquireReader();
  for (const auto& p : rows) {
    PARC_ASSIGN_OR_RETURN(std::string problem, PreassignmentScopeProblem(db.get(), p, scope));
    if (!problem.empty()) out.emplace_back(p.line, std::move(problem));
  }
  return out;
}

void SqliteStore::UpsertPreassignments(std::vector<Preassignment> rows, absl::Time now, Scope scope,
                                       StoreCallback<ImportCounts> done) {
  SubmitFor<ImportCounts>(
      [rows = std::move(rows), now,
       scope = std::move(scope)](Database* db) -> absl::StatusOr<ImportCounts> {
        ImportCounts counts;
        for (const auto& p : rows) {
          PARC_ASSIGN_OR_RETURN(std::string problem, PreassignmentScopeProblem(db, p, scope));
          if (!problem.empty()) {
            return absl::FailedPreconditionError(absl::StrCat("line ", p.line, ": ", problem));
          }
          PARC_ASSIGN_OR_RETURN(Statement est,
                                db->Prepare("SELECT 1 FROM establishments WHERE uai = ?"));
          est.Bind(1, p.uai);
          PARC_ASSIGN_OR_RETURN(bool known, est.Step());
          if (!known) {
            return absl::FailedPreconditionError(
                absl::StrCat("line ", p.line, ": no establishment with UAI ", p.uai));
          }
          PARC_ASSIGN_OR_RETURN(Statement sel,
                                db->Prepare("SELECT uai FROM preassignments WHERE serial = ?"));
          sel.Bind(1, p.serial);
          PARC_ASSIGN_OR_RETURN(bool exists, sel.Step());
          if (exists && sel.Text(0) == p.uai) {
            ++counts.unchanged;
          } else {
            PARC_ASSIGN_OR_RETURN(
                Statement up,
                db->Prepare("INSERT INTO preassignments(serial, uai, updated_at) VALUES (?1, ?2, "
                            "?3) ON CONFLICT(serial) DO UPDATE SET uai = ?2, updated_at = ?3"));
            PARC_RETURN_IF_ERROR(up.BindAll(p.serial, p.uai, Unix(now)).Run());
            if (exists) {
              ++counts.updated;
            } else {
              ++counts.inserted;
            }
          }
          PARC_ASSIGN_OR_RETURN(
              Statement place,
              db->Prepare("UPDATE devices SET uai = ? WHERE serial = ? AND uai IS NULL"));
          PARC_RETURN_IF_ERROR(place.BindAll(p.uai, p.serial).Run());
          counts.placed_devices += U32(db->Changes());
        }
        return counts;
      },
      [this, done = std::move(done)](absl::StatusOr<ImportCounts> r) {
        cache_.InvalidateDevices();  // devices placed in an establishment
        done(std::move(r));
      });
}

// ---------------------------------------------------------------------------------------------
// Devices

void SqliteStore::Enroll(EnrollInput in, StoreCallback<EnrollOutcome> done) {
  std::string current = in.current_device_id;
  SubmitFor<EnrollOutcome>(
      [in = std::move(in)](Database* db) -> absl::StatusOr<EnrollOutcome> {
        PARC_ASSIGN_OR_RETURN(EnrollmentTokenRecord token,
                              UsableToken(db, in.token_id, in.token_secret_hash, in.now));

        // Where a new device goes: the token's establishment, else the supplier's delivery
        // list.
        std::string uai = token.uai;
        std::string delivered_to;
        if (!in.serial.empty()) {
          PARC_ASSIGN_OR_RETURN(Statement pre,
                                db->Prepare("SELECT uai FROM preassignments WHERE serial = ?"));
          pre.Bind(1, in.serial);
          PARC_ASSIGN_OR_RETURN(bool has, pre.Step());
          if (has) delivered_to = pre.Text(0);
        }
        if (uai.empty()) uai = delivered_to;

        EnrollOutcome out;
        PARC_ASSIGN_OR_RETURN(
            Statement existing,
            db->Prepare("SELECT id, coalesce(uai, ''), kind_source, secret_hash FROM devices "
                        "WHERE hw_key = ?"));
        existing.Bind(1, in.hw_key);
        PARC_ASSIGN_OR_RETURN(bool known, existing.Step());
        const int64_t now = Unix(in.now);
        const std::string kind_source = in.kind_from_technician ? "technician" : "detected";
        if (known) {
          out.device_id = existing.Text(0);
          out.reenrolled = true;
          const std::string current_uai = existing.Text(1);
          // Re-keying an enrolled device locks its current agent out: only the device itself
          // (its credential) or a technician's re-enrollment token may do it.
          const bool holds_credential =
              in.current_device_id == out.device_id && !in.current_secret_hash.empty() &&
              common::ConstantTimeEquals(existing.Text(3), in.current_secret_hash);
          const bool approved = token.reenroll && (token.uai.empty() || token.uai == current_uai);
          if (!holds_credential && !approved) {
            return absl::PermissionDeniedError(absl::StrCat(
                "this hardware is already enrolled as device ", out.device_id,
                ": enrolling it again needs its current credential (the agent's state) or a "
                "re-enrollment token from a technician of its establishment (parcctl tokens "
                "create --uai <its UAI> --reenroll)"));
          }
          // A re-enrollment never moves a device: it stays where it is (delivery lists and
          // operators move devices). An unassigned device takes its delivery-list place.
          uai = current_uai.empty() ? delivered_to : current_uai;
          bool keep_kind = !in.kind_from_technician && existing.Text(2) == "technician";
          PARC_ASSIGN_OR_RETURN(
              Statement up,
              db->Prepare("UPDATE devices SET secret_hash = ?1, uai = nullif(?2, ''), "
                          "kind = CASE WHEN ?3 THEN kind ELSE ?4 END, "
                          "kind_source = CASE WHEN ?3 THEN kind_source ELSE ?5 END, "
                          "hostname = ?6, agent_version = ?7, last_enrolled_at = ?8, "
                          "enroll_count = enroll_count + 1, token_id = ?9, serial = ?10, "
                          "inventory_hash = '' WHERE id = ?11"));
          PARC_RETURN_IF_ERROR(up.BindAll(in.secret_hash, uai, keep_kind,
                                          static_cast<int64_t>(in.kind), kind_source, in.hostname,
                                          in.agent_version, now, token.id, in.serial, out.device_id)
                                   .Run());
        } else {
          out.device_id = in.new_device_id;
          PARC_ASSIGN_OR_RETURN(
              Statement ins,
              db->Prepare("INSERT INTO devices(id, secret_hash, hw_key, serial, uai, kind, "
                          "kind_source, hostname, agent_version, enrolled_at, last_enrolled_at, "
                          "token_id) VALUES (?1, ?2, ?3, ?4, nullif(?5, ''), ?6, ?7, ?8, ?9, "
                          "?10, ?10, ?11)"));
          PARC_RETURN_IF_ERROR(ins.BindAll(out.device_id, in.secret_hash, in.hw_key, in.serial, uai,
                                           static_cast<int64_t>(in.kind), kind_source, in.hostname,
                                           in.agent_version, now, token.id)
                                   .Run());
        }
        PARC_ASSIGN_OR_RETURN(Statement use,
                              db->Prepare("UPDATE enrollment_tokens SET uses = uses + 1 "
                                          "WHERE id = ?"));
        PARC_RETURN_IF_ERROR(use.Bind(1, token.id).Run());
        out.uai = uai;
        if (!uai.empty()) {
          PARC_ASSIGN_OR_RETURN(Statement name,
                                db->Prepare("SELECT name FROM establishments WHERE uai = ?"));
          name.Bind(1, uai);
          PARC_ASSIGN_OR_RETURN(bool has, name.Step());
          if (has) out.establishment_name = name.Text(0);
        }
        return out;
      },
      [this, current = std::move(current),
       done = std::move(done)](absl::StatusOr<EnrollOutcome> outcome) {
        // A new secret, or a device placed: what check-ins read of it changed.
        if (outcome.ok()) cache_.InvalidateDevice(outcome->device_id);
        if (!current.empty()) cache_.InvalidateDevice(current);
        done(std::move(outcome));
      });
}

absl::StatusOr<EnrollmentTokenRecord> SqliteStore::CheckEnrollmentToken(
    const std::string& id, const std::string& secret_hash, absl::Time now) {
  ReaderLease db = AcquireReader();
  return UsableToken(db.get(), id, secret_hash, now);
}

void SqliteStore::RetireDevice(std::string id_or_serial, Scope scope,
                               StoreCallback<parc::v1::Device> done) {
  SubmitFor<parc::v1::Device>(
      [id_or_serial = std::move(id_or_serial),
       scope = std::move(scope)](Database* db) -> absl::StatusOr<parc::v1::Device> {
        PARC_ASSIGN_OR_RETURN(
            Statement st,
            db->Prepare(absl::StrCat(kDeviceSelect,
                                     "WHERE (d.id = ?1 OR (d.serial = ?1 AND d.serial <> '')) "
                                     "AND ",
                                     sqlite::ScopeSql(scope, "d.uai", 2), " LIMIT 2")));
        st.BindAll(id_or_serial, sqlite::ScopeParam(scope));
        PARC_ASSIGN_OR_RETURN(bool found, st.Step());
        if (!found) {
          return absl::NotFoundError(
              absl::StrCat("no device with id or serial number \"", id_or_serial, "\""));
        }
        parc::v1::Device device = DeviceFromRow(st);
        PARC_ASSIGN_OR_RETURN(bool second, st.Step());
        if (second) {
          return absl::FailedPreconditionError(absl::StrCat(
              "serial number \"", id_or_serial, "\" matches several devices: use a device id"));
        }
        PARC_ASSIGN_OR_RETURN(Statement del, db->Prepare("DELETE FROM devices WHERE id = ?"));
        PARC_RETURN_IF_ERROR(del.Bind(1, device.id()).Run());
        return device;
      },
      [this, done = std::move(done)](absl::StatusOr<parc::v1::Device> device) {
        if (device.ok()) cache_.InvalidateDevice(device->id());
        done(std::move(device));
      });
}

absl::StatusOr<DeviceAuth> SqliteStore::GetDeviceAuth(const std::string& id) {
  if (auto cached = cache_.GetDevice(id)) return *std::move(cached);
  const uint64_t generation = cache_.Generation();
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st,
                        db->Prepare("SELECT id, secret_hash, coalesce(uai, ''), inventory_hash, "
                                    "kind FROM devices WHERE id = ?"));
  st.Bind(1, id);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError("unknown device");
  DeviceAuth auth{st.Text(0), st.Text(1), st.Text(2), st.Text(3),
                  static_cast<parc::v1::DeviceKind>(st.Int(4))};
  cache_.PutDevice(generation, auth);
  return auth;
}

namespace {

// A check-in: last seen, agent version, and the last 10 check-in times, newest first.
constexpr char kRecordCheckInSql[] =
    "UPDATE devices SET last_seen_at = ?1, agent_version = ?2, "
    "recent_checkins = substr(?1 || ',' || recent_checkins, 1, 109) WHERE id = ?3";

}  // namespace

void SqliteStore::RecordCheckIn(CheckInInput in, Durability durability, StoreCallback<bool> done) {
  // While the storage fails, a check-in waits for its write, so that the device is told the
  // truth rather than an answer that is then not recorded.
  if (durability == Durability::kBehind && Writable() && QueueCheckIn(in)) {
    done(true);
    return;
  }
  SubmitFor<bool>(
      [in = std::move(in)](Database* db) -> absl::StatusOr<bool> {
        PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare(kRecordCheckInSql));
        PARC_RETURN_IF_ERROR(st.BindAll(Unix(in.now), in.agent_version, in.device_id).Run());
        if (db->Changes() == 0) return absl::NotFoundError("unknown device");
        return true;
      },
      std::move(done));
}

bool SqliteStore::QueueCheckIn(CheckInInput& in) {
  {
    std::lock_guard<std::mutex> lock(checkins_mu_);
    if (pending_checkins_.size() >= max_pending_checkins_) return false;
    pending_checkins_.push_back(std::move(in));
    // The first check-in of a flush queues the write that takes all of them.
    if (pending_checkins_.size() > 1) return true;
  }
  auto taken = std::make_shared<size_t>(0);
  Submit(
      [this, taken](Database* db) -> absl::Status {
        std::vector<CheckInInput> checkins;
        {
          std::lock_guard<std::mutex> lock(checkins_mu_);
          checkins.swap(pending_checkins_);
        }
        *taken = checkins.size();
        PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare(kRecordCheckInSql));
        for (const CheckInInput& c : checkins) {
          // A device retired since its check-in was authenticated changes nothing.
          PARC_RETURN_IF_ERROR(st.BindAll(Unix(c.now), c.agent_version, c.device_id).Run());
        }
        return absl::OkStatus();
      },
      [this, taken](absl::Status status) {
        // Answered already: what was lost is counted (the store is reported unhealthy, and
        // check-ins then wait for their write until it recovers).
        if (!status.ok()) unrecorded_checkins_.fetch_add(*taken);
      });
  return true;
}

absl::StatusOr<bool> SqliteStore::HasSoftwareSet(const std::string& hash) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare("SELECT 1 FROM software_sets WHERE hash = ?"));
  st.Bind(1, hash);
  return st.Step();
}

absl::Status SqliteStore::InsertSoftwareSet(Database* db, const std::string& hash,
                                            const parc::v1::SoftwareList& list, absl::Time now) {
  PARC_ASSIGN_OR_RETURN(Statement exists,
                        db->Prepare("SELECT 1 FROM software_sets WHERE hash = ?"));
  exists.Bind(1, hash);
  PARC_ASSIGN_OR_RETURN(bool known, exists.Step());
  if (known) return absl::OkStatus();
  if (bases_.empty()) {
    // The full lists most recently stored: the current master images.
    PARC_ASSIGN_OR_RETURN(Statement recent,
                          db->Prepare("SELECT hash, packages FROM software_sets "
                                      "WHERE base_hash IS NULL ORDER BY id DESC LIMIT 64"));
    while (true) {
      PARC_ASSIGN_OR_RETURN(bool row, recent.Step());
      if (!row) break;
      parc::v1::SoftwareList cached;
      if (cached.ParseFromString(recent.Blob(1))) bases_.Add(recent.Text(0), cached);
    }
  }
  std::string blob;
  std::optional<std::string> base_hash;
  if (auto match = bases_.Closest(list)) {
    // The base must be a full list present in this transaction's view.
    PARC_ASSIGN_OR_RETURN(
        Statement base,
        db->Prepare("SELECT 1 FROM software_sets WHERE hash = ? AND base_hash IS NULL"));
    base.Bind(1, match->base_hash);
    PARC_ASSIGN_OR_RETURN(bool present, base.Step());
    if (present) {
      base_hash = match->base_hash;
      blob = match->delta.SerializeAsString();
    }
  }
  if (!base_hash.has_value()) {
    blob = list.SerializeAsString();
    bases_.Add(hash, list);
  }
  PARC_ASSIGN_OR_RETURN(
      Statement ins,
      db->Prepare("INSERT INTO software_sets(hash, package_count, packages, created_at, "
                  "base_hash) VALUES (?, ?, ?, ?, ?)"));
  ins.BindAll(hash, list.packages_size());
  ins.BindBlob(3, blob).Bind(4, Unix(now)).Bind(5, base_hash);
  return ins.Run();
}

void SqliteStore::StoreInventory(InventoryInput in, StoreCallback<bool> done) {
  std::string device_id = in.device_id;
  SubmitFor<bool>(
      [this, in = std::move(in)](Database* db) -> absl::StatusOr<bool> {
        if (in.software.has_value()) {
          PARC_RETURN_IF_ERROR(
              InsertSoftwareSet(db, in.software_hash, *in.software, in.received_at));
        } else {
          PARC_ASSIGN_OR_RETURN(Statement st,
                                db->Prepare("SELECT 1 FROM software_sets WHERE hash = ?"));
          st.Bind(1, in.software_hash);
          PARC_ASSIGN_OR_RETURN(bool known, st.Step());
          if (!known) {
            return absl::FailedPreconditionError(absl::StrCat(
                "software list ", in.software_hash, " is not known to the server: send it"));
          }
        }
        // The same inventory delivered again (retry from the outbox) adds no history row.
        PARC_ASSIGN_OR_RETURN(Statement last,
                              db->Prepare("SELECT id, inventory_hash FROM inventories "
                                          "WHERE device_id = ? ORDER BY id DESC LIMIT 1"));
        last.Bind(1, in.device_id);
        PARC_ASSIGN_OR_RETURN(bool has_last, last.Step());
        if (has_last && last.Text(1) == in.inventory_hash) {
          PARC_ASSIGN_OR_RETURN(Statement touch,
                                db->Prepare("UPDATE inventories SET received_at = ? WHERE id = ?"));
          PARC_RETURN_IF_ERROR(touch.BindAll(Unix(in.received_at), last.Int(0)).Run());
        } else {
          PARC_ASSIGN_OR_RETURN(
              Statement ins,
              db->Prepare("INSERT INTO inventories(device_id, received_at, collected_at, "
                          "inventory_hash, hardware, software_hash) VALUES (?, ?, ?, ?, ?, ?)"));
          ins.BindAll(in.device_id, Unix(in.received_at), Unix(in.collected_at), in.inventory_hash);
          ins.BindBlob(5, in.hardware.SerializeAsString()).Bind(6, in.software_hash);
          PARC_RETURN_IF_ERROR(ins.Run());
          // A device keeps a bounded history, whatever it sends: the oldest inventories
          // beyond kMaxInventoriesPerDevice go (their software sets with the retention job).
          PARC_ASSIGN_OR_RETURN(
              Statement trim,
              db->Prepare("DELETE FROM inventories WHERE device_id = ?1 AND id <= (SELECT id "
                          "FROM inventories WHERE device_id = ?1 ORDER BY id DESC LIMIT 1 "
                          "OFFSET ?2)"));
          PARC_RETURN_IF_ERROR(
              trim.BindAll(in.device_id, static_cast<int64_t>(kMaxInventoriesPerDevice)).Run());
        }
        const auto& hw = in.hardware;
        std::string os = hw.os_pretty_name().empty()
                             ? absl::StrCat(hw.os_name(), " ", hw.os_version())
                             : hw.os_pretty_name();
        PARC_ASSIGN_OR_RETURN(
            Statement up,
            db->Prepare("UPDATE devices SET inventory_hash = ?1, software_hash = ?2, "
                        "inventory_at = ?3, manufacturer = ?4, model = ?5, hostname = ?6, "
                        "os = ?7, kind = CASE WHEN kind_source = 'detected' AND ?8 <> 0 "
                        "THEN ?8 ELSE kind END, ram_bytes = ?10, battery_health = ?11, "
                        "rotational_disk = ?12 WHERE id = ?9"));
        std::optional<int64_t> battery;
        for (const auto& b : hw.batteries()) {
          if (b.design_capacity() == 0) continue;
          int64_t h = b.health_percent();
          battery = battery.has_value() ? std::min(*battery, h) : h;
        }
        bool rotational = false;
        for (const auto& d : hw.disks()) rotational |= d.rotational();
        PARC_RETURN_IF_ERROR(up.BindAll(in.inventory_hash, in.software_hash, Unix(in.received_at),
                                        hw.manufacturer(), hw.model(), hw.hostname(), os,
                                        static_cast<int64_t>(hw.detected_kind()), in.device_id,
                                        static_cast<int64_t>(hw.ram_bytes()), battery, rotational)
                                 .Run());
        if (db->Changes() == 0) return absl::NotFoundError("unknown device");
        return true;
      },
      [this, device_id = std::move(device_id), done = std::move(done)](absl::StatusOr<bool> r) {
        cache_.InvalidateDevice(device_id);  // its inventory hash
        done(std::move(r));
      });
}

absl::StatusOr<std::vector<parc::v1::Device>> SqliteStore::ListDevices(const DeviceFilter& f) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          kDeviceSelect,
          "WHERE d.id > ?1 AND (?2 = '' OR d.uai = ?2) AND (?3 = '' OR e.departement = ?3) "
          "AND (?4 = 0 OR d.kind = ?4) "
          "AND (?5 IS NULL OR coalesce(d.last_seen_at, d.last_enrolled_at) < ?5) "
          "AND (?6 = 0 OR d.uai IS NULL) "
          "AND ",
          sqlite::ScopeSql(f.scope, "d.uai", 8), " ORDER BY d.id LIMIT ?7")));
  std::optional<int64_t> seen_before;
  if (f.seen_before.has_value()) seen_before = Unix(*f.seen_before);
  st.BindAll(f.after, f.uai, f.departement, static_cast<int64_t>(f.kind), seen_before, f.unassigned,
             f.limit, sqlite::ScopeParam(f.scope));
  return common::CollectRows(st, DeviceFromRow);
}

absl::StatusOr<DeviceDetails> SqliteStore::GetDevice(const std::string& id_or_serial,
                                                     const Scope& scope) {
  ReaderLease db = AcquireReader();
  DeviceDetails details;
  {
    const std::string kInScope = absl::StrCat(" AND ", sqlite::ScopeSql(scope, "d.uai", 2));
    const std::string scope_param = sqlite::ScopeParam(scope);
    PARC_ASSIGN_OR_RETURN(Statement st,
                          db->Prepare(absl::StrCat(kDeviceSelect, "WHERE d.id = ?1", kInScope)));
    st.BindAll(id_or_serial, scope_param);
    PARC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      details.device = DeviceFromRow(st);
    } else {
      PARC_ASSIGN_OR_RETURN(
          Statement by_serial,
          db->Prepare(absl::StrCat(kDeviceSelect, "WHERE d.serial = ?1 AND d.serial <> ''",
                                   kInScope, " ORDER BY d.id LIMIT 2")));
      by_serial.BindAll(id_or_serial, scope_param);
      PARC_ASSIGN_OR_RETURN(bool found, by_serial.Step());
      if (!found) {
        return absl::NotFoundError(
            absl::StrCat("no device with id or serial number \"", id_or_serial, "\""));
      }
      details.device = DeviceFromRow(by_serial);
      PARC_ASSIGN_OR_RETURN(bool second, by_serial.Step());
      if (second) {
        return absl::FailedPreconditionError(absl::StrCat(
            "serial number \"", id_or_serial, "\" matches several devices: use a device id"));
      }
    }
  }
  PARC_ASSIGN_OR_RETURN(Statement recent,
                        db->Prepare("SELECT recent_checkins FROM devices WHERE id = ?"));
  recent.Bind(1, details.device.id());
  PARC_ASSIGN_OR_RETURN(bool has_recent, recent.Step());
  if (has_recent) {
    for (absl::string_view t : absl::StrSplit(recent.Text(0), ',', absl::SkipEmpty())) {
      int64_t secs = 0;
      if (absl::SimpleAtoi(t, &secs)) details.recent_checkins.push_back(FromUnix(secs));
    }
  }
  PARC_ASSIGN_OR_RETURN(
      Statement inv,
      db->Prepare("SELECT i.hardware, i.received_at, s.packages, "
                  "(SELECT count(*) FROM inventories WHERE device_id = i.device_id), "
                  "s.base_hash, b.packages "
                  "FROM inventories i JOIN software_sets s ON s.hash = i.software_hash "
                  "LEFT JOIN software_sets b ON b.hash = s.base_hash "
                  "WHERE i.device_id = ? ORDER BY i.id DESC LIMIT 1"));
  inv.Bind(1, details.device.id());
  PARC_ASSIGN_OR_RETURN(bool has_inv, inv.Step());
  if (has_inv) {
    parc::v1::Inventory inventory;
    bool readable = inventory.mutable_hardware()->ParseFromString(inv.Blob(0));
    if (inv.IsNull(4)) {
      readable = readable && inventory.mutable_software()->ParseFromString(inv.Blob(2));
    } else {
      parc::v1::SoftwareList base;
      parc::v1::SoftwareDelta delta;
      readable =
          readable && base.ParseFromString(inv.Blob(5)) && delta.ParseFromString(inv.Blob(2));
      if (readable) *inventory.mutable_software() = ApplyDelta(base, delta);
    }
    if (!readable) {
      return absl::DataLossError(
          absl::StrCat("stored inventory of device ", details.device.id(), " is unreadable"));
    }
    details.inventory = std::move(inventory);
    details.inventory_received_at = FromUnix(inv.Int(1));
    details.inventory_history = U32(inv.Int(3));
  }
  return details;
}

void SqliteStore::PurgeInventoryHistory(absl::Time cutoff, StoreCallback<int64_t> done) {
  SubmitFor<int64_t>(
      [cutoff](Database* db) -> absl::StatusOr<int64_t> {
        PARC_ASSIGN_OR_RETURN(
            Statement del,
            db->Prepare("DELETE FROM inventories WHERE received_at < ?1 AND id NOT IN "
                        "(SELECT max(id) FROM inventories GROUP BY device_id)"));
        PARC_RETURN_IF_ERROR(del.Bind(1, Unix(cutoff)).Run());
        int64_t deleted = db->Changes();
        PARC_ASSIGN_OR_RETURN(
            Statement orphans,
            db->Prepare("DELETE FROM software_sets WHERE NOT EXISTS (SELECT 1 FROM inventories i "
                        "WHERE i.software_hash = software_sets.hash) AND NOT EXISTS (SELECT 1 "
                        "FROM software_sets d WHERE d.base_hash = software_sets.hash)"));
        PARC_RETURN_IF_ERROR(orphans.Run());
        return deleted;
      },
      std::move(done));
}

}  // namespace parc::server
