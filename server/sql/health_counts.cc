#include "server/sql/health_counts.h"

#include <utility>

namespace parc::server::sql {

void HealthCounts::Apply(const std::vector<Change>& changes) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& c : changes) {
    auto it = counts_.try_emplace(Key(c.uai, c.family, c.value), 0).first;
    it->second += c.n;
    if (it->second == 0) counts_.erase(it);
  }
}

void HealthCounts::Reset(const std::vector<Change>& counts) {
  absl::flat_hash_map<Key, int64_t> fresh;
  fresh.reserve(counts.size());
  for (const auto& c : counts) {
    if (c.n != 0) fresh[Key(c.uai, c.family, c.value)] += c.n;
  }
  std::lock_guard<std::mutex> lock(mu_);
  counts_ = std::move(fresh);
}

void HealthCounts::ForEach(
    const std::function<void(const std::string&, int, int64_t, int64_t)>& visit) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, n] : counts_)
    visit(std::get<0>(key), std::get<1>(key), std::get<2>(key), n);
}

size_t HealthCounts::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_.size();
}

void PendingHealthChanges::Add(absl::string_view uai, int family, int64_t value, int64_t n) {
  changes_.push_back(HealthCounts::Change{std::string(uai), family, value, n});
}

void PendingHealthChanges::Commit(HealthCounts* counts) {
  if (!changes_.empty()) counts->Apply(changes_);
  Drop();
}

}  // namespace parc::server::sql
