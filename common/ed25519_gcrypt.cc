// Ed25519 with libgcrypt (Windows: CNG has no Ed25519; Debian ships libgcrypt built for
// MinGW). Keys are read and written in the same PEM forms as OpenSSL's (RFC 8410), so a key or
// a signature made on one platform is good on the other.
#include <gcrypt.h>

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/bundle_trust.h"
#include "common/file_util.h"
#include "common/pem.h"
#include "common/status_macros.h"

namespace parc::common {
namespace {

struct SexpFree {
  void operator()(gcry_sexp_t s) const { gcry_sexp_release(s); }
};
using Sexp = std::unique_ptr<gcry_sexp, SexpFree>;

bool InitGcrypt() {
  static const bool ok = [] {
    if (gcry_check_version(GCRYPT_VERSION) == nullptr) return false;
    // Only public keys pass through here: no secure memory pool is needed.
    gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
    gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    return true;
  }();
  return ok;
}

// The bytes of the first element after token in sexp ("" when absent).
std::string TokenBytes(gcry_sexp_t sexp, const char* token) {
  Sexp found(gcry_sexp_find_token(sexp, token, 0));
  if (!found) return std::string();
  size_t len = 0;
  void* data = gcry_sexp_nth_buffer(found.get(), 1, &len);
  if (data == nullptr) return std::string();
  std::string out(static_cast<const char*>(data), len);
  gcry_free(data);
  return out;
}

// The public key of a 32-byte private key (seed).
std::string PublicOf(absl::string_view raw_private) {
  gcry_sexp_t key = nullptr;
  if (gcry_sexp_build(&key, nullptr, "(private-key(ecc(curve Ed25519)(flags eddsa)(d %b)))", 32,
                      raw_private.data()) != 0) {
    return std::string();
  }
  Sexp key_owner(key);
  gcry_ctx_t ctx = nullptr;
  if (gcry_mpi_ec_new(&ctx, key, nullptr) != 0) return std::string();
  std::string out;
  gcry_mpi_t q = gcry_mpi_ec_get_mpi("q@eddsa", ctx, 1);
  if (q != nullptr) {
    unsigned int nbits = 0;
    const void* data = gcry_mpi_get_opaque(q, &nbits);
    if (data != nullptr) out.assign(static_cast<const char*>(data), (nbits + 7) / 8);
    gcry_mpi_release(q);
  }
  gcry_ctx_release(ctx);
  return out;
}

std::string StemOf(const std::string& path, absl::string_view extension) {
  std::string name = path.substr(path.find_last_of("/\\") + 1);
  if (absl::EndsWith(name, extension) && name.size() > extension.size()) {
    name.resize(name.size() - extension.size());
  }
  return name;
}

}  // namespace

absl::StatusOr<SigningKey> SigningKey::Load(const std::string& path) {
  PARC_ASSIGN_OR_RETURN(std::string pem, ReadFile(path, 1 << 16));
  std::optional<std::string> der = PemDecode(pem, "PRIVATE KEY");
  if (!InitGcrypt() || !der || der->size() != kEd25519PrivateDerPrefix.size() + 32 ||
      !absl::StartsWith(*der, kEd25519PrivateDerPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an Ed25519 private key in PEM form"));
  }
  SigningKey k;
  k.raw_private_ = der->substr(kEd25519PrivateDerPrefix.size());
  k.public_key_.raw = PublicOf(k.raw_private_);
  if (k.public_key_.raw.size() != 32) {
    return absl::InternalError(absl::StrCat(path, ": cannot derive the Ed25519 public key"));
  }
  k.public_key_.key_id = KeyId(k.public_key_.raw);
  k.public_key_.name = StemOf(path, ".key");
  return k;
}

absl::StatusOr<std::pair<std::string, std::string>> SigningKey::Generate() {
  gcry_sexp_t params = nullptr, key = nullptr;
  if (!InitGcrypt() ||
      gcry_sexp_build(&params, nullptr, "(genkey(ecc(curve Ed25519)(flags eddsa)))") != 0) {
    return absl::InternalError("Ed25519 key generation failed");
  }
  Sexp params_owner(params);
  if (gcry_pk_genkey(&key, params) != 0)
    return absl::InternalError("Ed25519 key generation failed");
  Sexp key_owner(key);
  Sexp private_part(gcry_sexp_find_token(key, "private-key", 0));
  std::string d = private_part ? TokenBytes(private_part.get(), "d") : std::string();
  std::string q = private_part ? TokenBytes(private_part.get(), "q") : std::string();
  if (d.size() != 32 || q.size() != 32) return absl::InternalError("Ed25519 key generation failed");
  return std::make_pair(PemEncode("PRIVATE KEY", absl::StrCat(kEd25519PrivateDerPrefix, d)),
                        PemEncode("PUBLIC KEY", absl::StrCat(kEd25519PublicDerPrefix, q)));
}

absl::StatusOr<std::string> SigningKey::Sign(absl::string_view message) const {
  gcry_sexp_t key = nullptr, data = nullptr, sig = nullptr;
  if (message.size() > (1u << 30) ||
      gcry_sexp_build(&key, nullptr, "(private-key(ecc(curve Ed25519)(flags eddsa)(d %b)(q %b)))",
                      32, raw_private_.data(), 32, public_key_.raw.data()) != 0) {
    return absl::InternalError("Ed25519 signing setup failed");
  }
  Sexp key_owner(key);
  if (gcry_sexp_build(&data, nullptr, "(data(flags eddsa)(hash-algo sha512)(value %b))",
                      static_cast<int>(message.size()), message.data()) != 0) {
    return absl::InternalError("Ed25519 signing setup failed");
  }
  Sexp data_owner(data);
  if (gcry_pk_sign(&sig, data, key) != 0) return absl::InternalError("Ed25519 signing failed");
  Sexp sig_owner(sig);
  std::string r = TokenBytes(sig, "r"), s = TokenBytes(sig, "s");
  if (r.size() != 32 || s.size() != 32) return absl::InternalError("Ed25519 signing failed");
  return r + s;
}

bool VerifyEd25519(absl::string_view raw_public_key, absl::string_view message,
                   absl::string_view signature) {
  if (raw_public_key.size() != 32 || signature.size() != 64 || message.size() > (1u << 30) ||
      !InitGcrypt()) {
    return false;
  }
  gcry_sexp_t key = nullptr, sig = nullptr, data = nullptr;
  if (gcry_sexp_build(&key, nullptr, "(public-key(ecc(curve Ed25519)(flags eddsa)(q %b)))", 32,
                      raw_public_key.data()) != 0) {
    return false;
  }
  Sexp key_owner(key);
  if (gcry_sexp_build(&sig, nullptr, "(sig-val(eddsa(r %b)(s %b)))", 32, signature.data(), 32,
                      signature.data() + 32) != 0) {
    return false;
  }
  Sexp sig_owner(sig);
  if (gcry_sexp_build(&data, nullptr, "(data(flags eddsa)(hash-algo sha512)(value %b))",
                      static_cast<int>(message.size()), message.data()) != 0) {
    return false;
  }
  Sexp data_owner(data);
  return gcry_pk_verify(sig, data, key) == 0;
}

}  // namespace parc::common
