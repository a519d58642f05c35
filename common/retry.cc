#include "common/retry.h"

#include <string>

#include "absl/strings/numbers.h"

namespace parc::common {

absl::Status RetryLater(absl::Status status, absl::Duration after) {
  status.SetPayload(kRetryLaterPayload,
                    absl::Cord(std::to_string(absl::ToInt64Milliseconds(after))));
  return status;
}

bool IsRetryLater(const absl::Status& status) {
  return status.GetPayload(kRetryLaterPayload).has_value();
}

absl::Duration RetryAfter(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryLaterPayload);
  int64_t ms = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &ms) || ms < 0) {
    return absl::ZeroDuration();
  }
  return absl::Milliseconds(ms);
}

}  // namespace parc::common
