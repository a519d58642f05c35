#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store.h"

namespace parc::server {

// What a check-in reads, kept in memory so that a check-in that changes nothing reads nothing
// from the database: each device's credential record, and the assignment of each
// (establishment, device kind). Filled by reads, emptied by the writes that change what it
// holds (the store calls Invalidate* once such a write is committed). A read that raced with a
// write does not fill it: Put* stores only when what it read was not changed since the
// Generation() taken before the read. Changes are kept per key (a device, a software set), so
// that the inventories and check-ins committing all the time under load do not keep the reads
// of every other device from filling it.
//
// With several server nodes on one database, the writes of the other nodes arrive as
// notifications (PostgreSQL NOTIFY, sent by the committing transaction) and invalidate the same
// way; while the channel that brings them is down the cache is switched off (SetEnabled), since
// it could miss some, and it starts empty when the channel is back.
class CheckInCache {
 public:
  // At most max_devices credential records (past it the map is emptied and refilled: a
  // fleet larger than the bound costs reads, never wrong answers).
  explicit CheckInCache(size_t max_devices) : max_devices_(max_devices) {}

  // Off: nothing is kept, every lookup misses. Switching either way empties it.
  void SetEnabled(bool enabled);

  uint64_t Generation() const { return generation_.load(std::memory_order_acquire); }

  std::optional<DeviceAuth> GetDevice(const std::string& id) const;
  void PutDevice(uint64_t generation, const DeviceAuth& auth);
  void InvalidateDevice(const std::string& id);
  // After a committed write that set these columns of the device (an inventory; free_bytes as
  // the row holds it after, -1: none): a cached record follows them instead of being dropped,
  // so the device's next call reads nothing either. Reads in flight do not fill (as for
  // InvalidateDevice).
  void DeviceInventoryStored(const std::string& id, const std::string& inventory_hash,
                             parc::v1::DeviceKind kind, int64_t free_bytes);
  void InvalidateDevices();
  // Whether the cached record says the devices row holds what a check-in on day (UTC days
  // since 1970) with this agent version and free space (as kept; -1: not sent) would write:
  // false when it differs or is not cached.
  bool CheckInStored(const std::string& id, int64_t day, const std::string& agent_version,
                     int64_t free_bytes) const;
  // After a committed check-in that wrote (or found) these on the devices row: a cached record
  // follows them. Reads in flight do not fill (as for InvalidateDevice).
  void DeviceCheckInStored(const std::string& id, int64_t day, const std::string& agent_version,
                           int64_t free_bytes);

  // nullopt: not cached; a null pointer: cached "no assignment".
  std::optional<std::shared_ptr<const ActiveAssignment>> GetAssignment(const std::string& uai,
                                                                       int kind) const;
  void PutAssignment(uint64_t generation, const std::string& uai, int kind,
                     std::shared_ptr<const ActiveAssignment> assignment);
  void InvalidateAssignments();

  // Whether a software set (by hash) is stored: asked by every check-in whose inventory
  // changed. Known stays known until a purge (InvalidateSoftwareSets); unknown is believed for
  // unknown_for at most, since another node may store it meanwhile (and then the agent would
  // only send a list the server already had).
  std::optional<bool> GetSoftwareSet(const std::string& hash, absl::Time now) const;
  void PutSoftwareSet(uint64_t generation, const std::string& hash, bool known, absl::Time now);
  // Once a write storing it committed.
  void SoftwareSetStored(const std::string& hash);
  void InvalidateSoftwareSets();
  static constexpr absl::Duration kUnknownFor = absl::Seconds(60);

  uint64_t hits() const { return hits_.load(); }
  uint64_t misses() const { return misses_.load(); }

  // The changes of one kind of record kept to refuse fills, beyond which they are forgotten
  // at once (and every fill whose read began before is refused).
  static constexpr size_t kMaxRecentChanges = 16384;

 private:
  // The keys of one kind of record changed recently, each with the generation of its last
  // change: a fill whose read began before a change of its key (or before everything was
  // forgotten) is refused.
  class Changes {
   public:
    void Note(const std::string& key, uint64_t generation);
    void ForgetAll(uint64_t generation);
    bool FillAllowed(const std::string& key, uint64_t read_generation) const;

   private:
    absl::flat_hash_map<std::string, uint64_t> keys_;
    uint64_t floor_ = 0;
  };

  // A new generation, for a change.
  uint64_t NextGenerationLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }
  void ClearLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_devices_;
  bool enabled_ ABSL_GUARDED_BY(mu_) = true;
  std::atomic<uint64_t> generation_{0};
  mutable std::atomic<uint64_t> hits_{0}, misses_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, DeviceAuth> devices_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::pair<std::string, int>, std::shared_ptr<const ActiveAssignment>>
      assignments_ ABSL_GUARDED_BY(mu_);
  // hash -> (known, until when an "unknown" holds).
  absl::flat_hash_map<std::string, std::pair<bool, absl::Time>> software_sets_ ABSL_GUARDED_BY(mu_);
  Changes device_changes_ ABSL_GUARDED_BY(mu_);
  Changes assignment_changes_ ABSL_GUARDED_BY(mu_);  // all at once only
  Changes software_set_changes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace parc::server
