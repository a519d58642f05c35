#include <pthread.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <future>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/inventory_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/health.h"
#include "server/software_sets.h"
#include "server/sql/rows.h"
#include "server/sql/scope_sql.h"
#include "server/sql/time_util.h"
#include "server/sql_store.h"

namespace parc::server {

using Statement = sql::Stmt;
using sql::DeviceFromRow;
using sql::FromUnix;
using sql::kDeviceSelect;
using sql::U32;
using sql::Unix;

void SqlStore::RetireDevice(std::string id_or_serial, Scope scope,
                            StoreCallback<parc::v1::Device> done) {
  SubmitFor<parc::v1::Device>(
      [id_or_serial = std::move(id_or_serial),
       scope = std::move(scope)](sql::Connection* db) -> absl::StatusOr<parc::v1::Device> {
        PARC_ASSIGN_OR_RETURN(
            Statement st,
            db->Prepare(absl::StrCat(kDeviceSelect,
                                     "WHERE (d.id = ?1 OR (d.serial = ?1 AND d.serial <> '')) "
                                     "AND ",
                                     sql::ScopeSql(*db, scope, "d.uai", 2), " LIMIT 2")));
        st.BindAll(id_or_serial, sql::ScopeParam(*db, scope));
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
        // Its history first: no foreign key takes it (schema version 16), a walk of its chain.
        PARC_ASSIGN_OR_RETURN(
            Statement history,
            db->Prepare("WITH RECURSIVE chain(id, prev) AS (SELECT i.id, i.prev_id FROM devices d "
                        "JOIN inventories i ON i.id = d.inventory_id WHERE d.id = ?1 "
                        "UNION ALL SELECT i.id, i.prev_id FROM chain c JOIN inventories i "
                        "ON i.id = c.prev AND i.device_id = ?1) "
                        "DELETE FROM inventories WHERE id IN (SELECT id FROM chain)"));
        PARC_RETURN_IF_ERROR(history.Bind(1, device.id()).Run());
        PARC_ASSIGN_OR_RETURN(Statement del, db->Prepare("DELETE FROM devices WHERE id = ?"));
        PARC_RETURN_IF_ERROR(del.Bind(1, device.id()).Run());
        NotifyDeviceChanged(db, device.id());
        return device;
      },
      [this, done = std::move(done)](absl::StatusOr<parc::v1::Device> device) {
        if (device.ok()) cache_.InvalidateDevice(device->id());
        done(std::move(device));
      });
}

absl::StatusOr<DeviceAuth> SqlStore::GetDeviceAuth(const std::string& id) {
  if (auto cached = cache_.GetDevice(id)) return *std::move(cached);
  const uint64_t generation = cache_.Generation();
  ReaderLease db = AcquireReader();
  static constexpr char kSelect[] =
      "SELECT id, secret_hash, coalesce(uai, ''), inventory_hash, kind, seen_day, "
      "agent_version, coalesce(free_bytes, -1), ";
  static const std::string kSelects[2] = {absl::StrCat(kSelect, "0 FROM devices WHERE id = ?"),
                                          absl::StrCat(kSelect, "rowid FROM devices WHERE id = ?")};
  PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare(kSelects[db->has_rowids()]));
  st.Bind(1, id);
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError("unknown device");
  DeviceAuth auth{
      st.Text(0), st.Text(1), st.Text(2), st.Text(3), static_cast<parc::v1::DeviceKind>(st.Int(4)),
      st.Int(5),  st.Text(6), st.Int(7),  st.Int(8)};
  cache_.PutDevice(generation, auth);
  return auth;
}

namespace {

// The days seen over the last 30 (schema: seen_days, seen_day) after a check-in at UNIX time
// t: shifted to t's day, that day's bit set; a check-in older than seen_day (a delayed batch)
// sets its own bit. Both engines evaluate every SET expression on the row as it was.
std::string SeenDaysExpr(const std::string& t) {
  const std::string day = absl::StrCat("(CAST(", t, " AS BIGINT) / 86400)");
  const std::string gap = absl::StrCat("(", day, " - seen_day)");
  // PostgreSQL shifts by an INTEGER count.
  return absl::StrCat(
      "CASE WHEN ", gap, " >= 30 THEN 1 WHEN ", gap, " >= 0 THEN ((seen_days << CAST(", gap,
      " AS INTEGER)) | 1) & 1073741823 WHEN ", gap, " > -30 THEN seen_days | (1 << CAST(0 - ", gap,
      " AS INTEGER)) ELSE seen_days END");
}
std::string SeenDayExpr(const std::string& t) {
  const std::string day = absl::StrCat("(CAST(", t, " AS BIGINT) / 86400)");
  return absl::StrCat("CASE WHEN ", day, " > seen_day THEN ", day, " ELSE seen_day END");
}

// What a check-in at UNIX time t changes on the devices row: last_seen_at on the first
// check-in of a later UTC day only (the day the reports count by; device_checkins keeps the
// exact time), the agent version, the free space (free: -1 when not sent, the last one
// stays), the days seen. t, av, free: the SQL of the check-in's values.
struct DeviceCheckInSets {
  std::string last_seen, free, seen_days, seen_day;
};
DeviceCheckInSets DeviceSets(const std::string& t, const std::string& free) {
  return {absl::StrCat("CASE WHEN coalesce(last_seen_at / 86400, -1) < CAST(", t,
                       " AS BIGINT) / 86400 THEN CAST(", t, " AS BIGINT) ELSE last_seen_at END"),
          absl::StrCat("CASE WHEN CAST(", free, " AS BIGINT) < 0 THEN free_bytes ELSE CAST(", free,
                       " AS BIGINT) END"),
          SeenDaysExpr(t), SeenDayExpr(t)};
}

// The devices row is written only when one of its values changes (most check-ins bring the
// same day, agent version and free space as the last one, and write device_checkins alone,
// docs/performance.md, P1). {match}: the condition that finds the row.
std::string DeviceCheckInUpdate(const std::string& table, const std::string& t,
                                const std::string& av, const std::string& free) {
  const DeviceCheckInSets s = DeviceSets(t, free);
  return absl::StrCat("UPDATE devices", table, " SET last_seen_at = ", s.last_seen,
                      ", agent_version = ", av, ", free_bytes = ", s.free,
                      ", seen_days = ", s.seen_days, ", seen_day = ", s.seen_day,
                      " WHERE {match} AND (last_seen_at IS DISTINCT FROM ", s.last_seen,
                      " OR agent_version <> ", av, " OR free_bytes IS DISTINCT FROM ", s.free,
                      " OR seen_days <> ", s.seen_days, " OR seen_day <> ", s.seen_day, ")");
}

// A check-in's exact time, and the last 10 check-in times, newest first.
std::string CheckInTimesSet(const std::string& table, const std::string& t) {
  return absl::StrCat("last_seen_at = CASE WHEN ", table, "last_seen_at > CAST(", t,
                      " AS BIGINT) THEN ", table, "last_seen_at ELSE CAST(", t,
                      " AS BIGINT) END, recent_checkins = substr(CAST(CAST(", t,
                      " AS BIGINT) AS TEXT) || ',' || ", table, "recent_checkins, 1, 109)");
}

// A check-in in two statements: its times (?1 time, ?2 device), then the devices row when
// something on it changed (?1 time, ?2 agent version, ?3 device, ?4 free bytes or -1).
const std::string& RecordCheckInTimesSql() {
  static const std::string sql = absl::StrCat("UPDATE device_checkins SET ",
                                              CheckInTimesSet("", "?1"), " WHERE device_id = ?2");
  return sql;
}
const std::string& RecordCheckInDeviceSql() {
  static const std::string sql =
      absl::StrReplaceAll(DeviceCheckInUpdate("", "?1", "?2", "?4"), {{"{match}", "id = ?3"}});
  return sql;
}

// The free space the devices row keeps (RoundedFreeBytes), -1 when not sent.
int64_t FreeBytesParam(const std::optional<uint64_t>& free_bytes) {
  return free_bytes.has_value() ? static_cast<int64_t>(RoundedFreeBytes(*free_bytes)) : -1;
}

// Check-ins one by one; false in *found for a device that is not (or no longer) enrolled.
// The devices rows the check-ins changed go to *changed.
absl::Status RecordCheckInRows(sql::Connection* db, const std::vector<const CheckInInput*>& in,
                               bool* found, std::vector<std::string>* changed) {
  PARC_ASSIGN_OR_RETURN(Statement times, db->Prepare(RecordCheckInTimesSql()));
  PARC_ASSIGN_OR_RETURN(Statement device, db->Prepare(RecordCheckInDeviceSql()));
  *found = true;
  for (const CheckInInput* c : in) {
    const int64_t t = Unix(c->now);
    PARC_RETURN_IF_ERROR(times.BindAll(t, c->device_id).Run());
    if (db->Changes() == 0) {
      // A device retired since its check-in was authenticated changes nothing.
      *found = false;
      continue;
    }
    if (!c->write_device) continue;
    PARC_RETURN_IF_ERROR(
        device.BindAll(t, c->agent_version, c->device_id, FreeBytesParam(c->free_bytes)).Run());
    if (db->Changes() > 0) changed->push_back(c->device_id);
  }
  return absl::OkStatus();
}

// Check-ins in two statements where the engine takes arrays: each device's latest.
absl::Status RecordCheckIns(sql::Connection* db, const std::vector<CheckInInput>& checkins,
                            std::vector<std::string>* changed) {
  std::map<absl::string_view, std::pair<const CheckInInput*, bool>> latest;
  for (const CheckInInput& c : checkins) {
    auto& [l, write_device] = latest[c.device_id];
    if (l == nullptr || l->now <= c.now) l = &c;
    write_device |= c.write_device;
  }
  std::vector<std::string> ids, times, versions, free;
  std::vector<std::string> device_ids, device_times, device_versions, device_free;
  for (const auto& [id, latest_checkin] : latest) {
    const auto& [c, write_device] = latest_checkin;
    ids.emplace_back(id);
    times.push_back(absl::StrCat(Unix(c->now)));
    if (!write_device) continue;
    device_ids.emplace_back(id);
    device_times.push_back(times.back());
    device_versions.push_back(c->agent_version);
    device_free.push_back(absl::StrCat(FreeBytesParam(c->free_bytes)));
  }
  PARC_ASSIGN_OR_RETURN(
      Statement times_st,
      db->Prepare(absl::StrCat("UPDATE device_checkins AS c SET ", CheckInTimesSet("c.", "v.t"),
                               " FROM unnest(CAST(?1 AS TEXT[]), CAST(?2 AS BIGINT[])) "
                               "AS v(id, t) WHERE c.device_id = v.id")));
  PARC_RETURN_IF_ERROR(times_st.BindAll(db->ArrayParam(ids), db->ArrayParam(times)).Run());
  if (device_ids.empty()) return absl::OkStatus();
  // PostgreSQL: the SET and WHERE expressions name the devices row's columns unqualified.
  std::string device = DeviceCheckInUpdate(" AS d", "v.t", "v.av", "v.free");
  device = absl::StrReplaceAll(
      device, {{" WHERE {match}",
                " FROM unnest(CAST(?1 AS TEXT[]), CAST(?2 AS BIGINT[]), CAST(?3 AS TEXT[]), "
                "CAST(?4 AS BIGINT[])) AS v(id, t, av, free) WHERE d.id = v.id"}});
  PARC_ASSIGN_OR_RETURN(Statement device_st, db->Prepare(absl::StrCat(device, " RETURNING d.id")));
  device_st.BindAll(db->ArrayParam(device_ids), db->ArrayParam(device_times),
                    db->ArrayParam(device_versions), db->ArrayParam(device_free));
  for (;;) {
    PARC_ASSIGN_OR_RETURN(bool row, device_st.Step());
    if (!row) break;
    changed->push_back(device_st.Text(0));
  }
  return absl::OkStatus();
}

// A device's history, newest first: the chain of its inventories from `latest` (the devices
// row's inventory_id) through each row's prev_id, as far as rows exist (the retention purge
// deletes the oldest, so a chain may stop early), at most `limit` ids.
absl::StatusOr<std::vector<int64_t>> HistoryChain(sql::Connection* db, int64_t latest,
                                                  int64_t limit) {
  PARC_ASSIGN_OR_RETURN(Statement st,
                        db->Prepare("WITH RECURSIVE chain(id, prev, n) AS ("
                                    "SELECT id, prev_id, 1 FROM inventories WHERE id = ?1 "
                                    "UNION ALL SELECT i.id, i.prev_id, c.n + 1 FROM chain c "
                                    "JOIN inventories i ON i.id = c.prev WHERE c.n < ?2) "
                                    "SELECT id FROM chain ORDER BY n"));
  st.BindAll(latest, limit);
  std::vector<int64_t> ids;
  PARC_RETURN_IF_ERROR(
      sql::ForEachRow(st, [&](const Statement& row) { ids.push_back(row.Int(0)); }));
  return ids;
}

// A device keeps a bounded history, whatever it sends: its newest kMaxInventoriesPerDevice
// inventories are its history, the older ones go (their software sets with the retention job).
// They go by batches of kHistoryTrimBatch, once history_count (the chain's length, kept in the
// devices row) passes the bound by that much: a trim walks the chain, a few dozen rows, which
// most inventories then need not do. `count` is the chain's length with the new inventory;
// returns it after the trim.
absl::StatusOr<int64_t> TrimInventoryHistory(sql::Connection* db, int64_t latest, int64_t count) {
  if (count <= kMaxInventoriesPerDevice + kHistoryTrimBatch) return count;
  PARC_ASSIGN_OR_RETURN(std::vector<int64_t> chain,
                        HistoryChain(db, latest, std::numeric_limits<int32_t>::max()));
  if (chain.size() <= static_cast<size_t>(kMaxInventoriesPerDevice)) {
    return static_cast<int64_t>(chain.size());  // shorter than counted: purged meanwhile
  }
  PARC_ASSIGN_OR_RETURN(Statement del, db->Prepare("DELETE FROM inventories WHERE id = ?"));
  for (size_t i = kMaxInventoriesPerDevice; i < chain.size(); ++i) {
    PARC_RETURN_IF_ERROR(del.Bind(1, chain[i]).Run());
  }
  return kMaxInventoriesPerDevice;
}

}  // namespace

void SqlStore::CheckInStored(const std::vector<CheckInInput>& checkins) {
  for (const CheckInInput& c : checkins) {
    if (!c.write_device) continue;
    cache_.DeviceCheckInStored(c.device_id, Unix(c.now) / 86400, c.agent_version,
                               FreeBytesParam(c.free_bytes));
  }
}

void SqlStore::RecordCheckIn(CheckInInput in, Durability durability, StoreCallback<bool> done) {
  // The devices row is written only when the check-in may change it (checked by the UPDATE's
  // condition too): most check-ins write their time alone.
  in.write_device = !cache_.CheckInStored(in.device_id, Unix(in.now) / 86400, in.agent_version,
                                          FreeBytesParam(in.free_bytes));
  // While the storage fails, a check-in waits for its write, so that the device is told the
  // truth rather than an answer that is then not recorded.
  if (durability == Durability::kBehind && Writable() && QueueCheckIn(in)) {
    done(true);
    return;
  }
  auto stored = std::make_shared<std::vector<CheckInInput>>(1, in);
  SubmitFor<bool>(
      [in = std::move(in)](sql::Connection* db) -> absl::StatusOr<bool> {
        bool found = false;
        std::vector<std::string> changed;
        PARC_RETURN_IF_ERROR(RecordCheckInRows(db, {&in}, &found, &changed));
        if (!found) return absl::NotFoundError("unknown device");
        for (const std::string& id : changed) NotifyDeviceChanged(db, id);
        return true;
      },
      [this, stored, done = std::move(done)](absl::StatusOr<bool> r) {
        if (r.ok()) CheckInStored(*stored);
        done(std::move(r));
      });
}

bool SqlStore::QueueCheckIn(CheckInInput& in) {
  {
    std::lock_guard<std::mutex> lock(checkins_mu_);
    if (closing_ || pending_checkins_.size() >= max_pending_checkins_) return false;
    if (pending_checkins_.empty()) oldest_pending_ = std::chrono::steady_clock::now();
    // What the reports count (a device seen today, its agent version) does not wait.
    const bool now = in.write_device && !flush_now_;
    flush_now_ |= in.write_device;
    pending_checkins_.push_back(std::move(in));
    // The flusher waits for the oldest to be due, or for enough of them.
    if (!now && pending_checkins_.size() != 1 && pending_checkins_.size() != checkin_flush_size_) {
      return true;
    }
  }
  checkins_cv_.notify_one();
  return true;
}

void SqlStore::FlushCheckInsLoop() {
  pthread_setname_np(pthread_self(), "parc-checkins");
  std::unique_lock<std::mutex> lock(checkins_mu_);
  for (;;) {
    checkins_cv_.wait(lock, [this] { return closing_ || !pending_checkins_.empty(); });
    if (pending_checkins_.empty()) return;  // closing, nothing left
    checkins_cv_.wait_until(lock, oldest_pending_ + checkin_flush_interval_, [this] {
      return closing_ || flush_now_ || pending_checkins_.size() >= checkin_flush_size_;
    });
    std::vector<CheckInInput> checkins;
    checkins.swap(pending_checkins_);
    flush_now_ = false;
    lock.unlock();
    WriteCheckIns(std::move(checkins));
    lock.lock();
  }
}

void SqlStore::WriteCheckIns(std::vector<CheckInInput> checkins) {
  // By device (a device's own check-ins stay in their order): neighbouring devices share pages.
  std::stable_sort(
      checkins.begin(), checkins.end(),
      [](const CheckInInput& a, const CheckInInput& b) { return a.device_id < b.device_id; });
  std::mutex mu;
  std::condition_variable committed;
  for (size_t begin = 0; begin < checkins.size(); begin += checkin_write_chunk_) {
    const size_t end = std::min(checkins.size(), begin + checkin_write_chunk_);
    auto chunk = std::make_shared<const std::vector<CheckInInput>>(
        std::make_move_iterator(checkins.begin() + static_cast<std::ptrdiff_t>(begin)),
        std::make_move_iterator(checkins.begin() + static_cast<std::ptrdiff_t>(end)));
    bool done = false;
    Submit(
        [this, chunk](sql::Connection* db) -> absl::Status {
          // A device retired since its check-in was authenticated changes nothing.
          std::vector<std::string> changed;
          if (db->has_arrays()) {
            PARC_RETURN_IF_ERROR(RecordCheckIns(db, *chunk, &changed));
          } else {
            std::vector<const CheckInInput*> rows;
            rows.reserve(chunk->size());
            for (const CheckInInput& c : *chunk) rows.push_back(&c);
            bool all_found = false;
            PARC_RETURN_IF_ERROR(RecordCheckInRows(db, rows, &all_found, &changed));
          }
          for (const std::string& id : changed) NotifyDeviceChanged(db, id);
          return absl::OkStatus();
        },
        [this, chunk, &mu, &committed, &done](absl::Status status) {
          // Answered already: what was lost is counted (the store is reported unhealthy, and
          // check-ins then wait for their write until it recovers).
          if (status.ok()) {
            CheckInStored(*chunk);
          } else {
            unrecorded_checkins_.fetch_add(chunk->size());
          }
          std::lock_guard<std::mutex> lock(mu);
          done = true;
          committed.notify_one();
        });
    std::unique_lock<std::mutex> lock(mu);
    committed.wait(lock, [&done] { return done; });
  }
}

absl::StatusOr<bool> SqlStore::HasSoftwareSet(const std::string& hash) {
  const absl::Time now = absl::Now();
  if (auto cached = cache_.GetSoftwareSet(hash, now)) return *cached;
  const uint64_t generation = cache_.Generation();
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(Statement st, db->Prepare("SELECT 1 FROM software_sets WHERE hash = ?"));
  st.Bind(1, hash);
  PARC_ASSIGN_OR_RETURN(bool known, st.Step());
  cache_.PutSoftwareSet(generation, hash, known, now);
  return known;
}

absl::Status SqlStore::InsertSoftwareSet(sql::Connection* db, const std::string& hash,
                                         const parc::v1::SoftwareList& list, absl::Time now) {
  if (db->SoftwareSetKnown(hash)) return absl::OkStatus();
  PARC_ASSIGN_OR_RETURN(Statement exists,
                        db->Prepare("SELECT 1 FROM software_sets WHERE hash = ?"));
  exists.Bind(1, hash);
  PARC_ASSIGN_OR_RETURN(bool known, exists.Step());
  if (known) {
    db->SoftwareSetFound(hash);
    return absl::OkStatus();
  }
  if (bases_.empty()) {
    // The full lists most recently stored: the current master images.
    PARC_ASSIGN_OR_RETURN(Statement recent,
                          db->Prepare("SELECT hash, packages FROM software_sets "
                                      "WHERE base_hash IS NULL ORDER BY id DESC LIMIT 64"));
    PARC_RETURN_IF_ERROR(sql::ForEachRow(recent, [&](const Statement&) {
      parc::v1::SoftwareList cached;
      if (cached.ParseFromString(recent.Blob(1))) bases_.Add(recent.Text(0), cached);
    }));
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
  PARC_RETURN_IF_ERROR(ins.Run());
  db->SoftwareSetFound(hash);
  return absl::OkStatus();
}

void SqlStore::StoreInventory(InventoryInput in, StoreCallback<bool> done) {
  std::string device_id = in.device_id;
  std::string software_hash = in.software_hash;
  std::string inventory_hash = in.inventory_hash;
  // What the write found, for the caches once it committed: the device's kind after it (an
  // inventory may change a detected kind), its free space, and the id of its system's
  // os_versions row.
  struct Written {
    int64_t kind = -1;
    int64_t os_id = 0;
    int64_t free_bytes = -1;  // the devices row's after the write (-1: none)
  };
  auto written = std::make_shared<Written>();
  const std::string os_key = in.hardware.os_name().empty()
                                 ? std::string()
                                 : absl::StrCat(in.hardware.os_name(), absl::string_view("\0", 1),
                                                in.hardware.os_version());
  std::optional<int64_t> known_os;
  if (!os_key.empty()) {
    std::lock_guard<std::mutex> lock(os_ids_mu_);
    auto it = os_ids_.find(os_key);
    if (it != os_ids_.end()) known_os = it->second;
  }
  SubmitFor<bool>(
      [this, in = std::move(in), known_os, written](sql::Connection* db) -> absl::StatusOr<bool> {
        if (in.software != nullptr) {
          PARC_RETURN_IF_ERROR(
              InsertSoftwareSet(db, in.software_hash, *in.software, in.received_at));
        } else if (!db->SoftwareSetKnown(in.software_hash)) {
          PARC_ASSIGN_OR_RETURN(Statement st,
                                db->Prepare("SELECT 1 FROM software_sets WHERE hash = ?"));
          st.Bind(1, in.software_hash);
          PARC_ASSIGN_OR_RETURN(bool known, st.Step());
          if (!known) {
            return absl::FailedPreconditionError(absl::StrCat(
                "software list ", in.software_hash, " is not known to the server: send it"));
          }
          db->SoftwareSetFound(in.software_hash);
        }
        // The same inventory delivered again (retry from the outbox) adds no history row. The
        // devices row holds the hash of the device's latest stored inventory, or '' when it
        // must send one again (re-enrollment, a schema that added columns): read there, where
        // the update below writes anyway, rather than in the history (a page of its own). It
        // names the latest inventory too (inventory_id; NULL: none yet, no history to look at)
        // and the history's length: the history is a chain from there (schema version 16).
        // Where writes are serialized, its kind and free space as they are until the update
        // below, which then needs no RETURNING.
        const bool serialized = db->serializes_writes();
        std::string latest;
        std::optional<int64_t> latest_id;
        int64_t history_count = 0;
        int64_t old_kind = 0;
        int64_t old_free_bytes = -1;
        bool kind_detected = false;
        // Where writes are serialized (SQLite, which has rowids), the row's rowid too: the
        // update below finds the row by it, one B-tree search instead of two (the id's index,
        // then the table). The read finds it by the rowid the authentication read (checking
        // the id there: a hint only), or else by the id.
        const bool by_rowid = serialized && db->has_rowids();
        int64_t rowid = 0;
        {
          static constexpr char kStored[] =
              "SELECT inventory_hash, inventory_id, history_count, kind, "
              "kind_source = 'detected', coalesce(free_bytes, -1)";
          static const std::string kSelects[3] = {
              absl::StrCat(kStored, " FROM devices WHERE id = ?1"),
              absl::StrCat(kStored, ", rowid FROM devices WHERE id = ?1"),
              absl::StrCat(kStored, ", rowid FROM devices WHERE rowid = ?2 AND id = ?1")};
          bool enrolled = false;
          std::optional<Statement> found;
          if (by_rowid && in.device_row > 0) {
            PARC_ASSIGN_OR_RETURN(Statement hinted, db->Prepare(kSelects[2]));
            hinted.Bind(1, in.device_id).Bind(2, in.device_row);
            PARC_ASSIGN_OR_RETURN(enrolled, hinted.Step());
            if (enrolled) found.emplace(std::move(hinted));
          }
          if (!enrolled) {
            PARC_ASSIGN_OR_RETURN(Statement by_id, db->Prepare(kSelects[by_rowid ? 1 : 0]));
            by_id.Bind(1, in.device_id);
            PARC_ASSIGN_OR_RETURN(enrolled, by_id.Step());
            if (enrolled) found.emplace(std::move(by_id));
          }
          if (!enrolled) return absl::NotFoundError("unknown device");
          Statement& stored = *found;
          latest = stored.Text(0);
          if (!stored.IsNull(1)) latest_id = stored.Int(1);
          history_count = stored.Int(2);
          old_kind = stored.Int(3);
          kind_detected = stored.Int(4) != 0;
          old_free_bytes = stored.Int(5);
          if (by_rowid) rowid = stored.Int(6);
        }
        bool same = false;
        if (latest_id.has_value() && (latest.empty() || latest == in.inventory_hash)) {
          // Touches the latest inventory when it is this one ('' above: look at the history).
          PARC_ASSIGN_OR_RETURN(
              Statement touch,
              db->Prepare("UPDATE inventories SET received_at = ?1 WHERE id = ?2 AND "
                          "inventory_hash = ?3"));
          PARC_RETURN_IF_ERROR(
              touch.BindAll(Unix(in.received_at), *latest_id, in.inventory_hash).Run());
          same = db->Changes() > 0;
        }
        if (!same) {
          {  // The new row follows the device's latest in its chain.
            static constexpr char kInsert[] =
                "INSERT INTO inventories(device_id, prev_id, received_at, collected_at, "
                "inventory_hash, hardware, software_hash) VALUES (?, ?, ?, ?, ?, ?, ?)";
            static const std::string kInsertReturningId = absl::StrCat(kInsert, " RETURNING id");
            PARC_ASSIGN_OR_RETURN(Statement ins,
                                  db->Prepare(serialized ? kInsert : kInsertReturningId));
            ins.BindAll(in.device_id, latest_id, Unix(in.received_at), Unix(in.collected_at),
                        in.inventory_hash);
            std::string encoded;
            absl::string_view hardware = in.encoded_hardware;
            if (hardware.empty()) hardware = encoded = common::EncodeHardware(in.hardware);
            ins.BindBlob(6, hardware).Bind(7, in.software_hash);
            if (serialized) {
              PARC_RETURN_IF_ERROR(ins.Run());
              latest_id = db->LastInsertId();
            } else {
              PARC_ASSIGN_OR_RETURN(bool inserted, ins.Step());
              if (!inserted) return absl::InternalError("inventory insert returned no id");
              latest_id = ins.Int(0);
            }
          }
          SoftwareSetUsed(in.software_hash);
          PARC_ASSIGN_OR_RETURN(history_count,
                                TrimInventoryHistory(db, *latest_id, history_count + 1));
        }
        const auto& hw = in.hardware;
        std::string os = hw.os_pretty_name().empty()
                             ? absl::StrCat(hw.os_name(), " ", hw.os_version())
                             : hw.os_pretty_name();
        // The operating system version, in the table of their end of support (fleet health).
        int64_t os_id = known_os.value_or(0);
        if (!hw.os_name().empty() && !known_os.has_value()) {
          PARC_ASSIGN_OR_RETURN(Statement add_os,
                                db->Prepare("INSERT INTO os_versions(os_name, os_version) "
                                            "VALUES (?, ?) ON CONFLICT DO NOTHING"));
          PARC_RETURN_IF_ERROR(add_os.BindAll(hw.os_name(), hw.os_version()).Run());
          PARC_ASSIGN_OR_RETURN(
              Statement get_os,
              db->Prepare("SELECT id FROM os_versions WHERE os_name = ? AND os_version = ?"));
          get_os.BindAll(hw.os_name(), hw.os_version());
          PARC_ASSIGN_OR_RETURN(bool found, get_os.Step());
          if (found) os_id = written->os_id = get_os.Int(0);
        }
        // Where rows grow in their page, the room the row was born with goes (kDeviceRowRoom):
        // the facts written here take its place. Where writes are serialized, the kind and
        // free space the update leaves follow from those read above (no RETURNING), and a kind
        // that stays is not assigned: a column assigned runs every trigger on it (the tallies
        // by kind, three of them), even when its value stays.
        static constexpr char kSet[] =
            "UPDATE devices SET inventory_hash = ?1, software_hash = ?2, "
            "inventory_at = ?3, manufacturer = ?4, model = ?5, hostname = ?6, "
            "os = ?7, ram_bytes = ?10, battery_health = ?11, "
            "rotational_disk = ?12, free_bytes = CASE WHEN CAST(?13 AS BIGINT) < 0 THEN "
            "free_bytes "
            "ELSE CAST(?13 AS BIGINT) END, firmware_year = ?14, os_id = ?15, win11 = ?16, "
            "inventory_id = ?17, history_count = ?18";
        static constexpr char kKind[] =
            ", kind = CASE WHEN kind_source = 'detected' AND ?8 <> 0 THEN ?8 ELSE kind END";
        static constexpr char kReturning[] = " RETURNING kind, coalesce(free_bytes, -1)";
        static constexpr char kRoom[] = ", room = NULL";
        enum Form { kReturningForm, kWithKind, kKindKept };
        // [by_rowid][form][grows_rows_in_place]
        static const auto kUpdates = [] {
          std::array<std::array<std::array<std::string, 2>, 3>, 2> u;
          for (size_t r = 0; r < 2; ++r) {
            const char* where = r == 0 ? " WHERE id = ?9" : " WHERE rowid = ?19";
            u[r] = {{{absl::StrCat(kSet, kKind, where, kReturning),
                      absl::StrCat(kSet, kKind, kRoom, where, kReturning)},
                     {absl::StrCat(kSet, kKind, where), absl::StrCat(kSet, kKind, kRoom, where)},
                     {absl::StrCat(kSet, where), absl::StrCat(kSet, kRoom, where)}}};
          }
          return u;
        }();
        const auto detected_kind = static_cast<int64_t>(hw.detected_kind());
        const int64_t new_kind = kind_detected && detected_kind != 0 ? detected_kind : old_kind;
        const Form form = !serialized            ? kReturningForm
                          : new_kind != old_kind ? kWithKind
                                                 : kKindKept;
        PARC_ASSIGN_OR_RETURN(Statement up,
                              db->Prepare(kUpdates[by_rowid][form][db->grows_rows_in_place()]));
        std::optional<int64_t> battery;
        for (const auto& b : hw.batteries()) {
          if (b.design_capacity() == 0) continue;
          int64_t h = b.health_percent();
          battery = battery.has_value() ? std::min(*battery, h) : h;
        }
        bool rotational = false;
        for (const auto& d : hw.disks()) rotational |= d.rotational();
        const int64_t free_bytes = FreeBytesParam(
            hw.has_system_free_bytes() ? std::optional<uint64_t>(hw.system_free_bytes())
                                       : std::nullopt);
        up.BindAll(in.inventory_hash, in.software_hash, Unix(in.received_at), hw.manufacturer(),
                   hw.model(), hw.hostname(), os, detected_kind, in.device_id,
                   static_cast<int64_t>(hw.ram_bytes()), battery, rotational, free_bytes,
                   FirmwareYear(hw), os_id, Windows11Capable(hw), latest_id, history_count);
        if (by_rowid) up.Bind(19, rowid);
        if (serialized) {
          PARC_RETURN_IF_ERROR(up.Run());
          if (db->Changes() != 1) return absl::NotFoundError("unknown device");
          written->kind = new_kind;
          written->free_bytes = free_bytes < 0 ? old_free_bytes : free_bytes;
        } else {
          PARC_ASSIGN_OR_RETURN(bool updated, up.Step());
          if (!updated) return absl::NotFoundError("unknown device");
          written->kind = up.Int(0);
          written->free_bytes = up.Int(1);
        }
        NotifyDeviceChanged(db, in.device_id);
        return true;
      },
      [this, device_id = std::move(device_id), software_hash = std::move(software_hash),
       inventory_hash = std::move(inventory_hash), os_key, written,
       done = std::move(done)](absl::StatusOr<bool> r) {
        if (!r.ok()) {
          cache_.InvalidateDevice(device_id);
          return done(std::move(r));
        }
        if (written->os_id > 0) {
          std::lock_guard<std::mutex> lock(os_ids_mu_);
          os_ids_.emplace(os_key, written->os_id);
        }
        cache_.DeviceInventoryStored(device_id, inventory_hash,
                                     static_cast<parc::v1::DeviceKind>(written->kind),
                                     written->free_bytes);
        cache_.SoftwareSetStored(software_hash);
        done(std::move(r));
      });
}

absl::StatusOr<std::vector<parc::v1::Device>> SqlStore::ListDevices(const DeviceFilter& f) {
  ReaderLease db = AcquireReader();
  PARC_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(absl::StrCat(
          kDeviceSelect,
          "WHERE d.id > ?1 AND (?2 = '' OR d.uai = ?2) AND (?3 = '' OR e.departement = ?3) "
          "AND (?4 = 0 OR d.kind = ?4) "
          "AND (CAST(?5 AS BIGINT) IS NULL OR coalesce(c.last_seen_at, d.last_enrolled_at) < ?5) "
          "AND (?6 = 0 OR d.uai IS NULL) "
          "AND ",
          sql::ScopeSql(*db, f.scope, "d.uai", 8), " ORDER BY d.id LIMIT ?7")));
  std::optional<int64_t> seen_before;
  if (f.seen_before.has_value()) seen_before = Unix(*f.seen_before);
  st.BindAll(f.after, f.uai, f.departement, static_cast<int64_t>(f.kind), seen_before, f.unassigned,
             f.limit, sql::ScopeParam(*db, f.scope));
  return sql::CollectRows(st, DeviceFromRow);
}

absl::StatusOr<DeviceDetails> SqlStore::GetDevice(const std::string& id_or_serial,
                                                  const Scope& scope) {
  ReaderLease db = AcquireReader();
  DeviceDetails details;
  {
    const std::string kInScope = absl::StrCat(" AND ", sql::ScopeSql(*db, scope, "d.uai", 2));
    const std::string scope_param = sql::ScopeParam(*db, scope);
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
  PARC_ASSIGN_OR_RETURN(
      Statement recent,
      db->Prepare("SELECT coalesce(c.recent_checkins, ''), d.seen_days, d.seen_day FROM devices d "
                  "LEFT JOIN device_checkins c ON c.device_id = d.id WHERE d.id = ?"));
  recent.Bind(1, details.device.id());
  PARC_ASSIGN_OR_RETURN(bool has_recent, recent.Step());
  if (has_recent) {
    details.seen_days = static_cast<uint32_t>(recent.Int(1));
    details.seen_day = recent.Int(2);
    for (absl::string_view t : absl::StrSplit(recent.Text(0), ',', absl::SkipEmpty())) {
      int64_t secs = 0;
      if (absl::SimpleAtoi(t, &secs)) details.recent_checkins.push_back(FromUnix(secs));
    }
  }
  PARC_ASSIGN_OR_RETURN(
      Statement inv,
      db->Prepare("SELECT i.hardware, i.received_at, s.packages, i.id, s.base_hash, b.packages "
                  "FROM devices d JOIN inventories i ON i.id = d.inventory_id "
                  "JOIN software_sets s ON s.hash = i.software_hash "
                  "LEFT JOIN software_sets b ON b.hash = s.base_hash WHERE d.id = ?"));
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
    PARC_ASSIGN_OR_RETURN(std::vector<int64_t> history,
                          HistoryChain(db.get(), inv.Int(3), kMaxInventoriesPerDevice));
    details.inventory_history = static_cast<uint32_t>(history.size());
  }
  return details;
}

namespace {

// The retention purge's first step: the inventories received before cutoff, except each
// device's latest (the one its devices row names). An anti-join: SQLite indexes the devices'
// inventory_id for it on the fly, PostgreSQL hashes them, where NOT IN over 300,000 ids would
// have PostgreSQL scan them once per inventory when they exceed its work_mem. Returns how many
// went.
absl::StatusOr<int64_t> DeleteOldInventories(sql::Connection* db, absl::Time cutoff) {
  PARC_ASSIGN_OR_RETURN(Statement del,
                        db->Prepare("DELETE FROM inventories WHERE id IN (SELECT i.id FROM "
                                    "inventories i LEFT JOIN devices d ON d.inventory_id = i.id "
                                    "WHERE i.received_at < ?1 AND d.id IS NULL)"));
  PARC_RETURN_IF_ERROR(del.Bind(1, Unix(cutoff)).Run());
  return db->Changes();
}

}  // namespace

SqlStore::SoftwareWatch SqlStore::WatchSoftwareSets() {
  auto watch = std::make_shared<absl::flat_hash_set<std::string>>();
  std::lock_guard<std::mutex> lock(software_watches_mu_);
  software_watches_.push_back(watch);
  software_watched_.store(true);
  return watch;
}

void SqlStore::UnwatchSoftwareSets(const SoftwareWatch& watch) {
  std::lock_guard<std::mutex> lock(software_watches_mu_);
  software_watches_.erase(std::remove(software_watches_.begin(), software_watches_.end(), watch),
                          software_watches_.end());
  software_watched_.store(!software_watches_.empty());
}

void SqlStore::SoftwareSetUsed(const std::string& hash) {
  if (!software_watched_.load(std::memory_order_relaxed)) return;  // nearly always
  std::lock_guard<std::mutex> lock(software_watches_mu_);
  for (const SoftwareWatch& watch : software_watches_) watch->insert(hash);
}

// SQLite keeps no index of the inventories by software set (schema v14): each inventory
// stored would pay for it, and only this job reads it. The sets no inventory uses are found by
// one scan of the inventories on a reader, which holds up no write, and deleted on the writer
// unless an inventory stored since the scan started refers to one: the watch, registered
// before the inventories' delete, so before the scan's snapshot, collects the sets of every
// inventory the writer stores after it. A delta stored since against a set found unused keeps
// it too (the delete checks).
void SqlStore::PurgeInventoryHistorySqlite(absl::Time cutoff, StoreCallback<int64_t> done) {
  SoftwareWatch watch = WatchSoftwareSets();
  std::promise<absl::StatusOr<int64_t>> purged;
  SubmitFor<int64_t>([cutoff](sql::Connection* db) { return DeleteOldInventories(db, cutoff); },
                     [&purged](absl::StatusOr<int64_t> r) { purged.set_value(std::move(r)); });
  absl::StatusOr<int64_t> deleted = purged.get_future().get();
  std::vector<std::string> unused;
  if (deleted.ok()) {
    absl::Status read = [&]() -> absl::Status {
      ReaderLease db = AcquireReader();
      PARC_ASSIGN_OR_RETURN(
          Statement st,
          db->Prepare("SELECT hash FROM software_sets s WHERE hash NOT IN (SELECT software_hash "
                      "FROM inventories) AND NOT EXISTS (SELECT 1 FROM software_sets d WHERE "
                      "d.base_hash = s.hash)"));
      return sql::ForEachRow(st, [&](const Statement& row) { unused.push_back(row.Text(0)); });
    }();
    if (!read.ok()) deleted = read;
  }
  if (!deleted.ok()) {
    UnwatchSoftwareSets(watch);
    done(std::move(deleted));
    return;
  }
  if (before_software_sweep_) before_software_sweep_();
  const int64_t count = *deleted;
  SubmitFor<int64_t>(
      [unused = std::move(unused), watch, count](sql::Connection* db) -> absl::StatusOr<int64_t> {
        // Before any delete: a set this write deletes must not be taken as held after it.
        db->ForgetSoftwareSets();
        bool any = false;
        for (const std::string& hash : unused) {
          if (watch->contains(hash)) continue;  // taken up again since the scan
          PARC_ASSIGN_OR_RETURN(
              Statement del,
              db->Prepare("DELETE FROM software_sets WHERE hash = ?1 AND NOT EXISTS (SELECT 1 "
                          "FROM software_sets d WHERE d.base_hash = ?1)"));
          PARC_RETURN_IF_ERROR(del.Bind(1, hash).Run());
          any = any || db->Changes() > 0;
        }
        if (any) db->Notify(kCacheChannel, "software_sets");
        return count;
      },
      [this, watch, done = std::move(done)](absl::StatusOr<int64_t> r) {
        UnwatchSoftwareSets(watch);
        cache_.InvalidateSoftwareSets();  // some may be gone
        done(std::move(r));
      });
}

void SqlStore::PurgeInventoryHistory(absl::Time cutoff, StoreCallback<int64_t> done) {
  if (!postgres_) {
    PurgeInventoryHistorySqlite(cutoff, std::move(done));
    return;
  }
  SubmitFor<int64_t>(
      [cutoff](sql::Connection* db) -> absl::StatusOr<int64_t> {
        PARC_ASSIGN_OR_RETURN(int64_t deleted, DeleteOldInventories(db, cutoff));
        db->ForgetSoftwareSets();  // before the delete, as on SQLite
        PARC_ASSIGN_OR_RETURN(
            Statement orphans,
            db->Prepare("DELETE FROM software_sets WHERE NOT EXISTS (SELECT 1 FROM inventories i "
                        "WHERE i.software_hash = software_sets.hash) AND NOT EXISTS (SELECT 1 "
                        "FROM software_sets d WHERE d.base_hash = software_sets.hash)"));
        PARC_RETURN_IF_ERROR(orphans.Run());
        db->Notify(kCacheChannel, "software_sets");
        return deleted;
      },
      [this, done = std::move(done)](absl::StatusOr<int64_t> r) {
        cache_.InvalidateSoftwareSets();  // some may be gone
        done(std::move(r));
      });
}

}  // namespace parc::server
