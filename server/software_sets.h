#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "parc/v1/inventory.pb.h"

namespace parc::server {

// Difference between two canonical software lists (see common::CanonicalizeSoftware).
parc::v1::SoftwareDelta DiffSoftware(const parc::v1::SoftwareList& base,
                                     const parc::v1::SoftwareList& list);
// base + delta, canonical.
parc::v1::SoftwareList ApplyDelta(const parc::v1::SoftwareList& base,
                                  const parc::v1::SoftwareDelta& delta);

// Full software lists recently stored or read, to store new lists as small deltas against
// the closest one: devices cloned from a master image and then changed a little share almost
// all of the image's list. Not thread-safe (the store's writer thread owns it).
class SoftwareBases {
 public:
  explicit SoftwareBases(size_t capacity = 64) : capacity_(capacity) {}

  void Add(const std::string& hash, const parc::v1::SoftwareList& list);
  bool empty() const { return sets_.empty(); }

  // The cached list closest to list, with the delta from it, when the delta is small enough
  // to be worth it (at most max(16, 5 % of the list) packages).
  struct Match {
    std::string base_hash;
    parc::v1::SoftwareDelta delta;
  };
  std::optional<Match> Closest(const parc::v1::SoftwareList& list) const;

 private:
  struct Entry {
    parc::v1::SoftwareList list;
    std::vector<uint64_t> keys;  // sorted, distinct hashes of the package lines
    uint64_t order = 0;
    uint32_t slot = 0;  // its counter in Closest
  };
  void Evict(std::map<std::string, Entry>::iterator it);

  size_t capacity_;
  uint64_t counter_ = 0;
  std::map<std::string, Entry> sets_;
  // Which sets hold a package line (by slot): Closest ranks every set with one lookup per
  // sampled line instead of a search in each set.
  absl::flat_hash_map<uint64_t, std::vector<uint32_t>> holders_;
  std::vector<uint32_t> free_slots_;
  uint32_t slots_ = 0;
};

}  // namespace parc::server
