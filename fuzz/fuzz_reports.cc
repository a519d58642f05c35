// What devices send the server: enrollments, inventories, deployment reports, any bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/inventory_util.h"
#include "parc/v1/agent.pb.h"
#include "server/identity.h"
#include "server/report_validation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  parc::v1::ReportInventoryRequestView inventory;
  if (inventory.ParseFromString(bytes) &&
      parc::server::ValidateInventory(inventory, parc::server::ReportLimits()).ok()) {
    auto list = parc::server::ParseSoftwareList(inventory.inventory().software());
    // A list that is counted within the limit parses or is refused, never crashes.
    auto software = list.ok() ? parc::server::CheckSoftwareList(*list, inventory.software_hash())
                              : absl::StatusOr<parc::v1::SoftwareList>(list.status());
    // An accepted list is canonical and hashes to what the device claimed.
    if (software.ok() && parc::common::SoftwareHash(*software) != inventory.software_hash()) {
      __builtin_trap();
    }
    // The count agrees with the parse.
    auto count = parc::server::CountSoftwarePackages(inventory.inventory().software());
    if (list.ok() && (!count.ok() || *count != list->packages_size())) __builtin_trap();
    (void)parc::server::CheckInventoryHash(inventory.inventory().hardware(),
                                           inventory.software_hash(), inventory.inventory_hash());
  }
  parc::v1::DeploymentReport report;
  if (report.ParseFromString(bytes) && parc::server::ValidateDeploymentReport(report).ok()) {
    if (report.packages_size() > 1000 || report.rollout_id().empty()) __builtin_trap();
  }
  parc::v1::EnrollRequest enroll;
  if (enroll.ParseFromString(bytes) && parc::server::ValidateEnroll(enroll).ok()) {
    (void)parc::server::HardwareKey(enroll.identity());
  }
  return 0;
}
