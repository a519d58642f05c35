#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parc::common {

// Validates a UAI code (7 digits and a check letter, e.g. "0310024H") and returns it in
// canonical form (upper case, surrounding spaces removed). The error names what is wrong:
// length, non-digits, or the expected check letter.
[[nodiscard]] absl::StatusOr<std::string> NormalizeUai(absl::string_view uai);

// Check letter for the 7 digits of a UAI: "ABCDEFGHJKLMNPRSTUVWXYZ"[digits % 23].
char UaiCheckLetter(absl::string_view seven_digits);

// Normalizes a département code to its usual form: two characters for metropolitan
// départements ("31", "09", "2A"), three digits overseas ("971"). Accepts the three-digit form
// used in UAIs and some exports ("031" → "31", "009" → "09") and a bare digit ("9" → "09").
// Returns "" for anything else.
std::string NormalizeDepartement(absl::string_view code);

// Département of a UAI (its first three digits): "0310024H" → "31", "0090001X" → "09".
std::string DepartementFromUai(absl::string_view uai);

// Académie of a département of Occitanie ("Toulouse" or "Montpellier"), "" elsewhere.
std::string AcademieForDepartement(absl::string_view departement);

// Name of a département of Occitanie ("Haute-Garonne"), "" elsewhere.
std::string DepartementName(absl::string_view departement);

}  // namespace parc::common
