// The TOML bundle specs publishers write for parc-bundle build.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "tools/bundle/bundle_tool.h"

namespace {

// A directory with one small artifact the spec may name ("a.bin").
const std::string& BaseDir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/parc-fuzz-spec.XXXXXX";
    std::string d = ::mkdtemp(tmpl);
    std::ofstream(d + "/a.bin") << "artifact";
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // Specs name artifact files; keep the fuzzer away from device files and the system tree.
  if (text.find("dev") != std::string::npos || text.find("proc") != std::string::npos ||
      text.find("sys") != std::string::npos || text.find('/') != std::string::npos) {
    return 0;
  }
  std::vector<std::string> paths;
  (void)parc::bundle::ParseSpec(text, "spec.toml", BaseDir(), absl::FromUnixSeconds(1795000000),
                                &paths);
  return 0;
}
