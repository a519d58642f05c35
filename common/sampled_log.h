#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace parc::common {

// Lets a noisy event (a failing disk, a flood of refused calls) reach the log at most once per
// period, with the number of events left out since. Thread-safe.
class SampledLog {
 public:
  explicit SampledLog(std::chrono::steady_clock::duration period) : period_(period) {}

  // True when this event should be logged now; *suppressed then holds the events not logged
  // since the previous one.
  bool Take(uint64_t* suppressed) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (logged_once_ && now - last_ < period_) {
      ++skipped_;
      return false;
    }
    logged_once_ = true;
    last_ = now;
    *suppressed = skipped_;
    skipped_ = 0;
    return true;
  }

 private:
  const std::chrono::steady_clock::duration period_;
  std::mutex mu_;
  bool logged_once_ = false;                    // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point last_;  // GUARDED_BY(mu_)
  uint64_t skipped_ = 0;                        // GUARDED_BY(mu_)
};

}  // namespace parc::common
