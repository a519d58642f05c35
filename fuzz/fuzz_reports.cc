// What devices send the server: enrollments, inventories, deployment reports, any bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/inventory_util.h"
#include "parc/v1/agent.pb.h"
#include "server/identity.h"
#include "server/inventory_request.h"
#include "server/report_validation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  parc::server::InventoryRequest inventory;
  if (inventory.ParseFromArray(data, static_cast<int>(size)) &&
      parc::server::ValidateInventory(inventory, parc::server::ReportLimits()).ok()) {
    // What was left where it arrived reads out whole, within the message.
    auto encoded = inventory.SoftwareBytes();
    if (!encoded.ok() || encoded->size() != inventory.software_size() ||
        inventory.encoded_size() != size) {
      __builtin_trap();
    }
    auto list = parc::server::ParseSoftwareList(*encoded);
    // The count agrees with the parse (before CheckSoftwareList drops duplicates in place).
    if (list.ok() && inventory.software_packages() != (*list)->packages_size()) __builtin_trap();
    // A list that is counted within the limit parses or is refused, never crashes.
    const absl::Status checked =
        list.ok() ? parc::server::CheckSoftwareList(list->get(), inventory.software_hash())
                  : list.status();
    // An accepted list is canonical and hashes to what the device claimed.
    if (checked.ok() && parc::common::SoftwareHash(**list) != inventory.software_hash()) {
      __builtin_trap();
    }
    (void)parc::server::CheckInventoryHash(parc::common::EncodeHardware(inventory.hardware()),
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
