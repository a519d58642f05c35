#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace parc::sim {

// The parc-sim command line: region, enroll, load, echo-server. Returns the exit status.
int SimMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace parc::sim
