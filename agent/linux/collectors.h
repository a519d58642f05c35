#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "agent/linux/system_reader.h"
#include "parc/v1/agent.pb.h"
#include "parc/v1/inventory.pb.h"

namespace parc::agent {

// Pure parsers over file contents, one per source. Each tolerates missing or malformed
// lines by leaving fields empty.

// KEY=value lines as in /etc/os-release, values unquoted ("..." or '...') and unescaped.
std::map<std::string, std::string> ParseOsRelease(absl::string_view text);

struct CpuInfo {
  std::string model;
  uint32_t cores = 0;
  uint32_t threads = 0;
};
CpuInfo ParseCpuInfo(absl::string_view text);

// MemTotal of /proc/meminfo in bytes, 0 when absent.
uint64_t ParseMemTotal(absl::string_view text);

// Packages whose status is "install ok installed" in /var/lib/dpkg/status, in canonical
// order (see common::CanonicalizeSoftware).
parc::v1::SoftwareList ParseDpkgStatus(absl::string_view text);

// Collectors: read the system through reader. Missing sources leave fields empty; nothing
// here fails.
parc::v1::Hardware CollectHardware(const SystemReader& reader);
parc::v1::SoftwareList CollectSoftware(const SystemReader& reader);
parc::v1::Inventory CollectInventory(const SystemReader& reader);

// DMI product UUID, serial number and machine-id: what binds an identity to hardware.
parc::v1::HardwareIdentity CollectIdentity(const SystemReader& reader);

}  // namespace parc::agent
