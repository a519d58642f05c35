#pragma once

#include <cstring>
#include <initializer_list>
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

// Overwrites the values of secret flags ("--token X", "--token=X") in the process's own argv,
// which ps and /proc/<pid>/cmdline show to every user, once the program has copied them.
// Best effort: the value was visible until then; files and environment variables are the
// way to pass secrets (PARC_TOKEN_FILE, --token-file).
inline void HideSecretArgs(int argc, char** argv, std::initializer_list<const char*> flags) {
  for (int i = 1; i < argc; ++i) {
    for (const char* flag : flags) {
      const size_t n = std::strlen(flag);
      char* value = nullptr;
      if (std::strcmp(argv[i], flag) == 0 && i + 1 < argc) {
        value = argv[i + 1];
      } else if (std::strncmp(argv[i], flag, n) == 0 && argv[i][n] == '=') {
        value = argv[i] + n + 1;
      }
      if (value != nullptr) std::memset(value, 'x', std::strlen(value));
    }
  }
}

}  // namespace parc::common
