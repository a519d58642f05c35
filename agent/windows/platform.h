#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "agent/core/config.h"
#include "agent/core/platform.h"
#include "agent/windows/installed_products.h"

namespace parc::agent {

// Inventory from WMI and the registry (system_facts.h), parsed by inventory.h.
class WindowsInventorySource final : public InventorySource {
 public:
  parc::v1::Inventory CollectInventory() const override;
  parc::v1::Hardware CollectHardware() const override;
  parc::v1::HardwareIdentity CollectIdentity() const override;
};

// The agent run from a console (`parc-agent run`, a technician's `run --once`): Ctrl+C,
// Ctrl+Break and closing the console stop it. Under the Service Control Manager the service
// entry point drives the same daemon.
class ConsoleServiceHost final : public ServiceHost {
 public:
  void Watch(asio::io_context& io, std::function<void()> on_stop,
             std::function<void()> on_trigger) override;
  void Unwatch() override;
  void Supervise(const std::vector<std::string>& args, absl::Duration splay,
                 absl::Duration retry_base, std::ostream& err) override;
  bool supervised() const override { return false; }
  void NextCycleIn(absl::Duration) override {}
};

// The Windows agent speaks gRPC-Web (WinHTTP) only: gRPC has no supported MinGW build.
class WindowsTransportFactory final : public TransportFactory {
 public:
  absl::StatusOr<std::unique_ptr<AgentTransport>> Connect(
      const TransportOptions& options) const override;
};

std::unique_ptr<Platform> MakeWindowsPlatform(const AgentConfig& config);

int WindowsAgentMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace parc::agent
