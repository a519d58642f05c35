#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "agent/core/config.h"

namespace parc::agent {

// `parc-agent inventory [--json] [--config F] [--root DIR] [--state-dir DIR]`; args[0] is the
// program, args[1] "inventory". What the small parc-agent runs itself (see front_main.cc).
int InventoryCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace parc::agent
