#include "common/pem.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace parc::common {

std::optional<std::string> PemDecode(absl::string_view pem, absl::string_view label) {
  const std::string begin_marker = absl::StrCat("-----BEGIN ", label, "-----");
  const std::string end_marker = absl::StrCat("-----END ", label, "-----");
  size_t begin = pem.find(begin_marker);
  if (begin == absl::string_view::npos) return std::nullopt;
  begin += begin_marker.size();
  size_t end = pem.find(end_marker, begin);
  if (end == absl::string_view::npos) return std::nullopt;
  std::string body;
  for (char ch : pem.substr(begin, end - begin)) {
    if (ch != '\n' && ch != '\r' && ch != ' ' && ch != '\t') body.push_back(ch);
  }
  std::string der;
  if (!absl::Base64Unescape(body, &der)) return std::nullopt;
  return der;
}

std::string PemEncode(absl::string_view label, absl::string_view der) {
  std::string b64 = absl::Base64Escape(der);
  std::string out = absl::StrCat("-----BEGIN ", label, "-----\n");
  for (size_t i = 0; i < b64.size(); i += 64) absl::StrAppend(&out, b64.substr(i, 64), "\n");
  absl::StrAppend(&out, "-----END ", label, "-----\n");
  return out;
}

}  // namespace parc::common
