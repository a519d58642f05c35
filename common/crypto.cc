#include "common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace parc::common {

std::string HexEncode(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}

Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view data) {
  EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

std::string Sha256::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, digest, &len);
  return HexEncode(absl::string_view(reinterpret_cast<const char*>(digest), len));
}

std::string Sha256Hex(absl::string_view data) {
  Sha256 sha;
  sha.Update(data);
  return sha.FinishHex();
}

absl::StatusOr<std::string> RandomHex(size_t n) {
  std::vector<unsigned char> buf(n);
  if (RAND_bytes(buf.data(), static_cast<int>(n)) != 1) {
    return absl::InternalError("the system random generator failed");
  }
  return HexEncode(absl::string_view(reinterpret_cast<const char*>(buf.data()), n));
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::StatusOr<Credential> NewCredential(absl::string_view prefix, size_t id_bytes) {
  Credential c;
  PARC_ASSIGN_OR_RETURN(std::string id, RandomHex(id_bytes));
  c.id = absl::StrCat(prefix, id);
  PARC_ASSIGN_OR_RETURN(c.secret, RandomHex(32));
  return c;
}

absl::StatusOr<Credential> ParseCredential(absl::string_view text) {
  size_t dot = text.find('.');
  if (dot == absl::string_view::npos || dot == 0 || dot + 1 >= text.size() ||
      text.find('.', dot + 1) != absl::string_view::npos || text.size() > 256) {
    return absl::InvalidArgumentError("credential must have the form <id>.<secret>");
  }
  return Credential{std::string(text.substr(0, dot)), std::string(text.substr(dot + 1))};
}

std::string FormatCredential(const Credential& credential) {
  return absl::StrCat(credential.id, ".", credential.secret);
}

}  // namespace parc::common
