// parcctl: the Parc operators' command line.
#include <iostream>
#include <string>
#include <vector>

#include "common/cli_args.h"
#include "common/openssl_exit.h"
#include "tools/parcctl/ctl.h"

int main(int argc, char** argv) {
  parc::common::KeepOpenSslStateAtExit();  // common/openssl_exit.h
  std::vector<std::string> args(argv, argv + argc);
  parc::common::HideSecretArgs(argc, argv, {"--token"});
  return parc::cli::CtlMain(args, std::cout, std::cerr);
}
