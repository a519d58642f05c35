// parc-bundle: the publishers' offline tool.
#include <iostream>
#include <string>
#include <vector>

#include "common/openssl_exit.h"
#include "tools/bundle/bundle_tool.h"

int main(int argc, char** argv) {
  parc::common::KeepOpenSslStateAtExit();  // common/openssl_exit.h
  std::vector<std::string> args(argv, argv + argc);
  return parc::bundle::BundleMain(args, std::cout, std::cerr);
}
