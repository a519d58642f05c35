// parc-agent: the Parc device agent.
#include <iostream>
#include <string>
#include <vector>

#include "agent/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  return parc::agent::AgentMain(args, std::cout, std::cerr, /*supervise=*/true);
}
