// A VFS over the platform's own, for a connection whose caller makes the WAL durable itself
// (the server's writer: one fdatasync per group of commits, server/sqlite/engine.cc).
//
// SQLite writes each WAL frame with two writes, its 24-byte header then its page: a commit of
// 200 pages costs 400 system calls, which on a VM is most of the commit's time. This VFS keeps
// a WAL file's contiguous writes in memory and hands them to the file in writes of up to
// 128 KiB (7 for those 200 pages), before anything could read or depend on them: the connection's
// own reads, size and truncation of the file, its close, and the sync SQLite issues at every COMMIT
// under synchronous=FULL. That sync is the last call before SQLite publishes the commit to other
// connections in the wal-index, and unlike the wal-index barrier it can fail: a write that fails
// there (disk full) fails the COMMIT, which SQLite then rolls back, as when the write itself
// failed.
//
// The commit's sync then skips the flush to disk, which the caller does for the whole group.
// Every other sync is passed on: the one after a new WAL header (offset 0) and the checkpoint's
// sync before it copies frames into the database, which must be on disk first.
#include <atomic>
#include <cstring>
#include <string>

#include "common/sqlite.h"

namespace parc::common {
namespace {

constexpr int kFrameHeaderBytes = 24;  // SQLite's WAL_FRAME_HDRSIZE
constexpr int64_t kWalHeaderBytes = 32;
// At most this many bytes per write: the unix VFS (3.40) writes at most 128 KiB - 1 bytes per
// pwrite and reports anything longer whose length is a multiple of 128 KiB as a full disk.
// 31 frames of 4 KiB pages.
constexpr size_t kMaxPending = (size_t{128} << 10) - 1;

std::atomic<uint64_t> file_writes{0};
std::atomic<uint64_t> frame_writes{0};
std::atomic<uint64_t> syncs_skipped{0};
std::atomic<uint64_t> syncs_passed{0};

struct Pending {
  std::string bytes;  // what SQLite wrote from `start` on, not yet in the file
  int64_t start = 0;
  bool wrote = false;        // written since the last sync
  bool header = false;       // the WAL header among those writes
  bool last_commit = false;  // the last frame written ends a transaction
};

struct WalFile {
  sqlite3_file base;
  sqlite3_file* real;  // the platform VFS's file, allocated right after this struct
  Pending* pending;
};

sqlite3_vfs* platform = nullptr;
sqlite3_vfs vfs{};
sqlite3_io_methods methods{};

WalFile* Of(sqlite3_file* f) { return reinterpret_cast<WalFile*>(f); }
const sqlite3_io_methods* Real(WalFile* w) { return w->real->pMethods; }

int Flush(WalFile* w) {
  Pending& p = *w->pending;
  if (p.bytes.empty()) return SQLITE_OK;
  const int rc =
      Real(w)->xWrite(w->real, p.bytes.data(), static_cast<int>(p.bytes.size()), p.start);
  file_writes.fetch_add(1, std::memory_order_relaxed);
  // Failed or not, these frames are gone: SQLite rolls the transaction back and writes the
  // next one's frames over them.
  p.bytes.clear();
  return rc;
}

int Close(sqlite3_file* f) {
  WalFile* w = Of(f);
  int rc = Flush(w);
  const int closed = Real(w)->xClose(w->real);
  delete w->pending;
  w->pending = nullptr;
  return rc != SQLITE_OK ? rc : closed;
}

int Read(sqlite3_file* f, void* buf, int n, sqlite3_int64 offset) {
  WalFile* w = Of(f);
  if (int rc = Flush(w); rc != SQLITE_OK) return rc;
  return Real(w)->xRead(w->real, buf, n, offset);
}

int Write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 offset) {
  WalFile* w = Of(f);
  Pending& p = *w->pending;
  p.wrote = true;
  if (offset < kWalHeaderBytes) p.header = true;
  if (n == kFrameHeaderBytes && offset >= kWalHeaderBytes) {
    // A frame's header: its second big-endian word is the database size after a commit, 0 in
    // the other frames of a transaction.
    const auto* b = static_cast<const unsigned char*>(buf);
    p.last_commit = (b[4] | b[5] | b[6] | b[7]) != 0;
    frame_writes.fetch_add(1, std::memory_order_relaxed);
  }
  const size_t size = static_cast<size_t>(n);
  if (!p.bytes.empty() && (offset != p.start + static_cast<int64_t>(p.bytes.size()) ||
                           p.bytes.size() + size > kMaxPending)) {
    if (int rc = Flush(w); rc != SQLITE_OK) return rc;
  }
  if (size > kMaxPending) {
    file_writes.fetch_add(1, std::memory_order_relaxed);
    return Real(w)->xWrite(w->real, buf, n, offset);
  }
  if (p.bytes.empty()) p.start = offset;
  p.bytes.append(static_cast<const char*>(buf), size);
  return SQLITE_OK;
}

int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  WalFile* w = Of(f);
  if (int rc = Flush(w); rc != SQLITE_OK) return rc;
  return Real(w)->xTruncate(w->real, size);
}

int Sync(sqlite3_file* f, int flags) {
  WalFile* w = Of(f);
  Pending& p = *w->pending;
  const bool commit = p.wrote && p.last_commit && !p.header;
  p.wrote = p.header = p.last_commit = false;
  if (int rc = Flush(w); rc != SQLITE_OK) return rc;
  if (commit) {
    syncs_skipped.fetch_add(1, std::memory_order_relaxed);
    return SQLITE_OK;
  }
  syncs_passed.fetch_add(1, std::memory_order_relaxed);
  return Real(w)->xSync(w->real, flags);
}

int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  WalFile* w = Of(f);
  if (int rc = Flush(w); rc != SQLITE_OK) return rc;
  return Real(w)->xFileSize(w->real, size);
}

int Lock(sqlite3_file* f, int level) { return Real(Of(f))->xLock(Of(f)->real, level); }
int Unlock(sqlite3_file* f, int level) { return Real(Of(f))->xUnlock(Of(f)->real, level); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(Of(f))->xCheckReservedLock(Of(f)->real, out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  WalFile* w = Of(f);
  if (int rc = Flush(w); rc != SQLITE_OK) return rc;
  return Real(w)->xFileControl(w->real, op, arg);
}
int SectorSize(sqlite3_file* f) { return Real(Of(f))->xSectorSize(Of(f)->real); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Real(Of(f))->xDeviceCharacteristics(Of(f)->real);
}
int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return Real(Of(f))->xShmMap(Of(f)->real, region, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(Of(f))->xShmLock(Of(f)->real, offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Real(Of(f))->xShmBarrier(Of(f)->real); }
int ShmUnmap(sqlite3_file* f, int remove) { return Real(Of(f))->xShmUnmap(Of(f)->real, remove); }
int Fetch(sqlite3_file* f, sqlite3_int64 offset, int n, void** out) {
  WalFile* w = Of(f);
  if (int rc = Flush(w); rc != SQLITE_OK) return rc;
  return Real(w)->xFetch(w->real, offset, n, out);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  return Real(Of(f))->xUnfetch(Of(f)->real, offset, p);
}

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  // Only WAL files are wrapped; the others are the platform's files as they are.
  if ((flags & SQLITE_OPEN_WAL) == 0) return platform->xOpen(platform, name, f, flags, out_flags);
  WalFile* w = Of(f);
  w->base.pMethods = nullptr;
  w->real = reinterpret_cast<sqlite3_file*>(w + 1);
  w->pending = nullptr;
  const int rc = platform->xOpen(platform, name, w->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (w->real->pMethods != nullptr) w->real->pMethods->xClose(w->real);
    return rc;
  }
  w->pending = new Pending;
  w->base.pMethods = &methods;
  return SQLITE_OK;
}

int Delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return platform->xDelete(platform, name, sync_dir);
}
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return platform->xAccess(platform, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return platform->xFullPathname(platform, name, n, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) { return platform->xDlOpen(platform, name); }
void DlError(sqlite3_vfs*, int n, char* out) { platform->xDlError(platform, n, out); }
void (*DlSym(sqlite3_vfs*, void* lib, const char* sym))(void) {
  return platform->xDlSym(platform, lib, sym);
}
void DlClose(sqlite3_vfs*, void* lib) { platform->xDlClose(platform, lib); }
int Randomness(sqlite3_vfs*, int n, char* out) { return platform->xRandomness(platform, n, out); }
int Sleep(sqlite3_vfs*, int us) { return platform->xSleep(platform, us); }
int CurrentTime(sqlite3_vfs*, double* out) { return platform->xCurrentTime(platform, out); }
int GetLastError(sqlite3_vfs*, int n, char* out) {
  return platform->xGetLastError(platform, n, out);
}
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  return platform->xCurrentTimeInt64(platform, out);
}

}  // namespace

const char* internal::CombinedWalVfs() {
  static const char* name = []() -> const char* {
    platform = sqlite3_vfs_find(nullptr);
    if (platform == nullptr || platform->iVersion < 2) return nullptr;
    methods.iVersion = 3;
    methods.xClose = Close;
    methods.xRead = Read;
    methods.xWrite = Write;
    methods.xTruncate = Truncate;
    methods.xSync = Sync;
    methods.xFileSize = FileSize;
    methods.xLock = Lock;
    methods.xUnlock = Unlock;
    methods.xCheckReservedLock = CheckReservedLock;
    methods.xFileControl = FileControl;
    methods.xSectorSize = SectorSize;
    methods.xDeviceCharacteristics = DeviceCharacteristics;
    methods.xShmMap = ShmMap;
    methods.xShmLock = ShmLock;
    methods.xShmBarrier = ShmBarrier;
    methods.xShmUnmap = ShmUnmap;
    methods.xFetch = Fetch;
    methods.xUnfetch = Unfetch;
    vfs.iVersion = 2;
    vfs.szOsFile = static_cast<int>(sizeof(WalFile)) + platform->szOsFile;
    vfs.mxPathname = platform->mxPathname;
    vfs.zName = "parc-combined-wal";
    vfs.xOpen = Open;
    vfs.xDelete = Delete;
    vfs.xAccess = Access;
    vfs.xFullPathname = FullPathname;
    vfs.xDlOpen = DlOpen;
    vfs.xDlError = DlError;
    vfs.xDlSym = DlSym;
    vfs.xDlClose = DlClose;
    vfs.xRandomness = Randomness;
    vfs.xSleep = Sleep;
    vfs.xCurrentTime = CurrentTime;
    vfs.xGetLastError = GetLastError;
    vfs.xCurrentTimeInt64 = CurrentTimeInt64;
    if (sqlite3_vfs_register(&vfs, /*makeDflt=*/0) != SQLITE_OK) return nullptr;
    return vfs.zName;
  }();
  return name;
}

internal::WalWriteCounts internal::WalWriteCountsNow() {
  return WalWriteCounts{file_writes.load(), frame_writes.load(), syncs_skipped.load(),
                        syncs_passed.load()};
}

}  // namespace parc::common
