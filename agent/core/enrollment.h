#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/core/platform.h"
#include "agent/core/state.h"
#include "parc/v1/inventory.pb.h"

namespace parc::agent {

inline constexpr char kAgentVersion[] = PARC_VERSION;

// Everything needed to enroll: where the server is, how to trust it, the token.
struct EnrollParams {
  std::string server;
  std::string ca_pem;
  bool insecure = false;
  std::string token;
  // DEVICE_KIND_UNSPECIFIED: use the kind detected from the chassis type.
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
};

// Builds the enrollment request from the system (hardware identity, detected kind, hostname).
parc::v1::EnrollRequest MakeEnrollRequest(const InventorySource& system,
                                          const EnrollParams& params);

// SHA-256 over the hardware identity: changes when the state directory is copied onto other
// hardware (a cloned disk image).
std::string Fingerprint(const parc::v1::HardwareIdentity& identity);

// The identity to persist after a successful enrollment.
Identity IdentityFromEnrollment(const EnrollParams& params, const parc::v1::EnrollResponse& r,
                                const std::string& fingerprint, absl::Time now);

// "<device_id>.<secret>" for call metadata.
std::string CredentialOf(const Identity& identity);

}  // namespace parc::agent
