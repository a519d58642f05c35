#pragma once

// parc-agent.exe under the Service Control Manager, and the machine-wide setup its MSI runs.

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/core/platform.h"

namespace parc::agent {

inline constexpr wchar_t kServiceName[] = L"ParcAgent";
// `sc control ParcAgent 128`: a technician asks for a cycle now (check-in, inventory, bundle).
inline constexpr unsigned long kServiceControlCycleNow = 128;

// The ServiceHost of the service: the SCM's stop and shutdown requests stop the daemon, the
// custom control 128 triggers a cycle. The SCM supervises the process itself (automatic start,
// restart on failure), so there is no supervisor process.
class ScmServiceHost final : public ServiceHost {
 public:
  void Watch(asio::io_context& io, std::function<void()> on_stop,
             std::function<void()> on_trigger) override;
  void Unwatch() override;
  void Supervise(const std::vector<std::string>&, absl::Duration, absl::Duration,
                 std::ostream&) override {}
  bool supervised() const override { return false; }
  void NextCycleIn(absl::Duration) override {}
};

// `parc-agent.exe service`: connects to the SCM and runs `run` until the SCM stops it. Logs go
// to ProgramData\Parc\logs\agent.log (rotated). Returns the process exit status.
int RunAsService(const std::string& program);

// What the MSI passes (PARC_SERVER, PARC_TOKEN, PARC_CA, PARC_PUBLISHER_KEY).
struct MachineSetup {
  std::string server;
  std::string token;
  std::string ca_file;
  std::vector<std::string> publisher_key_files;
  // PARC_IMAGE=1: this machine prepares a master image and never enrolls itself; the devices
  // cloned from the image (other hardware) enroll at their first boot.
  bool image = false;
};

// `parc-agent.exe configure`: creates ProgramData\Parc with an ACL that lets only SYSTEM and
// Administrators in (the enrollment token is a secret: a student must not read it), copies the
// CA and publisher keys there, and writes agent.toml. Nothing is enrolled here: the service
// enrolls on the device's first boot, so a sysprep'd master image carries no identity. With
// every field empty (an upgrade), an existing configuration is kept.
absl::Status ConfigureMachine(const MachineSetup& setup, const std::string& parc_dir);

// Restricts a directory (and what it will hold) to SYSTEM and Administrators.
absl::Status RestrictToAdministrators(const std::string& path);

// The ProgramData\Parc directory of this machine.
std::string ParcDataDir();

}  // namespace parc::agent
