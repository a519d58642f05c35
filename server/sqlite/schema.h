#pragma once

#include <vector>

#include "common/sqlite.h"

namespace parc::server::sqlite {

// The store's schema migrations, in order (applied by Engine::Open).
const std::vector<common::Migration>& Migrations();

}  // namespace parc::server::sqlite
