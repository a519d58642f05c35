#include "common/bundle_trust.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <set>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace parc::common {
namespace {

constexpr char kReasonPayload[] = "type.parc.dev/trust-reason";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string RawPublic(EVP_PKEY* key) {
  size_t len = 32;
  std::string raw(len, '\0');
  EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &len);
  raw.resize(len);
  return raw;
}

std::string Pem(EVP_PKEY* key, bool private_key) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (private_key) {
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    PEM_write_bio_PUBKEY(bio.get(), key);
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

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
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not an Ed25519 public key in PEM form"));
  }
  PublicKey out;
  out.name = std::move(name);
  out.raw = RawPublic(key.get());
  out.key_id = KeyId(out.raw);
  return out;
}

absl::StatusOr<PublicKey> LoadPublicKey(const std::string& path) {
  PARC_ASSIGN_OR_RETURN(std::string pem, ReadFile(path, 1 << 16));
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name.size() > 4 && name.substr(name.size() - 4) == ".pub") name.resize(name.size() - 4);
  return ParsePublicKey(pem, name);
}

absl::StatusOr<SigningKey> SigningKey::Load(const std::string& path) {
  PARC_ASSIGN_OR_RETURN(std::string pem, ReadFile(path, 1 << 16));
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an Ed25519 private key in PEM form"));
  }
  SigningKey k;
  size_t len = 32;
  k.raw_private_.assign(len, '\0');
  EVP_PKEY_get_raw_private_key(key.get(), reinterpret_cast<unsigned char*>(k.raw_private_.data()),
                               &len);
  k.public_key_.raw = RawPublic(key.get());
  k.public_key_.key_id = KeyId(k.public_key_.raw);
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name.size() > 4 && name.substr(name.size() - 4) == ".key") name.resize(name.size() - 4);
  k.public_key_.name = name;
  return k;
}

absl::StatusOr<std::pair<std::string, std::string>> SigningKey::Generate() {
  EVP_PKEY* raw = nullptr;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr), EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return absl::InternalError("Ed25519 key generation failed");
  }
  PkeyPtr key(raw);
  return std::make_pair(Pem(key.get(), true), Pem(key.get(), false));
}

absl::StatusOr<std::string> SigningKey::Sign(absl::string_view message) const {
  PkeyPtr key(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw_private_.data()),
      raw_private_.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!key || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return absl::InternalError("Ed25519 signing setup failed");
  }
  size_t len = 64;
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return absl::InternalError("Ed25519 signing failed");
  }
  sig.resize(len);
  return sig;
}

bool VerifyEd25519(absl::string_view raw_public_key, absl::string_view message,
                   absl::string_view signature) {
  PkeyPtr key(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw_public_key.data()),
      raw_public_key.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!key || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
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
