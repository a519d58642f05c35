#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace parc::server {

// Rows of one table on each side of a migration.
struct MigratedTable {
  std::string table;
  int64_t source = 0;
  int64_t target = 0;
};

// Copies a server's SQLite database (the file, brought to the current schema first) into an
// empty PostgreSQL database (schema created): every table, devices with their credentials,
// inventories, software sets, bundles, rollouts and deployments, operators, tokens, audit. The
// counts the reports read are rebuilt by PostgreSQL's triggers as the rows arrive. One
// transaction: on any error the target stays empty. FAILED_PRECONDITION when the target
// already holds data. Returns the rows of each table on both sides, counts included.
// With artifacts_dir (the server's DATA_DIR/artifacts), its artifacts are stored in the
// database too, where every node reads them (row "artifacts": files and stored).
[[nodiscard]] absl::StatusOr<std::vector<MigratedTable>> MigrateSqliteToPostgres(
    const std::string& sqlite_path, const std::string& postgres,
    const std::string& artifacts_dir = "");

// The `parc-server migrate` command line: --from DATA_DIR --to postgresql://…; takes the
// data directory's lock (no server may run on it meanwhile) and prints the counts.
int MigrateMain(int argc, char** argv);

}  // namespace parc::server
