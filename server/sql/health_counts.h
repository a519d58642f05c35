#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace parc::server::sql {

// The health counts of the families an inventory writes (battery band, firmware year,
// operating system: health_sql.h), kept in memory by an engine whose process is the only
// writer of its database (SQLite). The devices of an establishment by one value of a family,
// as health_tally holds them on PostgreSQL: a first inventory then changes three entries of a
// hash map instead of three B-tree rows of health_tally (and the WAL frames and checkpoints
// they cost). Rebuilt from the devices table when the engine opens, changed by the writer once
// each batch commits; read by the report under the same lock.
class HealthCounts {
 public:
  // One device more (n = 1) or less (n = -1) under (uai, family, value).
  struct Change {
    std::string uai;
    int family = 0;
    int64_t value = 0;
    int64_t n = 0;
  };

  // Applies a committed transaction's changes; a count that reaches zero goes.
  void Apply(const std::vector<Change>& changes);
  // Replaces every count (the engine's rebuild from the devices table).
  void Reset(const std::vector<Change>& counts);
  // Calls visit(uai, family, value, n) for every count, under the lock: visit must not call
  // back into this object.
  void ForEach(const std::function<void(const std::string& uai, int family, int64_t value,
                                        int64_t n)>& visit) const;
  // Entries held (tests, metrics).
  size_t size() const;

 private:
  using Key = std::tuple<std::string, int, int64_t>;
  mutable std::mutex mu_;
  absl::flat_hash_map<Key, int64_t> counts_;  // guarded by mu_
};

// The changes of the transaction a connection is in, until it commits or rolls back; the
// writes of a batch each mark where theirs start, so that a write undone (ROLLBACK TO its
// savepoint) drops its own. Writer thread only.
class PendingHealthChanges {
 public:
  void Add(absl::string_view uai, int family, int64_t value, int64_t n);
  void MarkWrite() { mark_ = changes_.size(); }
  void UndoWrite() { changes_.resize(mark_); }
  // Applies the pending changes to counts and forgets them.
  void Commit(HealthCounts* counts);
  void Drop() {
    changes_.clear();
    mark_ = 0;
  }
  const std::vector<HealthCounts::Change>& changes() const { return changes_; }

 private:
  std::vector<HealthCounts::Change> changes_;
  size_t mark_ = 0;
};

}  // namespace parc::server::sql
