#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace parc::common {

// The DER bytes of the first "-----BEGIN <label>-----" block of pem (text around it is
// ignored, as OpenSSL does); nullopt when there is none or its base64 is malformed.
std::optional<std::string> PemDecode(absl::string_view pem, absl::string_view label);

// der as a PEM block with the given label (base64 in lines of 64 characters).
std::string PemEncode(absl::string_view label, absl::string_view der);

// The fixed DER framing of Ed25519 keys (RFC 8410): SubjectPublicKeyInfo and PKCS#8, each
// followed by the 32 bytes of the key.
inline constexpr absl::string_view kEd25519PublicDerPrefix{
    "\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00", 12};
inline constexpr absl::string_view kEd25519PrivateDerPrefix{
    "\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20", 16};

}  // namespace parc::common
