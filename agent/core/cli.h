#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "agent/core/config.h"
#include "agent/core/platform.h"

namespace parc::agent {

// The parc-agent command line (verbs enroll, run, inventory, status, bundles), the same on
// every platform. args[0] is the program name. Returns the process exit status. Output goes to
// out, diagnostics to err. make_platform builds the platform once the configuration is read.
// supervise (the program's main only): `run` without --once hands the daemon to the platform's
// supervisor (ServiceHost::Supervise).
int AgentMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
              const PlatformFactory& make_platform, bool supervise = false);

}  // namespace parc::agent
