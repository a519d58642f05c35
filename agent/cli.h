#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace parc::agent {

// The parc-agent command line (verbs enroll, run, inventory, status). args[0] is the program
// name. Returns the process exit status. Output goes to out, diagnostics to err.
// supervise (the program's main only): `run` without --once replaces the process with
// parc-agentd, which starts each cycle as `parc-agent run --once` (see agent/supervisor_main.cc).
int AgentMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
              bool supervise = false);

}  // namespace parc::agent
