// The parts of common/crypto.h that need no cryptographic library; SHA-256 and randomness
// come from crypto_openssl.cc (Linux) or crypto_windows.cc (CNG).
#include "common/crypto.h"

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

std::string Sha256Hex(absl::string_view data) {
  Sha256 sha;
  sha.Update(data);
  return sha.FinishHex();
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  // Every byte is compared whatever the earlier ones were.
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = static_cast<unsigned char>(
        diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i])));
  }
  return diff == 0;
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
