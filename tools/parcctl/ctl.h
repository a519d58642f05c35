#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace parc::cli {

// The parcctl command line. args[0] is the program name. Connection settings come from flags,
// then the environment (PARC_SERVER, PARC_CA, PARC_TOKEN), then a config file
// (--config, else ~/.config/parc/parcctl.toml, else /etc/parc/parcctl.toml).
// Returns the exit status: 0 success, 1 refused by the server or unreachable, 2 bad usage.
int CtlMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace parc::cli
