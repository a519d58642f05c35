#pragma once

// Windows only: text conversion between Parc's UTF-8 and the wide strings of the Windows API,
// and statuses from Windows error codes.
#ifndef _WIN32
#error "common/windows_util.h is for Windows builds"
#endif

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace parc::common {

// UTF-8 → UTF-16 (invalid sequences become U+FFFD).
std::wstring Widen(absl::string_view utf8);
// UTF-16 → UTF-8 (unpaired surrogates become U+FFFD).
std::string Narrow(std::wstring_view wide);

// The system's message for a Windows error code (GetLastError, or a WinHTTP / registry code).
std::string WindowsErrorText(unsigned long code);

// A status for a failed Windows call: "<what> <subject>: <system message> (error N)", with a
// code that says what the caller can do (NOT_FOUND, PERMISSION_DENIED, ALREADY_EXISTS,
// RESOURCE_EXHAUSTED for a full disk, UNAVAILABLE for network failures, INTERNAL otherwise).
absl::Status WindowsErrorStatus(absl::string_view what, absl::string_view subject,
                                unsigned long code);

}  // namespace parc::common
