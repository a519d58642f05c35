#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "agent/core/config.h"
#include "agent/core/platform.h"
#include "agent/linux/packages.h"
#include "agent/linux/system_reader.h"

namespace parc::agent {

// The Linux inventory: /sys (DMI, power supplies, block devices, network), /proc, os-release
// and dpkg's status, read through a SystemReader (a fixture tree in tests).
class LinuxInventorySource final : public InventorySource {
 public:
  explicit LinuxInventorySource(std::string root) : reader_(std::move(root)) {}
  parc::v1::Inventory CollectInventory() const override;
  parc::v1::Hardware CollectHardware() const override;
  parc::v1::HardwareIdentity CollectIdentity() const override;

 private:
  RootedSystemReader reader_;
};

// Signals (SIGTERM and SIGINT stop, SIGHUP checks in now) and parc-agentd, the supervisor that
// runs each cycle as `parc-agent run --once` with PARC_AGENT_NEXT_CYCLE_FD set.
class LinuxServiceHost final : public ServiceHost {
 public:
  LinuxServiceHost();
  void Watch(asio::io_context& io, std::function<void()> on_stop,
             std::function<void()> on_trigger) override;
  void Unwatch() override;
  void Supervise(const std::vector<std::string>& args, absl::Duration splay,
                 absl::Duration retry_base, std::ostream& err) override;
  bool supervised() const override { return next_cycle_fd_ >= 0; }
  void NextCycleIn(absl::Duration delay) override;
  void ReleaseMemory() override;

 private:
  void WaitHup();
  int next_cycle_fd_ = -1;
  std::unique_ptr<asio::signal_set> stop_signals_;
  std::unique_ptr<asio::signal_set> hup_;
  std::function<void()> on_trigger_;
};

// gRPC (HOST:PORT) or, for an https:// address (the server's HTTPS port), gRPC-Web through
// libcurl: for agents behind proxies that pass only HTTP/1.1.
class LinuxTransportFactory final : public TransportFactory {
 public:
  absl::StatusOr<std::unique_ptr<AgentTransport>> Connect(
      const TransportOptions& options) const override;
};

// Linux's implementations: the inventory under config.root, fork/exec processes, dpkg,
// libarchive and command packages, libcurl downloads, gRPC over TLS, signals and parc-agentd.
std::unique_ptr<Platform> MakeLinuxPlatform(const AgentConfig& config,
                                            InstallerOptions installer = {});

// The Linux agent's command line: AgentMain with the Linux platform.
int LinuxAgentMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                   bool supervise = false);

}  // namespace parc::agent
