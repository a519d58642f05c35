#include "common/uai.h"

#include <array>
#include <cctype>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace parc::common {
namespace {

constexpr absl::string_view kCheckLetters = "ABCDEFGHJKLMNPRSTUVWXYZ";

struct DepartementInfo {
  absl::string_view code;
  absl::string_view name;
  absl::string_view academie;
};

constexpr std::array<DepartementInfo, 13> kOccitanie = {{
    {"09", "Ariège", "Toulouse"},
    {"11", "Aude", "Montpellier"},
    {"12", "Aveyron", "Toulouse"},
    {"30", "Gard", "Montpellier"},
    {"31", "Haute-Garonne", "Toulouse"},
    {"32", "Gers", "Toulouse"},
    {"34", "Hérault", "Montpellier"},
    {"46", "Lot", "Toulouse"},
    {"48", "Lozère", "Montpellier"},
    {"65", "Hautes-Pyrénées", "Toulouse"},
    {"66", "Pyrénées-Orientales", "Montpellier"},
    {"81", "Tarn", "Toulouse"},
    {"82", "Tarn-et-Garonne", "Toulouse"},
}};

const DepartementInfo* FindDepartement(absl::string_view departement) {
  for (const auto& d : kOccitanie) {
    if (d.code == departement) return &d;
  }
  return nullptr;
}

}  // namespace

char UaiCheckLetter(absl::string_view seven_digits) {
  uint32_t value = 0;
  for (char c : seven_digits) value = value * 10 + static_cast<uint32_t>(c - '0');
  return kCheckLetters[value % 23];
}

absl::StatusOr<std::string> NormalizeUai(absl::string_view raw) {
  std::string uai = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(raw));
  if (uai.empty()) return absl::InvalidArgumentError("UAI is empty");
  if (uai.size() != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("UAI \"", uai, "\" must be 7 digits and a letter (8 characters)"));
  }
  for (size_t i = 0; i < 7; ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(uai[i]))) {
      return absl::InvalidArgumentError(absl::StrCat("UAI \"", uai, "\" must start with 7 digits"));
    }
  }
  char expected = UaiCheckLetter(absl::string_view(uai).substr(0, 7));
  if (uai[7] != expected) {
    return absl::InvalidArgumentError(absl::StrCat("UAI \"", uai, "\" has check letter '",
                                                   std::string(1, uai[7]), "', expected '",
                                                   std::string(1, expected), "'"));
  }
  return uai;
}

std::string NormalizeDepartement(absl::string_view raw) {
  std::string code = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(raw));
  if (code.size() == 3 && code[0] == '0') code.erase(0, 1);
  if (code.size() == 1 && absl::ascii_isdigit(static_cast<unsigned char>(code[0]))) {
    code.insert(0, "0");
  }
  if (code.size() == 2) {
    bool digits = absl::ascii_isdigit(static_cast<unsigned char>(code[0])) &&
                  absl::ascii_isdigit(static_cast<unsigned char>(code[1]));
    if (digits || code == "2A" || code == "2B") return code;
    return "";
  }
  if (code.size() == 3) {
    for (char c : code) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return "";
    }
    return code;
  }
  return "";
}

std::string DepartementFromUai(absl::string_view uai) {
  if (uai.size() < 3) return "";
  return NormalizeDepartement(uai.substr(0, 3));
}

std::string AcademieForDepartement(absl::string_view departement) {
  const DepartementInfo* d = FindDepartement(departement);
  return d ? std::string(d->academie) : std::string();
}

std::string DepartementName(absl::string_view departement) {
  const DepartementInfo* d = FindDepartement(departement);
  return d ? std::string(d->name) : std::string();
}

}  // namespace parc::common
