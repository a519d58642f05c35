#pragma once

#include <vector>

#include "common/sqlite.h"

namespace parc::server::pg {

// The PostgreSQL schema's migrations, in order (pg::Migrate applies them). Version 1 is the
// whole schema as SQLite's seven migrations left it: the same tables, columns and counts kept
// by triggers, in PostgreSQL's types (BIGINT times in Unix seconds, BYTEA blobs).
const std::vector<common::Migration>& Migrations();

}  // namespace parc::server::pg
