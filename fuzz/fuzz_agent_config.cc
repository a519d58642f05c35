// /etc/parc/agent.toml, as master images and technicians write it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = parc::agent::ParseAgentConfig(text, "agent.toml");
  if (config.ok() && (config->signature_threshold < 1 || config->outbox_max_reports < 1)) {
    __builtin_trap();
  }
  return 0;
}
