#include "common/windows_util.h"

#include <windows.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace parc::common {

std::wstring Widen(absl::string_view utf8) {
  if (utf8.empty()) return std::wstring();
  int n = MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), nullptr, 0);
  std::wstring out(static_cast<size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), out.data(), n);
  return out;
}

std::string Narrow(std::wstring_view wide) {
  if (wide.empty()) return std::string();
  int n = WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()), nullptr, 0,
                              nullptr, nullptr);
  std::string out(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()), out.data(), n,
                      nullptr, nullptr);
  return out;
}

std::string WindowsErrorText(unsigned long code) {
  wchar_t* buf = nullptr;
  DWORD flags =
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS;
  HMODULE module = nullptr;
  // WinHTTP's codes (12001-12186) live in winhttp.dll's message table.
  if (code >= 12000 && code < 13000) {
    module = GetModuleHandleW(L"winhttp.dll");
    if (module != nullptr) flags |= FORMAT_MESSAGE_FROM_HMODULE;
  }
  DWORD n = FormatMessageW(flags, module, code, 0, reinterpret_cast<wchar_t*>(&buf), 0, nullptr);
  std::string text;
  if (n > 0 && buf != nullptr) {
    text = Narrow(std::wstring_view(buf, n));
    LocalFree(buf);
  }
  absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(text);
  if (trimmed.empty()) {
    // The WinHTTP errors a technician meets most, when the system has no text for them.
    switch (code) {
      case 12002:
        return "the operation timed out";
      case 12007:
        return "the server name could not be resolved";
      case 12029:
        return "cannot connect to the server";
      case 12030:
        return "the connection was ended";
      case 12175:
        return "a TLS (secure channel) error occurred";
      default:
        return absl::StrCat("Windows error ", code);
    }
  }
  return std::string(trimmed);
}

absl::Status WindowsErrorStatus(absl::string_view what, absl::string_view subject,
                                unsigned long code) {
  std::string msg = absl::StrCat(what, subject.empty() ? "" : " ", subject, ": ",
                                 WindowsErrorText(code), " (error ", code, ")");
  switch (code) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
      return absl::NotFoundError(msg);
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
      return absl::PermissionDeniedError(msg);
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
      return absl::AlreadyExistsError(msg);
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
      return absl::ResourceExhaustedError(msg);
    default:
      if (code >= 12000 && code < 13000) return absl::UnavailableError(msg);  // WinHTTP
      return absl::InternalError(msg);
  }
}

}  // namespace parc::common
