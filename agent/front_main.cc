// parc-agent: the command technicians type and the service runs.
//
// This program is small on purpose: it collects and prints the inventory itself (P6 of
// benchmarks.md: a one-shot inventory must stay far below FusionInventory's memory), and
// hands every other command to the full agent, parc-agent-full (next to it in a build tree,
// /usr/lib/parc in the package), which links gRPC, libcurl, libarchive and SQLite. It links
// none of those, and protobuf and Abseil statically when it can (agent/CMakeLists.txt).
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "agent/inventory_command.h"

namespace {

std::string FullAgent() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string self = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  std::string dir = self.substr(0, self.find_last_of('/'));
  for (const std::string& candidate :
       {dir + "/parc-agent-full", dir + "/../lib/parc/parc-agent-full"}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return dir + "/../lib/parc/parc-agent-full";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (args.size() >= 2 && args[1] == "inventory") {
    return parc::agent::InventoryCommand(args, std::cout, std::cerr);
  }
  std::string full = FullAgent();
  ::execv(full.c_str(), argv);
  std::cerr << "parc-agent: cannot run " << full << ": " << std::strerror(errno)
            << " (reinstall the parc-agent package)\n";
  return 1;
}
