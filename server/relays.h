#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "parc/v1/admin.pb.h"
#include "server/store.h"

// Establishment relays, as operators name them and as the API and dashboard show them.
namespace parc::server {

// A relay's base URL as stored: https:// (scheme and host in lower case), no query, fragment,
// user information or trailing slash, at most 512 characters. INVALID_ARGUMENT naming what is
// wrong otherwise.
[[nodiscard]] absl::StatusOr<std::string> NormalizeRelayUrl(absl::string_view url);

// A relay that reported before and has not for this long is "silent".
inline constexpr absl::Duration kRelaySilentAfter = absl::Hours(1);

// "flagged" when it served wrong bytes within the fault window, "unreachable" when agents only
// failed to reach it, "silent" when it stopped reporting, "ok" otherwise.
std::string RelayHealth(const RelayRecord& r, absl::Time now);

parc::v1::Relay RelayProto(const RelayRecord& r, absl::Time now);

// parc-server relay-cert: a TLS certificate for a relay, signed by the server's private CA
// (which agents already pin), written as OUT/relay.pem (chain) and OUT/relay.key (0600).
int RelayCertMain(int argc, char** argv);

}  // namespace parc::server
