#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parc/v1/admin.pb.h"
#include "server/store.h"

namespace parc::server {

// Establishments a rollout target selects: "all", "academie:Toulouse", "departement:31",
// "commune:31555" (code or name), "uai:0310036W,0340001S", "tag:labellycee". INVALID_ARGUMENT
// for an unknown selector or a malformed UAI; NOT_FOUND for a UAI that is not imported.
[[nodiscard]] absl::StatusOr<std::vector<parc::v1::Establishment>> SelectEstablishments(
    const std::string& target, const std::vector<parc::v1::Establishment>& all);

// Splits selected establishments into waves of whole establishments: the pilots first (wave 0)
// when there are any, then the others in a stable pseudo-random order (by hash of rollout id
// and UAI, so consecutive waves spread over the territory) cut at the cumulative percentages
// (e.g. 5,25,100). Every wave gets at least one establishment; empty waves are dropped.
// Returns the members and sets *wave_count.
[[nodiscard]] absl::StatusOr<std::vector<RolloutEstablishment>> PlanWaves(
    const std::string& rollout_id, const std::vector<parc::v1::Establishment>& selected,
    const std::vector<std::string>& pilots, const std::vector<uint32_t>& percentages,
    uint32_t* wave_count);

}  // namespace parc::server
