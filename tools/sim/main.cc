// parc-sim: load simulator for Parc.
#include <iostream>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/openssl_exit.h"
#include "tools/sim/sim.h"

int main(int argc, char** argv) {
  parc::common::KeepOpenSslStateAtExit();  // common/openssl_exit.h
  // As parc-server does: the echo reference and the load generator skip Abseil's lock-order
  // checks too.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<std::string> args(argv, argv + argc);
  return parc::sim::SimMain(args, std::cout, std::cerr);
}
