// parc-agent: the Parc device agent.
#include <iostream>
#include <string>
#include <vector>

#include "agent/linux/platform.h"
#include "common/cli_args.h"
#include "common/openssl_exit.h"

int main(int argc, char** argv) {
  // `run --once` returns while gRPC's and libcurl's threads end (common/openssl_exit.h).
  parc::common::KeepOpenSslStateAtExit();
  std::vector<std::string> args(argv, argv + argc);
  parc::common::HideSecretArgs(argc, argv, {"--token"});
  return parc::agent::LinuxAgentMain(args, std::cout, std::cerr, /*supervise=*/true);
}
