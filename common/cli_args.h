#pragma once

#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace parc::common {

// Parses args (args[0] is the program name) into app. Returns nothing when the command should
// run, or the exit status when it should not: 0 after --help, 2 after a usage error (CLI11's
// message printed to err). CLI11 reports errors by exception; they stop here.
inline std::optional<int> ParseCommandLine(CLI::App& app, const std::vector<std::string>& args,
                                           std::ostream& out, std::ostream& err) {
  std::vector<std::string> reversed(args.rbegin(), args.rend() - 1);
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::ostringstream help_out, help_err;
    int code = app.exit(e, help_out, help_err);
    out << help_out.str();
    err << help_err.str();
    return code == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace parc::common
