#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "parc/v1/bundle.pb.h"

namespace parc::common {

// An Ed25519 public key of a bundle publisher (an académie).
struct PublicKey {
  std::string name;    // file stem or label, for messages
  std::string raw;     // 32 bytes
  std::string key_id;  // KeyId(raw)
};

// First 16 hex characters of SHA-256 of a raw public key.
std::string KeyId(absl::string_view raw_public_key);

// Loads a PEM public key (SubjectPublicKeyInfo, as `parc-bundle keygen` writes it).
[[nodiscard]] absl::StatusOr<PublicKey> LoadPublicKey(const std::string& path);
[[nodiscard]] absl::StatusOr<PublicKey> ParsePublicKey(absl::string_view pem, std::string name);

// An Ed25519 private key, loaded from PEM (PKCS#8).
class SigningKey {
 public:
  [[nodiscard]] static absl::StatusOr<SigningKey> Load(const std::string& path);
  // A new key pair: PEM of the private key and of the public key.
  [[nodiscard]] static absl::StatusOr<std::pair<std::string, std::string>> Generate();

  const PublicKey& public_key() const { return public_key_; }
  [[nodiscard]] absl::StatusOr<std::string> Sign(absl::string_view message) const;

 private:
  std::string raw_private_;
  PublicKey public_key_;
};

bool VerifyEd25519(absl::string_view raw_public_key, absl::string_view message,
                   absl::string_view signature);

// Why a manifest was refused: carried by the status (see TrustReason).
inline constexpr char kReasonMalformed[] = "malformed_manifest";
inline constexpr char kReasonUnsigned[] = "unsigned";
inline constexpr char kReasonUnknownKey[] = "unknown_key";
inline constexpr char kReasonBadSignature[] = "bad_signature";
inline constexpr char kReasonBelowThreshold[] = "below_threshold";
inline constexpr char kReasonExpired[] = "expired";
inline constexpr char kReasonRollback[] = "rollback";

struct TrustPolicy {
  std::vector<PublicKey> keys;
  // Valid signatures from distinct pinned keys needed.
  int threshold = 1;
  absl::Time now;
  // Refuse sequences lower than this (the installed bundle's), when set.
  std::optional<uint64_t> min_sequence;
  // Who holds the keys, as refusals name it ("this device", "this server").
  std::string holder = "this device";
};

// Checks a signed manifest against the policy and returns the manifest. Refusals are
// PERMISSION_DENIED (FAILED_PRECONDITION for expiry and rollback) with a message naming the
// key, the count or the sequence, and a reason code TrustReason() returns. A signature by a
// pinned key that does not verify refuses the manifest even when others reach the threshold.
[[nodiscard]] absl::StatusOr<parc::v1::BundleManifest> VerifyManifest(
    const parc::v1::SignedManifest& signed_manifest, const TrustPolicy& policy);

// The reason code attached by VerifyManifest (or any status built with WithReason), "" if none.
std::string TrustReason(const absl::Status& status);
absl::Status WithReason(absl::Status status, absl::string_view reason);

}  // namespace parc::common
