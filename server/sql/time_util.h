#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

// Small conversions shared by the store's files. Times are stored as Unix seconds.
namespace parc::server::sql {

inline int64_t Unix(absl::Time t) { return absl::ToUnixSeconds(t); }
inline absl::Time FromUnix(int64_t s) { return absl::FromUnixSeconds(s); }
inline void SetTimestamp(google::protobuf::Timestamp* ts, int64_t unix_seconds) {
  ts->set_seconds(unix_seconds);
}
inline uint32_t U32(int64_t v) { return v < 0 ? 0u : static_cast<uint32_t>(v); }

}  // namespace parc::server::sql
