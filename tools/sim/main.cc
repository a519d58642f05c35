// parc-sim: load simulator for Parc.
#include <iostream>
#include <string>
#include <vector>

#include "tools/sim/sim.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  return parc::sim::SimMain(args, std::cout, std::cerr);
}
