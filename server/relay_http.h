#pragma once

#include "common/clock.h"
#include "server/store.h"

namespace httplib {
class Server;
}

namespace parc::server {

// The relay's side of the HTTPS port, for parc-relay-sync on an establishment relay,
// authenticated with the relay's own token (`authorization: Bearer <id>.<secret>`, from
// `parcctl relays add`; 401 otherwise, 503 when the store cannot answer):
//   GET  /relay/v1/artifacts  what its establishments are assigned now, one line per artifact:
//                             "<sha256> <size> <window start> <window end>" (minutes since
//                             midnight, device-local; equal: any time), text/plain;
//   POST /relay/v1/report     its cache, application/x-www-form-urlencoded: cache_bytes,
//                             cache_max_bytes, artifacts_missing (whole numbers) -> 204.
void RegisterRelayRoutes(httplib::Server* http, Store* store, const common::Clock* clock);

}  // namespace parc::server
