// The agent's parsers of /proc, /sys, /etc/os-release and dpkg's status file: a device's own
// files, which a user of the device can shape.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "agent/linux/collectors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parc::agent::ParseOsRelease(text);
  (void)parc::agent::ParseCpuInfo(text);
  (void)parc::agent::ParseMemTotal(text);
  auto software = parc::agent::ParseDpkgStatus(text);
  for (const auto& p : software.packages()) {
    if (p.name().empty()) __builtin_trap();
  }
  return 0;
}
