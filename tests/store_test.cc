#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/grpc_util.h"
#include "common/inventory_util.h"
#include "common/sqlite.h"
#include "common/status_macros.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/establishment_import.h"
#include "server/postgres/sql_connection.h"
#include "server/sql/engine.h"
#include "server/sql_store.h"
#include "server/sqlite/connection.h"
#include "server/sqlite/engine.h"
#include "server/sqlite/schema.h"
#include "tests/test_util.h"
#include "tools/sim/fleet.h"

namespace parc::server {
namespace {

using parc::testing::TempDir;

template <typename T>
absl::StatusOr<T> Wait(std::function<void(StoreCallback<T>)> submit) {
  std::promise<absl::StatusOr<T>> p;
  submit([&](absl::StatusOr<T> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

// The store at path: a SQLite file, or on PostgreSQL (PARC_TEST_DATABASE=postgresql) a
// database of its own for each path, the same one when the path is opened again.
std::map<std::string, std::string>& StoreDatabases() {
  static std::map<std::string, std::string> databases;
  return databases;
}

std::unique_ptr<SqlStore> OpenStore(
    const std::string& path, const std::function<void(SqlStore::Options&)>& configure = nullptr) {
  std::map<std::string, std::string>& databases = StoreDatabases();
  SqlStore::Options o;
  o.path = path;
  if (configure) configure(o);
  if (parc::testing::TestOnPostgres()) {
    if (databases[path].empty()) databases[path] = parc::testing::NewTestDatabase();
    o.postgres = databases[path];
  }
  o.readers = 2;
  auto store = SqlStore::Open(o);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// A SQLite file at path with the schema up to version and no further (upgrade tests).
std::unique_ptr<common::Database> DatabaseAtVersion(const std::string& path, int version) {
  auto db = common::Database::Open(path, {});
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return nullptr;
  std::vector<common::Migration> upto(sqlite::Migrations().begin(),
                                      sqlite::Migrations().begin() + version);
  EXPECT_EQ(upto.back().version, version);
  absl::Status migrated = common::Migrate(db->get(), upto);
  EXPECT_TRUE(migrated.ok()) << migrated;
  return migrated.ok() ? std::move(*db) : nullptr;
}

// A connection of its own to the database of the store opened at path (either engine), to
// read rows directly.
std::unique_ptr<sql::Connection> OpenStoreDatabase(const std::string& path) {
  if (parc::testing::TestOnPostgres()) {
    auto db = pg::Connection::Open(StoreDatabases()[path]);
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return nullptr;
    return std::make_unique<pg::SqlConnection>(std::move(*db));
  }
  auto db = common::Database::Open(path, {});
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return nullptr;
  return std::make_unique<sqlite::Connection>(std::move(*db));
}

std::vector<parc::v1::Establishment> FixtureEstablishments() {
  auto f = ParseEstablishmentsCsv(
      parc::testing::ReadFileOrDie(parc::testing::DataPath("annuaire-occitanie.csv")));
  EXPECT_TRUE(f.ok());
  return f->rows;
}

EnrollmentTokenRecord Token(const std::string& id, const std::string& uai, absl::Time now) {
  EnrollmentTokenRecord t;
  t.id = id;
  t.secret_hash = common::Sha256Hex("secret");
  t.uai = uai;
  t.created_at = now;
  t.expires_at = now + absl::Hours(1);
  return t;
}

// A published "mcnl" bundle declaring what it needs on a device (fleet health's reference).
BundleRecord BundleWithRequirements(char digest, absl::Time published, absl::Time expires,
                                    uint64_t installed_bytes, uint64_t min_ram_bytes) {
  BundleRecord bundle;
  bundle.name = "mcnl";
  bundle.version = "2027.1";
  bundle.sequence = 1;
  bundle.manifest_sha256 = std::string(64, digest);
  bundle.signed_manifest = "m";
  bundle.published_at = published;
  bundle.expires_at = expires;
  bundle.installed_bytes = installed_bytes;
  bundle.min_ram_bytes = min_ram_bytes;
  return bundle;
}

EnrollInput Enrollment(const std::string& token_id, const std::string& hw_key,
                       const std::string& device_id, absl::Time now) {
  EnrollInput in;
  in.token_id = token_id;
  in.token_secret_hash = common::Sha256Hex("secret");
  in.hw_key = hw_key;
  in.serial = "SER-" + hw_key;
  in.new_device_id = device_id;
  in.secret_hash = common::Sha256Hex(device_id);
  in.now = now;
  return in;
}

TEST(SqlStore, MigratesAnEmptyFileAndReopens) {
  // Writes the SQLite file directly; postgres_test covers PostgreSQL's schema and counts.
  if (parc::testing::TestOnPostgres()) GTEST_SKIP() << "SQLite file test";
  TempDir dir;
  const std::string path = dir.Sub("parc.db");
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    auto counts = Wait<ImportCounts>(
        [&](auto cb) { store->UpsertEstablishments(FixtureEstablishments(), now, cb); });
    ASSERT_TRUE(counts.ok()) << counts.status();
    EXPECT_EQ(counts->inserted, 9u);
  }
  {
    common::Database::Options o;
    auto db = common::Database::Open(path, o);
    ASSERT_TRUE(db.ok());
    EXPECT_EQ(*common::SchemaVersion(db->get()), sqlite::Migrations().back().version);
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  auto list = store->ListEstablishments({}, Scope::Region());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 9u);
  // Re-import: no duplicates, nothing changed.
  auto again = Wait<ImportCounts>(
      [&](auto cb) { store->UpsertEstablishments(FixtureEstablishments(), now, cb); });
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->inserted, 0u);
  EXPECT_EQ(again->unchanged, 9u);
  auto rows = FixtureEstablishments();
  rows[0].set_name("Renamed");
  auto updated = Wait<ImportCounts>([&](auto cb) { store->UpsertEstablishments(rows, now, cb); });
  EXPECT_EQ(updated->updated, 1u);
  EXPECT_EQ(store->ListEstablishments({}, Scope::Region())->size(), 9u);
}

TEST(SqlStore, RefusesANewerSchemaAndNonDatabaseFiles) {
  TempDir dir;
  {
    common::Database::Options o;
    auto db = common::Database::Open(dir.Sub("new.db"), o);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA user_version=999").ok());
  }
  SqlStore::Options o;
  o.path = dir.Sub("new.db");
  auto store = SqlStore::Open(o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("newer"), absl::string_view::npos);

  parc::testing::WriteFile(dir.Sub("garbage.db"), std::string(8192, 'x'));
  o.path = dir.Sub("garbage.db");
  store = SqlStore::Open(o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
}

TEST(SqlStore, GroupCommitsConcurrentWritesAndIsolatesFailures) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(FixtureEstablishments(), now, cb);
              }).ok());
  auto token = Token("etok", "0310036W", now);
  ASSERT_TRUE(Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(token, cb); }).ok());

  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string key = absl::StrCat("hw", t, "-", i);
        EnrollInput in = Enrollment("etok", key, "d" + key, now);
        // Every tenth enrollment uses a wrong secret: it must fail alone.
        if (i % 10 == 0) in.token_secret_hash = common::Sha256Hex("wrong");
        auto r = Wait<EnrollOutcome>([&](auto cb) { store->Enroll(in, cb); });
        (r.ok() ? ok : failed)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), kThreads * 3);
  EXPECT_EQ(ok.load(), kThreads * kPerThread - kThreads * 3);
  DeviceFilter all(Scope::Region());
  all.limit = 10000;
  EXPECT_EQ(store->ListDevices(all)->size(), static_cast<size_t>(ok.load()));
  auto tokens = store->ListEnrollmentTokens(Scope::Region());
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ((*tokens)[0].uses, static_cast<uint32_t>(ok.load()));  // failed uses rolled back
  // Fewer transactions than writes: concurrent writes were batched.
  EXPECT_LT(store->batches_committed(), store->writes_applied());
}

TEST(SqlStore, CheckpointsInTheBackgroundKeepTheWalBoundedAndLoseNothing) {
  TempDir dir;
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  SqlStore::Options o;
  o.path = dir.Sub("parc.db");
  o.readers = 2;
  o.checkpoint_pages = 16;   // 64 KiB
  o.wal_restart_pages = 64;  // 256 KiB
  constexpr int kDevices = 400;
  {
    auto store = SqlStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                  (*store)->UpsertEstablishments(FixtureEstablishments(), now, cb);
                }).ok());
    ASSERT_TRUE(Wait<bool>([&](auto cb) {
                  (*store)->CreateEnrollmentToken(Token("etok", "0310036W", now), cb);
                }).ok());
    for (int i = 0; i < kDevices; ++i) {
      std::string key = absl::StrCat("hw", i);
      ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                    (*store)->Enroll(Enrollment("etok", key, "d" + key, now), cb);
                  }).ok());
    }
    // Check-ins from a reader's point of view while the WAL is checkpointed behind them.
    for (int round = 0; round < 5; ++round) {
      for (int i = 0; i < kDevices; ++i) {
        ASSERT_TRUE(Wait<bool>([&](auto cb) {
                      (*store)->RecordCheckIn(
                          CheckInInput{absl::StrCat("dhw", i), absl::StrCat("1.", round),
                                       now + absl::Seconds(round), std::nullopt},
                          Durability::kDurable, cb);
                    }).ok());
      }
    }
    EXPECT_GT((*store)->checkpoints(), 0u);
    // The WAL is reused after each checkpoint instead of growing with every write
    // (2,400 commits of at least one 4 KiB page each would make it ~10 MB).
    struct stat st {};
    ASSERT_EQ(stat((o.path + "-wal").c_str(), &st), 0);
    EXPECT_LT(st.st_size, 2 << 20);
  }
  // Reopened: every device with its last check-in.
  auto store = SqlStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  DeviceFilter all(Scope::Region());
  all.limit = 10000;
  auto devices = (*store)->ListDevices(all);
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), static_cast<size_t>(kDevices));
  for (const auto& d : *devices) EXPECT_EQ(d.agent_version(), "1.4") << d.id();
}

TEST(SqlStore, PreassignmentIsAllOrNothing) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(FixtureEstablishments(), now, cb);
              }).ok());
  std::vector<Preassignment> rows = {{2, "A1", "0310036W"}, {3, "A2", "0000000A"}};
  auto r = Wait<ImportCounts>(
      [&](auto cb) { store->UpsertPreassignments(rows, now, Scope::Region(), cb); });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 3"), absl::string_view::npos);
  // The first row was rolled back with the rest.
  rows.pop_back();
  r = Wait<ImportCounts>(
      [&](auto cb) { store->UpsertPreassignments(rows, now, Scope::Region(), cb); });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->inserted, 1u);
}

// Each line counts in file order: a serial listed twice is updated by its second line, and an
// enrolled, unassigned device is placed by its serial's first line (PostgreSQL takes a region's
// list in batches, SQLite row by row: the same outcome).
TEST(SqlStore, ADeliveryListCountsEachLineAndPlacesADeviceOnce) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(FixtureEstablishments(), now, cb);
              }).ok());
  ASSERT_TRUE(
      Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token("etok", "", now), cb); }).ok());
  ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                store->Enroll(Enrollment("etok", "hw1", "d1", now), cb);
              }).ok());
  ASSERT_EQ(store->GetDeviceAuth("d1")->uai, "");
  const std::vector<Preassignment> rows = {{2, "SER-hw1", "0310036W"},
                                           {3, "X1", "0340001S"},
                                           {4, "X1", "0310036W"},
                                           {5, "SER-hw1", "0340001S"}};
  auto r = Wait<ImportCounts>(
      [&](auto cb) { store->UpsertPreassignments(rows, now, Scope::Region(), cb); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 2u);
  EXPECT_EQ(r->updated, 2u);
  EXPECT_EQ(r->unchanged, 0u);
  EXPECT_EQ(r->placed_devices, 1u);
  EXPECT_EQ(store->GetDeviceAuth("d1")->uai, "0310036W");
  r = Wait<ImportCounts>(
      [&](auto cb) { store->UpsertPreassignments(rows, now, Scope::Region(), cb); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->updated, 4u);
  EXPECT_EQ(r->placed_devices, 0u);
  // Unchanged lines count as such.
  r = Wait<ImportCounts>([&](auto cb) {
    store->UpsertPreassignments({{2, "X1", "0310036W"}, {3, "X2", "0340001S"}}, now,
                                Scope::Region(), cb);
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->unchanged, 1u);
  EXPECT_EQ(r->inserted, 1u);
}

TEST(SqlStore, ListingsAndLookupsAreFilteredByScopeInsideTheStore) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(FixtureEstablishments(), now, cb);
              }).ok());
  // Tokens: region-wide, one lycée in Haute-Garonne (31), one in Hérault (34).
  for (const auto& [id, uai] : std::vector<std::pair<std::string, std::string>>{
           {"t-region", ""}, {"t-31", "0310036W"}, {"t-34", "0340001S"}}) {
    ASSERT_TRUE(
        Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token(id, uai, now), cb); }).ok());
  }
  ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                store->Enroll(Enrollment("t-31", "hw-31", "d31", now), cb);
              }).ok());
  ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                store->Enroll(Enrollment("t-34", "hw-34", "d34", now), cb);
              }).ok());
  auto dep31 = Scope::Parse("departement:31");
  ASSERT_TRUE(dep31.ok());

  auto tokens = store->ListEnrollmentTokens(*dep31);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ((*tokens)[0].id, "t-31");
  EXPECT_EQ(store->ListEnrollmentTokens(Scope::Region())->size(), 3u);
  // Out of scope: not found, and left as it was.
  for (const char* id : {"t-34", "t-region"}) {
    auto revoked = Wait<EnrollmentTokenRecord>(
        [&](auto cb) { store->RevokeEnrollmentToken(id, *dep31, now, cb); });
    EXPECT_TRUE(absl::IsNotFound(revoked.status())) << id << ": " << revoked.status();
  }
  auto all_tokens = store->ListEnrollmentTokens(Scope::Region());
  ASSERT_TRUE(all_tokens.ok());
  for (const auto& t : *all_tokens) {
    EXPECT_FALSE(t.revoked_at.has_value()) << t.id;
  }
  EXPECT_TRUE(Wait<EnrollmentTokenRecord>([&](auto cb) {
                store->RevokeEnrollmentToken("t-31", *dep31, now, cb);
              }).ok());

  DeviceFilter devices(*dep31);
  auto listed = store->ListDevices(devices);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id(), "d31");
  EXPECT_TRUE(store->GetDevice("d31", *dep31).ok());
  EXPECT_TRUE(absl::IsNotFound(store->GetDevice("d34", *dep31).status()));
  EXPECT_TRUE(absl::IsNotFound(
      Wait<parc::v1::Device>([&](auto cb) { store->RetireDevice("d34", *dep31, cb); }).status()));
  EXPECT_TRUE(store->GetDevice("d34", Scope::Region()).ok());

  auto establishments = store->ListEstablishments({}, *dep31);
  ASSERT_TRUE(establishments.ok());
  EXPECT_FALSE(establishments->empty());
  for (const auto& e : *establishments) EXPECT_EQ(e.departement(), "31") << e.uai();

  // A delivery list of a Haute-Garonne operator: a serial enrolled in Hérault and a row for an
  // Hérault establishment are refused, each on its line; the rest may go.
  std::vector<Preassignment> rows = {
      {2, "SER-hw-34", "0310036W"}, {3, "NEW-1", "0340001S"}, {4, "NEW-2", "0310024H"}};
  auto refused = store->PreassignmentsOutOfScope(rows, *dep31);
  ASSERT_TRUE(refused.ok()) << refused.status();
  ASSERT_EQ(refused->size(), 2u);
  EXPECT_EQ((*refused)[0].first, 2u);
  EXPECT_NE((*refused)[0].second.find("enrolled"), std::string::npos) << (*refused)[0].second;
  EXPECT_EQ((*refused)[1].first, 3u);
  EXPECT_NE((*refused)[1].second.find("0340001S"), std::string::npos) << (*refused)[1].second;
  auto applied =
      Wait<ImportCounts>([&](auto cb) { store->UpsertPreassignments(rows, now, *dep31, cb); });
  EXPECT_TRUE(absl::IsFailedPrecondition(applied.status())) << applied.status();
  rows = {rows[2]};
  applied =
      Wait<ImportCounts>([&](auto cb) { store->UpsertPreassignments(rows, now, *dep31, cb); });
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->inserted, 1u);
}

// Check-ins answered before their write (Durability::kBehind) that change nothing on their
// devices row wait for a flush: once enough are waiting, once the oldest has waited the flush
// interval, and when the store closes; one that changes the row (what the reports count) is
// written at once. They are written a chunk at a time, and each device ends with its latest
// time and agent version, whatever characters the version holds.
TEST(SqlStore, CheckInsWrittenBehindWaitForAFlushAndKeepEachDevicesLatest) {
  TempDir dir;
  auto configure = [](absl::Duration interval) {
    return [interval](SqlStore::Options& o) {
      o.checkin_flush_interval = interval;
      o.checkin_flush_size = 3;
      o.checkin_write_chunk = 2;
    };
  };
  auto store = OpenStore(dir.Sub("parc.db"), configure(absl::Hours(1)));
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(FixtureEstablishments(), now, cb);
              }).ok());
  ASSERT_TRUE(Wait<bool>([&](auto cb) {
                store->CreateEnrollmentToken(Token("t", "0310036W", now), cb);
              }).ok());
  for (const char* d : {"d1", "d2"}) {
    ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                  store->Enroll(Enrollment("t", std::string("hw-") + d, d, now), cb);
                }).ok());
  }
  auto behind = [&](const char* id, int seconds, const std::string& version) {
    bool answered = false;
    store->RecordCheckIn({id, version, now + absl::Seconds(seconds), std::nullopt},
                         Durability::kBehind, [&](absl::StatusOr<bool> r) { answered = r.ok(); });
    EXPECT_TRUE(answered);  // at once
  };
  auto latest = [&](const char* id) {
    auto d = store->GetDevice(id, Scope::Region());
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() && !d->recent_checkins.empty() ? d->recent_checkins.front() : absl::Time();
  };
  auto wait_for_latest = [&](const char* id, int seconds) {
    for (int i = 0; i < 500 && latest(id) != now + absl::Seconds(seconds); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    return latest(id);
  };
  // The devices seen today, with their versions; the check-in cache knows it.
  for (const char* id : {"d1", "d2"}) {
    ASSERT_TRUE(Wait<bool>([&](auto cb) {
                  store->RecordCheckIn({id, "0.9", now + absl::Seconds(5), std::nullopt},
                                       Durability::kDurable, cb);
                }).ok());
    ASSERT_TRUE(store->GetDeviceAuth(id).ok());
  }

  const uint64_t writes = store->writes_applied();
  behind("d1", 10, "0.9");
  behind("d1", 20, "0.9");
  // Two waiting, an hour to go: nothing written yet.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(store->writes_applied(), writes);
  EXPECT_EQ(store->WaitingCheckIns(), 2u);
  EXPECT_EQ(latest("d1"), now + absl::Seconds(5));
  // The third makes a flush: two writes (chunks of two).
  behind("d2", 15, "0.9");
  EXPECT_EQ(wait_for_latest("d2", 15), now + absl::Seconds(15));
  EXPECT_EQ(store->writes_applied(), writes + 2);
  EXPECT_EQ(store->WaitingCheckIns(), 0u);
  auto d1 = store->GetDevice("d1", Scope::Region());
  ASSERT_TRUE(d1.ok()) << d1.status();
  EXPECT_EQ(d1->device.last_seen_at().seconds(), absl::ToUnixSeconds(now) + 20);
  ASSERT_GE(d1->recent_checkins.size(), 2u);
  EXPECT_EQ(d1->recent_checkins[0], now + absl::Seconds(20));

  // Another agent version changes the devices row: written without waiting for the others.
  const std::string odd = "1.0 \"beta\" \\ {x,y} é";
  behind("d1", 25, odd);
  EXPECT_EQ(wait_for_latest("d1", 25), now + absl::Seconds(25));
  d1 = store->GetDevice("d1", Scope::Region());
  ASSERT_TRUE(d1.ok());
  EXPECT_EQ(d1->device.agent_version(), odd);

  // Closing writes what waits.
  behind("d2", 30, "0.9");
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(store->WaitingCheckIns(), 1u);
  store.reset();
  store = OpenStore(dir.Sub("parc.db"), configure(absl::Milliseconds(50)));
  auto d2 = store->GetDevice("d2", Scope::Region());
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(d2->device.agent_version(), "0.9");
  ASSERT_EQ(d2->recent_checkins.size(), 3u);
  EXPECT_EQ(d2->recent_checkins[0], now + absl::Seconds(30));

  // A lone check-in is written once it has waited the interval.
  ASSERT_TRUE(store->GetDeviceAuth("d1").ok());
  behind("d1", 40, odd);
  EXPECT_EQ(wait_for_latest("d1", 40), now + absl::Seconds(40));
  EXPECT_EQ(store->UnrecordedCheckIns(), 0u);
}

// A store with the fixture's establishments and one device, "d1", enrolled at now in
// 0310036W.
std::unique_ptr<SqlStore> OpenStoreWithDeviceD1(const std::string& path, absl::Time now) {
  auto store = OpenStore(path);
  if (store == nullptr) return nullptr;
  bool ok = Wait<ImportCounts>([&](auto cb) {
              store->UpsertEstablishments(FixtureEstablishments(), now, cb);
            }).ok() &&
            Wait<bool>([&](auto cb) {
              store->CreateEnrollmentToken(Token("t", "0310036W", now), cb);
            }).ok() &&
            Wait<EnrollOutcome>([&](auto cb) {
              store->Enroll(Enrollment("t", "hw-d1", "d1", now), cb);
            }).ok();
  EXPECT_TRUE(ok);
  return ok ? std::move(store) : nullptr;
}

// Fleet health counts the days a device checked in over the last 30, from check-ins alone.
TEST(SqlStore, DaysSeenOverTheLast30) {
  TempDir dir;
  const absl::Time day0 = absl::FromUnixSeconds(1790000000 / 86400 * 86400);  // 00:00 UTC
  auto store = OpenStoreWithDeviceD1(dir.Sub("parc.db"), day0);
  ASSERT_NE(store, nullptr);
  auto at = [&](int day, int hour) { return day0 + absl::Hours(24 * day + hour); };
  auto checkin = [&](absl::Time t) {
    ASSERT_TRUE(Wait<bool>([&](auto cb) {
                  store->RecordCheckIn({"d1", "1.0", t, std::nullopt}, Durability::kDurable, cb);
                }).ok());
  };
  auto days_seen = [&](absl::Time now) {
    auto d = store->GetDevice("d1", Scope::Region());
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? DaysSeenInLast30(d->seen_days, d->seen_day, now) : 99u;
  };
  EXPECT_EQ(days_seen(at(0, 12)), 0u);
  checkin(at(0, 8));
  checkin(at(0, 17));  // the same day counts once
  checkin(at(1, 9));
  checkin(at(5, 9));
  checkin(at(3, 9));  // a delayed write, older than the latest: its day still counts
  EXPECT_EQ(days_seen(at(5, 23)), 4u);
  EXPECT_EQ(days_seen(at(29, 12)), 4u);  // day 0 is the 30th day back
  EXPECT_EQ(days_seen(at(30, 12)), 3u);
  EXPECT_EQ(days_seen(at(40, 12)), 0u);
  checkin(at(60, 9));  // back after two months: that day only
  EXPECT_EQ(days_seen(at(60, 10)), 1u);
  checkin(at(61, 9));
  EXPECT_EQ(days_seen(at(61, 10)), 2u);
}

// A check-in writes its exact time to device_checkins, and the devices row only when something
// on it changes: the first check-in of a later day (the day the reports count by), another
// agent version, another free space (kept to 256 MiB). What a technician reads (last contact,
// recent check-ins, devices unseen since a time) is the exact time either way.
TEST(SqlStore, ACheckInRewritesTheDeviceRowOnlyWhenItChanges) {
  TempDir dir;
  const absl::Time day0 = absl::FromUnixSeconds(1790000000 / 86400 * 86400);  // 00:00 UTC
  auto store = OpenStoreWithDeviceD1(dir.Sub("parc.db"), day0);
  ASSERT_NE(store, nullptr);
  auto at = [&](int day, int hour) { return day0 + absl::Hours(24 * day + hour); };
  const uint64_t gib = uint64_t{1} << 30, mib = uint64_t{1} << 20;
  auto checkin = [&](absl::Time t, const std::string& version, uint64_t free) {
    // As the agent service does: the device's record (cached after the first read) first.
    ASSERT_TRUE(store->GetDeviceAuth("d1").ok());
    ASSERT_TRUE(Wait<bool>([&](auto cb) {
                  store->RecordCheckIn({"d1", version, t, free}, Durability::kDurable, cb);
                }).ok());
  };
  auto db = OpenStoreDatabase(dir.Sub("parc.db"));
  ASSERT_NE(db, nullptr);
  // The devices row as stored: last_seen_at, agent_version, free_bytes.
  auto row = [&]() -> std::tuple<int64_t, std::string, int64_t> {
    auto st = db->Prepare("SELECT last_seen_at, agent_version, free_bytes FROM devices");
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok()) return {};
    auto found = st->Step();
    EXPECT_TRUE(found.ok() && *found);
    if (!found.ok() || !*found) return {};
    return {st->Int(0), st->Text(1), st->Int(2)};
  };
  auto last_seen = [&]() {
    auto d = store->GetDevice("d1", Scope::Region());
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? absl::FromUnixSeconds(d->device.last_seen_at().seconds())
                  : absl::InfinitePast();
  };
  const int64_t t8 = absl::ToUnixSeconds(at(0, 8));
  checkin(at(0, 8), "1.0", 5 * gib + 100 * mib);
  EXPECT_EQ(row(), std::make_tuple(t8, std::string("1.0"), int64_t{5 * gib}));
  checkin(at(0, 17), "1.0", 5 * gib + 200 * mib);  // the same day, version and rounded space
  EXPECT_EQ(row(), std::make_tuple(t8, std::string("1.0"), int64_t{5 * gib}));
  EXPECT_EQ(last_seen(), at(0, 17));
  checkin(at(0, 12), "1.0", 5 * gib);  // a delayed write does not take the last contact back
  EXPECT_EQ(last_seen(), at(0, 17));
  auto d1 = store->GetDevice("d1", Scope::Region());
  ASSERT_TRUE(d1.ok());
  EXPECT_EQ(d1->recent_checkins, (std::vector<absl::Time>{at(0, 12), at(0, 17), at(0, 8)}));
  // Devices unseen since a time compare with the exact last contact.
  DeviceFilter unseen(Scope::Region());
  unseen.seen_before = at(0, 17);
  EXPECT_EQ(store->ListDevices(unseen)->size(), 0u);
  unseen.seen_before = at(0, 17) + absl::Seconds(1);
  EXPECT_EQ(store->ListDevices(unseen)->size(), 1u);
  checkin(at(0, 18), "1.1", 5 * gib);  // another version
  EXPECT_EQ(row(), std::make_tuple(t8, std::string("1.1"), int64_t{5 * gib}));
  checkin(at(0, 19), "1.1", 4 * gib + 900 * mib);  // less space
  EXPECT_EQ(row(), std::make_tuple(t8, std::string("1.1"), int64_t{4 * gib + 768 * mib}));
  checkin(at(1, 9), "1.1", 4 * gib + 900 * mib);  // the next day
  EXPECT_EQ(std::get<0>(row()), absl::ToUnixSeconds(at(1, 9)));
  EXPECT_EQ(last_seen(), at(1, 9));
  // An inventory's free space, then a check-in with the space of before: the check-in's is
  // the latest, and the row takes it again.
  InventoryInput inv;
  inv.device_id = "d1";
  parc::v1::SoftwareList sw;
  sw.add_packages()->set_name("pkg");
  inv.software_hash = common::SoftwareHash(sw);
  inv.software = std::make_shared<const parc::v1::SoftwareList>(sw);
  inv.hardware.set_system_free_bytes(10 * gib);
  inv.inventory_hash = common::InventoryHash(inv.hardware, inv.software_hash);
  inv.received_at = inv.collected_at = at(1, 10);
  ASSERT_TRUE(Wait<bool>([&](auto cb) { store->StoreInventory(inv, cb); }).ok());
  EXPECT_EQ(std::get<2>(row()), int64_t{10 * gib});
  checkin(at(1, 11), "1.1", 4 * gib + 900 * mib);
  EXPECT_EQ(std::get<2>(row()), int64_t{4 * gib + 768 * mib});
  // The deployment report counts the device as seen on day 1.
  auto report = store->DeploymentReport("mcnl", 1, "region", at(1, 0), Scope::Region());
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->total().devices(), 1u);
  EXPECT_EQ(report->total().never_seen(), 0u);
  EXPECT_EQ(report->total().stale(), 0u);
  report = store->DeploymentReport("mcnl", 1, "region", at(2, 0), Scope::Region());
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->total().stale(), 1u);
  // Retiring the device takes its check-in row along.
  ASSERT_TRUE(Wait<parc::v1::Device>([&](auto cb) {
                store->RetireDevice("d1", Scope::Region(), cb);
              }).ok());
  auto left = db->Prepare("SELECT count(*) FROM device_checkins");
  ASSERT_TRUE(left.ok()) << left.status();
  ASSERT_TRUE(*left->Step());
  EXPECT_EQ(left->Int(0), 0);
}

// Version 13 moves the check-in times to device_checkins: a database of version 12 keeps each
// device's last contact and recent check-ins, and its free space is kept to 256 MiB.
TEST(SqlStore, Version13MovesTheCheckInTimes) {
  if (parc::testing::TestOnPostgres()) GTEST_SKIP() << "SQLite file test (postgres_test: v9)";
  TempDir dir;
  const std::string path = dir.Sub("parc.db");
  {
    auto db = DatabaseAtVersion(path, 12);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Exec("INSERT INTO devices(id, secret_hash, hw_key, kind, enrolled_at, "
                         "last_enrolled_at, last_seen_at, recent_checkins, free_bytes) VALUES "
                         "('d1', 's', 'h1', 1, 0, 0, 1790000300, '1790000300,1790000200', "
                         "5368709120 + 104857600)")
                    .ok());
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  auto d1 = store->GetDevice("d1", Scope::Region());
  ASSERT_TRUE(d1.ok()) << d1.status();
  EXPECT_EQ(d1->device.last_seen_at().seconds(), 1790000300);
  EXPECT_EQ(d1->recent_checkins, (std::vector<absl::Time>{absl::FromUnixSeconds(1790000300),
                                                          absl::FromUnixSeconds(1790000200)}));
  auto db = OpenStoreDatabase(path);
  ASSERT_NE(db, nullptr);
  auto st = db->Prepare("SELECT free_bytes FROM devices");
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Int(0), int64_t{5368709120});
}

// Fleet health: the report, read from the counts the triggers keep, equals the same indicators
// computed here from what each device sent, after every kind of write (enrollment, inventories
// before and after a bundle declaring requirements, check-ins carrying free space, a device
// retired, the end-of-support table changed), per establishment, per département and within a
// scope.
TEST(SqlStore, HealthReportEqualsAScanOfTheFleet) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  ASSERT_NE(store, nullptr);
  const absl::Time now =
      absl::FromCivil(absl::CivilSecond(2026, 11, 30, 12, 0, 0), absl::UTCTimeZone());
  const absl::Time t0 = now - absl::Hours(24 * 60);
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(FixtureEstablishments(), t0, cb);
              }).ok());
  const std::vector<std::string> uais = {"0310036W", "0310024H", "0311234Y",
                                         "0340001S", "0340123Z", "0120005R"};
  for (const auto& uai : uais) {
    ASSERT_TRUE(Wait<bool>([&](auto cb) {
                  store->CreateEnrollmentToken(Token("tok" + uai, uai, t0), cb);
                }).ok());
  }
  struct Os {
    std::string name, version;
  };
  const std::vector<Os> systems = {{"Windows", "10.0.19045"},  {"Windows", "10.0.22631"},
                                   {"Windows", "10.0.26100"},  {"Debian GNU/Linux", "12"},
                                   {"Debian GNU/Linux", "10"}, {"Plan 9", "4"}};
  // What the test knows of each device, as it sent it.
  struct Dev {
    std::string id, uai;
    std::optional<int> battery;
    int year = 0;
    int os = -1;  // index in systems; -1: no inventory
    bool win11 = false;
    std::optional<uint64_t> free;
    uint64_t ram = 0;
    std::optional<absl::Time> seen;
    bool retired = false;
  };
  std::mt19937 rng(20261130);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  constexpr uint64_t kGiB = uint64_t{1} << 30;
  std::vector<Dev> devs(90);
  for (size_t i = 0; i < devs.size(); ++i) {
    Dev& d = devs[i];
    d.id = absl::StrCat("h", i);
    d.uai = uais[i % uais.size()];
    ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                  store->Enroll(Enrollment("tok" + d.uai, "hw-" + d.id, d.id, t0), cb);
                }).ok());
  }
  auto send_inventory = [&](Dev& d) {
    InventoryInput in;
    in.device_id = d.id;
    auto& hw = in.hardware;
    hw.set_model("M");
    d.battery.reset();
    if (pick(4) != 0) {
      for (int b = 0, n = 1 + pick(2); b < n; ++b) {
        auto* bat = hw.add_batteries();
        bat->set_design_capacity(40000000);
        bat->set_health_percent(static_cast<uint32_t>(20 + pick(81)));
        const int h = static_cast<int>(bat->health_percent());
        d.battery = d.battery.has_value() ? std::min(*d.battery, h) : h;
      }
    }
    d.year = pick(8) == 0 ? 0 : 2012 + pick(15);
    if (d.year > 0) hw.set_firmware_date(absl::StrCat(d.year, "-06-15"));
    const char* tpm[] = {"", "1.2", "2.0"};
    hw.set_tpm_version(tpm[pick(3)]);
    hw.set_secure_boot(static_cast<parc::v1::SecureBoot>(pick(4)));
    const uint64_t ram_gib[] = {2, 4, 8, 16};
    d.ram = ram_gib[pick(4)] * kGiB - (200u << 20);
    hw.set_ram_bytes(d.ram);
    const uint64_t disk[] = {32'000'000'000, 128'000'000'000, 256'000'000'000};
    const uint64_t disk_bytes = disk[pick(3)];
    hw.add_disks()->set_size_bytes(disk_bytes);
    d.os = pick(static_cast<int>(systems.size()));
    hw.set_os_name(systems[static_cast<size_t>(d.os)].name);
    hw.set_os_version(systems[static_cast<size_t>(d.os)].version);
    if (pick(10) != 0) {
      d.free = static_cast<uint64_t>(pick(40)) * kGiB;
      hw.set_system_free_bytes(*d.free);
    }  // otherwise unmeasured: the last value known stays
    const bool uefi = hw.secure_boot() == parc::v1::SECURE_BOOT_ENABLED ||
                      hw.secure_boot() == parc::v1::SECURE_BOOT_DISABLED;
    d.win11 = hw.tpm_version() == "2.0" && uefi && d.ram >= 3 * kGiB + kGiB / 2 &&
              disk_bytes >= 64'000'000'000 && d.year >= 2018;
    parc::v1::SoftwareList sw;
    in.software_hash = common::SoftwareHash(sw);
    in.software = std::make_shared<const parc::v1::SoftwareList>(sw);
    in.inventory_hash = common::InventoryHash(hw, in.software_hash);
    in.received_at = in.collected_at = t0 + absl::Hours(1);
    auto stored = Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); });
    ASSERT_TRUE(stored.ok()) << stored.status();
  };
  // Most devices send an inventory, half of them before the bundle is published.
  for (size_t i = 0; i < devs.size() / 2; ++i) {
    if (i % 10 != 9) send_inventory(devs[i]);
  }
  const BundleRecord bundle = BundleWithRequirements(
      'a', t0 + absl::Hours(2), now + absl::Hours(24 * 300), 10 * kGiB, 4 * kGiB - (512u << 20));
  ASSERT_TRUE(Wait<bool>([&](auto cb) { store->InsertBundle(bundle, cb); }).ok());
  for (size_t i = devs.size() / 2; i < devs.size(); ++i) {
    if (i % 10 != 9) send_inventory(devs[i]);
  }
  for (size_t i = 0; i < 10; ++i) send_inventory(devs[i]);  // a second inventory
  // Check-ins: a quarter last seen 40 days ago, a tenth never; half carry their free space.
  for (auto& d : devs) {
    const int when = pick(20);
    if (when < 2) continue;
    const absl::Time at = when < 7 ? now - absl::Hours(24 * 40) : now - absl::Hours(1);
    CheckInInput c{d.id, "1.0", at, std::nullopt};
    if (pick(2) == 0) {
      c.free_bytes = static_cast<uint64_t>(pick(40)) * kGiB;
      d.free = c.free_bytes;
    }
    d.seen = at;
    ASSERT_TRUE(
        Wait<bool>([&](auto cb) { store->RecordCheckIn(c, Durability::kDurable, cb); }).ok());
  }
  for (size_t i : {3u, 40u}) {
    devs[i].retired = true;
    ASSERT_TRUE(Wait<parc::v1::Device>([&](auto cb) {
                  store->RetireDevice(devs[i].id, Scope::Region(), cb);
                }).ok());
  }
  // Debian 12 declared out of support from this year on; Plan 9 stays unknown.
  parc::v1::SetOsSupportRequest eos;
  eos.set_os_name("Debian GNU/Linux");
  eos.set_os_version("12");
  eos.set_end_of_support("2026-01-01");
  ASSERT_TRUE(
      Wait<parc::v1::OsVersion>([&](auto cb) { store->SetOsSupport(eos, "admin", now, cb); }).ok());
  const std::map<int, std::string> ends = {{0, "2025-10-14"},
                                           {1, "2026-11-10"},
                                           {2, "2027-10-12"},
                                           {3, "2026-01-01"},
                                           {4, "2024-06-30"}};

  // The same indicators, computed here.
  auto expected = [&](const std::set<std::string>& in) {
    parc::v1::HealthReportRow r;
    for (const auto& d : devs) {
      if (d.retired || in.count(d.uai) == 0) continue;
      r.set_devices(r.devices() + 1);
      const bool no_space = d.free.has_value() && *d.free < bundle.installed_bytes;
      const bool no_ram = d.ram > 0 && d.ram < bundle.min_ram_bytes;
      r.set_cannot_take_bundle(r.cannot_take_bundle() + (no_space || no_ram));
      r.set_battery_below_60(r.battery_below_60() + (d.battery.has_value() && *d.battery < 60));
      r.set_battery_below_40(r.battery_below_40() + (d.battery.has_value() && *d.battery < 40));
      r.set_age_unknown(r.age_unknown() + (d.year == 0));
      r.set_age_0_3(r.age_0_3() + (d.year >= 2023));
      r.set_age_4_7(r.age_4_7() + (d.year >= 2019 && d.year < 2023));
      r.set_age_8_plus(r.age_8_plus() + (d.year > 0 && d.year < 2019));
      auto end = ends.find(d.os);
      if (end == ends.end()) {
        r.set_os_support_unknown(r.os_support_unknown() + 1);
      } else if (end->second < "2026-11-30") {
        r.set_os_unsupported(r.os_unsupported() + 1);
        r.set_to_windows11(r.to_windows11() + d.win11);
        r.set_linux_candidates(r.linux_candidates() + !d.win11);
      }
      const bool unseen = !d.seen.has_value() || *d.seen < now - absl::Hours(24 * 29);
      r.set_unseen_30_days(r.unseen_30_days() + unseen);
    }
    return r;
  };
  auto same = [](const parc::v1::HealthReportRow& got, parc::v1::HealthReportRow want,
                 const std::string& what) {
    want.set_group(got.group());
    want.set_label(got.label());
    want.set_establishments(got.establishments());
    want.set_parent(got.parent());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, want))
        << what << "\ngot:\n"
        << got.DebugString() << "want:\n"
        << want.DebugString();
  };
  auto report = store->HealthReport("establishment", now, Scope::Region());
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->as_of(), "2026-11-30");
  EXPECT_EQ(report->bundle_name(), "mcnl");
  EXPECT_EQ(report->installed_bytes(), bundle.installed_bytes);
  int with_devices = 0;
  for (const auto& row : report->rows()) {
    same(row, expected({row.group()}), row.group());
    with_devices += row.devices() > 0;
  }
  EXPECT_EQ(with_devices, 6);
  // Each establishment's device list under each indicator holds as many devices as counted.
  for (const auto& row : report->rows()) {
    auto all = store->ListHealthDevices(row.group(), std::nullopt, now, Scope::Region());
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_EQ(all->size(), row.devices()) << row.group();
    for (const auto& i : common::HealthIndicators()) {
      auto listed = store->ListHealthDevices(row.group(), i.indicator, now, Scope::Region());
      ASSERT_TRUE(listed.ok()) << listed.status();
      EXPECT_EQ(listed->size(), i.count(row)) << row.group() << " " << i.name;
    }
  }
  auto elsewhere =
      store->ListHealthDevices("0310036W", std::nullopt, now, *Scope::Parse("departement:34"));
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_TRUE(elsewhere->empty());
  EXPECT_GT(report->total().os_unsupported(), 0u);
  EXPECT_GT(report->total().to_windows11(), 0u);
  EXPECT_GT(report->total().cannot_take_bundle(), 0u);
  EXPECT_GT(report->total().unseen_30_days(), 0u);
  same(report->total(), expected({uais.begin(), uais.end()}), "total");

  auto dep34 = Scope::Parse("departement:34");
  ASSERT_TRUE(dep34.ok());
  auto by_dep = store->HealthReport("departement", now, *dep34);
  ASSERT_TRUE(by_dep.ok()) << by_dep.status();
  ASSERT_EQ(by_dep->rows_size(), 1);
  EXPECT_EQ(by_dep->rows(0).label(), "34 Hérault");
  EXPECT_EQ(by_dep->rows(0).parent(), "Montpellier");
  same(by_dep->rows(0), expected({"0340001S", "0340123Z"}), "34");

  // The table: every version seen or seeded, with its devices in scope.
  auto versions = store->ListOsVersions(Scope::Region());
  ASSERT_TRUE(versions.ok()) << versions.status();
  uint32_t plan9 = 0;
  for (const auto& v : *versions) {
    if (v.os_name() == "Plan 9") plan9 = v.devices();
    if (v.os_name() == "Debian GNU/Linux" && v.os_version() == "12") {
      EXPECT_EQ(v.end_of_support(), "2026-01-01");
      EXPECT_EQ(v.label(), "Debian 12");  // kept: none given
      EXPECT_EQ(v.updated_by(), "admin");
    }
  }
  int want_plan9 = 0;
  for (const auto& d : devs) want_plan9 += !d.retired && d.os == 5;
  EXPECT_EQ(plan9, static_cast<uint32_t>(want_plan9));
  // An emptied count goes: the tally holds only the values the fleet has.
  auto db = OpenStoreDatabase(dir.Sub("parc.db"));
  ASSERT_NE(db, nullptr);
  auto st =
      db->Prepare("SELECT count(*), sum(CASE WHEN n <= 0 THEN 1 ELSE 0 END) FROM health_tally");
  ASSERT_TRUE(st.ok()) << st.status();
  auto row = st->Step();
  ASSERT_TRUE(row.ok() && *row) << row.status();
  EXPECT_GT(st->Int(0), 0);
  EXPECT_EQ(st->Int(1), 0);
}

// The same comparison on a parc-sim fleet (its spreads of batteries, firmware years, operating
// systems, memory and free space), per département: what each simulated device sent, scanned
// here, against the report.
TEST(SqlStore, HealthOfAParcSimFleetEqualsAScan) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  ASSERT_NE(store, nullptr);
  const absl::Time now =
      absl::FromCivil(absl::CivilSecond(2026, 11, 30, 12, 0, 0), absl::UTCTimeZone());
  const sim::Fleet fleet = sim::MakeFleet(400, 7);
  auto parsed = ParseEstablishmentsCsv(sim::AnnuaireCsv(fleet));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(parsed->rows, now, cb);
              }).ok());
  std::map<std::string, std::string> departement_of;
  for (const auto& e : fleet.establishments) departement_of[e.uai] = e.departement;
  const BundleRecord bundle =
      BundleWithRequirements('b', now - absl::Hours(48), now + absl::Hours(24 * 300),
                             uint64_t{12} << 30, uint64_t{6} << 30);
  ASSERT_TRUE(Wait<bool>([&](auto cb) { store->InsertBundle(bundle, cb); }).ok());
  std::set<std::string> tokens;
  // Seeded ends of support the scan relies on (Windows builds, Debian).
  const std::map<std::string, std::string> ends = {{"10.0.19045", "2025-10-14"},
                                                   {"10.0.22631", "2026-11-10"},
                                                   {"10.0.26100", "2027-10-12"},
                                                   {"12", "2028-06-30"},
                                                   {"11", "2026-08-31"}};
  std::map<std::string, parc::v1::HealthReportRow> want;
  for (const auto& d : fleet.devices) {
    if (tokens.insert(d.uai).second) {
      ASSERT_TRUE(Wait<bool>([&](auto cb) {
                    store->CreateEnrollmentToken(Token("t" + d.uai, d.uai, now), cb);
                  }).ok());
    }
    const std::string id = absl::StrCat("s", d.index);
    ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                  store->Enroll(Enrollment("t" + d.uai, "hw-" + d.serial, id, now), cb);
                }).ok());
    const parc::v1::Hardware hw = sim::DeviceHardware(d);
    InventoryInput in;
    in.device_id = id;
    in.hardware = hw;
    in.software = std::make_shared<const parc::v1::SoftwareList>(sim::DeviceSoftware(d));
    in.software_hash = common::SoftwareHash(*in.software);
    in.inventory_hash = common::InventoryHash(hw, in.software_hash);
    in.received_at = in.collected_at = now - absl::Hours(2);
    auto stored = Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); });
    ASSERT_TRUE(stored.ok()) << stored.status();
    // A device in seven has been in a cupboard for 40 days.
    const absl::Time seen = d.index % 7 == 0 ? now - absl::Hours(24 * 40) : now - absl::Hours(1);
    ASSERT_TRUE(
        Wait<bool>([&](auto cb) {
          store->RecordCheckIn({id, "1.0", seen, hw.system_free_bytes()}, Durability::kDurable, cb);
        }).ok());

    // The scan, from what the device sent.
    parc::v1::HealthReportRow& r = want[departement_of[d.uai]];
    r.set_devices(r.devices() + 1);
    std::optional<uint32_t> battery;
    for (const auto& b : hw.batteries()) {
      if (b.design_capacity() > 0) battery = std::min(battery.value_or(100), b.health_percent());
    }
    r.set_battery_below_60(r.battery_below_60() + (battery.has_value() && *battery < 60));
    r.set_battery_below_40(r.battery_below_40() + (battery.has_value() && *battery < 40));
    const int year = std::stoi(hw.firmware_date().substr(0, 4));
    r.set_age_0_3(r.age_0_3() + (year >= 2023));
    r.set_age_4_7(r.age_4_7() + (year >= 2019 && year < 2023));
    r.set_age_8_plus(r.age_8_plus() + (year < 2019));
    r.set_cannot_take_bundle(
        r.cannot_take_bundle() +
        (hw.system_free_bytes() < bundle.installed_bytes || hw.ram_bytes() < bundle.min_ram_bytes));
    uint64_t disk = 0;
    for (const auto& k : hw.disks()) disk = std::max(disk, k.size_bytes());
    const bool win11 = hw.tpm_version() == "2.0" &&
                       (hw.secure_boot() == parc::v1::SECURE_BOOT_ENABLED ||
                        hw.secure_boot() == parc::v1::SECURE_BOOT_DISABLED) &&
                       hw.ram_bytes() >= (uint64_t{7} << 29) && disk >= 64'000'000'000 &&
                       year >= 2018;
    const std::string& end = ends.at(hw.os_version());
    if (end < "2026-11-30") {
      r.set_os_unsupported(r.os_unsupported() + 1);
      r.set_to_windows11(r.to_windows11() + win11);
      r.set_linux_candidates(r.linux_candidates() + !win11);
    }
    r.set_unseen_30_days(r.unseen_30_days() + (d.index % 7 == 0));
  }
  auto report = store->HealthReport("departement", now, Scope::Region());
  ASSERT_TRUE(report.ok()) << report.status();
  uint32_t with_devices = 0;
  for (const auto& row : report->rows()) {
    parc::v1::HealthReportRow expected = want[row.group()];
    expected.set_group(row.group());
    expected.set_label(row.label());
    expected.set_establishments(row.establishments());
    expected.set_parent(row.parent());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(row, expected))
        << row.group() << "\ngot:\n"
        << row.DebugString() << "want:\n"
        << expected.DebugString();
    with_devices += row.devices() > 0;
  }
  EXPECT_GE(with_devices, 2u);
  // The spreads are there: every indicator counts somebody.
  const auto& t = report->total();
  for (uint32_t n : {t.cannot_take_bundle(), t.battery_below_60(), t.battery_below_40(),
                     t.age_0_3(), t.age_4_7(), t.age_8_plus(), t.os_unsupported(), t.to_windows11(),
                     t.linux_candidates(), t.unseen_30_days()}) {
    EXPECT_GT(n, 0u) << t.DebugString();
  }
  EXPECT_EQ(t.devices(), 400u);
}

TEST(SqlStore, RetentionKeepsEachDevicesLatestInventory) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(FixtureEstablishments(), now, cb);
              }).ok());
  ASSERT_TRUE(
      Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token("etok", "", now), cb); }).ok());
  ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                store->Enroll(Enrollment("etok", "hw1", "d1", now), cb);
              }).ok());
  auto report = [&](int version, absl::Time at) {
    InventoryInput in;
    in.device_id = "d1";
    parc::v1::SoftwareList sw;
    auto* p = sw.add_packages();
    p->set_name("pkg");
    p->set_version(std::to_string(version));
    in.software_hash = common::SoftwareHash(sw);
    in.software = std::make_shared<const parc::v1::SoftwareList>(sw);
    in.hardware.set_model("M");
    in.inventory_hash = common::InventoryHash(in.hardware, in.software_hash);
    in.received_at = at;
    in.collected_at = at;
    return Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); });
  };
  auto software_of = [](int version) {
    parc::v1::SoftwareList sw;
    auto* p = sw.add_packages();
    p->set_name("pkg");
    p->set_version(std::to_string(version));
    return common::SoftwareHash(sw);
  };
  ASSERT_TRUE(report(1, now).ok());
  ASSERT_TRUE(report(2, now + absl::Hours(24)).ok());
  ASSERT_TRUE(report(3, now + absl::Hours(48)).ok());
  ASSERT_TRUE(report(3, now + absl::Hours(49)).ok());  // same again: no new history row
  EXPECT_EQ(store->GetDevice("d1", Scope::Region())->inventory_history, 3u);
  EXPECT_TRUE(*store->HasSoftwareSet(software_of(1)));
  // Purge everything older than 30 hours after the start: versions 1 and 2 go.
  auto deleted =
      Wait<int64_t>([&](auto cb) { store->PurgeInventoryHistory(now + absl::Hours(30), cb); });
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 2);
  auto details = store->GetDevice("d1", Scope::Region());
  ASSERT_TRUE(details.ok());
  EXPECT_EQ(details->inventory_history, 1u);
  EXPECT_EQ(details->inventory->software().packages(0).version(), "3");
  {
    // A list the purge deleted is not taken as held any more, though the writer stored it.
    InventoryInput again;
    again.device_id = "d1";
    again.software_hash = software_of(1);
    again.hardware.set_model("M");
    again.inventory_hash = common::InventoryHash(again.hardware, again.software_hash);
    again.received_at = again.collected_at = now + absl::Hours(50);
    auto refused = Wait<bool>([&](auto cb) { store->StoreInventory(again, cb); });
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
    // The list in use is held: the latest inventory, sent again without it, is taken.
    again.software_hash = software_of(3);
    again.inventory_hash = common::InventoryHash(again.hardware, again.software_hash);
    ASSERT_TRUE(Wait<bool>([&](auto cb) { store->StoreInventory(again, cb); }).ok());
    details = store->GetDevice("d1", Scope::Region());
    ASSERT_TRUE(details.ok());
    EXPECT_EQ(details->inventory_history, 1u);
  }
  // A purge far in the future still keeps the latest inventory.
  deleted = Wait<int64_t>(
      [&](auto cb) { store->PurgeInventoryHistory(now + absl::Hours(24 * 1000), cb); });
  EXPECT_EQ(*deleted, 0);
  EXPECT_TRUE(store->GetDevice("d1", Scope::Region())->inventory.has_value());
  // Orphaned software sets were deleted with their inventories; the one in use stays.
  EXPECT_FALSE(*store->HasSoftwareSet(software_of(1)));
  EXPECT_FALSE(*store->HasSoftwareSet(software_of(2)));
  EXPECT_TRUE(*store->HasSoftwareSet(details->device.software_hash()));

  // A device that sends inventory after inventory keeps a bounded history, newest kept.
  for (int v = 10; v < 10 + kMaxInventoriesPerDevice + 20; ++v) {
    ASSERT_TRUE(report(v, now + absl::Hours(24 * 1000 + v)).ok());
  }
  details = store->GetDevice("d1", Scope::Region());
  EXPECT_EQ(details->inventory_history, static_cast<uint32_t>(kMaxInventoriesPerDevice));
  EXPECT_EQ(details->inventory->software().packages(0).version(),
            std::to_string(10 + kMaxInventoriesPerDevice + 19));

  // The rows beyond the history go by batches: never more than a batch beyond.
  {
    auto db = OpenStoreDatabase(dir.Sub("parc.db"));
    ASSERT_NE(db, nullptr);
    auto st = db->Prepare("SELECT count(*) FROM inventories WHERE device_id = 'd1'");
    ASSERT_TRUE(st.ok()) << st.status();
    ASSERT_TRUE(*st->Step());
    EXPECT_GE(st->Int(0), kMaxInventoriesPerDevice);
    EXPECT_LE(st->Int(0), kMaxInventoriesPerDevice + kHistoryTrimBatch);
  }

  if (parc::testing::TestOnPostgres()) return;  // the rest edits the SQLite file
  // A device asked for its inventory again (its row's hash emptied, as by a re-enrollment or a
  // new schema) that sends the one it sent last adds no history row either; a new one does.
  {
    auto raw = common::Database::Open(dir.Sub("parc.db"), common::Database::Options());
    ASSERT_TRUE(raw.ok()) << raw.status();
    ASSERT_TRUE((*raw)->Exec("UPDATE devices SET inventory_hash = ''").ok());
  }
  ASSERT_TRUE(report(10 + kMaxInventoriesPerDevice + 19, now + absl::Hours(24 * 2000)).ok());
  details = store->GetDevice("d1", Scope::Region());
  EXPECT_EQ(details->inventory_history, static_cast<uint32_t>(kMaxInventoriesPerDevice));
  EXPECT_EQ(details->inventory_received_at, now + absl::Hours(24 * 2000));  // touched
  EXPECT_FALSE(details->device.inventory_hash().empty());
  ASSERT_TRUE(report(5000, now + absl::Hours(24 * 2001)).ok());
  details = store->GetDevice("d1", Scope::Region());
  EXPECT_EQ(details->inventory_history, static_cast<uint32_t>(kMaxInventoriesPerDevice));
  EXPECT_EQ(details->inventory->software().packages(0).version(), "5000");
}

TEST(CheckInCache, AReadThatRacedAWriteDoesNotFillIt) {
  CheckInCache cache(2);
  DeviceAuth old{"d1", "old-secret", "0310036W", "inv1", parc::v1::DEVICE_KIND_LAPTOP, 0, "", -1};
  // A reader takes the generation, reads the old row; a write commits and invalidates.
  const uint64_t before = cache.Generation();
  cache.InvalidateDevice("d1");
  cache.PutDevice(before, old);
  EXPECT_FALSE(cache.GetDevice("d1").has_value());
  // A read after the write fills it.
  cache.PutDevice(cache.Generation(), old);
  ASSERT_TRUE(cache.GetDevice("d1").has_value());
  EXPECT_EQ(cache.GetDevice("d1")->secret_hash, "old-secret");
  // Past its bound it starts again rather than growing.
  cache.PutDevice(cache.Generation(), DeviceAuth{"d2", "s", "", "", {}, 0, "", -1});
  cache.PutDevice(cache.Generation(), DeviceAuth{"d3", "s", "", "", {}, 0, "", -1});
  EXPECT_FALSE(cache.GetDevice("d1").has_value());
  EXPECT_TRUE(cache.GetDevice("d3").has_value());
  // Assignments: "none" is cached too, and a rollout write empties them.
  cache.PutAssignment(cache.Generation(), "0310036W", 1, nullptr);
  auto none = cache.GetAssignment("0310036W", 1);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(*none, nullptr);
  cache.InvalidateAssignments();
  EXPECT_FALSE(cache.GetAssignment("0310036W", 1).has_value());
}

// Under load inventories and check-ins commit all the time: a write to one device must not keep
// the reads of the others from filling the cache (they would read the database at every call).
TEST(CheckInCache, AWriteToOneDeviceDoesNotKeepTheOthersOut) {
  CheckInCache cache(100000);
  const uint64_t before = cache.Generation();
  cache.DeviceInventoryStored("d2", "inv2", parc::v1::DEVICE_KIND_LAPTOP, -1);
  cache.DeviceCheckInStored("d3", 20000, "1.0", -1);
  cache.PutDevice(before, DeviceAuth{"d1", "s", "0310036W", "inv1", {}, 0, "", -1});
  EXPECT_TRUE(cache.GetDevice("d1").has_value());
  // d2 changed after the read began: its record is not filled with what the read saw.
  cache.PutDevice(before, DeviceAuth{"d2", "s", "0310036W", "old", {}, 0, "", -1});
  EXPECT_FALSE(cache.GetDevice("d2").has_value());
  // The changes kept are bounded: past the bound they are forgotten, and every fill whose read
  // began before is refused, whatever its device.
  const uint64_t long_ago = cache.Generation();
  for (size_t i = 0; i <= CheckInCache::kMaxRecentChanges; ++i) {
    cache.InvalidateDevice(absl::StrCat("other-", i));
  }
  cache.PutDevice(long_ago, DeviceAuth{"d4", "s", "0310036W", "inv4", {}, 0, "", -1});
  EXPECT_FALSE(cache.GetDevice("d4").has_value());
  cache.PutDevice(cache.Generation(), DeviceAuth{"d4", "s", "0310036W", "inv4", {}, 0, "", -1});
  EXPECT_TRUE(cache.GetDevice("d4").has_value());
  // All devices at once (a re-enrollment sweep, the channel of another node lost): every fill
  // whose read began before is refused.
  const uint64_t before_all = cache.Generation();
  cache.InvalidateDevices();
  cache.PutDevice(before_all, DeviceAuth{"d1", "s", "0310036W", "inv1", {}, 0, "", -1});
  EXPECT_FALSE(cache.GetDevice("d1").has_value());
  // Assignments and software sets keep their own changes: a device write does not refuse them.
  const uint64_t read = cache.Generation();
  cache.DeviceInventoryStored("d1", "inv", parc::v1::DEVICE_KIND_LAPTOP, -1);
  cache.PutAssignment(read, "0310036W", 1, nullptr);
  EXPECT_TRUE(cache.GetAssignment("0310036W", 1).has_value());
  cache.PutSoftwareSet(read, "h1", true, absl::FromUnixSeconds(1790000000));
  EXPECT_TRUE(cache.GetSoftwareSet("h1", absl::FromUnixSeconds(1790000000)).has_value());
}

// A check-in writes the devices row only when the cached record says the row differs: the day,
// the agent version or the free space; once a write committed, the record follows it.
TEST(CheckInCache, KnowsWhenACheckInChangesTheDeviceRow) {
  CheckInCache cache(10);
  EXPECT_FALSE(cache.CheckInStored("d1", 20000, "1.0", 5 << 28));  // not cached
  cache.PutDevice(cache.Generation(),
                  DeviceAuth{"d1", "s", "0310036W", "inv", {}, 20000, "1.0", int64_t{5} << 28});
  EXPECT_TRUE(cache.CheckInStored("d1", 20000, "1.0", int64_t{5} << 28));
  EXPECT_TRUE(cache.CheckInStored("d1", 20000, "1.0", -1));  // no free space sent
  EXPECT_FALSE(cache.CheckInStored("d1", 20001, "1.0", int64_t{5} << 28));
  EXPECT_FALSE(cache.CheckInStored("d1", 19999, "1.0", int64_t{5} << 28));  // a delayed one
  EXPECT_FALSE(cache.CheckInStored("d1", 20000, "1.1", int64_t{5} << 28));
  EXPECT_FALSE(cache.CheckInStored("d1", 20000, "1.0", int64_t{4} << 28));
  // A read in flight while the write committed does not fill.
  const uint64_t before = cache.Generation();
  cache.DeviceCheckInStored("d1", 20001, "1.1", -1);
  EXPECT_TRUE(cache.CheckInStored("d1", 20001, "1.1", int64_t{5} << 28));
  cache.DeviceCheckInStored("d1", 20000, "1.1", int64_t{4} << 28);  // the day stays the latest
  EXPECT_TRUE(cache.CheckInStored("d1", 20001, "1.1", int64_t{4} << 28));
  cache.InvalidateDevice("d1");
  cache.PutDevice(before, DeviceAuth{"d1", "s", "0310036W", "inv", {}, 20000, "1.0", -1});
  EXPECT_FALSE(cache.GetDevice("d1").has_value());
}

TEST(CheckInCache, SoftwareSetsStayKnownAndUnknownOnlyForAWhile) {
  CheckInCache cache(10);
  const absl::Time t = absl::FromUnixSeconds(1790000000);
  EXPECT_FALSE(cache.GetSoftwareSet("h1", t).has_value());
  cache.PutSoftwareSet(cache.Generation(), "h1", false, t);
  ASSERT_TRUE(cache.GetSoftwareSet("h1", t).has_value());
  EXPECT_FALSE(*cache.GetSoftwareSet("h1", t));
  // Another node may have stored it since: "unknown" is asked again after a while.
  EXPECT_FALSE(cache.GetSoftwareSet("h1", t + CheckInCache::kUnknownFor).has_value());
  // Stored here: known at once, for good.
  cache.SoftwareSetStored("h1");
  EXPECT_TRUE(*cache.GetSoftwareSet("h1", t + absl::Hours(1000)));
  // A read that raced with the store does not bring "unknown" back.
  const uint64_t before = cache.Generation();
  cache.SoftwareSetStored("h2");
  cache.PutSoftwareSet(before, "h2", false, t);
  EXPECT_TRUE(*cache.GetSoftwareSet("h2", t));
  // A purge may delete sets: everything is asked again.
  cache.InvalidateSoftwareSets();
  EXPECT_FALSE(cache.GetSoftwareSet("h1", t).has_value());
}

TEST(SqlStore, CheckInsReadCredentialsFromMemoryUntilAWriteChangesThem) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(
      Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token("etok", "", now), cb); }).ok());
  ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                store->Enroll(Enrollment("etok", "hw1", "d1", now), cb);
              }).ok());
  auto first = store->GetDeviceAuth("d1");
  ASSERT_TRUE(first.ok());
  const uint64_t hits = store->checkin_cache().hits();
  ASSERT_TRUE(store->GetDeviceAuth("d1").ok());
  EXPECT_EQ(store->checkin_cache().hits(), hits + 1);  // no database read

  // Re-enrolled (new secret): the next check-in sees the new secret.
  EnrollInput again = Enrollment("etok", "hw1", "d9", now);
  again.secret_hash = common::Sha256Hex("new");
  again.current_device_id = "d1";
  again.current_secret_hash = common::Sha256Hex("d1");
  ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) { store->Enroll(again, cb); }).ok());
  auto rekeyed = store->GetDeviceAuth("d1");
  ASSERT_TRUE(rekeyed.ok()) << rekeyed.status();
  EXPECT_EQ(rekeyed->secret_hash, common::Sha256Hex("new"));

  // A new inventory: its hash.
  InventoryInput in;
  in.device_id = "d1";
  in.software = std::make_shared<const parc::v1::SoftwareList>();
  in.software_hash = common::SoftwareHash(*in.software);
  in.inventory_hash = std::string(64, 'b');
  in.received_at = now;
  ASSERT_TRUE(Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); }).ok());
  EXPECT_EQ(store->GetDeviceAuth("d1")->inventory_hash, std::string(64, 'b'));

  // The kind an inventory detects, for a device whose kind was detected (the rollouts that
  // target it follow), as the write left it; an inventory that detects none leaves it. Both
  // from memory.
  auto inventory = [&](const std::string& id, char hash, parc::v1::DeviceKind detected) {
    InventoryInput next = in;
    next.device_id = id;
    next.software = nullptr;  // the set is known
    next.inventory_hash = std::string(64, hash);
    next.hardware.set_detected_kind(detected);
    ASSERT_TRUE(Wait<bool>([&](auto cb) { store->StoreInventory(next, cb); }).ok());
  };
  auto cached_kind = [&](const std::string& id) {
    const uint64_t before = store->checkin_cache().hits();
    auto auth = store->GetDeviceAuth(id);
    EXPECT_TRUE(auth.ok()) << auth.status();
    EXPECT_EQ(store->checkin_cache().hits(), before + 1) << id << " read from the database";
    return auth.ok() ? auth->kind : parc::v1::DEVICE_KIND_UNSPECIFIED;
  };
  inventory("d1", 'c', parc::v1::DEVICE_KIND_TABLET);
  EXPECT_EQ(cached_kind("d1"), parc::v1::DEVICE_KIND_TABLET);
  inventory("d1", 'd', parc::v1::DEVICE_KIND_UNSPECIFIED);
  EXPECT_EQ(cached_kind("d1"), parc::v1::DEVICE_KIND_TABLET);
  // A kind a technician gave at enrollment stays whatever the inventory detects.
  EnrollInput desktop = Enrollment("etok", "hw2", "d2", now);
  desktop.kind = parc::v1::DEVICE_KIND_DESKTOP;
  desktop.kind_from_technician = true;
  ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) { store->Enroll(desktop, cb); }).ok());
  ASSERT_TRUE(store->GetDeviceAuth("d2").ok());
  inventory("d2", 'e', parc::v1::DEVICE_KIND_LAPTOP);
  EXPECT_EQ(cached_kind("d2"), parc::v1::DEVICE_KIND_DESKTOP);

  // Retired: gone for check-ins at once.
  ASSERT_TRUE(Wait<parc::v1::Device>([&](auto cb) {
                store->RetireDevice("d1", Scope::Region(), cb);
              }).ok());
  EXPECT_EQ(store->GetDeviceAuth("d1").status().code(), absl::StatusCode::kNotFound);
}

TEST(SqlStore, AnInventoryThatChangesTheKindMovesTheTallies) {
  // Reads the SQLite file's tallies directly; on PostgreSQL the update always assigns the kind.
  if (parc::testing::TestOnPostgres()) GTEST_SKIP() << "SQLite file test";
  TempDir dir;
  const std::string path = dir.Sub("parc.db");
  auto store = OpenStore(path);
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(
      Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token("etok", "", now), cb); }).ok());
  for (const char* id : {"d1", "d2"}) {
    ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                  store->Enroll(Enrollment("etok", absl::StrCat("hw-", id), id, now), cb);
                }).ok());
  }
  common::Database::Options o;
  auto db = common::Database::Open(path, o);
  ASSERT_TRUE(db.ok()) << db.status();
  // Both devices in a rollout of a bundle: the tallies by kind of deployments too.
  for (const char* sql :
       {"INSERT INTO bundles(id, name, version, sequence, manifest_sha256, signed_manifest, "
        "published_at, expires_at, package_count, total_bytes, signers, published_by) VALUES "
        "(1, 'mcnl', '2026.1', 1, 'a', x'00', 0, 0, 1, 1, 'k', 'admin')",
        "INSERT INTO rollouts(id, bundle_id, target, waves, success_percent, "
        "max_failures_percent, max_failures_count, window_start, window_end, rate_limit, state, "
        "wave_count, created_at, created_by) VALUES ('r1', 1, 'all', '[]', 90, 5, 0, 0, 0, 0, "
        "'running', 1, 0, 'a')",
        "INSERT INTO deployments(rollout_id, device_id, state, updated_at) VALUES "
        "('r1', 'd1', 1, 0), ('r1', 'd2', 3, 0)"}) {
    absl::Status st = (*db)->Exec(sql);
    ASSERT_TRUE(st.ok()) << st << "\n" << sql;
  }
  // A query's rows, one per line, its columns separated by spaces.
  auto rows = [&](const std::string& sql, int columns) {
    auto st = (*db)->Prepare(sql);
    EXPECT_TRUE(st.ok()) << st.status();
    std::string out;
    if (!st.ok()) return out;
    while (true) {
      auto row = st->Step();
      EXPECT_TRUE(row.ok()) << row.status();
      if (!row.ok() || !*row) break;
      for (int i = 0; i < columns; ++i) {
        absl::StrAppend(&out, i > 0 ? " " : "", st->IsNull(i) ? "NULL" : st->Text(i));
      }
      out += "\n";
    }
    return out;
  };
  // Each tally equals a count of the rows it tallies.
  auto expect_tallies_follow = [&](const std::string& step) {
    EXPECT_EQ(rows("SELECT uai, kind, seen_day, n FROM device_tally WHERE n > 0 "
                   "ORDER BY 1, 2, 3",
                   4),
              rows("SELECT coalesce(uai, ''), kind, coalesce(last_seen_at / 86400, -1), "
                   "count(*) FROM devices GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                   4))
        << step;
    EXPECT_EQ(rows("SELECT device_id, uai, kind, best FROM bundle_device ORDER BY 1", 4),
              rows("SELECT d.id, coalesce(d.uai, ''), d.kind, b.best FROM bundle_device b "
                   "JOIN devices d ON d.id = b.device_id ORDER BY 1",
                   4))
        << step;
    EXPECT_EQ(rows("SELECT rollout_id, uai, kind, state, n FROM rollout_tally WHERE n > 0 "
                   "ORDER BY 1, 2, 3, 4",
                   5),
              rows("SELECT dep.rollout_id, coalesce(d.uai, ''), d.kind, dep.state, count(*) "
                   "FROM deployments dep JOIN devices d ON d.id = dep.device_id "
                   "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
                   5))
        << step;
  };
  expect_tallies_follow("enrolled");

  InventoryInput in;
  in.software = std::make_shared<const parc::v1::SoftwareList>();
  in.software_hash = common::SoftwareHash(*in.software);
  in.received_at = now;
  char hash = 'a';
  auto inventory = [&](const std::string& id, parc::v1::DeviceKind detected) {
    InventoryInput next = in;
    next.device_id = id;
    next.inventory_hash = std::string(64, hash++);
    next.hardware.set_detected_kind(detected);
    ASSERT_TRUE(Wait<bool>([&](auto cb) { store->StoreInventory(next, cb); }).ok());
  };
  auto kind = [&](const std::string& id) {
    return rows(absl::StrCat("SELECT kind FROM devices WHERE id = '", id, "'"), 1);
  };
  auto kind_row = [](parc::v1::DeviceKind k) { return absl::StrCat(static_cast<int>(k), "\n"); };
  // Detected for the first time, detected as another kind, detected the same, not detected.
  inventory("d1", parc::v1::DEVICE_KIND_TABLET);
  EXPECT_EQ(kind("d1"), kind_row(parc::v1::DEVICE_KIND_TABLET));
  expect_tallies_follow("d1 detected a tablet");
  inventory("d2", parc::v1::DEVICE_KIND_LAPTOP);
  inventory("d1", parc::v1::DEVICE_KIND_LAPTOP);
  EXPECT_EQ(kind("d1"), kind_row(parc::v1::DEVICE_KIND_LAPTOP));
  expect_tallies_follow("d1 detected a laptop");
  inventory("d1", parc::v1::DEVICE_KIND_LAPTOP);
  inventory("d2", parc::v1::DEVICE_KIND_UNSPECIFIED);
  EXPECT_EQ(kind("d1"), kind_row(parc::v1::DEVICE_KIND_LAPTOP));
  EXPECT_EQ(kind("d2"), kind_row(parc::v1::DEVICE_KIND_LAPTOP));
  expect_tallies_follow("the kinds kept");
  // The counts people read: two laptops in the region, both in the rollout.
  EXPECT_EQ(rows("SELECT kind, sum(n) FROM device_tally GROUP BY kind HAVING sum(n) > 0", 2),
            absl::StrCat(static_cast<int>(parc::v1::DEVICE_KIND_LAPTOP), " 2\n"));
  EXPECT_EQ(rows("SELECT kind, sum(n) FROM rollout_tally GROUP BY kind HAVING sum(n) > 0", 2),
            absl::StrCat(static_cast<int>(parc::v1::DEVICE_KIND_LAPTOP), " 2\n"));
}

// The writer finds the devices row by the rowid the authentication read, a hint it checks:
// a wrong one (the row of another device, or of none) still stores the inventory on the
// device's own row, and only there.
TEST(SqlStore, AnInventoryLandsOnItsDevicesRowWhateverTheRowHint) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(
      Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token("etok", "", now), cb); }).ok());
  for (const char* id : {"d1", "d2"}) {
    ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                  store->Enroll(Enrollment("etok", std::string("hw-") + id, id, now), cb);
                }).ok());
  }
  auto d1 = store->GetDeviceAuth("d1");
  auto d2 = store->GetDeviceAuth("d2");
  ASSERT_TRUE(d1.ok() && d2.ok());
  int version = 0;
  for (int64_t hint : {d1->row, d2->row, int64_t{0}, int64_t{987654321}}) {
    InventoryInput in;
    in.device_id = "d1";
    in.device_row = hint;
    parc::v1::SoftwareList sw;
    sw.add_packages()->set_name(absl::StrCat("pkg", ++version));
    in.software_hash = common::SoftwareHash(sw);
    in.software = std::make_shared<const parc::v1::SoftwareList>(sw);
    in.hardware.set_model(absl::StrCat("M", version));
    in.inventory_hash = common::InventoryHash(in.hardware, in.software_hash);
    in.received_at = in.collected_at = now + absl::Minutes(version);
    ASSERT_TRUE(Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); }).ok()) << hint;
    EXPECT_EQ(store->GetDeviceAuth("d1")->inventory_hash, in.inventory_hash) << hint;
    EXPECT_EQ(store->GetDevice("d1", Scope::Region())->device.model(), in.hardware.model());
    EXPECT_EQ(store->GetDeviceAuth("d2")->inventory_hash, "") << hint;
    EXPECT_EQ(store->GetDevice("d2", Scope::Region())->inventory_history, 0u) << hint;
  }
  EXPECT_EQ(store->GetDevice("d1", Scope::Region())->inventory_history, 4u);
}

TEST(SqlStore, InventoryWithoutSoftwareNeedsAKnownSet) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(
      Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token("etok", "", now), cb); }).ok());
  ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                store->Enroll(Enrollment("etok", "hw1", "d1", now), cb);
              }).ok());
  InventoryInput in;
  in.device_id = "d1";
  in.software_hash = std::string(64, 'a');
  in.inventory_hash = std::string(64, 'b');
  in.received_at = now;
  auto r = Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace parc::server

namespace parc::common {
namespace {

TEST(Sqlite, AStatementCanBeBoundAndRunRepeatedly) {
  parc::testing::TempDir dir;
  Database::Options o;
  auto db = Database::Open(dir.Sub("t.db"), o);
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)").ok());
  auto ins = (*db)->Prepare("INSERT INTO t(k, v) VALUES (?, ?)");
  ASSERT_TRUE(ins.ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(ins->BindAll(i, absl::StrCat("v", i)).Run().ok()) << i;
  }
  auto sel = (*db)->Prepare("SELECT v FROM t WHERE k = ?");
  for (int i = 2; i >= 0; --i) {
    sel->Bind(1, i);
    ASSERT_TRUE(*sel->Step());
    EXPECT_EQ(sel->Text(0), absl::StrCat("v", i));
  }
}

// Pages of the file at path that are in the page cache (-1: cannot tell).
int ResidentPages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st {};
  ::fstat(fd, &st);
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return -1;
  const long page = ::sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> in_core((size + static_cast<size_t>(page) - 1) /
                                     static_cast<size_t>(page));
  const int rc = ::mincore(map, size, in_core.data());
  ::munmap(map, size);
  if (rc != 0) return -1;
  int n = 0;
  for (unsigned char c : in_core) n += c & 1;
  return n;
}

// Hooks whose flush the test holds or fails.
class HeldFlush final : public parc::server::sql::Engine::Hooks {
 public:
  absl::Status MakeDurable() override {
    flushes.fetch_add(1);
    return release.get_future().get();  // once: a second flush would throw
  }
  std::atomic<int> flushes{0};
  std::promise<absl::Status> release;
};

struct EngineUnderTest {
  parc::testing::TempDir dir;
  HeldFlush* hooks = nullptr;
  std::unique_ptr<parc::server::sql::Engine> engine;
  std::unique_ptr<Database> look;  // another connection, to see what is committed

  EngineUnderTest() {
    const std::string path = dir.Sub("t.db");
    auto writer = Database::Open(path, Database::Options());
    EXPECT_TRUE(writer.ok()) << writer.status();
    EXPECT_TRUE((*writer)->Exec("CREATE TABLE t (k INTEGER PRIMARY KEY)").ok());
    auto h = std::make_unique<HeldFlush>();
    hooks = h.get();
    engine = std::make_unique<parc::server::sql::Engine>(
        parc::server::sql::Engine::Options(),
        std::make_unique<parc::server::sqlite::Connection>(std::move(*writer)),
        std::vector<std::unique_ptr<parc::server::sql::Connection>>(), std::move(h));
    auto other = Database::Open(path, Database::Options());
    EXPECT_TRUE(other.ok()) << other.status();
    look = std::move(*other);
  }
  int64_t Rows() {
    auto st = look->Prepare("SELECT count(*) FROM t");
    EXPECT_TRUE(st.ok());
    EXPECT_TRUE(*st->Step());
    return st->Int(0);
  }
  std::future<absl::Status> Insert(int k) {
    auto answered = std::make_shared<std::promise<absl::Status>>();
    auto f = answered->get_future();
    engine->Submit(
        [k](parc::server::sql::Connection* db) -> absl::Status {
          PARC_ASSIGN_OR_RETURN(parc::server::sql::Stmt st,
                                db->Prepare("INSERT INTO t(k) VALUES (?)"));
          return st.Bind(1, int64_t{k}).Run();
        },
        [answered](absl::Status s) { answered->set_value(std::move(s)); });
    return f;
  }
};

TEST(WriteEngine, AWriteIsAnsweredOnlyOnceItsBatchIsDurable) {
  EngineUnderTest t;
  auto answer = t.Insert(1);
  // Committed (another connection sees it), not yet flushed: no answer.
  for (int i = 0; i < 500 && t.Rows() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(t.Rows(), 1);
  for (int i = 0; i < 500 && t.hooks->flushes.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(t.hooks->flushes.load(), 1);
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  t.hooks->release.set_value(absl::OkStatus());
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(answer.get().ok());
  EXPECT_TRUE(t.engine->Writable());
}

TEST(WriteEngine, AFlushThatFailsFailsTheAnswersAsAStorageError) {
  EngineUnderTest t;
  auto answer = t.Insert(1);
  for (int i = 0; i < 500 && t.hooks->flushes.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  absl::Status eio = absl::UnavailableError("cannot flush the write-ahead log: I/O error");
  eio.SetPayload(common::kStorageErrorPayload, absl::Cord("I/O error"));
  t.hooks->release.set_value(eio);
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  absl::Status s = answer.get();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(common::IsStorageError(s)) << s;
  EXPECT_FALSE(t.engine->Writable());
  EXPECT_EQ(t.engine->FailedBatches(), 1u);
}

// The SQLite engine on a file in dir, with one reader and no schema.
absl::StatusOr<std::unique_ptr<parc::server::sql::Engine>> OpenFileEngine(
    parc::testing::TempDir& dir) {
  parc::server::sqlite::EngineOptions e;
  e.path = dir.Sub("parc.db");
  e.readers = 1;
  return parc::server::sqlite::OpenEngine(e, {});
}

// The counts SQLite keeps in memory (sql::HealthCounts) and the writes that change them.
using MemoryCounts = std::map<std::tuple<std::string, int, int64_t>, int64_t>;

MemoryCounts MemoryCountsOf(const parc::server::sql::Engine& engine) {
  MemoryCounts out;
  engine.health_counts()->ForEach(
      [&](const std::string& uai, int family, int64_t value, int64_t n) {
        out[{uai, family, value}] = n;
      });
  return out;
}

absl::Status RunWrite(parc::server::sql::Engine& engine, const std::string& sql,
                      bool fail_after = false) {
  std::promise<absl::Status> done;
  engine.Submit(
      [&](parc::server::sql::Connection* db) -> absl::Status {
        PARC_RETURN_IF_ERROR(db->Exec(sql));
        if (fail_after) return absl::InvalidArgumentError("refused after its changes");
        return absl::OkStatus();
      },
      [&](absl::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

constexpr char kTwoEstablishments[] =
    "INSERT INTO establishments(uai, name, type, category, departement, collectivite_kind, "
    "collectivite_code, collectivite_name, created_at, updated_at) VALUES "
    "('0310036W', 'A', 'LYC', 'lycee', '31', 'region', '76', 'R', 0, 0), "
    "('0340001S', 'B', 'LYC', 'lycee', '34', 'region', '76', 'R', 0, 0)";

// The battery (1), firmware year (2) and operating system (3) counts of one device.
MemoryCounts OneDevice(const std::string& uai, int64_t battery, int64_t year, int64_t os) {
  return {{{uai, 1, battery}, 1}, {{uai, 2, year}, 1}, {{uai, 3, os}, 1}};
}

// SQLite counts the health families an inventory writes in memory: the counts follow every
// committed insert, update, move between establishments and delete; a write undone (its
// savepoint rolled back) leaves them as they were; a restart rebuilds them from the devices
// table; and health_tally keeps only the bundle family.
TEST(Sqlite, HealthCountsInMemoryFollowCommittedWritesOnly) {
  parc::testing::TempDir dir;
  parc::server::sqlite::EngineOptions e;
  e.path = dir.Sub("parc.db");
  e.readers = 1;
  e.health_counts = true;
  MemoryCounts want;
  {
    auto engine = parc::server::sqlite::OpenEngine(e, parc::server::sqlite::Migrations());
    ASSERT_TRUE(engine.ok()) << engine.status();
    auto& en = **engine;
    ASSERT_TRUE(RunWrite(en, kTwoEstablishments).ok());
    ASSERT_TRUE(RunWrite(en,
                         "INSERT INTO devices(id, secret_hash, hw_key, kind, enrolled_at, "
                         "last_enrolled_at, uai) VALUES ('d1', 's', 'h1', 1, 0, 0, '0310036W'), "
                         "('d2', 's', 'h2', 1, 0, 0, NULL), ('d3', 's', 'h3', 1, 0, 0, "
                         "'0310036W')")
                    .ok());
    want = {{{"0310036W", 1, 0}, 2}, {{"0310036W", 2, 0}, 2}, {{"0310036W", 3, 0}, 2},
            {{"", 1, 0}, 1},         {{"", 2, 0}, 1},         {{"", 3, 0}, 1}};
    EXPECT_EQ(MemoryCountsOf(en), want);
    // An inventory: battery at 35 % (band 3), firmware of 2019, os_versions 3 able to run
    // Windows 11 (3 × 2 + 1).
    ASSERT_TRUE(RunWrite(en,
                         "UPDATE devices SET battery_health = 35, firmware_year = 2019, "
                         "os_id = 3, win11 = 1 WHERE id = 'd1'")
                    .ok());
    want = OneDevice("0310036W", 3, 2019, 7);
    for (int f = 1; f <= 3; ++f) want[{"0310036W", f, 0}] = 1;
    for (int f = 1; f <= 3; ++f) want[{"", f, 0}] = 1;
    EXPECT_EQ(MemoryCountsOf(en), want);
    // Undone: its changes never reach the counts.
    absl::Status undone =
        RunWrite(en, "UPDATE devices SET battery_health = 90, os_id = 4 WHERE id = 'd1'", true);
    EXPECT_EQ(undone.code(), absl::StatusCode::kInvalidArgument) << undone;
    EXPECT_EQ(MemoryCountsOf(en), want);
    // A statement that fails halfway (the second row breaks the establishments' reference):
    // the first row's change is undone with it.
    EXPECT_FALSE(RunWrite(en,
                          "UPDATE devices SET uai = CASE id WHEN 'd1' THEN '0340001S' ELSE "
                          "'9999999X' END WHERE id IN ('d1', 'd3')")
                     .ok());
    EXPECT_EQ(MemoryCountsOf(en), want);
    // A move, a device gone, a check-in's columns (not a family of the memory).
    ASSERT_TRUE(RunWrite(en, "UPDATE devices SET uai = '0340001S' WHERE id = 'd1'").ok());
    ASSERT_TRUE(RunWrite(en, "DELETE FROM devices WHERE id = 'd2'").ok());
    ASSERT_TRUE(RunWrite(en, "UPDATE devices SET free_bytes = 1 WHERE id = 'd3'").ok());
    want = OneDevice("0340001S", 3, 2019, 7);
    for (const auto& [key, n] : OneDevice("0310036W", 0, 0, 0)) want[key] = n;
    EXPECT_EQ(MemoryCountsOf(en), want);
    auto reader = en.AcquireReader();
    auto st = reader->Prepare("SELECT count(*) FROM health_tally WHERE family <> 4");
    ASSERT_TRUE(st.ok()) << st.status();
    ASSERT_TRUE(*st->Step());
    EXPECT_EQ(st->Int(0), 0);
  }
  auto engine = parc::server::sqlite::OpenEngine(e, parc::server::sqlite::Migrations());
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ(MemoryCountsOf(**engine), want);
}

// Version 15 moves those counts out of health_tally: a database of version 14, its counts kept
// by the triggers of then, opens with the same counts in memory and none left in the table
// but the bundle family's.
TEST(Sqlite, Version15MovesTheInventoryHealthCountsToMemory) {
  parc::testing::TempDir dir;
  const std::string path = dir.Sub("parc.db");
  {
    auto db = parc::server::DatabaseAtVersion(path, 14);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Exec(kTwoEstablishments).ok());
    ASSERT_TRUE(db->Exec("INSERT INTO devices(id, secret_hash, hw_key, kind, enrolled_at, "
                         "last_enrolled_at, uai, battery_health, firmware_year, os_id, win11) "
                         "VALUES ('d1', 's', 'h1', 1, 0, 0, '0310036W', 50, 2015, 2, 0), "
                         "('d2', 's', 'h2', 1, 0, 0, '0340001S', NULL, 0, 5, 1)")
                    .ok());
  }
  parc::server::sqlite::EngineOptions e;
  e.path = path;
  e.readers = 1;
  e.health_counts = true;
  auto engine = parc::server::sqlite::OpenEngine(e, parc::server::sqlite::Migrations());
  ASSERT_TRUE(engine.ok()) << engine.status();
  MemoryCounts want = OneDevice("0310036W", 2, 2015, 4);
  for (const auto& [key, n] : OneDevice("0340001S", 0, 0, 11)) want[key] = n;
  EXPECT_EQ(MemoryCountsOf(**engine), want);
  auto reader = (*engine)->AcquireReader();
  auto st = reader->Prepare("SELECT family, sum(n) FROM health_tally GROUP BY family");
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Int(0), 4);
  EXPECT_EQ(st->Int(1), 2);
  EXPECT_FALSE(*st->Step());
}

TEST(Sqlite, TheWriterCommitsWithoutFlushingAndTheEngineFlushesTheLog) {
  // The writer's COMMIT leaves the flush to the engine's answerer (MakeDurable): its
  // connection's commits write their WAL frames and skip the sync (wal_synced_by_caller);
  // every other connection runs with FULL.
  parc::testing::TempDir dir;
  auto engine = OpenFileEngine(dir);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const common::internal::WalWriteCounts before = common::internal::WalWriteCountsNow();
  std::promise<absl::Status> written;
  (*engine)->Submit(
      [&](parc::server::sql::Connection* db) -> absl::Status {
        return db->Exec("CREATE TABLE flushed (id INTEGER PRIMARY KEY)");
      },
      [&](absl::Status s) { written.set_value(s); });
  ASSERT_TRUE(written.get_future().get().ok());
  const common::internal::WalWriteCounts after = common::internal::WalWriteCountsNow();
  EXPECT_GE(after.syncs_skipped - before.syncs_skipped, uint64_t{1});
  EXPECT_GE(after.file_writes - before.file_writes, uint64_t{1});
  auto reader = (*engine)->AcquireReader();
  auto st = reader->Prepare("PRAGMA synchronous");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Int(0), 2);  // FULL
  auto table = reader->Prepare("SELECT count(*) FROM flushed");
  ASSERT_TRUE(table.ok()) << table.status();
}

TEST(Sqlite, AWriteWhoseJournalOutgrowsMemoryRollsBackWhole) {
  // A write's savepoint journal stays in memory up to 64 KiB, then goes on in a temporary file
  // (server/sqlite/engine.cc): a write larger than that which fails must still leave nothing
  // behind, and the writes of its batch go through.
  parc::testing::TempDir dir;
  auto engine = OpenFileEngine(dir);
  ASSERT_TRUE(engine.ok()) << engine.status();
  constexpr int kRows = 3000;  // ~3,000 pages of 4 KiB: ~12 MiB of journal when all change
  auto run = [&](parc::server::sql::Engine::WriteOp op) {
    std::promise<absl::Status> done;
    (*engine)->Submit(std::move(op), [&](absl::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  };
  ASSERT_TRUE(run([&](parc::server::sql::Connection* db) -> absl::Status {
                PARC_RETURN_IF_ERROR(
                    db->Exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)"));
                PARC_ASSIGN_OR_RETURN(parc::server::sql::Stmt ins,
                                      db->Prepare("INSERT INTO t VALUES (?, zeroblob(3000))"));
                for (int k = 0; k < kRows; ++k) {
                  PARC_RETURN_IF_ERROR(ins.Bind(1, int64_t{k}).Run());
                }
                return absl::OkStatus();
              }).ok());
  std::promise<absl::Status> big_done, small_done;
  // Both in one batch: the large write first, the small one queued behind it.
  (*engine)->Submit(
      [&](parc::server::sql::Connection* db) -> absl::Status {
        // Ranges of rows per statement (statement journals), twice over (pages journaled
        // already), then a failure.
        PARC_ASSIGN_OR_RETURN(
            parc::server::sql::Stmt up,
            db->Prepare("UPDATE t SET v = zeroblob(3500) WHERE k >= ? AND k < ? + 10"));
        for (int pass = 0; pass < 2; ++pass) {
          for (int k = 0; k < kRows; k += 10) {
            PARC_RETURN_IF_ERROR(up.BindAll(int64_t{k}, int64_t{k}).Run());
          }
        }
        return absl::InvalidArgumentError("refused after its changes");
      },
      [&](absl::Status s) { big_done.set_value(std::move(s)); });
  (*engine)->Submit(
      [](parc::server::sql::Connection* db) -> absl::Status {
        return db->Exec("INSERT INTO t VALUES (-1, zeroblob(10))");
      },
      [&](absl::Status s) { small_done.set_value(std::move(s)); });
  absl::Status big = big_done.get_future().get();
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument) << big;
  EXPECT_TRUE(small_done.get_future().get().ok());
  auto reader = (*engine)->AcquireReader();
  auto st = reader->Prepare("SELECT count(*), sum(length(v)) FROM t WHERE k >= 0");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Int(0), kRows);
  EXPECT_EQ(st->Int(1), int64_t{kRows} * 3000);  // none of the failed write's changes
  auto small = reader->Prepare("SELECT count(*) FROM t WHERE k = -1");
  ASSERT_TRUE(small.ok());
  ASSERT_TRUE(*small->Step());
  EXPECT_EQ(small->Int(0), 1);
  auto check = reader->Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.ok());
  ASSERT_TRUE(*check->Step());
  EXPECT_EQ(check->Text(0), "ok");
}

TEST(Sqlite, ReadingOneRowReadsItsPagesNotTheirNeighbours) {
  // A B-tree is read where it leads: the kernel's readahead would read pages nobody asked for
  // (and, on Linux 6.16+ with ext4, make every page a checkpoint writes back ~10x dearer).
  parc::testing::TempDir dir;
  const std::string path = dir.Sub("t.db");
  {
    auto db = Database::Open(path, Database::Options());
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").ok());
    ASSERT_TRUE((*db)
                    ->Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                           "WHERE i < 4000) INSERT INTO t SELECT i, randomblob(2000) FROM n")
                    .ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  }
  // Out of the page cache (clean pages go on this advice; tmpfs keeps them: nothing to see).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  const int before = ResidentPages(path);
  if (before < 0 || before > 4) GTEST_SKIP() << "this file system keeps the file cached";

  Database::Options o;
  o.read_only = true;
  auto db = Database::Open(path, o);
  ASSERT_TRUE(db.ok()) << db.status();
  auto sel = (*db)->Prepare("SELECT length(v) FROM t WHERE k = ?");
  ASSERT_TRUE(sel.ok());
  sel->Bind(1, int64_t{2345});
  ASSERT_TRUE(*sel->Step());
  EXPECT_EQ(sel->Int(0), 2000);
  // The header, the schema, the table's path from its root to the row's leaf: a few pages of
  // the ~2,000 (4 here); with readahead 22 here.
  EXPECT_LE(ResidentPages(path), 10);
}

TEST(Sqlite, ACommitAfterPageSplitsDropsNothingFromTheCacheAndARollbackDropsItsPages) {
  // A B-tree balance swaps page numbers through a spare one far past the end of a small
  // database; SQLite's own cache would then, at each commit, walk all its buckets to drop
  // pages past the end (none). The wrapper skips such truncations, and passes on the ones
  // that drop pages (a rolled-back growth).
  parc::testing::TempDir dir;
  auto db = Database::Open(dir.Sub("t.db"), Database::Options());
  ASSERT_TRUE(db.ok()) << db.status();
  Database& d = **db;
  ASSERT_TRUE(d.Exec("PRAGMA cache_size=-131072").ok());
  ASSERT_TRUE(d.Exec("CREATE TABLE h (id INTEGER PRIMARY KEY, dev TEXT NOT NULL, body BLOB)").ok());
  ASSERT_TRUE(d.Exec("CREATE INDEX h_dev ON h(dev, id)").ok());
  auto ins = d.Prepare("INSERT INTO h(dev, body) VALUES (?, randomblob(?))");
  ASSERT_TRUE(ins.ok());
  const internal::PageCacheCounts before = internal::PageCacheCountsNow();
  uint64_t x = 88172645463325252u;  // xorshift: devices in no order, as they report
  constexpr int kCommits = 300;
  for (int c = 0; c < kCommits; ++c) {
    ASSERT_TRUE(d.Exec("BEGIN").ok());
    for (int i = 0; i < 10; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      ASSERT_TRUE(ins->BindAll(absl::StrCat("device-", x % 100000), int64_t{300}).Run().ok());
    }
    ASSERT_TRUE(d.Exec("COMMIT").ok());
  }
  const internal::PageCacheCounts after = internal::PageCacheCountsNow();
  EXPECT_GT(after.spare_swaps, before.spare_swaps) << "no balance swapped through the spare";
  EXPECT_GE(after.skipped - before.skipped, uint64_t{kCommits});

  // A growth rolled back: its pages leave the cache, and what follows is whole.
  ASSERT_TRUE(d.Exec("BEGIN").ok());
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(ins->BindAll(absl::StrCat("gone-", i), int64_t{1000}).Run().ok());
  }
  ASSERT_TRUE(d.Exec("ROLLBACK").ok());
  EXPECT_GT(internal::PageCacheCountsNow().forwarded, after.forwarded);
  ASSERT_TRUE(d.Exec("BEGIN").ok());
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(ins->BindAll(absl::StrCat("kept-", i), int64_t{700}).Run().ok());
  }
  ASSERT_TRUE(d.Exec("COMMIT").ok());
  auto count =
      d.Prepare("SELECT count(*), sum(length(body)), sum(dev LIKE 'gone-%') FROM h WHERE id > ?");
  ASSERT_TRUE(count.ok());
  count->Bind(1, int64_t{kCommits * 10});
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->Int(0), 2000);
  EXPECT_EQ(count->Int(1), 2000 * 700);
  EXPECT_EQ(count->Int(2), 0);
  auto check = d.Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.ok());
  ASSERT_TRUE(*check->Step());
  EXPECT_EQ(check->Text(0), "ok");
}

int64_t RowCount(Database& db, absl::string_view table) {
  auto st = db.Prepare(absl::StrCat("SELECT count(*) FROM ", table));
  if (!st.ok() || !*st->Step()) return -1;
  return st->Int(0);
}

// A connection as the server's writer opens it, with a table t(id, body) and no automatic
// checkpoint.
absl::StatusOr<std::unique_ptr<Database>> OpenCallerSyncedWriter(const std::string& path) {
  Database::Options o;
  o.wal_synced_by_caller = true;
  PARC_ASSIGN_OR_RETURN(auto db, Database::Open(path, o));
  PARC_RETURN_IF_ERROR(db->Exec("PRAGMA wal_autocheckpoint=0"));
  PARC_RETURN_IF_ERROR(db->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)"));
  return db;
}

TEST(Sqlite, ACallerSyncedWalWritesEachCommitOnceAndOthersReadIt) {
  // The server's writer: its COMMIT hands its frames to the WAL in one write up to 128 KiB
  // (SQLite writes
  // a frame's header and its page apart), skips the flush to disk (the caller's), and another
  // connection reads the commit at once, as does a copy of the files taken then (a crash).
  parc::testing::TempDir dir;
  auto writer = OpenCallerSyncedWriter(dir.Sub("t.db"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  Database& w = **writer;
  auto reader = Database::Open(dir.Sub("t.db"), Database::Options());
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto ins = w.Prepare("INSERT INTO t(body) VALUES (randomblob(?))");
  ASSERT_TRUE(ins.ok());

  const internal::WalWriteCounts before = internal::WalWriteCountsNow();
  constexpr int kCommits = 40;
  for (int c = 0; c < kCommits; ++c) {
    ASSERT_TRUE(w.Exec("BEGIN IMMEDIATE").ok());
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(ins->BindAll(int64_t{3000}).Run().ok());
    ASSERT_TRUE(w.Exec("COMMIT").ok());
    ASSERT_EQ(RowCount(**reader, "t"), (c + 1) * 20) << "commit " << c;
  }
  const internal::WalWriteCounts after = internal::WalWriteCountsNow();
  // 20 rows of 3,000 bytes: at least 20 pages a commit, two writes each without the VFS.
  EXPECT_GE(after.frames - before.frames, uint64_t{kCommits * 20});
  EXPECT_LE(after.file_writes - before.file_writes, uint64_t{kCommits + 2});
  EXPECT_EQ(after.syncs_skipped - before.syncs_skipped, uint64_t{kCommits});

  // The files as a crash would leave them: every commit is there.
  parc::testing::TempDir copy;
  for (const char* name : {"t.db", "t.db-wal"}) {
    std::filesystem::copy_file(dir.Sub(name), copy.Sub(name));
  }
  {
    auto copied = Database::Open(copy.Sub("t.db"), Database::Options());
    ASSERT_TRUE(copied.ok()) << copied.status();
    EXPECT_EQ(RowCount(**copied, "t"), kCommits * 20);
    auto check = (*copied)->Prepare("PRAGMA integrity_check");
    ASSERT_TRUE(check.ok());
    ASSERT_TRUE(*check->Step());
    EXPECT_EQ(check->Text(0), "ok");
  }

  // A checkpoint through the same connection syncs the WAL for real before copying it.
  ASSERT_TRUE(w.Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  EXPECT_GT(internal::WalWriteCountsNow().syncs_passed, after.syncs_passed);
}

TEST(Sqlite, ACallerSyncedWalThatCannotWriteFailsTheCommitAndKeepsWhatWasStored) {
  // Disk full while the COMMIT hands its frames to the WAL: the COMMIT fails, nothing of it is
  // read, what was committed before stays, and the next COMMIT works once there is room.
  parc::testing::TempDir dir;
  auto writer = OpenCallerSyncedWriter(dir.Sub("t.db"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  Database& w = **writer;
  ASSERT_TRUE(w.Exec("INSERT INTO t(body) VALUES (randomblob(1000))").ok());
  auto reader = Database::Open(dir.Sub("t.db"), Database::Options());
  ASSERT_TRUE(reader.ok()) << reader.status();

  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(std::filesystem::file_size(dir.Sub("t.db-wal")) + 64 * 1024);
  ASSERT_TRUE(w.Exec("BEGIN IMMEDIATE").ok());
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &low), 0);
  absl::Status inserted = w.Exec("INSERT INTO t(body) VALUES (randomblob(500000))");
  absl::Status committed = inserted.ok() ? w.Exec("COMMIT") : inserted;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &saved), 0);
  signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(committed.ok());
  EXPECT_TRUE(IsStorageError(committed)) << committed;
  (void)w.Exec("ROLLBACK");

  EXPECT_EQ(RowCount(**reader, "t"), 1);
  EXPECT_EQ(RowCount(w, "t"), 1);
  absl::Status again = w.Exec("INSERT INTO t(body) VALUES (randomblob(500000))");
  ASSERT_TRUE(again.ok()) << again;
  EXPECT_EQ(RowCount(**reader, "t"), 2);
  auto check = (*reader)->Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.ok());
  ASSERT_TRUE(*check->Step());
  EXPECT_EQ(check->Text(0), "ok");
}

}  // namespace
}  // namespace parc::common

namespace parc::server {
namespace {

TEST(SqlStore, CloseSoftwareListsAreStoredAsDeltas) {
  // Reads the SQLite file directly to see how lists are stored.
  if (parc::testing::TestOnPostgres()) GTEST_SKIP() << "SQLite file test";
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(
      Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token("etok", "", now), cb); }).ok());
  parc::v1::SoftwareList image;
  for (int i = 0; i < 1000; ++i) {
    auto* p = image.add_packages();
    p->set_name(absl::StrCat("pkg", i));
    p->set_version("1.0");
    p->set_architecture("amd64");
    p->set_publisher("Région Occitanie");
  }
  common::CanonicalizeSoftware(&image);
  parc::v1::SoftwareList variant = image;
  variant.mutable_packages()->DeleteSubrange(10, 1);
  // The same package under another publisher is a change the delta keeps.
  variant.mutable_packages(5)->set_publisher("Another publisher");
  auto* extra = variant.add_packages();
  extra->set_name("vlc");
  extra->set_version("3.0");
  common::CanonicalizeSoftware(&variant);
  auto report = [&](const std::string& device, const parc::v1::SoftwareList& sw) {
    InventoryInput in;
    in.device_id = device;
    in.software_hash = common::SoftwareHash(sw);
    in.software = std::make_shared<const parc::v1::SoftwareList>(sw);
    in.inventory_hash = common::InventoryHash(in.hardware, in.software_hash);
    in.received_at = in.collected_at = now;
    return Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); });
  };
  for (const char* d : {"d1", "d2"}) {
    ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                  store->Enroll(Enrollment("etok", absl::StrCat("hw-", d), d, now), cb);
                }).ok());
  }
  ASSERT_TRUE(report("d1", image).ok());
  ASSERT_TRUE(report("d2", variant).ok());
  // The variant is stored as a few packages against the image.
  common::Database::Options o;
  auto db = common::Database::Open(dir.Sub("parc.db"), o);
  auto st = (*db)->Prepare("SELECT length(packages), base_hash FROM software_sets WHERE hash = ?");
  st->Bind(1, common::SoftwareHash(variant));
  ASSERT_TRUE(*st->Step());
  EXPECT_LT(st->Int(0), 200);
  EXPECT_EQ(st->Text(1), common::SoftwareHash(image));
  // Read back whole.
  auto details = store->GetDevice("d2", Scope::Region());
  ASSERT_TRUE(details.ok() && details->inventory.has_value());
  EXPECT_EQ(details->inventory->software().SerializeAsString(), variant.SerializeAsString());
  // The image's list stays while a delta needs it, even when no inventory points at it.
  ASSERT_TRUE(store->GetDevice("d1", Scope::Region()).ok());
  (void)Wait<parc::v1::Device>([&](auto cb) { store->RetireDevice("d1", Scope::Region(), cb); });
  ASSERT_TRUE(Wait<int64_t>([&](auto cb) { store->PurgeInventoryHistory(now, cb); }).ok());
  EXPECT_TRUE(*store->HasSoftwareSet(common::SoftwareHash(image)));
  EXPECT_EQ(store->GetDevice("d2", Scope::Region())->inventory->software().packages_size(), 1000);
}

// The retention purge finds the unused software sets on a reader, then deletes them on the
// writer: a set that an inventory takes up in between (sent by hash only, the agent having been
// told the server knows it) stays, and so does the inventory that uses it.
TEST(SqlStore, RetentionKeepsASoftwareSetTakenUpDuringItsSweep) {
  if (parc::testing::TestOnPostgres()) GTEST_SKIP() << "PostgreSQL keeps the foreign key";
  TempDir dir;
  std::function<void()> between;
  auto store = OpenStore(dir.Sub("parc.db"), [&](SqlStore::Options& o) {
    o.before_software_sweep = [&] {
      if (between) between();
    };
  });
  ASSERT_NE(store, nullptr);
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(FixtureEstablishments(), now, cb);
              }).ok());
  ASSERT_TRUE(
      Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token("etok", "", now), cb); }).ok());
  for (const char* d : {"d1", "d2"}) {
    ASSERT_TRUE(Wait<EnrollOutcome>([&](auto cb) {
                  store->Enroll(Enrollment("etok", absl::StrCat("hw-", d), d, now), cb);
                }).ok());
  }
  auto list = [](const std::string& version) {
    parc::v1::SoftwareList sw;
    auto* p = sw.add_packages();
    p->set_name("pkg");
    p->set_version(version);
    return sw;
  };
  auto report = [&](const std::string& device, const parc::v1::SoftwareList& sw, bool send_list,
                    absl::Time at) {
    InventoryInput in;
    in.device_id = device;
    in.software_hash = common::SoftwareHash(sw);
    if (send_list) in.software = std::make_shared<const parc::v1::SoftwareList>(sw);
    in.hardware.set_model(device);
    in.inventory_hash = common::InventoryHash(in.hardware, in.software_hash);
    in.received_at = in.collected_at = at;
    return Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); });
  };
  // d1 moves from "old" to "new": the purge leaves "old" unused. "gone" is unused as well.
  ASSERT_TRUE(report("d1", list("old"), true, now).ok());
  ASSERT_TRUE(report("d1", list("new"), true, now + absl::Hours(1)).ok());
  ASSERT_TRUE(report("d2", list("gone"), true, now).ok());
  ASSERT_TRUE(report("d2", list("kept"), true, now + absl::Hours(1)).ok());
  const std::string old_hash = common::SoftwareHash(list("old"));
  // Between the sweep's read and its delete, d2 sends an inventory naming "old" by hash.
  bool ran = false;
  between = [&] {
    ran = true;
    ASSERT_TRUE(report("d2", list("old"), false, now + absl::Hours(2)).ok());
  };
  auto deleted =
      Wait<int64_t>([&](auto cb) { store->PurgeInventoryHistory(now + absl::Minutes(30), cb); });
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_TRUE(ran);
  EXPECT_EQ(*deleted, 2);
  EXPECT_TRUE(*store->HasSoftwareSet(old_hash));
  EXPECT_FALSE(*store->HasSoftwareSet(common::SoftwareHash(list("gone"))));
  auto d2 = store->GetDevice("d2", Scope::Region());
  ASSERT_TRUE(d2.ok()) << d2.status();
  ASSERT_TRUE(d2->inventory.has_value());
  EXPECT_EQ(d2->inventory->software().packages(0).version(), "old");
  // The next purge, with nothing in between, still keeps what an inventory uses.
  between = nullptr;
  ASSERT_TRUE(Wait<int64_t>([&](auto cb) {
                store->PurgeInventoryHistory(now + absl::Hours(24), cb);
              }).ok());
  EXPECT_TRUE(*store->HasSoftwareSet(old_hash));
  EXPECT_TRUE(*store->HasSoftwareSet(common::SoftwareHash(list("new"))));
  EXPECT_FALSE(*store->HasSoftwareSet(common::SoftwareHash(list("kept"))));
  EXPECT_EQ(store->GetDevice("d2", Scope::Region())->inventory->software().packages(0).version(),
            "old");
}

// Version 14 rewrites the inventories without the software set's foreign key and index: the
// history of a version 13 database is all there (through version 16's chain too), and goes with
// its device still.
TEST(SqlStore, Version14KeepsTheInventories) {
  if (parc::testing::TestOnPostgres()) GTEST_SKIP() << "SQLite file test";
  TempDir dir;
  const std::string path = dir.Sub("parc.db");
  {
    auto db13 = DatabaseAtVersion(path, 13);
    ASSERT_NE(db13, nullptr);
    parc::v1::SoftwareList sw;
    sw.add_packages()->set_name("pkg");
    parc::v1::Hardware hw;
    hw.set_model("Latitude 3190");
    auto st = db13->Prepare(
        "INSERT INTO software_sets(hash, package_count, packages, created_at) VALUES ('s1', 1, "
        "?, 0)");
    ASSERT_TRUE(st.ok()) << st.status();
    st->BindBlob(1, sw.SerializeAsString());
    ASSERT_TRUE(st->Run().ok());
    for (const char* d : {"d1", "d2"}) {
      ASSERT_TRUE(db13->Exec(absl::StrCat("INSERT INTO devices(id, secret_hash, hw_key, kind, "
                                          "enrolled_at, last_enrolled_at) VALUES ('",
                                          d, "', 's', 'hw-", d, "', 1, 0, 0)"))
                      .ok());
      for (int i = 0; i < 2; ++i) {
        auto ins = db13->Prepare(
            "INSERT INTO inventories(device_id, received_at, collected_at, inventory_hash, "
            "hardware, software_hash) VALUES (?, ?, ?, 'h', ?, 's1')");
        ASSERT_TRUE(ins.ok()) << ins.status();
        ins->BindAll(d, int64_t{1790000000} + i, int64_t{1790000000} + i);
        ins->BindBlob(4, hw.SerializeAsString());
        ASSERT_TRUE(ins->Run().ok());
      }
    }
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  auto d1 = store->GetDevice("d1", Scope::Region());
  ASSERT_TRUE(d1.ok()) << d1.status();
  EXPECT_EQ(d1->inventory_history, 2u);
  ASSERT_TRUE(d1->inventory.has_value());
  EXPECT_EQ(d1->inventory->hardware().model(), "Latitude 3190");
  EXPECT_EQ(d1->inventory->software().packages(0).name(), "pkg");
  auto db = OpenStoreDatabase(path);
  ASSERT_NE(db, nullptr);
  {
    auto indexes = db->Prepare(
        "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master WHERE type = "
        "'index' AND tbl_name = 'inventories' ORDER BY name)");
    ASSERT_TRUE(indexes.ok()) << indexes.status();
    ASSERT_TRUE(*indexes->Step());
    // Version 16 dropped the index by device too (the history is a chain).
    EXPECT_EQ(indexes->Text(0), "inventories_received");
  }
  // A device retired still takes its history with it.
  ASSERT_TRUE(Wait<parc::v1::Device>([&](auto cb) {
                store->RetireDevice("d1", Scope::Region(), cb);
              }).ok());
  auto left = db->Prepare("SELECT count(*), min(device_id) FROM inventories");
  ASSERT_TRUE(left.ok()) << left.status();
  ASSERT_TRUE(*left->Step());
  EXPECT_EQ(left->Int(0), 2);
  EXPECT_EQ(left->Text(1), "d2");
}

// Version 16 chains each device's history (prev_id, devices.inventory_id, history_count) and
// drops the index by device: interleaved histories come out as chains, the latest and the count
// read as before, and the next inventory continues its device's chain.
TEST(SqlStore, Version16ChainsTheHistory) {
  if (parc::testing::TestOnPostgres()) GTEST_SKIP() << "SQLite file test (postgres_test: v10)";
  TempDir dir;
  const std::string path = dir.Sub("parc.db");
  parc::v1::Hardware hw;
  {
    auto db15 = DatabaseAtVersion(path, 15);
    ASSERT_NE(db15, nullptr);
    ASSERT_TRUE(db15->Exec("INSERT INTO software_sets(hash, package_count, packages, created_at) "
                           "VALUES ('s1', 0, x'', 0)")
                    .ok());
    for (const char* d : {"d1", "d2", "d3"}) {
      ASSERT_TRUE(db15->Exec(absl::StrCat("INSERT INTO devices(id, secret_hash, hw_key, kind, "
                                          "enrolled_at, last_enrolled_at) VALUES ('",
                                          d, "', 's', 'hw-", d, "', 1, 0, 0)"))
                      .ok());
    }
    // Interleaved: d1 gets ids 1, 3, 4; d2 gets 2 and 5; d3 none.
    int n = 0;
    for (const char* d : {"d1", "d2", "d1", "d1", "d2"}) {
      hw.set_model(absl::StrCat("model ", ++n));
      auto ins = db15->Prepare(
          "INSERT INTO inventories(device_id, received_at, collected_at, inventory_hash, "
          "hardware, software_hash) VALUES (?, 1790000000, 1790000000, 'h', ?, 's1')");
      ASSERT_TRUE(ins.ok()) << ins.status();
      ins->Bind(1, d);
      ins->BindBlob(2, hw.SerializeAsString());
      ASSERT_TRUE(ins->Run().ok());
    }
    ASSERT_TRUE(db15->Exec("UPDATE devices SET inventory_at = 1790000000 WHERE id <> 'd3'").ok());
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  auto db = OpenStoreDatabase(path);
  ASSERT_NE(db, nullptr);
  {
    auto chain = db->Prepare(
        "SELECT group_concat(id || ':' || coalesce(prev_id, 0), ',') FROM (SELECT id, prev_id "
        "FROM inventories ORDER BY id)");
    ASSERT_TRUE(chain.ok()) << chain.status();
    ASSERT_TRUE(*chain->Step());
    EXPECT_EQ(chain->Text(0), "1:0,2:0,3:1,4:3,5:2");
  }
  auto d1 = store->GetDevice("d1", Scope::Region());
  ASSERT_TRUE(d1.ok()) << d1.status();
  EXPECT_EQ(d1->inventory_history, 3u);
  ASSERT_TRUE(d1->inventory.has_value());
  EXPECT_EQ(d1->inventory->hardware().model(), "model 4");
  auto d2 = store->GetDevice("d2", Scope::Region());
  ASSERT_TRUE(d2.ok()) << d2.status();
  EXPECT_EQ(d2->inventory_history, 2u);
  EXPECT_EQ(d2->inventory->hardware().model(), "model 5");
  auto d3 = store->GetDevice("d3", Scope::Region());
  ASSERT_TRUE(d3.ok()) << d3.status();
  EXPECT_FALSE(d3->inventory.has_value());
  EXPECT_EQ(d3->inventory_history, 0u);
  // A new inventory of d1 follows its id 4, and d3's first starts a chain.
  for (const char* d : {"d1", "d3"}) {
    InventoryInput in;
    in.device_id = d;
    in.software_hash = "s1";
    in.hardware.set_model(absl::StrCat("new ", d));
    in.inventory_hash = common::InventoryHash(in.hardware, in.software_hash);
    in.received_at = in.collected_at = absl::FromUnixSeconds(1790000100);
    ASSERT_TRUE(Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); }).ok());
  }
  auto last = db->Prepare(
      "SELECT group_concat(device_id || ':' || coalesce(prev_id, 0), ',') FROM (SELECT device_id, "
      "prev_id FROM inventories WHERE id > 5 ORDER BY id)");
  ASSERT_TRUE(last.ok()) << last.status();
  ASSERT_TRUE(*last->Step());
  EXPECT_EQ(last->Text(0), "d1:4,d3:0");
  EXPECT_EQ(store->GetDevice("d1", Scope::Region())->inventory_history, 4u);
  EXPECT_EQ(store->GetDevice("d3", Scope::Region())->inventory_history, 1u);
  EXPECT_EQ(store->GetDevice("d1", Scope::Region())->inventory->hardware().model(), "new d1");
}

// A first inventory adds about 230 bytes of facts to its device's row. Enrolled rows pack
// their pages full, so without room each page would split as its devices report (here the
// table grew from 64 to 158 pages without it); born with room (schema 17), the rows keep
// their pages.
TEST(Sqlite, ADeviceRowIsBornWithRoomForItsFirstInventory) {
  if (parc::testing::TestOnPostgres()) GTEST_SKIP() << "SQLite's B-tree pages";
  TempDir dir;
  const std::string path = dir.Sub("parc.db");
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(
      Wait<bool>([&](auto cb) { store->CreateEnrollmentToken(Token("etok", "", now), cb); }).ok());
  constexpr int kDevices = 1500;
  auto device = [](int i) { return absl::StrCat("d", 100000 + i); };
  {
    std::vector<std::future<absl::StatusOr<EnrollOutcome>>> enrolled;
    for (int i = 0; i < kDevices; ++i) {
      auto p = std::make_shared<std::promise<absl::StatusOr<EnrollOutcome>>>();
      enrolled.push_back(p->get_future());
      EnrollInput in = Enrollment("etok", absl::StrCat("hw", i), device(i), now);
      in.hostname = absl::StrCat("LYC-0340", 1000 + i % 100, "A-PC", i);
      store->Enroll(std::move(in),
                    [p](absl::StatusOr<EnrollOutcome> r) { p->set_value(std::move(r)); });
    }
    for (auto& f : enrolled) ASSERT_TRUE(f.get().ok());
  }
  auto db = OpenStoreDatabase(path);
  ASSERT_NE(db, nullptr);
  auto count = [&](const char* sql) -> int64_t {
    auto st = db->Prepare(sql);
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok()) return -1;
    auto row = st->Step();
    EXPECT_TRUE(row.ok() && *row) << sql;
    return row.ok() && *row ? st->Int(0) : -1;
  };
  EXPECT_EQ(count("SELECT count(*) FROM devices WHERE length(room) = 256 AND room = "
                  "zeroblob(256)"),
            kDevices);
  const int64_t pages_enrolled = count("SELECT count(*) FROM dbstat WHERE name = 'devices'");
  ASSERT_GT(pages_enrolled, 0);

  // Each device's first inventory, with facts of the sizes a school laptop reports.
  auto list = std::make_shared<const parc::v1::SoftwareList>();
  const std::string software_hash = common::SoftwareHash(*list);
  std::vector<std::future<absl::StatusOr<bool>>> stored;
  for (int i = 0; i < kDevices; ++i) {
    InventoryInput in;
    in.device_id = device(i);
    in.software = list;
    in.software_hash = software_hash;
    in.hardware.set_manufacturer("LENOVO");
    in.hardware.set_model("ThinkPad L14 Gen 3 21C1CTO1WW");
    in.hardware.set_hostname(absl::StrCat("LYC-0340", 1000 + i % 100, "A-PC", i));
    in.hardware.set_os_name("Microsoft Windows 11 Education");
    in.hardware.set_os_version("10.0.22631");
    in.hardware.set_ram_bytes(uint64_t{8} << 30);
    in.inventory_hash = common::InventoryHash(in.hardware, in.software_hash);
    in.received_at = in.collected_at = now;
    auto p = std::make_shared<std::promise<absl::StatusOr<bool>>>();
    stored.push_back(p->get_future());
    store->StoreInventory(std::move(in),
                          [p](absl::StatusOr<bool> r) { p->set_value(std::move(r)); });
  }
  for (auto& f : stored) ASSERT_TRUE(f.get().ok());
  EXPECT_EQ(count("SELECT count(*) FROM devices WHERE room IS NULL AND model <> ''"), kDevices);
  const int64_t pages_reported = count("SELECT count(*) FROM dbstat WHERE name = 'devices'");
  EXPECT_LE(pages_reported * 10, pages_enrolled * 11)
      << "devices table: " << pages_enrolled << " pages enrolled, " << pages_reported
      << " after the first inventories";
}

// The deployment report reads counts kept by triggers; whatever writes the devices and
// deployments (here: random SQL on another connection, a v4 database migrated with data in it),
// the report must equal the one computed from the rows themselves.
TEST(SqlStore, DeploymentReportCountsFollowEveryWrite) {
  // Writes the SQLite file directly; postgres_test covers PostgreSQL's schema and counts.
  if (parc::testing::TestOnPostgres()) GTEST_SKIP() << "SQLite file test";
  TempDir dir;
  const std::string path = dir.Sub("parc.db");
  const int64_t day = 86400, t0 = 1790000000;
  const std::vector<std::string> uais = {"0310001A", "0310002B", "0340001C",
                                         "0340002D", "0120001E", "0660001F"};
  auto exec = [](common::Database* db, const std::string& sql) {
    absl::Status st = db->Exec(sql);
    ASSERT_TRUE(st.ok()) << st << "\n" << sql;
  };
  std::mt19937 rng(20261128);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto random_device_sql = [&](common::Database* db) {
    // One random write to devices or deployments.
    const std::string dev = absl::StrCat("'d", pick(60), "'");
    const std::vector<std::string> rollouts = {"'ra1'", "'ra2'", "'rb1'", "'rc1'"};
    const std::string rollout = rollouts[pick(4)];
    const std::string uai = pick(8) == 0 ? "NULL" : absl::StrCat("'", uais[pick(6)], "'");
    std::string sql;
    switch (pick(8)) {
      case 0:
        sql = absl::StrCat(
            "INSERT OR IGNORE INTO devices(id, secret_hash, hw_key, uai, kind, enrolled_at, "
            "last_enrolled_at, last_seen_at) VALUES (",
            dev, ", 'x', ", dev, ", ", uai, ", ", pick(4), ", ", t0, ", ", t0, ", ",
            pick(3) == 0 ? std::string("NULL") : absl::StrCat(t0 + pick(20) * day / 2), ")");
        break;
      case 1:
        sql = absl::StrCat("UPDATE devices SET last_seen_at = ", t0 + pick(20) * day / 2,
                           " WHERE id = ", dev);
        break;
      case 2:
        sql = absl::StrCat("UPDATE devices SET uai = ", uai, " WHERE id = ", dev);
        break;
      case 3:
        sql = absl::StrCat("UPDATE devices SET kind = ", pick(4), ", uai = ", uai,
                           " WHERE id = ", dev);
        break;
      case 4:
        sql = absl::StrCat("DELETE FROM devices WHERE id = ", dev);
        break;
      case 5:
        sql = absl::StrCat("DELETE FROM deployments WHERE device_id = ", dev,
                           " AND rollout_id = ", rollout);
        break;
      default:
        sql = absl::StrCat(
            "INSERT INTO deployments(rollout_id, device_id, state, updated_at) SELECT ", rollout,
            ", id, ", pick(5), ", ", t0, " FROM devices WHERE id = ", dev,
            " ON CONFLICT DO UPDATE SET state = excluded.state");
    }
    absl::Status st = db->Exec(sql);
    ASSERT_TRUE(st.ok()) << st << "\n" << sql;
  };

  {
    // A database of the previous schema, with devices and deployments in it.
    auto db = DatabaseAtVersion(path, 4);
    ASSERT_NE(db, nullptr);
    for (size_t i = 0; i < uais.size(); ++i) {
      exec(db.get(),
           absl::StrCat("INSERT INTO establishments(uai, name, type, category, commune_code, "
                        "commune_name, departement, academie, collectivite_kind, "
                        "collectivite_code, collectivite_name, created_at, updated_at) VALUES ('",
                        uais[i], "', 'Établissement ", i, "', 'LYC', 'lycee', '3155", i % 3,
                        "', 'Commune ", i % 3, "', '", uais[i].substr(1, 2), "', '",
                        i < 2 ? "Toulouse" : "Montpellier", "', 'region', '76', 'Région', 0, 0)"));
    }
    exec(db.get(),
         "INSERT INTO bundles(id, name, version, sequence, manifest_sha256, signed_manifest, "
         "published_at, expires_at, package_count, total_bytes, signers, published_by) VALUES "
         "(1, 'mcnl', '2025.1', 1, 'a', x'00', 0, 0, 1, 1, 'k', 'admin'), "
         "(2, 'mcnl', '2026.1', 2, 'b', x'00', 0, 0, 1, 1, 'k', 'admin'), "
         "(3, 'autre', '1', 1, 'c', x'00', 0, 0, 1, 1, 'k', 'admin')");
    for (const auto& [id, bundle] :
         std::vector<std::pair<std::string, int>>{{"ra1", 1}, {"ra2", 1}, {"rb1", 2}, {"rc1", 3}}) {
      exec(db.get(), absl::StrCat("INSERT INTO rollouts(id, bundle_id, target, waves, "
                                  "success_percent, max_failures_percent, max_failures_count, "
                                  "window_start, window_end, rate_limit, state, wave_count, "
                                  "created_at, created_by) VALUES ('",
                                  id, "', ", bundle,
                                  ", 'all', '[]', 90, 5, 0, 0, 0, 0, 'running', 1, 0, 'a')"));
    }
    for (int i = 0; i < 600; ++i) random_device_sql(db.get());
  }

  auto store = OpenStore(path);  // migrates, filling the counts from the rows
  ASSERT_NE(store, nullptr);
  // Every form of scope the store turns into SQL.
  std::vector<Scope> scopes = {Scope::Region(), Scope::Uais({"0310001A", "0340002D"})};
  for (const char* text : {"departement:31", "academie:Toulouse", "commune:31551,31552",
                           "collectivite:region", "collectivite:departement:31"}) {
    auto scope = Scope::Parse(text);
    ASSERT_TRUE(scope.ok()) << scope.status();
    scopes.push_back(*scope);
  }
  auto expect_same = [&](const std::string& step) {
    for (const auto& [name, seq] :
         std::vector<std::pair<std::string, uint64_t>>{{"mcnl", 2}, {"mcnl", 1}, {"autre", 1}}) {
      for (const char* by :
           {"region", "academie", "departement", "commune", "establishment", "kind"}) {
        for (const Scope& scope : scopes) {
          for (int64_t stale_day : {3, 6, 9}) {
            absl::Time stale_before = absl::FromUnixSeconds(t0 + stale_day * day);
            auto fast = store->DeploymentReport(name, seq, by, stale_before, scope);
            auto scan = store->DeploymentReportByScan(name, seq, by, stale_before, scope);
            ASSERT_TRUE(fast.ok()) << fast.status();
            ASSERT_TRUE(scan.ok()) << scan.status();
            ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*fast, *scan))
                << step << ": " << name << " " << seq << " by " << by << " scope " << scope.text()
                << "\ncounts:\n"
                << fast->DebugString() << "\nscan:\n"
                << scan->DebugString();
          }
        }
      }
    }
  };
  {
    // Rollouts over some establishments, in waves; one started, one for two kinds only.
    common::Database::Options o;
    auto db = common::Database::Open(path, o);
    ASSERT_TRUE(db.ok());
    exec(db->get(), absl::StrCat("UPDATE rollouts SET started_at = ", t0 + 4 * day,
                                 " WHERE id IN ('ra1', 'rb1')"));
    exec(db->get(), "UPDATE rollouts SET kinds = '1,2', wave_count = 2 WHERE id = 'rb1'");
    for (const char* r : {"ra1", "ra2", "rb1", "rc1"}) {
      for (size_t i = 0; i < uais.size(); ++i) {
        if ((i + static_cast<size_t>(r[1])) % 3 == 0) continue;
        exec(db->get(), absl::StrCat("INSERT INTO rollout_establishments VALUES ('", r, "', '",
                                     uais[i], "', ", i % 2, ")"));
      }
    }
  }
  auto expect_same_rollouts = [&](const std::string& step) {
    for (const char* r : {"ra1", "ra2", "rb1", "rc1"}) {
      for (const Scope& scope : scopes) {
        auto fast = store->RolloutCounts(r, scope);
        auto scan = store->RolloutCountsByScan(r, scope);
        // A rollout with no establishment in the scope does not exist for it.
        if (scope.is_region() || scope.text() == "departement:31") {
          ASSERT_TRUE(fast.ok()) << fast.status();
        } else if (scope.text() == "collectivite:departement:31") {
          EXPECT_TRUE(absl::IsNotFound(fast.status())) << fast.status();
        }
        if (absl::IsNotFound(fast.status())) {
          EXPECT_TRUE(absl::IsNotFound(scan.status())) << scan.status();
          continue;
        }
        ASSERT_TRUE(fast.ok()) << fast.status();
        ASSERT_TRUE(scan.ok()) << scan.status();
        ASSERT_EQ(fast->size(), scan->size()) << step << " " << r;
        for (size_t i = 0; i < fast->size(); ++i) {
          const auto &a = (*fast)[i], &b = (*scan)[i];
          EXPECT_EQ(
              std::tie(a.wave, a.uai, a.targeted, a.installed, a.in_progress, a.failed, a.not_seen),
              std::tie(b.wave, b.uai, b.targeted, b.installed, b.in_progress, b.failed, b.not_seen))
              << step << ": rollout " << r << " " << a.uai << " scope " << scope.text();
        }
      }
    }
  };
  expect_same("after migration");
  expect_same_rollouts("after migration");
  // The random history is not trivial: devices in every state.
  auto report =
      store->DeploymentReport("autre", 1, "region", absl::FromUnixSeconds(t0), Scope::Region());
  ASSERT_TRUE(report.ok());
  EXPECT_GT(report->total().devices(), 10u);
  EXPECT_GT(report->total().up_to_date(), 0u);
  EXPECT_GT(report->total().failed(), 0u);
  EXPECT_GT(report->total().in_progress(), 0u);

  common::Database::Options o;
  auto db = common::Database::Open(path, o);
  ASSERT_TRUE(db.ok());
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 100; ++i) random_device_sql(db->get());
    expect_same(absl::StrCat("after round ", round));
    expect_same_rollouts(absl::StrCat("after round ", round));
    if (::testing::Test::HasFatalFailure() || ::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace parc::server

namespace parc::server {
namespace {

TEST(SqlStore, TheWriteQueueIsBoundedAndSaysWhenToComeBack) {
  TempDir dir;
  SqlStore::Options o;
  o.path = dir.Sub("parc.db");
  o.readers = 1;
  o.max_queued_writes = 4;
  auto store = SqlStore::Open(o);
  ASSERT_TRUE(store.ok());
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::atomic<int> done{0};
  for (int i = 0; i < 300; ++i) {
    (*store)->CreateEnrollmentToken(
        Token(absl::StrCat("e", i), "", now), [&](absl::StatusOr<bool> r) {
          if (r.ok()) {
            ++ok;
          } else if (absl::IsResourceExhausted(r.status()) && common::IsRetryLater(r.status())) {
            ++busy;
          } else {
            ++other;
          }
          ++done;
        });
  }
  while (done < 300) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(busy.load(), 0) << "300 writes at once never exceeded a queue of 4";
  EXPECT_EQ(other.load(), 0);
  // What was acknowledged is stored, and nothing else.
  EXPECT_EQ((*store)->ListEnrollmentTokens(Scope::Region())->size(),
            static_cast<size_t>(ok.load()));
}

}  // namespace
}  // namespace parc::server
