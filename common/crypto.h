#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parc::common {

// Lower-case hexadecimal encoding of bytes.
std::string HexEncode(absl::string_view bytes);

// SHA-256 of data, as 64 lower-case hex characters.
std::string Sha256Hex(absl::string_view data);

// Incremental SHA-256 (for hashing while downloading or over several strings).
// Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // Returns the hex digest. REQUIRES: called once.
  std::string FinishHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// n bytes from the operating system's CSPRNG, hex-encoded (2n characters).
[[nodiscard]] absl::StatusOr<std::string> RandomHex(size_t n);

// Compares two strings in time that depends only on their lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// A credential of the form "<id>.<secret>" (enrollment tokens, operator tokens, device
// credentials). The server stores the id and SHA-256 of the secret.
struct Credential {
  std::string id;
  std::string secret;
};

// Issues a new credential: id of id_bytes random bytes and a 32-byte secret, both in hex,
// the id prefixed with prefix (e.g. "e" for enrollment tokens).
[[nodiscard]] absl::StatusOr<Credential> NewCredential(absl::string_view prefix, size_t id_bytes);

// "<id>.<secret>" → parts; INVALID_ARGUMENT when the shape is wrong.
[[nodiscard]] absl::StatusOr<Credential> ParseCredential(absl::string_view text);

std::string FormatCredential(const Credential& credential);

}  // namespace parc::common
