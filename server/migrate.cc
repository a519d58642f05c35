#include "server/migrate.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <iterator>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/sqlite.h"
#include "common/status_macros.h"
#include "server/artifact_store.h"
#include "server/postgres/artifacts.h"
#include "server/postgres/connection.h"
#include "server/postgres/schema.h"
#include "server/postgres/sql_connection.h"
#include "server/sqlite/schema.h"

namespace parc::server {
namespace {

// In the order their references need. The counts (device_tally, bundle_device, bundle_tally,
// rollout_tally) are not copied: the triggers rebuild them, and they are compared after.
constexpr const char* kTables[] = {"establishments",
                                   "operators",
                                   "enrollment_tokens",
                                   "preassignments",
                                   "software_sets",
                                   "devices",
                                   "inventories",
                                   "bundles",
                                   "rollouts",
                                   "rollout_establishments",
                                   "deployments",
                                   "deployment_packages",
                                   "audit",
                                   "relays",
                                   "relay_establishments",
                                   "relay_faults"};
constexpr const char* kCounts[] = {"device_tally", "bundle_device", "bundle_tally",
                                   "rollout_tally"};
// Tables whose id PostgreSQL generates: their sequence continues after the copied ids.
constexpr const char* kIdentities[] = {"software_sets", "inventories", "bundles", "audit"};

// Columns SQLite has and PostgreSQL has not, holding no data: the room a devices row is born
// with (schema 17; PostgreSQL keeps room in its pages instead).
constexpr const char* kSqliteOnlyColumns[] = {"devices.room"};

absl::StatusOr<std::vector<std::string>> Columns(common::Database* db, const std::string& table) {
  PARC_ASSIGN_OR_RETURN(
      common::Statement st,
      db->Prepare(absl::StrCat("SELECT name FROM pragma_table_info('", table, "') ORDER BY cid")));
  std::vector<std::string> out;
  while (true) {
    PARC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    std::string name = st.Text(0);
    const std::string qualified = absl::StrCat(table, ".", name);
    if (std::find(std::begin(kSqliteOnlyColumns), std::end(kSqliteOnlyColumns), qualified) !=
        std::end(kSqliteOnlyColumns)) {
      continue;
    }
    out.push_back(std::move(name));
  }
  return out;
}

absl::StatusOr<int64_t> SqliteCount(common::Database* db, const std::string& sql) {
  PARC_ASSIGN_OR_RETURN(common::Statement st, db->Prepare(sql));
  PARC_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : 0;
}

absl::StatusOr<int64_t> PgCount(pg::Connection* db, const std::string& sql) {
  PARC_ASSIGN_OR_RETURN(pg::Result r, db->Exec(sql));
  return r.rows() > 0 ? r.Int(0, 0) : 0;
}

// Copies one table, row by row, binding each value with its SQLite type.
absl::Status CopyTable(common::Database* from, pg::SqlConnection* to, const std::string& table) {
  PARC_ASSIGN_OR_RETURN(std::vector<std::string> columns, Columns(from, table));
  const std::string list = absl::StrJoin(columns, ", ");
  std::vector<std::string> params;
  for (size_t i = 1; i <= columns.size(); ++i) params.push_back(absl::StrCat("?", i));
  PARC_ASSIGN_OR_RETURN(common::Statement read,
                        from->Prepare(absl::StrCat("SELECT ", list, " FROM ", table)));
  PARC_ASSIGN_OR_RETURN(sql::Stmt write,
                        to->Prepare(absl::StrCat("INSERT INTO ", table, " (", list, ") VALUES (",
                                                 absl::StrJoin(params, ", "), ")")));
  while (true) {
    PARC_ASSIGN_OR_RETURN(bool row, read.Step());
    if (!row) return absl::OkStatus();
    for (size_t c = 0; c < columns.size(); ++c) {
      const int col = static_cast<int>(c);
      const int i = col + 1;
      switch (read.Type(col)) {
        case SQLITE_NULL:
          write.Bind(i, std::nullopt);
          break;
        case SQLITE_INTEGER:
          write.Bind(i, read.Int(col));
          break;
        case SQLITE_BLOB:
          write.BindBlob(i, read.Blob(col));
          break;
        default:
          write.Bind(i, read.Text(col));
          break;
      }
    }
    absl::Status s = write.Run();
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(table, ": ", s.message()));
  }
}

}  // namespace

absl::StatusOr<std::vector<MigratedTable>> MigrateSqliteToPostgres(
    const std::string& sqlite_path, const std::string& postgres, const std::string& artifacts_dir) {
  common::Database::Options o;
  PARC_ASSIGN_OR_RETURN(auto from, common::Database::Open(sqlite_path, o));
  PARC_RETURN_IF_ERROR(common::Migrate(from.get(), sqlite::Migrations()));
  PARC_ASSIGN_OR_RETURN(auto target, pg::Connection::Open(postgres));
  PARC_RETURN_IF_ERROR(pg::Migrate(target.get(), pg::Migrations()));
  pg::Connection* to_raw = target.get();
  pg::SqlConnection to(std::move(target));
  for (const char* table : kTables) {
    PARC_ASSIGN_OR_RETURN(int64_t n, PgCount(to_raw, absl::StrCat("SELECT count(*) FROM ", table)));
    if (n > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("the PostgreSQL database already holds data (", n, " rows in ", table,
                       "): migrate into an empty database"));
    }
  }
  // A consistent snapshot of the source, one transaction on the target.
  PARC_RETURN_IF_ERROR(from->Exec("BEGIN"));
  PARC_RETURN_IF_ERROR(to.Exec("BEGIN"));
  absl::Status copied = absl::OkStatus();
  for (const char* table : kTables) {
    copied = CopyTable(from.get(), &to, table);
    if (!copied.ok()) break;
  }
  for (const char* table : kIdentities) {
    if (!copied.ok()) break;
    copied = to.Exec(absl::StrCat("SELECT setval(pg_get_serial_sequence('", table,
                                  "', 'id'), coalesce(max(id), 0) + 1, false) FROM ", table));
  }
  if (copied.ok()) copied = to.Exec("COMMIT");
  if (!copied.ok()) {
    (void)to.Exec("ROLLBACK");
    (void)from->Exec("ROLLBACK");
    return copied;
  }
  std::vector<MigratedTable> out;
  for (const char* table : kTables) {
    MigratedTable t{table};
    const std::string count = absl::StrCat("SELECT count(*) FROM ", table);
    PARC_ASSIGN_OR_RETURN(t.source, SqliteCount(from.get(), count));
    PARC_ASSIGN_OR_RETURN(t.target, PgCount(to_raw, count));
    out.push_back(t);
  }
  for (const char* table : kCounts) {
    // The devices each count covers (zero rows left behind by moves do not matter).
    MigratedTable t{absl::StrCat(table, " (devices)")};
    const std::string sum = std::string(table) == "bundle_device"
                                ? absl::StrCat("SELECT count(*) FROM ", table)
                                : absl::StrCat("SELECT coalesce(sum(n), 0) FROM ", table);
    PARC_ASSIGN_OR_RETURN(t.source, SqliteCount(from.get(), sum));
    PARC_ASSIGN_OR_RETURN(t.target, PgCount(to_raw, sum));
    out.push_back(t);
  }
  (void)from->Exec("ROLLBACK");
  if (!artifacts_dir.empty()) {
    // After the tables: an artifact stored twice (a second run after a failure) is found
    // there and skipped.
    MigratedTable t{"artifacts"};
    pg::Artifacts shared(postgres);
    DIR* dir = ::opendir(artifacts_dir.c_str());
    if (dir == nullptr && errno != ENOENT) {
      return common::ErrnoStatus("cannot list", artifacts_dir, errno);
    }
    absl::Status stored = absl::OkStatus();
    while (dir != nullptr && stored.ok()) {
      dirent* e = ::readdir(dir);
      if (e == nullptr) break;
      const std::string name = e->d_name;
      if (!ArtifactStore::IsSha256(name)) continue;
      const std::string path = artifacts_dir + "/" + name;
      struct stat st;
      if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      ++t.source;
      stored = shared.Put(name, path, static_cast<uint64_t>(st.st_size));
      if (!stored.ok()) {
        stored =
            absl::Status(stored.code(), absl::StrCat("artifact ", name, ": ", stored.message()));
      }
    }
    if (dir != nullptr) ::closedir(dir);
    PARC_RETURN_IF_ERROR(stored);
    PARC_ASSIGN_OR_RETURN(t.target, PgCount(to_raw, "SELECT count(*) FROM artifacts"));
    out.push_back(t);
  }
  return out;
}

int MigrateMain(int argc, char** argv) {
  std::string from, to;
  CLI::App app{
      "parc-server migrate: copies a server's SQLite database into an empty PostgreSQL "
      "database.\nStop the server first; then start it with --data-dir DATA_DIR --database "
      "URI:\nagents keep their credentials; the artifacts are copied into the database too, where "
      "every node reads them; TLS material stays in DATA_DIR.",
      "parc-server migrate"};
  app.add_option("--from", from, "Data directory of the server (holding parc.db)")->required();
  app.add_option("--to", to, "PostgreSQL database: postgresql://user@host/db or a libpq string")
      ->required();
  CLI11_PARSE(app, argc, argv);

  // The server's own lock: no server may write the file while it is copied.
  const std::string lock = from + "/parc-server.lock";
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::cerr << "parc-server migrate: " << from
              << " is in use by a running parc-server (or cannot be locked: "
              << std::strerror(errno) << "): stop it first\n";
    if (fd >= 0) ::close(fd);
    return 1;
  }
  auto tables = MigrateSqliteToPostgres(from + "/parc.db", to, from + "/artifacts");
  ::close(fd);
  if (!tables.ok()) {
    std::cerr << "parc-server migrate: " << tables.status().message()
              << "\nNothing was written to PostgreSQL.\n";
    return 1;
  }
  bool same = true;
  std::cout << std::left << std::setw(28) << "table" << std::right << std::setw(12) << "SQLite"
            << std::setw(12) << "PostgreSQL"
            << "\n";
  for (const auto& t : *tables) {
    same = same && t.source == t.target;
    std::cout << std::left << std::setw(28) << t.table << std::right << std::setw(12) << t.source
              << std::setw(12) << t.target << (t.source == t.target ? "" : "  DIFFERENT") << "\n";
  }
  if (!same) {
    std::cerr << "parc-server migrate: the counts differ (see above)\n";
    return 1;
  }
  std::cout << "parc-server migrate: done. Start the server with --data-dir " << from
            << " --database <the same URI>.\n";
  return 0;
}

}  // namespace parc::server
