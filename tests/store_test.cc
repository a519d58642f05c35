#include <atomic>
#include <future>
#include <thread>

#include "common/crypto.h"
#include "common/inventory_util.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"
#include "server/establishment_import.h"
#include "server/sqlite_store.h"
#include "tests/test_util.h"

namespace parc::server {
namespace {

using parc::testing::TempDir;

template <typename T>
absl::StatusOr<T> Wait(std::function<void(StoreCallback<T>)> submit) {
  std::promise<absl::StatusOr<T>> p;
  submit([&](absl::StatusOr<T> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

std::unique_ptr<SqliteStore> OpenStore(const std::string& path) {
  SqliteStore::Options o;
  o.path = path;
  o.readers = 2;
  auto store = SqliteStore::Open(o);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
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

TEST(SqliteStore, MigratesAnEmptyFileAndReopens) {
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
    EXPECT_EQ(*common::SchemaVersion(db->get()), SqliteStore::Migrations().back().version);
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  auto list = store->ListEstablishments({});
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
  EXPECT_EQ(store->ListEstablishments({})->size(), 9u);
}

TEST(SqliteStore, RefusesANewerSchemaAndNonDatabaseFiles) {
  TempDir dir;
  {
    common::Database::Options o;
    auto db = common::Database::Open(dir.Sub("new.db"), o);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA user_version=999").ok());
  }
  SqliteStore::Options o;
  o.path = dir.Sub("new.db");
  auto store = SqliteStore::Open(o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("newer"), absl::string_view::npos);

  parc::testing::WriteFile(dir.Sub("garbage.db"), std::string(8192, 'x'));
  o.path = dir.Sub("garbage.db");
  store = SqliteStore::Open(o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
}

TEST(SqliteStore, GroupCommitsConcurrentWritesAndIsolatesFailures) {
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
  DeviceFilter all;
  all.limit = 10000;
  EXPECT_EQ(store->ListDevices(all)->size(), static_cast<size_t>(ok.load()));
  auto tokens = store->ListEnrollmentTokens();
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ((*tokens)[0].uses, static_cast<uint32_t>(ok.load()));  // failed uses rolled back
  // Fewer transactions than writes: concurrent writes were batched.
  EXPECT_LT(store->batches_committed(), store->writes_applied());
}

TEST(SqliteStore, PreassignmentIsAllOrNothing) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("parc.db"));
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  ASSERT_TRUE(Wait<ImportCounts>([&](auto cb) {
                store->UpsertEstablishments(FixtureEstablishments(), now, cb);
              }).ok());
  std::vector<Preassignment> rows = {{2, "A1", "0310036W"}, {3, "A2", "0000000A"}};
  auto r = Wait<ImportCounts>([&](auto cb) { store->UpsertPreassignments(rows, now, cb); });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 3"), absl::string_view::npos);
  // The first row was rolled back with the rest.
  rows.pop_back();
  r = Wait<ImportCounts>([&](auto cb) { store->UpsertPreassignments(rows, now, cb); });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->inserted, 1u);
}

TEST(SqliteStore, RetentionKeepsEachDevicesLatestInventory) {
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
    in.software = sw;
    in.hardware.set_model("M");
    in.inventory_hash = common::InventoryHash(in.hardware, in.software_hash);
    in.received_at = at;
    in.collected_at = at;
    return Wait<bool>([&](auto cb) { store->StoreInventory(in, cb); });
  };
  ASSERT_TRUE(report(1, now).ok());
  ASSERT_TRUE(report(2, now + absl::Hours(24)).ok());
  ASSERT_TRUE(report(3, now + absl::Hours(48)).ok());
  ASSERT_TRUE(report(3, now + absl::Hours(49)).ok());  // same again: no new history row
  EXPECT_EQ(store->GetDevice("d1")->inventory_history, 3u);
  // Purge everything older than 30 hours after the start: versions 1 and 2 go.
  auto deleted =
      Wait<int64_t>([&](auto cb) { store->PurgeInventoryHistory(now + absl::Hours(30), cb); });
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 2);
  auto details = store->GetDevice("d1");
  ASSERT_TRUE(details.ok());
  EXPECT_EQ(details->inventory_history, 1u);
  EXPECT_EQ(details->inventory->software().packages(0).version(), "3");
  // A purge far in the future still keeps the latest inventory.
  deleted = Wait<int64_t>(
      [&](auto cb) { store->PurgeInventoryHistory(now + absl::Hours(24 * 1000), cb); });
  EXPECT_EQ(*deleted, 0);
  EXPECT_TRUE(store->GetDevice("d1")->inventory.has_value());
  // Orphaned software sets were deleted with their inventories.
  EXPECT_TRUE(*store->HasSoftwareSet(details->device.software_hash()));
}

TEST(SqliteStore, InventoryWithoutSoftwareNeedsAKnownSet) {
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

}  // namespace
}  // namespace parc::common

namespace parc::server {
namespace {

TEST(SqliteStore, CloseSoftwareListsAreStoredAsDeltas) {
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
  }
  common::CanonicalizeSoftware(&image);
  parc::v1::SoftwareList variant = image;
  variant.mutable_packages()->DeleteSubrange(10, 1);
  auto* extra = variant.add_packages();
  extra->set_name("vlc");
  extra->set_version("3.0");
  common::CanonicalizeSoftware(&variant);
  auto report = [&](const std::string& device, const parc::v1::SoftwareList& sw) {
    InventoryInput in;
    in.device_id = device;
    in.software_hash = common::SoftwareHash(sw);
    in.software = sw;
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
  auto details = store->GetDevice("d2");
  ASSERT_TRUE(details.ok() && details->inventory.has_value());
  EXPECT_EQ(details->inventory->software().SerializeAsString(), variant.SerializeAsString());
  // The image's list stays while a delta needs it, even when no inventory points at it.
  ASSERT_TRUE(store->GetDevice("d1").ok());
  (void)Wait<parc::v1::Device>([&](auto cb) { store->RetireDevice("d1", "", cb); });
  ASSERT_TRUE(Wait<int64_t>([&](auto cb) { store->PurgeInventoryHistory(now, cb); }).ok());
  EXPECT_TRUE(*store->HasSoftwareSet(common::SoftwareHash(image)));
  EXPECT_EQ(store->GetDevice("d2")->inventory->software().packages_size(), 1000);
}

}  // namespace
}  // namespace parc::server
