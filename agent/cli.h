#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace parc::agent {

// The parc-agent command line (verbs enroll, run, inventory, status). args[0] is the program
// name. Returns the process exit status. Output goes to out, diagnostics to err.
int AgentMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace parc::agent
