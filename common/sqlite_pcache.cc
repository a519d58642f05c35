// SQLite's own page cache, wrapped so that a commit does not walk the whole cache for nothing.
//
// When a B-tree page splits and its new pages come out of page-number order, SQLite (3.40, and
// later versions alike) swaps their numbers through a spare one: the pending-byte page's,
// 1 GiB / page size + 1 (262,145 with 4 KiB pages). Its page cache (pcache1) remembers the
// largest page number it ever held and, at every commit, truncates itself to the database's
// size when that number lies beyond it; when it lies further beyond than the cache has hash
// buckets, the truncation walks every bucket. After one such swap, a database under 1 GiB
// therefore pays a walk of the whole cache at each commit, to drop nothing: with the writer's
// 128 MiB cache, 32,768 buckets and as many pages, 12 % of the server's CPU under later
// inventories (docs/performance.md).
//
// The wrapper keeps its own bound on the page numbers the cache may hold (the largest fetched
// or renumbered to, a page parked on the spare number counted apart until it leaves it) and
// forwards a truncation only when a page at or above the limit may be there.
#include <algorithm>
#include <atomic>
#include <new>

#include "common/sqlite.h"

namespace parc::common {
namespace {

sqlite3_pcache_methods2 base{};
std::atomic<uint64_t> forwarded{0};
std::atomic<uint64_t> skipped{0};
std::atomic<uint64_t> swaps{0};

struct Cache {
  sqlite3_pcache* inner = nullptr;
  unsigned spare = 0;    // the page number balance swaps through (the pending-byte page's)
  unsigned max_key = 0;  // no page above it is cached, but those parked on `spare`
  int parked = 0;        // pages renumbered to `spare` and not renumbered away yet
};

Cache* Of(sqlite3_pcache* p) { return reinterpret_cast<Cache*>(p); }

int Init(void*) { return base.xInit(base.pArg); }
void Shutdown(void*) {
  if (base.xShutdown != nullptr) base.xShutdown(base.pArg);
}

sqlite3_pcache* Create(int page_size, int extra, int purgeable) {
  auto* cache = new (std::nothrow) Cache;
  if (cache == nullptr) return nullptr;
  cache->inner = base.xCreate(page_size, extra, purgeable);
  if (cache->inner == nullptr) {
    delete cache;
    return nullptr;
  }
  cache->spare = page_size > 0 ? 0x40000000u / static_cast<unsigned>(page_size) + 1 : 0;
  return reinterpret_cast<sqlite3_pcache*>(cache);
}

void Cachesize(sqlite3_pcache* p, int n) { base.xCachesize(Of(p)->inner, n); }
int Pagecount(sqlite3_pcache* p) { return base.xPagecount(Of(p)->inner); }

sqlite3_pcache_page* Fetch(sqlite3_pcache* p, unsigned key, int create) {
  Cache* cache = Of(p);
  sqlite3_pcache_page* page = base.xFetch(cache->inner, key, create);
  if (page != nullptr) cache->max_key = std::max(cache->max_key, key);
  return page;
}

void Unpin(sqlite3_pcache* p, sqlite3_pcache_page* page, int discard) {
  base.xUnpin(Of(p)->inner, page, discard);
}

void Rekey(sqlite3_pcache* p, sqlite3_pcache_page* page, unsigned old_key, unsigned new_key) {
  Cache* cache = Of(p);
  base.xRekey(cache->inner, page, old_key, new_key);
  if (old_key == cache->spare && cache->parked > 0) --cache->parked;
  if (new_key == cache->spare) {
    ++cache->parked;
    swaps.fetch_add(1, std::memory_order_relaxed);
  } else {
    cache->max_key = std::max(cache->max_key, new_key);
  }
}

void Truncate(sqlite3_pcache* p, unsigned limit) {
  Cache* cache = Of(p);
  const bool spare_dropped = cache->parked > 0 && cache->spare >= limit;
  if (cache->max_key >= limit || spare_dropped) {
    base.xTruncate(cache->inner, limit);
    forwarded.fetch_add(1, std::memory_order_relaxed);
    if (spare_dropped) cache->parked = 0;
    if (limit > 0) cache->max_key = std::min(cache->max_key, limit - 1);
  } else {
    skipped.fetch_add(1, std::memory_order_relaxed);
  }
}

void Destroy(sqlite3_pcache* p) {
  Cache* cache = Of(p);
  base.xDestroy(cache->inner);
  delete cache;
}

void Shrink(sqlite3_pcache* p) {
  if (base.xShrink != nullptr) base.xShrink(Of(p)->inner);
}

}  // namespace

bool internal::WrapPageCache() {
  if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &base) != SQLITE_OK || base.xCreate == nullptr) {
    return false;  // SQLite already initialized by someone else: its cache as it is
  }
  static const sqlite3_pcache_methods2 wrapped = {
      1,      nullptr, &Init,  &Shutdown, &Create,  &Cachesize, &Pagecount,
      &Fetch, &Unpin,  &Rekey, &Truncate, &Destroy, &Shrink};
  return sqlite3_config(SQLITE_CONFIG_PCACHE2, &wrapped) == SQLITE_OK;
}

internal::PageCacheCounts internal::PageCacheCountsNow() {
  return {forwarded.load(std::memory_order_relaxed), skipped.load(std::memory_order_relaxed),
          swaps.load(std::memory_order_relaxed)};
}

}  // namespace parc::common
