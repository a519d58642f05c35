// How SQLite's files are opened on Windows: as SQLite's win32 VFS opens them (it offers no hook
// for FILE_FLAG_RANDOM_ACCESS; the agent's small database does not need one).
#include "common/sqlite.h"

namespace parc::common {

void internal::AdviseRandomAccess() {}

}  // namespace parc::common
