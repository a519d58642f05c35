#include "agent/windows/platform.h"

#include <windows.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "agent/core/cli.h"
#include "agent/core/grpc_web_transport.h"
#include "agent/windows/inventory.h"
#include "agent/windows/packages.h"
#include "agent/windows/process_runner.h"
#include "agent/windows/system_facts.h"
#include "agent/windows/winhttp_client.h"
#include "agent/windows/winhttp_fetcher.h"

namespace parc::agent {
namespace {

// The console control handler runs on a thread Windows creates: it hands the stop to io.
std::atomic<asio::io_context*> g_io{nullptr};
std::function<void()>* g_on_stop = nullptr;

BOOL WINAPI OnConsoleControl(DWORD type) {
  if (type != CTRL_C_EVENT && type != CTRL_BREAK_EVENT && type != CTRL_CLOSE_EVENT &&
      type != CTRL_SHUTDOWN_EVENT) {
    return FALSE;
  }
  asio::io_context* io = g_io.load();
  if (io == nullptr || g_on_stop == nullptr) return FALSE;
  asio::post(*io, *g_on_stop);
  return TRUE;
}

}  // namespace

parc::v1::Inventory WindowsInventorySource::CollectInventory() const {
  return ParseWindowsInventory(CollectWindowsFacts(/*with_software=*/true));
}

parc::v1::Hardware WindowsInventorySource::CollectHardware() const {
  return ParseWindowsHardware(CollectWindowsFacts(/*with_software=*/false));
}

parc::v1::HardwareIdentity WindowsInventorySource::CollectIdentity() const {
  WindowsFacts f;
  const WmiNamespace cimv2(L"ROOT\\CIMV2");
  f.computer_system_product = cimv2.Query(L"SELECT UUID FROM Win32_ComputerSystemProduct");
  f.bios = cimv2.Query(L"SELECT SerialNumber FROM Win32_BIOS");
  f.machine_guid = ReadMachineGuid();
  return ParseWindowsIdentity(f);
}

void ConsoleServiceHost::Watch(asio::io_context& io, std::function<void()> on_stop,
                               std::function<void()> /*on_trigger*/) {
  g_on_stop = new std::function<void()>(std::move(on_stop));
  g_io = &io;
  SetConsoleCtrlHandler(OnConsoleControl, TRUE);
}

void ConsoleServiceHost::Unwatch() {
  SetConsoleCtrlHandler(OnConsoleControl, FALSE);
  g_io = nullptr;
  // g_on_stop is left: a handler already running may still read it (a few bytes, once).
}

void ConsoleServiceHost::Supervise(const std::vector<std::string>& /*args*/,
                                   absl::Duration /*splay*/, absl::Duration /*retry_base*/,
                                   std::ostream& err) {
  err << "parc-agent: no supervisor from a console; the daemon runs in this process\n";
}

absl::StatusOr<std::unique_ptr<AgentTransport>> WindowsTransportFactory::Connect(
    const TransportOptions& options) const {
  if (!GrpcWebTransport::IsGrpcWebAddress(options.server)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server \"", options.server,
        "\": the Windows agent reaches Parc over HTTPS; give it as https://HOST:PORT (the "
        "server's HTTPS port, 8444 by default)"));
  }
  return std::unique_ptr<AgentTransport>(
      new GrpcWebTransport(std::make_unique<WinHttpClient>(), options));
}

std::unique_ptr<Platform> MakeWindowsPlatform(const AgentConfig& /*config*/) {
  auto p = std::make_unique<Platform>();
  p->inventory = std::make_unique<WindowsInventorySource>();
  p->processes = std::make_unique<WindowsProcessRunner>();
  // The registry's Uninstall keys: stateless, shared by every platform of the process.
  static const RegistryInstalledProducts registry;
  p->packages =
      std::make_unique<WindowsPackages>(p->processes.get(), &registry, WindowsInstallerOptions());
  p->fetcher = std::make_unique<WinHttpFetcher>();
  p->transport = std::make_unique<WindowsTransportFactory>();
  p->host = std::make_unique<ConsoleServiceHost>();
  return p;
}

int WindowsAgentMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return AgentMain(
      args, out, err, [](const AgentConfig& config) { return MakeWindowsPlatform(config); },
      /*supervise=*/false);
}

}  // namespace parc::agent
