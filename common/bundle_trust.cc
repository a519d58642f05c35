#include "common/bundle_trust.h"

#include <memory>
#include <set>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "common/pem.h"
#include "common/status_macros.h"

namespace parc::common {
namespace {

constexpr char kReasonPayload[] = "type.parc.dev/trust-reason";

absl::Status Refuse(absl::StatusCode code, absl::string_view reason, std::string message) {
  return WithReason(absl::Status(code, message), reason);
}

}  // namespace

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

std::string TrustReason(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonPayload);
  return payload.has_value() ? std::string(*payload) : std::string();
}

std::string KeyId(absl::string_view raw_public_key) {
  return Sha256Hex(raw_public_key).substr(0, 16);
}

absl::StatusOr<PublicKey> ParsePublicKey(absl::string_view pem, std::string name) {
  std::optional<std::string> der = PemDecode(pem, "PUBLIC KEY");
  if (!der || der->size() != kEd25519PublicDerPrefix.size() + 32 ||
      !absl::StartsWith(*der, kEd25519PublicDerPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not an Ed25519 public key in PEM form"));
  }
  PublicKey out;
  out.name = std::move(name);
  out.raw = der->substr(kEd25519PublicDerPrefix.size());
  out.key_id = KeyId(out.raw);
  return out;
}

absl::StatusOr<PublicKey> LoadPublicKey(const std::string& path) {
  PARC_ASSIGN_OR_RETURN(std::string pem, ReadFile(path, 1 << 16));
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name.size() > 4 && name.substr(name.size() - 4) == ".pub") name.resize(name.size() - 4);
  return ParsePublicKey(pem, name);
}

absl::StatusOr<parc::v1::BundleManifest> VerifyManifest(const parc::v1::SignedManifest& sm,
                                                        const TrustPolicy& policy) {
  if (sm.signatures().empty()) {
    return Refuse(absl::StatusCode::kPermissionDenied, kReasonUnsigned,
                  "the manifest carries no signature");
  }
  std::set<std::string> valid;
  std::vector<std::string> unknown;
  for (const auto& sig : sm.signatures()) {
    const PublicKey* key = nullptr;
    for (const auto& k : policy.keys) {
      if (k.key_id == sig.key_id()) key = &k;
    }
    if (key == nullptr) {
      unknown.push_back(sig.key_id());
      continue;
    }
    if (!VerifyEd25519(key->raw, sm.manifest(), sig.signature())) {
      return Refuse(absl::StatusCode::kPermissionDenied, kReasonBadSignature,
                    absl::StrCat("the signature by key ", key->name, " (", key->key_id,
                                 ") does not match the manifest: it was altered or "
                                 "mis-signed"));
    }
    valid.insert(key->key_id);
  }
  if (static_cast<int>(valid.size()) < policy.threshold) {
    if (valid.empty() && !unknown.empty()) {
      return Refuse(
          absl::StatusCode::kPermissionDenied, kReasonUnknownKey,
          absl::StrCat("the manifest is signed only by keys ", policy.holder, " does not trust (",
                       unknown.front(), unknown.size() > 1 ? ", …" : "", ")"));
    }
    return Refuse(absl::StatusCode::kPermissionDenied, kReasonBelowThreshold,
                  absl::StrCat(valid.size(), " valid signature(s) from trusted keys, ",
                               policy.threshold, " required"));
  }
  parc::v1::BundleManifest manifest;
  if (!manifest.ParseFromString(sm.manifest())) {
    return Refuse(absl::StatusCode::kInvalidArgument, kReasonMalformed,
                  "the signed manifest is not a readable bundle manifest");
  }
  if (absl::FromUnixSeconds(manifest.expires_at()) <= policy.now) {
    return Refuse(absl::StatusCode::kFailedPrecondition, kReasonExpired,
                  absl::StrCat("bundle ", manifest.name(), "@", manifest.version(), " expired on ",
                               absl::FormatTime("%Y-%m-%d %H:%M UTC",
                                                absl::FromUnixSeconds(manifest.expires_at()),
                                                absl::UTCTimeZone())));
  }
  if (policy.min_sequence.has_value() && manifest.sequence() < *policy.min_sequence) {
    return Refuse(absl::StatusCode::kFailedPrecondition, kReasonRollback,
                  absl::StrCat("bundle ", manifest.name(), "@", manifest.version(),
                               " has sequence ", manifest.sequence(), ", lower than the installed ",
                               *policy.min_sequence, ": refusing to roll back"));
  }
  return manifest;
}

}  // namespace parc::common
