#include "agent/linux/platform.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/core/cli.h"
#include "agent/core/grpc_web_transport.h"
#include "agent/linux/collectors.h"
#include "agent/linux/curl_fetcher.h"
#include "agent/linux/curl_http_client.h"
#include "agent/linux/grpc_transport.h"
#include "agent/linux/process_runner.h"
#include "agent/linux/sibling_program.h"
#include "common/logging.h"

namespace parc::agent {

parc::v1::Inventory LinuxInventorySource::CollectInventory() const {
  return parc::agent::CollectInventory(reader_);
}

parc::v1::Hardware LinuxInventorySource::CollectHardware() const {
  return parc::agent::CollectHardware(reader_);
}

parc::v1::HardwareIdentity LinuxInventorySource::CollectIdentity() const {
  return parc::agent::CollectIdentity(reader_);
}

LinuxServiceHost::LinuxServiceHost() {
  // Set by parc-agentd for each cycle it starts (see supervisor_main.cc).
  const char* fd = std::getenv("PARC_AGENT_NEXT_CYCLE_FD");
  int value = -1;
  if (fd != nullptr && absl::SimpleAtoi(fd, &value) && value >= 0) next_cycle_fd_ = value;
}

void LinuxServiceHost::Watch(asio::io_context& io, std::function<void()> on_stop,
                             std::function<void()> on_trigger) {
  stop_signals_ = std::make_unique<asio::signal_set>(io, SIGINT, SIGTERM);
  hup_ = std::make_unique<asio::signal_set>(io, SIGHUP);
  on_trigger_ = std::move(on_trigger);
  stop_signals_->async_wait([on_stop = std::move(on_stop)](const asio::error_code& ec, int) {
    if (!ec) on_stop();
  });
  WaitHup();
}

void LinuxServiceHost::WaitHup() {
  hup_->async_wait([this](const asio::error_code& ec, int) {
    if (ec) return;
    on_trigger_();
    if (hup_) WaitHup();
  });
}

void LinuxServiceHost::Unwatch() {
  // Destroyed, not only cancelled: they belong to an io_context that ends before this host.
  // Their cancelled handlers were already queued on it and only see operation_aborted.
  if (stop_signals_) stop_signals_->cancel();
  if (hup_) hup_->cancel();
  stop_signals_.reset();
  hup_.reset();
}

// Replaces this process with parc-agentd, which runs each cycle as `parc-agent run --once`
// and sleeps in between without this program's libraries. Returns only if it could not.
void LinuxServiceHost::Supervise(const std::vector<std::string>& args, absl::Duration splay,
                                 absl::Duration retry_base, std::ostream& err) {
  std::string self = SelfPath();
  std::string supervisor = SiblingProgram("parc-agentd");
  if (supervisor.empty()) {
    err << "parc-agent: parc-agentd not found next to " << self
        << " or in ../lib/parc; the daemon runs in this process\n";
    return;
  }
  std::vector<std::string> argv = {supervisor,
                                   "--agent",
                                   self,
                                   "--splay-ms",
                                   absl::StrCat(absl::ToInt64Milliseconds(splay)),
                                   "--retry-base-ms",
                                   absl::StrCat(absl::ToInt64Milliseconds(retry_base)),
                                   "--"};
  auto run = std::find(args.begin(), args.end(), "run");
  if (run != args.end()) argv.insert(argv.end(), run + 1, args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  err.flush();
  ::execv(supervisor.c_str(), cargv.data());
  err << "parc-agent: cannot run " << supervisor << ": " << std::strerror(errno)
      << "; the daemon runs in this process\n";
}

void LinuxServiceHost::NextCycleIn(absl::Duration delay) {
  if (next_cycle_fd_ < 0) return;
  std::string line = absl::StrCat(absl::ToInt64Milliseconds(delay), "\n");
  if (::write(next_cycle_fd_, line.data(), line.size()) < 0) {
    spdlog::warn("cannot give the next cycle's delay to parc-agentd: {}", std::strerror(errno));
  }
}

void LinuxServiceHost::ReleaseMemory() { malloc_trim(0); }

absl::StatusOr<std::unique_ptr<AgentTransport>> LinuxTransportFactory::Connect(
    const TransportOptions& options) const {
  if (GrpcWebTransport::IsGrpcWebAddress(options.server)) {
    return std::unique_ptr<AgentTransport>(
        new GrpcWebTransport(std::make_unique<CurlHttpClient>(), options));
  }
  return GrpcTransportFactory().Connect(options);
}

std::unique_ptr<Platform> MakeLinuxPlatform(const AgentConfig& config, InstallerOptions installer) {
  auto p = std::make_unique<Platform>();
  p->inventory = std::make_unique<LinuxInventorySource>(config.root);
  p->processes = std::make_unique<PosixProcessRunner>();
  p->packages = std::make_unique<LinuxPackages>(p->processes.get(), std::move(installer));
  p->fetcher = std::make_unique<CurlFetcher>();
  p->transport = std::make_unique<LinuxTransportFactory>();
  p->host = std::make_unique<LinuxServiceHost>();
  return p;
}

int LinuxAgentMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                   bool supervise) {
  return AgentMain(
      args, out, err, [](const AgentConfig& config) { return MakeLinuxPlatform(config); },
      supervise);
}

}  // namespace parc::agent
