#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace parc::agent {

// Settings of parc-agent, from /etc/parc/agent.toml (or --config), overridden by flags.
// A master disk image carries server, ca and enrollment_token but no identity: each clone
// enrolls on its own at first start.
struct AgentConfig {
  std::string server;
  // Path of the CA certificate that signed the server's certificate.
  std::string ca;
  std::string enrollment_token;
  // Device kind set by the technician (interactive displays cannot be detected).
  std::string kind;
  bool insecure = false;
#ifdef _WIN32
  std::string state_dir = "C:\\ProgramData\\Parc\\state";
#else
  std::string state_dir = "/var/lib/parc-agent";
#endif
  std::string root = "/";
  int outbox_max_reports = 100;
  // Bundle publishers this device trusts (PEM public keys), and how many of them must have
  // signed a bundle before it is installed.
  std::vector<std::string> publisher_keys;
  int signature_threshold = 1;
  // Downloaded artifacts (default <state_dir>/cache).
  std::string cache_dir;
  // Set in a master image (`parc-agent configure --image` on Windows): the fingerprint of the
  // machine the image is prepared on, which never enrolls; its clones (other hardware) enroll
  // at their first boot.
  std::string image_fingerprint;
};

#ifdef _WIN32
// Written by the MSI from PARC_SERVER, PARC_TOKEN and PARC_CA; readable by SYSTEM and
// Administrators only.
inline constexpr char kDefaultAgentConfigPath[] = "C:\\ProgramData\\Parc\\agent.toml";
#else
inline constexpr char kDefaultAgentConfigPath[] = "/etc/parc/agent.toml";
#endif

// Reads a config file. A missing file yields the defaults unless must_exist. Errors name the
// file, line and column.
[[nodiscard]] absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path, bool must_exist);
// The settings in text (TOML); path only names the file in errors.
[[nodiscard]] absl::StatusOr<AgentConfig> ParseAgentConfig(const std::string& text,
                                                           const std::string& path);

}  // namespace parc::agent
