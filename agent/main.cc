// parc-agent: the Parc device agent.
#include <iostream>
#include <string>
#include <vector>

#include "agent/cli.h"
#include "common/cli_args.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  parc::common::HideSecretArgs(argc, argv, {"--token"});
  return parc::agent::AgentMain(args, std::cout, std::cerr, /*supervise=*/true);
}
