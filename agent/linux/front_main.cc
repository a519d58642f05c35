// parc-agent: the command technicians type and the service runs.
//
// This program is small on purpose: it collects and prints the inventory itself (P6 of
// docs/performance.md: a one-shot inventory must stay far below FusionInventory's memory), and
// hands every other command to the full agent, parc-agent-full (next to it in a build tree,
// /usr/lib/parc in the package), which links gRPC, libcurl, libarchive and SQLite. It links
// none of those, and protobuf and Abseil statically when it can (agent/CMakeLists.txt).
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "agent/linux/inventory_command.h"
#include "agent/linux/sibling_program.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (args.size() >= 2 && args[1] == "inventory") {
    return parc::agent::InventoryCommand(args, std::cout, std::cerr);
  }
  std::string full = parc::agent::SiblingProgram("parc-agent-full");
  if (full.empty()) full = "/usr/lib/parc/parc-agent-full";
  ::execv(full.c_str(), argv);
  std::cerr << "parc-agent: cannot run " << full << ": " << std::strerror(errno)
            << " (reinstall the parc-agent package)\n";
  return 1;
}
