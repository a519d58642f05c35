#include "server/sqlite/schema.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "server/sql/health_sql.h"

// The SQLite schema, one migration per version. A migration, once released, is never edited:
// a change is a new migration.
namespace parc::server::sqlite {
namespace {

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

// Dashboard sessions in the database, so that any server node answers for a session any other
// node opened (and a restart does not sign everyone out). The cookie's value is never stored,
// only its SHA-256.
constexpr char kSchemaV8[] = R"sql(
CREATE TABLE dashboard_sessions (
  id_hash TEXT PRIMARY KEY,
  operator_id TEXT NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
  csrf TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions(expires_at);
)sql";

// Establishment relays: caching HTTPS servers assigned per UAI, what agents reported about
// them, and which source each package's artifact came from.
constexpr char kSchemaV9[] = R"sql(
CREATE TABLE relays (
  url TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  -- The relay's own credential: "<id>.<secret>", the secret kept as its SHA-256.
  id TEXT NOT NULL UNIQUE,
  token_hash TEXT NOT NULL,
  -- Its last report (parc-relay-sync).
  reported_at INTEGER,
  cache_bytes INTEGER NOT NULL DEFAULT 0,
  cache_max_bytes INTEGER NOT NULL DEFAULT 0,
  artifacts_missing INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE relay_establishments (
  url TEXT NOT NULL REFERENCES relays(url) ON DELETE CASCADE,
  uai TEXT NOT NULL REFERENCES establishments(uai),
  PRIMARY KEY (url, uai)
) WITHOUT ROWID;
CREATE INDEX relay_establishments_uai ON relay_establishments(uai);
CREATE TABLE relay_faults (
  url TEXT NOT NULL REFERENCES relays(url) ON DELETE CASCADE,
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  package_id TEXT NOT NULL,
  version TEXT NOT NULL,
  reason TEXT NOT NULL,
  count INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (url, device_id, package_id, version, reason)
) WITHOUT ROWID;
CREATE INDEX relay_faults_device ON relay_faults(device_id);
ALTER TABLE deployment_packages ADD COLUMN source TEXT NOT NULL DEFAULT '';
CREATE INDEX deployment_packages_source ON deployment_packages(source) WHERE source <> '';
)sql";

// The days each device checked in over the last 30 (fleet health: devices in use, in a
// cupboard, lost): bit i of seen_days is the day seen_day - i (UTC days since 1970).
constexpr char kSchemaV10[] = R"sql(
ALTER TABLE devices ADD COLUMN seen_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN seen_day INTEGER NOT NULL DEFAULT 0;
)sql";

// Fleet health (server/sql/health_sql.h): the facts the indicators need on the device row, the
// operating system versions with their end of support, the reference bundle's requirements
// (health_target), and health_tally kept by triggers like device_tally. Every agent is asked
// for its inventory once more (inventory_hash emptied) so that the new columns fill.
std::string SchemaV11() {
  using sql::HealthColumns;
  using sql::HealthValue;
  std::string out = R"sql(
ALTER TABLE devices ADD COLUMN free_bytes INTEGER;
ALTER TABLE devices ADD COLUMN firmware_year INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN os_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN win11 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE bundles ADD COLUMN installed_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE bundles ADD COLUMN min_ram_bytes INTEGER NOT NULL DEFAULT 0;
CREATE TABLE os_versions (
  id INTEGER PRIMARY KEY,
  os_name TEXT NOT NULL,
  os_version TEXT NOT NULL,
  label TEXT NOT NULL DEFAULT '',
  end_of_support TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL DEFAULT 0,
  updated_by TEXT NOT NULL DEFAULT '',
  UNIQUE (os_name, os_version)
);
CREATE TABLE health_target (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  bundle_id INTEGER,
  installed_bytes INTEGER NOT NULL,
  min_ram_bytes INTEGER NOT NULL
);
INSERT INTO health_target VALUES (1, NULL, 0, 0);
CREATE TABLE health_tally (
  uai TEXT NOT NULL,
  family INTEGER NOT NULL,
  value INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (uai, family, value)
) WITHOUT ROWID;
)sql";
  absl::StrAppend(&out, sql::kOsVersionsSeed);
  std::string insert_new, remove_old;
  for (auto f : sql::kHealthFamilies) {
    const std::string add = absl::StrCat(
        "  INSERT INTO health_tally VALUES (coalesce(new.uai, ''), ", static_cast<int>(f), ", ",
        HealthValue(f, "new"), ", 1) ON CONFLICT DO UPDATE SET n = n + 1;\n");
    const std::string sub = absl::StrCat(
        "  UPDATE health_tally SET n = n - 1 WHERE uai = coalesce(old.uai, '') AND "
        "family = ",
        static_cast<int>(f), " AND value = ", HealthValue(f, "old"), ";\n");
    absl::StrAppend(&insert_new, add);
    absl::StrAppend(&remove_old, sub);
    // One trigger per family: a check-in that changes no family's value (nearly all) costs the
    // WHEN of the bundle family only, and only when the free space moved.
    absl::StrAppend(&out, "CREATE TRIGGER health_tally_update_", static_cast<int>(f),
                    " AFTER UPDATE OF uai, ", HealthColumns(f),
                    " ON devices WHEN old.uai IS NOT "
                    "new.uai OR (",
                    sql::HealthColumnsChanged(f), " AND ", HealthValue(f, "old"),
                    " != ", HealthValue(f, "new"), ") BEGIN\n", sub,
                    "  DELETE FROM health_tally WHERE uai = coalesce(old.uai, '') AND n <= 0;\n",
                    add, "END;\n");
  }
  absl::StrAppend(&out, "CREATE TRIGGER health_tally_insert AFTER INSERT ON devices BEGIN\n",
                  insert_new, "END;\n");
  absl::StrAppend(
      &out, "CREATE TRIGGER health_tally_delete AFTER DELETE ON devices BEGIN\n", remove_old,
      "  DELETE FROM health_tally WHERE uai = coalesce(old.uai, '') AND n <= 0;\nEND;\n");
  for (auto f : sql::kHealthFamilies) {
    absl::StrAppend(&out, "INSERT INTO health_tally SELECT coalesce(d.uai, ''), ",
                    static_cast<int>(f), ", ", HealthValue(f, "d"),
                    ", count(*) FROM devices d GROUP BY 1, 3;\n");
  }
  absl::StrAppend(&out, "UPDATE devices SET inventory_hash = '';\n");
  return out;
}

// The health triggers of v11 emptied a count, then swept every empty count of the
// establishment; deleting only the count just decremented costs a lookup instead of a walk
// through the establishment's counts (about 10 µs of a first inventory, docs/performance.md).
std::string SchemaV12() {
  using sql::HealthColumns;
  using sql::HealthValue;
  std::string out;
  for (auto f : sql::kHealthFamilies) {
    const int family = static_cast<int>(f);
    const std::string old_count = absl::StrCat("uai = coalesce(old.uai, '') AND family = ", family,
                                               " AND value = ", HealthValue(f, "old"));
    absl::StrAppend(&out, "DROP TRIGGER health_tally_update_", family, ";\n",
                    "CREATE TRIGGER health_tally_update_", family, " AFTER UPDATE OF uai, ",
                    HealthColumns(f), " ON devices WHEN old.uai IS NOT new.uai OR (",
                    sql::HealthColumnsChanged(f), " AND ", HealthValue(f, "old"),
                    " != ", HealthValue(f, "new"), ") BEGIN\n",
                    "  UPDATE health_tally SET n = n - 1 WHERE ", old_count, ";\n",
                    "  DELETE FROM health_tally WHERE ", old_count, " AND n <= 0;\n",
                    "  INSERT INTO health_tally VALUES (coalesce(new.uai, ''), ", family, ", ",
                    HealthValue(f, "new"), ", 1) ON CONFLICT DO UPDATE SET n = n + 1;\nEND;\n");
  }
  return out;
}

// A check-in's exact time and the last 10 check-in times move to a narrow table of their own:
// a check-in writes this row (about 100 bytes), and the wide devices row (and the triggers
// on it) only when something on it changes. devices.last_seen_at is from now on written on
// a device's first check-in of a UTC day (a later day only): the day the reports, the counts
// and the fleet health go by. The free space the devices row keeps is rounded down to
// 256 MiB (server/health.h), so that a disk's small moves leave the row alone.
constexpr char kSchemaV13[] = R"sql(
CREATE TABLE device_checkins (
  device_id TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
  last_seen_at INTEGER,
  recent_checkins TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
INSERT INTO device_checkins SELECT id, last_seen_at, recent_checkins FROM devices;
ALTER TABLE devices DROP COLUMN recent_checkins;
CREATE TRIGGER device_checkins_insert AFTER INSERT ON devices BEGIN
  INSERT INTO device_checkins(device_id, last_seen_at) VALUES (new.id, new.last_seen_at);
END;
UPDATE devices SET free_bytes = free_bytes - free_bytes % 268435456
  WHERE free_bytes % 268435456 <> 0;
)sql";

// The history of inventories no longer names its software set as a foreign key, nor keeps an
// index by set: that index cost every inventory stored an insert at a random place (about a
// tenth of the writer's and the checkpointer's work per inventory, docs/performance.md), for
// the retention job alone, which now finds the sets no inventory uses by one scan on a reader
// and deletes them on the writer unless an inventory took one up meanwhile
// (SqlStore::PurgeInventoryHistory). Rewrites the table once: SQLite cannot drop a column's
// REFERENCES in place.
constexpr char kSchemaV14[] = R"sql(
CREATE TABLE inventories_v14 (
  id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  received_at INTEGER NOT NULL,
  collected_at INTEGER NOT NULL,
  inventory_hash TEXT NOT NULL,
  hardware BLOB NOT NULL,
  software_hash TEXT NOT NULL
);
INSERT INTO inventories_v14(id, device_id, received_at, collected_at, inventory_hash, hardware,
                            software_hash)
  SELECT id, device_id, received_at, collected_at, inventory_hash, hardware, software_hash
  FROM inventories;
DROP TABLE inventories;
ALTER TABLE inventories_v14 RENAME TO inventories;
CREATE INDEX inventories_device ON inventories(device_id, id);
CREATE INDEX inventories_received ON inventories(received_at);
)sql";

// The counts of the families an inventory writes (battery band, firmware year, operating
// system) leave health_tally for the server's memory (sql::HealthCounts, rebuilt from the
// devices table at each start and kept by TEMP triggers of the writer's connection): their
// triggers cost a first inventory about a seventh of its server time in B-tree work
// (docs/performance.md). health_tally keeps the family that depends on the reference bundle.
std::string SchemaV15() {
  using sql::HealthValue;
  std::string out;
  for (auto f : sql::kInventoryHealthFamilies) {
    absl::StrAppend(&out, "DROP TRIGGER health_tally_update_", static_cast<int>(f), ";\n");
  }
  const std::string bundle = absl::StrCat(static_cast<int>(sql::kHealthBundle));
  absl::StrAppend(
      &out, "DROP TRIGGER health_tally_insert;\nDROP TRIGGER health_tally_delete;\n",
      "CREATE TRIGGER health_tally_insert AFTER INSERT ON devices BEGIN\n",
      "  INSERT INTO health_tally VALUES (coalesce(new.uai, ''), ", bundle, ", ",
      HealthValue(sql::kHealthBundle, "new"), ", 1) ON CONFLICT DO UPDATE SET n = n + 1;\nEND;\n",
      "CREATE TRIGGER health_tally_delete AFTER DELETE ON devices BEGIN\n",
      "  UPDATE health_tally SET n = n - 1 WHERE uai = coalesce(old.uai, '') AND family = ", bundle,
      " AND value = ", HealthValue(sql::kHealthBundle, "old"), ";\n",
      "  DELETE FROM health_tally WHERE uai = coalesce(old.uai, '') AND n <= 0;\nEND;\n",
      "DELETE FROM health_tally WHERE family <> ", bundle, ";\n");
  return out;
}

// A device's history is a chain: each inventory names the device's previous one (prev_id) and
// the devices row names the latest (inventory_id), so no index of the inventories by device is
// kept. That index cost every inventory stored an insert at a random place, as many pages
// dirtied as the devices row itself (docs/performance.md); the history is read by device only to
// show the latest inventory, to count it, to trim it and to delete it with its device, each a
// walk of at most a few dozen rows by id. history_count is the number of rows in the chain,
// from which the writer trims it (SqlStore::StoreInventory). The device's foreign key goes too:
// its cascade would scan the whole history without the index; RetireDevice walks the chain.
// Rewrites the table once, as version 14.
constexpr char kSchemaV16[] = R"sql(
ALTER TABLE devices ADD COLUMN inventory_id INTEGER;
ALTER TABLE devices ADD COLUMN history_count INTEGER NOT NULL DEFAULT 0;
UPDATE devices SET inventory_id = h.latest, history_count = h.n
  FROM (SELECT device_id, max(id) AS latest, count(*) AS n FROM inventories GROUP BY device_id) h
  WHERE h.device_id = devices.id;
CREATE TABLE inventories_v16 (
  id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL,
  prev_id INTEGER,
  received_at INTEGER NOT NULL,
  collected_at INTEGER NOT NULL,
  inventory_hash TEXT NOT NULL,
  hardware BLOB NOT NULL,
  software_hash TEXT NOT NULL
);
INSERT INTO inventories_v16(id, device_id, prev_id, received_at, collected_at, inventory_hash,
                            hardware, software_hash)
  SELECT id, device_id, lag(id) OVER (PARTITION BY device_id ORDER BY id), received_at,
         collected_at, inventory_hash, hardware, software_hash
  FROM inventories ORDER BY id;
DROP TABLE inventories;
ALTER TABLE inventories_v16 RENAME TO inventories;
CREATE INDEX inventories_received ON inventories(received_at);
)sql";

// A device's row is born with room for its first inventory (what PostgreSQL's fillfactor does
// for its pages): a zero-filled blob of sql::kDeviceRowRoom bytes, written at enrollment and
// given back (NULL) by the first inventory, which fills about as many bytes of facts
// (manufacturer, model, system, hashes). Without it, enrolled rows pack their pages full, and
// the first inventory of a device grows its row in a full page: SQLite splits the page and
// rebalances its neighbours, about twice the WAL frames and 2.5 times the B-tree work of an
// update in place (docs/performance.md). Rows enrolled before this version have no room; most
// have reported their first inventory already.
constexpr char kSchemaV17[] = R"sql(
ALTER TABLE devices ADD COLUMN room BLOB;
)sql";

}  // namespace

const std::vector<common::Migration>& Migrations() {
  static const std::string kV11 = SchemaV11();
  static const std::string kV12 = SchemaV12();
  static const std::string kV15 = SchemaV15();
  static const std::vector<common::Migration> kMigrations = {
      {1, kSchemaV1},   {2, kSchemaV2},   {3, kSchemaV3},     {4, kSchemaV4},
      {5, kSchemaV5},   {6, kSchemaV6},   {7, kSchemaV7},     {8, kSchemaV8},
      {9, kSchemaV9},   {10, kSchemaV10}, {11, kV11.c_str()}, {12, kV12.c_str()},
      {13, kSchemaV13}, {14, kSchemaV14}, {15, kV15.c_str()}, {16, kSchemaV16},
      {17, kSchemaV17}};
  return kMigrations;
}

}  // namespace parc::server::sqlite
