#include "server/checkin_cache.h"

#include <algorithm>

namespace parc::server {

void CheckInCache::Changes::Note(const std::string& key, uint64_t generation) {
  if (keys_.size() >= kMaxRecentChanges) {
    ForgetAll(generation);
    return;
  }
  keys_.insert_or_assign(key, generation);
}

void CheckInCache::Changes::ForgetAll(uint64_t generation) {
  keys_.clear();
  floor_ = generation;
}

bool CheckInCache::Changes::FillAllowed(const std::string& key, uint64_t read_generation) const {
  if (read_generation < floor_) return false;
  auto it = keys_.find(key);
  return it == keys_.end() || it->second <= read_generation;
}

void CheckInCache::SetEnabled(bool enabled) {
  absl::MutexLock lock(&mu_);
  enabled_ = enabled;
  ClearLocked();
}

void CheckInCache::ClearLocked() {
  const uint64_t generation = NextGenerationLocked();
  device_changes_.ForgetAll(generation);
  assignment_changes_.ForgetAll(generation);
  software_set_changes_.ForgetAll(generation);
  devices_.clear();
  assignments_.clear();
  software_sets_.clear();
}

std::optional<DeviceAuth> CheckInCache::GetDevice(const std::string& id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = devices_.find(id);
  if (it == devices_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->second;
}

void CheckInCache::PutDevice(uint64_t generation, const DeviceAuth& auth) {
  absl::MutexLock lock(&mu_);
  if (!enabled_ || !device_changes_.FillAllowed(auth.id, generation)) return;
  if (devices_.size() >= max_devices_) devices_.clear();
  devices_.insert_or_assign(auth.id, auth);
}

void CheckInCache::InvalidateDevice(const std::string& id) {
  absl::MutexLock lock(&mu_);
  device_changes_.Note(id, NextGenerationLocked());
  devices_.erase(id);
}

void CheckInCache::DeviceInventoryStored(const std::string& id, const std::string& inventory_hash,
                                         parc::v1::DeviceKind kind, int64_t free_bytes) {
  absl::MutexLock lock(&mu_);
  device_changes_.Note(id, NextGenerationLocked());
  auto it = devices_.find(id);
  if (it == devices_.end()) return;
  it->second.inventory_hash = inventory_hash;
  it->second.kind = kind;
  it->second.free_bytes = free_bytes;
}

bool CheckInCache::CheckInStored(const std::string& id, int64_t day,
                                 const std::string& agent_version, int64_t free_bytes) const {
  absl::MutexLock lock(&mu_);
  auto it = devices_.find(id);
  if (it == devices_.end()) return false;
  const DeviceAuth& d = it->second;
  return d.seen_day == day && d.agent_version == agent_version &&
         (free_bytes < 0 || d.free_bytes == free_bytes);
}

void CheckInCache::DeviceCheckInStored(const std::string& id, int64_t day,
                                       const std::string& agent_version, int64_t free_bytes) {
  absl::MutexLock lock(&mu_);
  device_changes_.Note(id, NextGenerationLocked());
  auto it = devices_.find(id);
  if (it == devices_.end()) return;
  DeviceAuth& d = it->second;
  d.seen_day = std::max(d.seen_day, day);
  d.agent_version = agent_version;
  if (free_bytes >= 0) d.free_bytes = free_bytes;
}

void CheckInCache::InvalidateDevices() {
  absl::MutexLock lock(&mu_);
  device_changes_.ForgetAll(NextGenerationLocked());
  devices_.clear();
}

std::optional<std::shared_ptr<const ActiveAssignment>> CheckInCache::GetAssignment(
    const std::string& uai, int kind) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = assignments_.find(std::make_pair(uai, kind));
  if (it == assignments_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->second;
}

void CheckInCache::PutAssignment(uint64_t generation, const std::string& uai, int kind,
                                 std::shared_ptr<const ActiveAssignment> assignment) {
  absl::MutexLock lock(&mu_);
  if (!enabled_ || !assignment_changes_.FillAllowed(uai, generation)) return;
  // (establishment, kind) pairs are bounded by the annuaire: tens of thousands at most.
  assignments_.insert_or_assign(std::make_pair(uai, kind), std::move(assignment));
}

void CheckInCache::InvalidateAssignments() {
  absl::MutexLock lock(&mu_);
  assignment_changes_.ForgetAll(NextGenerationLocked());
  assignments_.clear();
}

std::optional<bool> CheckInCache::GetSoftwareSet(const std::string& hash, absl::Time now) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = software_sets_.find(hash);
  if (it == software_sets_.end() || (!it->second.first && it->second.second <= now)) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->second.first;
}

void CheckInCache::PutSoftwareSet(uint64_t generation, const std::string& hash, bool known,
                                  absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (!enabled_ || !software_set_changes_.FillAllowed(hash, generation)) return;
  if (software_sets_.size() >= max_devices_) software_sets_.clear();
  software_sets_.insert_or_assign(hash, std::make_pair(known, now + kUnknownFor));
}

void CheckInCache::SoftwareSetStored(const std::string& hash) {
  absl::MutexLock lock(&mu_);
  software_set_changes_.Note(hash, NextGenerationLocked());
  if (!enabled_) return;
  if (software_sets_.size() >= max_devices_) software_sets_.clear();
  software_sets_.insert_or_assign(hash, std::make_pair(true, absl::InfiniteFuture()));
}

void CheckInCache::InvalidateSoftwareSets() {
  absl::MutexLock lock(&mu_);
  software_set_changes_.ForgetAll(NextGenerationLocked());
  software_sets_.clear();
}

}  // namespace parc::server
