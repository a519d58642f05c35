#pragma once

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace parc::common {

// A refusal the client should retry later (the server is busy), as opposed to one that
// resending cannot fix. Travels as the standard "grpc-retry-pushback-ms" trailing metadata
// (gRPC) or trailer field (gRPC-Web).
inline constexpr char kRetryLaterPayload[] = "type.parc.dev/retry-later";
inline constexpr char kRetryPushbackHeader[] = "grpc-retry-pushback-ms";
absl::Status RetryLater(absl::Status status, absl::Duration after);
bool IsRetryLater(const absl::Status& status);
// How long the server asked to wait (0 when it did not say).
absl::Duration RetryAfter(const absl::Status& status);

}  // namespace parc::common
