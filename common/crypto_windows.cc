// SHA-256 and the system random generator with Windows CNG (BCrypt).
#include <windows.h>
// windows.h first: bcrypt.h needs its types.
#include <bcrypt.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"

namespace parc::common {
namespace {

// The SHA-256 provider, opened once for the process (thread-safe: CNG handles may be shared).
BCRYPT_ALG_HANDLE Sha256Provider() {
  static BCRYPT_ALG_HANDLE provider = [] {
    BCRYPT_ALG_HANDLE h = nullptr;
    BCryptOpenAlgorithmProvider(&h, BCRYPT_SHA256_ALGORITHM, nullptr, 0);
    return h;
  }();
  return provider;
}

}  // namespace

struct Sha256::Impl {
  BCRYPT_HASH_HANDLE hash = nullptr;
  ~Impl() {
    if (hash != nullptr) BCryptDestroyHash(hash);
  }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  BCryptCreateHash(Sha256Provider(), &impl_->hash, nullptr, 0, nullptr, 0, 0);
}

Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view data) {
  // BCryptHashData takes at most 4 GiB at a time.
  while (!data.empty()) {
    const size_t n = std::min<size_t>(data.size(), 1u << 30);
    BCryptHashData(impl_->hash, reinterpret_cast<PUCHAR>(const_cast<char*>(data.data())),
                   static_cast<ULONG>(n), 0);
    data.remove_prefix(n);
  }
}

std::string Sha256::FinishHex() {
  unsigned char digest[32];
  BCryptFinishHash(impl_->hash, digest, sizeof(digest), 0);
  return HexEncode(absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

absl::StatusOr<std::string> RandomHex(size_t n) {
  std::vector<unsigned char> buf(n);
  NTSTATUS status =
      BCryptGenRandom(nullptr, buf.data(), static_cast<ULONG>(n), BCRYPT_USE_SYSTEM_PREFERRED_RNG);
  if (!BCRYPT_SUCCESS(status)) {
    return absl::InternalError(
        absl::StrCat("the system random generator failed (NTSTATUS ", status, ")"));
  }
  return HexEncode(absl::string_view(reinterpret_cast<const char*>(buf.data()), n));
}

}  // namespace parc::common
