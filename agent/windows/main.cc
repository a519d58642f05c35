// parc-agent.exe: the Parc device agent on Windows. Besides the verbs of every platform
// (enroll, run, inventory, status, bundles), `service` is how the Service Control Manager starts
// it, and `configure` is what its MSI runs to write the machine's configuration.
#include <windows.h>
// windows.h first.
#include <shellapi.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "agent/windows/platform.h"
#include "agent/windows/service.h"
#include "common/windows_util.h"

namespace {

int Configure(const std::vector<std::string>& args) {
  parc::agent::MachineSetup setup;
  std::string dir = parc::agent::ParcDataDir();
  CLI::App app("Writes this machine's Parc configuration (run by the MSI, as SYSTEM)");
  app.add_option("--server", setup.server, "https://HOST:PORT of parc-server");
  app.add_option("--token", setup.token, "Enrollment token (used at the first boot)");
  app.add_option("--ca", setup.ca_file, "File of the CA certificate that signed the server's");
  app.add_option("--publisher-key", setup.publisher_key_files, "Bundle publisher key (.pub)");
  std::string image;
  app.add_option("--image", image, "1: a master image's machine, which does not enroll itself");
  app.add_option("--dir", dir, "Configuration directory (default ProgramData\\Parc)");
  std::vector<std::string> rest(args.begin() + 2, args.end());
  std::reverse(rest.begin(), rest.end());
  try {
    app.parse(rest);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  setup.image = image == "1";
  absl::Status s = parc::agent::ConfigureMachine(setup, dir);
  if (!s.ok()) {
    std::cerr << "parc-agent configure: " << s.message() << "\n";
    return 1;
  }
  std::cout << "parc-agent: configuration written to " << dir << "\\agent.toml\n";
  return 0;
}

}  // namespace

int main() {
  // The arguments as UTF-16 from Windows, in UTF-8 for the agent (a path may hold "é").
  int argc = 0;
  wchar_t** wargv = CommandLineToArgvW(GetCommandLineW(), &argc);
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) args.push_back(parc::common::Narrow(wargv[i]));
  LocalFree(wargv);
  if (args.size() >= 2 && args[1] == "service") return parc::agent::RunAsService(args[0]);
  if (args.size() >= 2 && args[1] == "configure") return Configure(args);
  return parc::agent::WindowsAgentMain(args, std::cout, std::cerr);
}
