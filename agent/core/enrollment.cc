#include "agent/core/enrollment.h"

#include "absl/strings/str_cat.h"
#include "common/crypto.h"

namespace parc::agent {

parc::v1::EnrollRequest MakeEnrollRequest(const InventorySource& system,
                                          const EnrollParams& params) {
  parc::v1::EnrollRequest request;
  request.set_token(params.token);
  *request.mutable_identity() = system.CollectIdentity();
  request.set_kind(params.kind);
  parc::v1::Hardware hw = system.CollectHardware();
  request.set_detected_kind(hw.detected_kind());
  request.set_hostname(hw.hostname());
  request.set_agent_version(kAgentVersion);
  return request;
}

Identity IdentityFromEnrollment(const EnrollParams& params, const parc::v1::EnrollResponse& r,
                                const std::string& fingerprint, absl::Time now) {
  Identity id;
  id.device_id = r.device_id();
  id.secret = r.device_secret();
  id.server = params.server;
  id.ca_pem = params.ca_pem;
  id.insecure = params.insecure;
  id.fingerprint = fingerprint;
  id.uai = r.uai();
  id.establishment_name = r.establishment_name();
  id.kind = params.kind;
  id.enrolled_at = now;
  return id;
}

std::string Fingerprint(const parc::v1::HardwareIdentity& identity) {
  return common::Sha256Hex(
      absl::StrCat(identity.product_uuid(), "\n", identity.serial(), "\n", identity.machine_id()));
}

std::string CredentialOf(const Identity& identity) {
  return absl::StrCat(identity.device_id, ".", identity.secret);
}

}  // namespace parc::agent
