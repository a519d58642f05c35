// The PostgreSQL layer against a real server (tests/postgres_server.h): connections,
// parameters and results, errors, and the schema's migrations with the counts its triggers
// keep.
#include <gtest/gtest.h>

#include <future>

#include "common/sqlite.h"
#include "server/postgres/connection.h"
#include "server/postgres/schema.h"
#include "server/sql_store.h"
#include "tests/postgres_server.h"

namespace parc::server::pg {
namespace {

using parc::testing::PostgresServer;

std::unique_ptr<Connection> NewDatabase() {
  auto info = PostgresServer::Shared().CreateDatabase();
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return nullptr;
  auto db = Connection::Open(*info);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? std::move(*db) : nullptr;
}

TEST(Postgres, ParametersAndResultsKeepTheirValues) {
  auto db = NewDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Run("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, data BYTEA)").ok());
  const std::string bytes("\0\x01\xffz'\"\\", 7);
  const std::string text = "Lycée \"Pierre de Fermat\" ; DROP TABLE t; --";
  for (int round = 0; round < 3; ++round) {  // the second and third reuse the statement
    auto r = db->Exec("INSERT INTO t VALUES ($1, $2, $3)",
                      {int64_t{round} - 1, text, Param::Bytes(bytes)});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->affected(), 1);
  }
  auto r = db->Exec("SELECT id, name, data, NULL::text FROM t WHERE id = $1", {int64_t{-1}});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->rows(), 1);
  EXPECT_EQ(r->Int(0, 0), -1);
  EXPECT_EQ(r->Text(0, 1), text);
  EXPECT_EQ(r->Bytes(0, 2), bytes);
  EXPECT_TRUE(r->IsNull(0, 3));
  auto null_param = db->Exec("SELECT $1::text IS NULL", {std::nullopt});
  ASSERT_TRUE(null_param.ok());
  EXPECT_EQ(null_param->Int(0, 0), 1);
}

TEST(Postgres, ErrorsSayWhetherTheRequestOrTheStorageFailed) {
  auto db = NewDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Run("CREATE TABLE t (id BIGINT PRIMARY KEY)").ok());
  ASSERT_TRUE(db->Exec("INSERT INTO t VALUES (1)").ok());
  // A constraint: the request's fault, not the storage's.
  auto dup = db->Exec("INSERT INTO t VALUES (1)");
  EXPECT_TRUE(absl::IsFailedPrecondition(dup.status())) << dup.status();
  EXPECT_FALSE(common::IsStorageError(dup.status()));
  // A mistake in the SQL: internal, not the storage either.
  auto bad = db->Exec("SELEC 1");
  EXPECT_TRUE(absl::IsInternal(bad.status())) << bad.status();
  EXPECT_FALSE(common::IsStorageError(bad.status()));
  // A server that cannot be reached is the storage's.
  auto none = Connection::Open("host=/nonexistent port=5432 user=postgres dbname=x");
  EXPECT_TRUE(absl::IsUnavailable(none.status())) << none.status();
  EXPECT_TRUE(common::IsStorageError(none.status()));
}

TEST(Postgres, MigratesAnEmptyDatabaseOnceAndRefusesANewerOne) {
  auto db = NewDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(Migrate(db.get(), Migrations()).ok());
  EXPECT_EQ(*SchemaVersion(db.get()), Migrations().back().version);
  // Again: nothing to do.
  ASSERT_TRUE(Migrate(db.get(), Migrations()).ok());
  auto tables =
      db->Exec("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'");
  ASSERT_TRUE(tables.ok());
  EXPECT_EQ(tables->Int(0, 0), 18);  // 17 tables and parc_schema
  ASSERT_TRUE(db->Run("INSERT INTO parc_schema VALUES (99)").ok());
  auto newer = Migrate(db.get(), Migrations());
  EXPECT_TRUE(absl::IsFailedPrecondition(newer)) << newer;
  EXPECT_NE(newer.message().find("newer"), absl::string_view::npos);
}

// The counts the reports read follow enrollment, check-ins, moves, deployments and
// retirement, as SQLite's triggers keep them.
TEST(Postgres, TriggersKeepTheReportCounts) {
  auto db = NewDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(Migrate(db.get(), Migrations()).ok());
  ASSERT_TRUE(
      db->Run("INSERT INTO establishments(uai, name, type, category, departement, "
              "collectivite_kind, collectivite_code, collectivite_name, created_at, updated_at) "
              "VALUES ('0310036W', 'A', 'LYC', 'lycee', '31', 'region', '76', 'R', 0, 0), "
              "('0340001S', 'B', 'LYC', 'lycee', '34', 'region', '76', 'R', 0, 0);"
              "INSERT INTO bundles(id, name, version, sequence, manifest_sha256, "
              "signed_manifest, published_at, expires_at, package_count, total_bytes, signers, "
              "published_by) VALUES (1, 'mcnl', '1', 1, 'a', '\\x00', 0, 0, 1, 1, 'k', 'a');"
              "INSERT INTO rollouts(id, bundle_id, target, waves, success_percent, "
              "max_failures_percent, max_failures_count, window_start, window_end, rate_limit, "
              "state, wave_count, created_at, created_by) VALUES "
              "('r1', 1, 'all', '[]', 90, 5, 0, 0, 0, 0, 'running', 1, 0, 'a');"
              "INSERT INTO devices(id, secret_hash, hw_key, uai, kind, enrolled_at, "
              "last_enrolled_at) VALUES ('d1', 's', 'h1', '0310036W', 1, 0, 0), "
              "('d2', 's', 'h2', '0310036W', 1, 0, 0), ('d3', 's', 'h3', NULL, 2, 0, 0);")
          .ok());
  auto tally = [&](const std::string& sql) {
    auto r = db->Exec(sql);
    EXPECT_TRUE(r.ok()) << r.status();
    std::string out;
    for (int i = 0; r.ok() && i < r->rows(); ++i) {
      for (int c = 0; c < 4; ++c) out += r->Text(i, c) + (c < 3 ? " " : ";");
    }
    return out;
  };
  const std::string devices = "SELECT uai, kind, seen_day, n FROM device_tally ORDER BY 1, 2, 3";
  EXPECT_EQ(tally(devices), " 2 -1 1;0310036W 1 -1 2;");
  // A check-in on day 20,000; the second of the same day changes nothing; a move.
  ASSERT_TRUE(db->Run("UPDATE devices SET last_seen_at = 20000 * 86400 + 5 WHERE id = 'd1';"
                      "UPDATE devices SET last_seen_at = 20000 * 86400 + 9 WHERE id = 'd1';"
                      "UPDATE devices SET uai = '0340001S' WHERE id = 'd2'")
                  .ok());
  EXPECT_EQ(tally(devices), " 2 -1 1;0310036W 1 20000 1;0340001S 1 -1 1;");
  // Deployments: d1 in progress then installed, d2 failed.
  ASSERT_TRUE(db->Run("INSERT INTO deployments VALUES ('r1', 'd1', 1, '', '', 0), "
                      "('r1', 'd2', 3, 'disk_full', '', 0);"
                      "UPDATE deployments SET state = 2 WHERE device_id = 'd1'")
                  .ok());
  const std::string rollout =
      "SELECT uai, kind, state, n FROM rollout_tally WHERE n > 0 ORDER BY 1, 3";
  EXPECT_EQ(tally(rollout), "0310036W 1 2 1;0340001S 1 3 1;");
  const std::string bundle = "SELECT uai, kind, best, n FROM bundle_tally ORDER BY 1, 3";
  EXPECT_EQ(tally(bundle), "0310036W 1 3 1;0340001S 1 2 1;");
  // d2 moves back with its deployment; d1 is retired with its deployment.
  ASSERT_TRUE(db->Run("UPDATE devices SET uai = '0310036W' WHERE id = 'd2';"
                      "DELETE FROM devices WHERE id = 'd1'")
                  .ok());
  EXPECT_EQ(tally(rollout), "0310036W 1 3 1;");
  EXPECT_EQ(tally(bundle), "0310036W 1 2 1;");
  EXPECT_EQ(tally(devices), " 2 -1 1;0310036W 1 -1 1;");
}

template <typename T>
absl::StatusOr<T> Wait(std::function<void(StoreCallback<T>)> submit) {
  std::promise<absl::StatusOr<T>> p;
  submit([&](absl::StatusOr<T> r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

OperatorRecord Operator(const std::string& name) {
  OperatorRecord op;
  op.id = name;
  op.name = name;
  op.secret_hash = "h";
  op.role = "admin";
  op.scope = "region";
  op.created_at = absl::FromUnixSeconds(1790000000);
  return op;
}

TEST(PostgresStore, OneServerPerDatabase) {
  auto info = PostgresServer::Shared().CreateDatabase();
  ASSERT_TRUE(info.ok());
  SqlStore::Options o;
  o.postgres = *info;
  o.readers = 1;
  {
    auto first = SqlStore::Open(o);
    ASSERT_TRUE(first.ok()) << first.status();
    auto second = SqlStore::Open(o);
    EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
    EXPECT_NE(second.status().message().find("another parc-server"), absl::string_view::npos);
  }
  // The first one gone, the lock went with its session.
  EXPECT_TRUE(SqlStore::Open(o).ok());
}

// PostgreSQL down: writes fail as the storage's failures (the store says it is not writable,
// callers answer UNAVAILABLE), nothing acknowledged is lost, and the store recovers by itself
// once the server is back.
TEST(PostgresStore, ADatabaseThatGoesAwayFailsWritesClearlyAndIsReconnected) {
  auto info = PostgresServer::Shared().CreateDatabase();
  ASSERT_TRUE(info.ok());
  SqlStore::Options o;
  o.postgres = *info;
  o.readers = 1;
  auto store = SqlStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(Wait<bool>([&](auto cb) { (*store)->CreateOperator(Operator("before"), cb); }).ok());

  PostgresServer::Shared().Kill();
  auto failed = Wait<bool>([&](auto cb) { (*store)->CreateOperator(Operator("during"), cb); });
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE(common::IsStorageError(failed.status())) << failed.status();
  EXPECT_FALSE((*store)->Writable());
  EXPECT_FALSE((*store)->GetOperator("before").ok());

  ASSERT_TRUE(PostgresServer::Shared().Restart().ok());
  // The next write reconnects and goes through; the read connection too.
  auto after = Wait<bool>([&](auto cb) { (*store)->CreateOperator(Operator("after"), cb); });
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE((*store)->Writable());
  EXPECT_TRUE((*store)->GetOperator("before").ok());
  EXPECT_TRUE((*store)->GetOperator("after").ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->GetOperator("during").status()));
  EXPECT_EQ(*(*store)->CountOperators(), 2);
}

}  // namespace
}  // namespace parc::server::pg
