#include "server/identity.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/csv.h"

namespace parc::server {

bool IsPlaceholderSerial(absl::string_view raw) {
  std::string s = common::NormalizeHeader(raw);  // lower case, punctuation folded
  if (s.empty()) return true;
  static constexpr std::array<absl::string_view, 14> kPlaceholders = {"to_be_filled_by_o_e_m",
                                                                      "default_string",
                                                                      "system_serial_number",
                                                                      "not_specified",
                                                                      "not_applicable",
                                                                      "none",
                                                                      "n_a",
                                                                      "oem",
                                                                      "0",
                                                                      "0123456789",
                                                                      "123456789",
                                                                      "1234567890",
                                                                      "chassis_serial_number",
                                                                      "serial"};
  for (auto p : kPlaceholders) {
    if (s == p) return true;
  }
  bool all_same = true;
  for (char c : s) all_same &= (c == s[0]);
  return all_same && s.size() > 2;  // "00000000", "xxxxxxx"
}

bool IsPlaceholderUuid(absl::string_view raw) {
  std::string u = absl::AsciiStrToLower(absl::StripAsciiWhitespace(raw));
  if (u.empty()) return true;
  std::string hex;
  for (char c : u) {
    if (c != '-') hex.push_back(c);
  }
  if (hex.size() != 32) return true;
  bool zeros = hex.find_first_not_of('0') == std::string::npos;
  bool effs = hex.find_first_not_of('f') == std::string::npos;
  return zeros || effs || hex == "03000200040005000006000700080009";
}

std::string UsableSerial(absl::string_view serial) {
  return IsPlaceholderSerial(serial) ? "" : std::string(absl::StripAsciiWhitespace(serial));
}

absl::StatusOr<std::string> HardwareKey(const parc::v1::HardwareIdentity& id) {
  std::string uuid = IsPlaceholderUuid(id.product_uuid())
                         ? ""
                         : absl::AsciiStrToLower(absl::StripAsciiWhitespace(id.product_uuid()));
  std::string serial = UsableSerial(id.serial());
  if (!uuid.empty() || !serial.empty()) {
    return absl::StrCat("hw:", common::Sha256Hex(absl::StrCat(uuid, "\n", serial)));
  }
  std::string machine_id(absl::StripAsciiWhitespace(id.machine_id()));
  if (machine_id.size() >= 16) {
    return absl::StrCat("mid:", common::Sha256Hex(machine_id));
  }
  return absl::InvalidArgumentError(
      "no usable hardware identity: DMI product UUID, serial number and machine-id are all "
      "missing or placeholders");
}

}  // namespace parc::server
