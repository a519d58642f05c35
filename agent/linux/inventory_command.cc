#include "agent/linux/inventory_command.h"

#include "CLI/CLI.hpp"
#include "agent/linux/collectors.h"
#include "agent/linux/system_reader.h"
#include "common/cli_args.h"
#include "common/inventory_format.h"
#include "common/proto_json.h"

namespace parc::agent {

int InventoryCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"Collect and print this device's inventory (no server)", "parc-agent inventory"};
  std::string config_path = kDefaultAgentConfigPath;
  bool config_given = false;
  std::string root, state_dir;
  bool json = false;
  app.add_option("--config", config_path, "Configuration file")
      ->each([&](const std::string&) { config_given = true; })
      ->capture_default_str();
  app.add_option("--root", root,
                 "Read the system under this directory instead of / (fixture trees)");
  app.add_option("--state-dir", state_dir, "Directory of the agent's identity and local state");
  app.add_flag("--json", json, "Print JSON");
  std::vector<std::string> rest(args.begin() + (args.size() > 1 ? 1 : 0), args.end());
  if (auto exit_status = common::ParseCommandLine(app, rest, out, err)) return *exit_status;
  auto config = LoadAgentConfig(config_path, config_given);
  if (!config.ok()) {
    err << "parc-agent: " << config.status().message() << "\n";
    return 2;
  }
  if (!root.empty()) config->root = root;
  RootedSystemReader reader(config->root);
  parc::v1::Inventory inv = CollectInventory(reader);
  // Without the software list's id, which needs SHA-256 (this program links no OpenSSL); the
  // server and the full agent show it.
  out << (json ? common::ToJson(inv) : common::FormatInventoryText(inv, ""));
  return 0;
}

}  // namespace parc::agent
