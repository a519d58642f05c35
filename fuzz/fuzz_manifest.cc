// Signed bundle manifests as agents and the server receive them: any bytes, any signatures.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "common/bundle_trust.h"
#include "parc/v1/bundle.pb.h"

namespace {

const parc::common::TrustPolicy& Policy() {
  // A fixed public key (RFC 8032 test vector 1): signatures by anyone else are refused.
  static const parc::common::TrustPolicy policy = [] {
    parc::common::TrustPolicy p;
    auto key = parc::common::ParsePublicKey(
        "-----BEGIN PUBLIC KEY-----\n"
        "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
        "-----END PUBLIC KEY-----\n",
        "fuzz");
    if (key.ok()) p.keys.push_back(*key);
    p.threshold = 1;
    p.now = absl::FromUnixSeconds(1795000000);
    return p;
  }();
  return policy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  parc::v1::SignedManifest signed_manifest;
  if (signed_manifest.ParseFromString(bytes)) {
    auto manifest = parc::common::VerifyManifest(signed_manifest, Policy());
    // Nobody holds the private key of the pinned test vector here: nothing may pass.
    if (manifest.ok()) __builtin_trap();
    (void)parc::common::TrustReason(manifest.status());
  }
  parc::v1::BundleManifest manifest;
  (void)manifest.ParseFromString(bytes);
  return 0;
}
