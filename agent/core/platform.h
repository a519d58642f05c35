#pragma once

// Every place where the agent touches its operating system, as interfaces. The agent's core
// (the cycle, the deployer, enrollment, the command line) uses only these; agent/linux/
// implements them for Linux, agent/windows/ for Windows, and tests/agent_fakes.h in memory.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "asio.hpp"
#include "parc/v1/agent.pb.h"
#include "parc/v1/bundle.pb.h"
#include "parc/v1/inventory.pb.h"

namespace parc::agent {

struct AgentConfig;

// System facts: what the agent inventories and what binds its identity to the hardware.
// Collection never fails: a source that is missing or unreadable leaves its fields empty.
// Thread-compatible; the daemon calls it from one pool thread at a time.
class InventorySource {
 public:
  virtual ~InventorySource() = default;
  virtual parc::v1::Inventory CollectInventory() const = 0;
  // Hardware only (hostname, chassis kind): what enrollment needs, cheaper than an inventory.
  virtual parc::v1::Hardware CollectHardware() const = 0;
  // DMI/SMBIOS UUID, serial number and an OS-level machine id (see Fingerprint).
  virtual parc::v1::HardwareIdentity CollectIdentity() const = 0;
};

struct CommandResult {
  int exit_status = -1;  // exit code; on Linux 128 + signal number for a killed command
  bool timed_out = false;
  // Last bytes of standard output and error, interleaved as written.
  std::string output_tail;
};

// Runs a program (no shell) with its output captured, killed whole (with every process it
// started) when the timeout expires or the agent dies. NOT_FOUND when the program does not
// exist; otherwise its exit status comes back as a value.
class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  [[nodiscard]] virtual absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                                          absl::Duration timeout,
                                                          size_t tail_bytes = 4096) const = 0;
};

struct InstallOutcome {
  bool ok = false;
  // With ok: the installer asks for a reboot (msiexec 3010 or 1641); reported as
  // "reboot_pending".
  bool reboot_pending = false;
  // Not ok, but not the package's fault (another installation is in progress): tried again
  // at the next cycle without counting an attempt.
  bool retry_later = false;
  // For failures: install_failed, install_timeout, remove_failed, detect_failed.
  std::string reason;
  int exit_status = 0;
  std::string output_tail;
  std::string message;
};

// Installs, removes and detects the packages of a bundle, from verified artifacts. Each
// platform knows its own package types (Linux: deb, archive, command; Windows: msi, exe,
// command).
class PackageBackend {
 public:
  virtual ~PackageBackend() = default;
  // Whether this platform installs the package's type; the others are not for this device.
  virtual bool Handles(const parc::v1::PackageSpec& spec) const = 0;
  virtual InstallOutcome Install(const parc::v1::PackageSpec& spec,
                                 const std::string& artifact_path) = 0;
  virtual InstallOutcome Remove(const parc::v1::PackageSpec& spec) = 0;
  // true when the package is present, false when not, nullopt when the platform cannot tell
  // (no detection given).
  virtual std::optional<bool> Detect(const parc::v1::PackageSpec& spec) = 0;
};

struct DownloadRequest {
  std::string url;
  // PEM of the CA that signed the artifact server's certificate ("" for http:// URLs).
  std::string ca_pem;
  std::string sha256;
  uint64_t size = 0;
  // Bytes per second; 0 for no cap.
  uint64_t rate_limit = 0;
  // A stalled transfer (below min_speed bytes/s for this long) is abandoned, keeping what it
  // got; the next attempt resumes. A relay is held to a higher min_speed than the centre: one
  // slower than that is worth leaving for the next source.
  absl::Duration stall_timeout = absl::Seconds(60);
  uint64_t min_speed = 1;
  absl::Duration connect_timeout = absl::Seconds(30);
};

struct DownloadResult {
  uint64_t bytes_transferred = 0;  // by this call (resumed bytes excluded)
  bool resumed = false;
};

// Downloads an artifact to final_path through part_path: resumes a partial file with Range and
// If-Range, hashes while receiving, never reads more than the declared size, and renames only
// a file whose size and SHA-256 match. Errors carry a common::TrustReason:
// artifact_size_mismatch or artifact_hash_mismatch (the partial file is deleted),
// download_failed (network or HTTP error; the partial file is kept for the next attempt).
inline constexpr char kReasonArtifactSizeMismatch[] = "artifact_size_mismatch";
inline constexpr char kReasonArtifactHashMismatch[] = "artifact_hash_mismatch";
inline constexpr char kReasonDownloadFailed[] = "download_failed";
class ArtifactFetcher {
 public:
  virtual ~ArtifactFetcher() = default;
  [[nodiscard]] virtual absl::StatusOr<DownloadResult> Fetch(const DownloadRequest& request,
                                                             const std::string& part_path,
                                                             const std::string& final_path) = 0;
};

struct TransportOptions {
  std::string server;
  std::string ca_pem;
  bool insecure = false;
  absl::Duration enroll_timeout = absl::Seconds(30);
  absl::Duration checkin_timeout = absl::Seconds(20);
  absl::Duration report_timeout = absl::Seconds(60);
};

// The agent's side of parc.v1.AgentService: a deadline on every call, the device credential
// ("<device_id>.<secret>") in the call's metadata. Over gRPC (HTTP/2) or gRPC-Web (HTTP/1.1,
// grpc_web_transport.h: for the Windows agent and agents behind proxies that pass only
// HTTP/1.1). Thread-safe.
class AgentTransport {
 public:
  virtual ~AgentTransport() = default;
  [[nodiscard]] virtual absl::StatusOr<parc::v1::EnrollResponse> Enroll(
      const parc::v1::EnrollRequest& request) = 0;
  [[nodiscard]] virtual absl::StatusOr<parc::v1::CheckEnrollmentResponse> CheckEnrollment(
      const parc::v1::EnrollRequest& request) = 0;
  [[nodiscard]] virtual absl::StatusOr<parc::v1::CheckInResponse> CheckIn(
      const std::string& credential, const parc::v1::CheckInRequest& request) = 0;
  [[nodiscard]] virtual absl::Status ReportInventory(
      const std::string& credential, const parc::v1::ReportInventoryRequest& request) = 0;
  [[nodiscard]] virtual absl::Status ReportDeployment(const std::string& credential,
                                                      const parc::v1::DeploymentReport& report) = 0;
  // Cancels the calls in flight and makes later calls fail with CANCELLED (shutdown).
  virtual void CancelAll() = 0;
};

// One HTTP POST over TLS, for the gRPC-Web transport (Linux: libcurl; Windows: WinHTTP, with
// the system's proxy settings). Thread-safe.
struct HttpPost {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // PEM of the CA the server's certificate must chain to ("" for http:// URLs).
  std::string ca_pem;
  absl::Duration timeout = absl::Seconds(30);
};
struct HttpAnswer {
  int status = 0;
  // Header names lower-cased.
  std::map<std::string, std::string> headers;
  std::string body;
};
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // UNAVAILABLE when no answer came (connection, TLS, timeout); any HTTP status otherwise.
  [[nodiscard]] virtual absl::StatusOr<HttpAnswer> Post(const HttpPost& request) = 0;
  // Ends the requests in flight and makes later ones fail with CANCELLED.
  virtual void CancelAll() = 0;
};

class TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  // A transport to one server. Connecting is lazy: errors come from the first call.
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<AgentTransport>> Connect(
      const TransportOptions& options) const = 0;
};

// How the operating system runs the agent as a service (Linux: signals and parc-agentd;
// Windows: the Service Control Manager).
class ServiceHost {
 public:
  virtual ~ServiceHost() = default;
  // Until Unwatch: on_stop when the system asks the agent to stop, on_trigger when it asks for
  // a cycle now. Both run on io's thread.
  virtual void Watch(asio::io_context& io, std::function<void()> on_stop,
                     std::function<void()> on_trigger) = 0;
  // Stops watching, so that io can run out of work, and lets go of everything tied to io.
  // Called on io's thread before io ends (possibly from on_stop itself).
  virtual void Unwatch() = 0;
  // For `run` without --once: hands the daemon to a supervisor that starts each cycle as
  // `run --once` and holds nothing in between. Returns only when there is none (the daemon
  // then runs in this process); notes why on err.
  virtual void Supervise(const std::vector<std::string>& args, absl::Duration splay,
                         absl::Duration retry_base, std::ostream& err) = 0;
  // With `run --once`: whether a supervisor started this cycle, and telling it when to start
  // the next one.
  virtual bool supervised() const = 0;
  virtual void NextCycleIn(absl::Duration delay) = 0;
  // Between cycles: gives memory freed by the cycle back to the system.
  virtual void ReleaseMemory() {}
};

// One platform's implementations. The state store is not here: it is SQLite on every platform
// (sqlite_state.h), behind the AgentState interface.
struct Platform {
  std::unique_ptr<InventorySource> inventory;
  std::unique_ptr<ProcessRunner> processes;
  std::unique_ptr<PackageBackend> packages;
  std::unique_ptr<ArtifactFetcher> fetcher;
  std::unique_ptr<TransportFactory> transport;
  std::unique_ptr<ServiceHost> host;
};

// Builds a platform for a configuration (the Linux one reads the system under config.root).
using PlatformFactory = std::function<std::unique_ptr<Platform>(const AgentConfig& config)>;

}  // namespace parc::agent
