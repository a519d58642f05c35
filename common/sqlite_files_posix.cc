// How SQLite's files are opened on POSIX systems (Linux): for random access.
#include <fcntl.h>

#include "common/sqlite.h"

namespace parc::common {
namespace {

// The unix VFS's own open(2), which the one below wraps.
using OpenCall = int (*)(const char*, int, int);
OpenCall base_open = nullptr;

// A database's pages are read where its B-trees lead, not in file order: the kernel's readahead
// reads pages nobody asked for, and on Linux 6.16+ with ext4 it fills the page cache with large
// folios, in which every 4 KiB page that a checkpoint writes back costs ~10x more kernel time
// than in a page-sized folio (measured: docs/performance.md, P3). POSIX_FADV_RANDOM turns
// readahead off for the descriptor.
int OpenForRandomAccess(const char* path, int flags, int mode) {
  const int fd = base_open(path, flags, mode);
  if (fd >= 0) (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
  return fd;
}

}  // namespace

// Runs once (Database::Open's std::call_once).
void internal::AdviseRandomAccess() {
  sqlite3_vfs* unix_vfs = sqlite3_vfs_find("unix");
  if (unix_vfs == nullptr || unix_vfs->iVersion < 3) return;
  auto current = reinterpret_cast<OpenCall>(unix_vfs->xGetSystemCall(unix_vfs, "open"));
  if (current == nullptr) return;
  base_open = current;
  (void)unix_vfs->xSetSystemCall(unix_vfs, "open",
                                 reinterpret_cast<sqlite3_syscall_ptr>(&OpenForRandomAccess));
}

}  // namespace parc::common
