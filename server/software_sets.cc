#include "server/software_sets.h"

#include <algorithm>
#include <functional>

#include "common/inventory_util.h"

namespace parc::server {
namespace {

// The order of two packages (< 0, 0, > 0), in one pass over their fields: (name, architecture,
// version, publisher). The publisher last: a list holds one entry per (name, architecture,
// version), so the order is the canonical one; a publisher that changed is a change.
int Compare(const parc::v1::SoftwarePackage& a, const parc::v1::SoftwarePackage& b) {
  if (int c = a.name().compare(b.name()); c != 0) return c;
  if (int c = a.architecture().compare(b.architecture()); c != 0) return c;
  if (int c = a.version().compare(b.version()); c != 0) return c;
  return a.publisher().compare(b.publisher());
}

uint64_t LineHash(const parc::v1::SoftwarePackage& p) {
  std::hash<std::string> h;
  return h(p.name()) * 1000003u ^ h(p.version()) * 31u ^ h(p.architecture()) ^
         h(p.publisher()) * 7u;
}

std::vector<uint64_t> Keys(const parc::v1::SoftwareList& list) {
  std::vector<uint64_t> keys;
  keys.reserve(static_cast<size_t>(list.packages_size()));
  for (const auto& p : list.packages()) keys.push_back(LineHash(p));
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

}  // namespace

parc::v1::SoftwareDelta DiffSoftware(const parc::v1::SoftwareList& base,
                                     const parc::v1::SoftwareList& list) {
  parc::v1::SoftwareDelta delta;
  const int in_base = base.packages_size(), in_list = list.packages_size();
  int i = 0, j = 0;
  while (i < in_base || j < in_list) {
    const int c = i == in_base   ? 1
                  : j == in_list ? -1
                                 : Compare(base.packages(i), list.packages(j));
    if (c < 0) {
      *delta.add_removed() = base.packages(i++);
    } else if (c > 0) {
      *delta.add_added() = list.packages(j++);
    } else {
      ++i;
      ++j;
    }
  }
  return delta;
}

parc::v1::SoftwareList ApplyDelta(const parc::v1::SoftwareList& base,
                                  const parc::v1::SoftwareDelta& delta) {
  parc::v1::SoftwareList out;
  int r = 0;
  for (const auto& p : base.packages()) {
    while (r < delta.removed_size() && Compare(delta.removed(r), p) < 0) ++r;
    if (r < delta.removed_size() && Compare(delta.removed(r), p) == 0) {
      ++r;
      continue;
    }
    *out.add_packages() = p;
  }
  for (const auto& p : delta.added()) *out.add_packages() = p;
  common::CanonicalizeSoftware(&out);
  return out;
}

void SoftwareBases::Add(const std::string& hash, const parc::v1::SoftwareList& list) {
  if (sets_.count(hash) > 0) return;
  if (sets_.size() >= capacity_) {
    Evict(std::min_element(sets_.begin(), sets_.end(), [](const auto& a, const auto& b) {
      return a.second.order < b.second.order;
    }));
  }
  uint32_t slot = slots_;
  if (free_slots_.empty()) {
    ++slots_;
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
  }
  Entry& entry = sets_[hash] = Entry{list, Keys(list), ++counter_, slot};
  for (uint64_t k : entry.keys) holders_[k].push_back(slot);
}

void SoftwareBases::Evict(std::map<std::string, Entry>::iterator it) {
  const uint32_t slot = it->second.slot;
  for (uint64_t k : it->second.keys) {
    auto h = holders_.find(k);
    if (h == holders_.end()) continue;
    std::vector<uint32_t>& slots = h->second;
    slots.erase(std::remove(slots.begin(), slots.end(), slot), slots.end());
    if (slots.empty()) holders_.erase(h);
  }
  free_slots_.push_back(slot);
  sets_.erase(it);
}

std::optional<SoftwareBases::Match> SoftwareBases::Closest(
    const parc::v1::SoftwareList& list) const {
  if (sets_.empty() || list.packages_size() == 0) return std::nullopt;
  // Rank the candidates on a sample of the list's packages, then diff the best one.
  std::vector<uint32_t> hits(slots_, 0);
  size_t sampled = 0;
  const int step = std::max(1, list.packages_size() / 64);
  for (int i = 0; i < list.packages_size(); i += step, ++sampled) {
    auto h = holders_.find(LineHash(list.packages(i)));
    if (h == holders_.end()) continue;
    for (uint32_t slot : h->second) ++hits[slot];
  }
  // The first of the best in hash order, as a search in each set found it.
  const Entry* best = nullptr;
  const std::string* best_hash = nullptr;
  size_t best_hits = 0;
  for (const auto& [hash, entry] : sets_) {
    if (best == nullptr || hits[entry.slot] > best_hits) {
      best = &entry;
      best_hash = &hash;
      best_hits = hits[entry.slot];
    }
  }
  if (best_hits * 2 < sampled) return std::nullopt;
  Match m{*best_hash, DiffSoftware(best->list, list)};
  const size_t changes = static_cast<size_t>(m.delta.added_size() + m.delta.removed_size());
  const size_t limit = std::max<size_t>(16, static_cast<size_t>(list.packages_size()) / 20);
  if (changes > limit) return std::nullopt;
  return m;
}

}  // namespace parc::server
