// File operations on Windows. Paths are UTF-8 in Parc and wide in the Windows API; '/' and '\'
// both separate directories. Windows has no permission bits: the mode arguments are ignored and
// files inherit the ACL of their directory (the agent's ProgramData directory is restricted to
// SYSTEM and Administrators by the installer).
#include <windows.h>
// windows.h first.
#include <io.h>

#include <algorithm>
#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/windows_util.h"

namespace parc::common {
namespace {

struct HandleCloser {
  HANDLE h;
  ~HandleCloser() {
    if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
  }
};

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  HandleCloser file{CreateFileW(Widen(path).c_str(), GENERIC_READ,
                                FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                                OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr)};
  if (file.h == INVALID_HANDLE_VALUE) {
    return WindowsErrorStatus("cannot open", path, GetLastError());
  }
  std::string out;
  char buf[65536];
  while (true) {
    DWORD r = 0;
    if (!::ReadFile(file.h, buf, sizeof(buf), &r, nullptr)) {
      return WindowsErrorStatus("cannot read", path, GetLastError());
    }
    if (r == 0) break;
    if (out.size() + r > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
    }
    out.append(buf, r);
  }
  return out;
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(data.size() - off, 1u << 30));
    int w = ::_write(fd, data.data() + off, chunk);
    if (w < 0) return ErrnoStatus("cannot write", path, errno);
    off += static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, absl::string_view data, mode_t /*mode*/) {
  const std::string tmp = absl::StrCat(path, ".tmp.", GetCurrentProcessId());
  const std::wstring wtmp = Widen(tmp);
  {
    HandleCloser file{CreateFileW(wtmp.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS,
                                  FILE_ATTRIBUTE_NORMAL, nullptr)};
    if (file.h == INVALID_HANDLE_VALUE) {
      return WindowsErrorStatus("cannot create", tmp, GetLastError());
    }
    size_t off = 0;
    while (off < data.size()) {
      DWORD chunk = static_cast<DWORD>(std::min<size_t>(data.size() - off, 1u << 30));
      DWORD written = 0;
      if (!WriteFile(file.h, data.data() + off, chunk, &written, nullptr)) {
        DWORD err = GetLastError();
        CloseHandle(file.h);
        file.h = INVALID_HANDLE_VALUE;
        DeleteFileW(wtmp.c_str());
        return WindowsErrorStatus("cannot write", tmp, err);
      }
      off += written;
    }
    if (!FlushFileBuffers(file.h)) {
      DWORD err = GetLastError();
      CloseHandle(file.h);
      file.h = INVALID_HANDLE_VALUE;
      DeleteFileW(wtmp.c_str());
      return WindowsErrorStatus("cannot sync", tmp, err);
    }
  }
  if (!MoveFileExW(wtmp.c_str(), Widen(path).c_str(),
                   MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    DWORD err = GetLastError();
    DeleteFileW(wtmp.c_str());
    return WindowsErrorStatus("cannot rename to", path, err);
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& path, mode_t /*mode*/) {
  if (path.empty()) return absl::InvalidArgumentError("empty directory path");
  size_t pos = 0;
  // Skip a drive ("C:") or the server and share of a UNC path.
  if (path.size() >= 2 && path[1] == ':') pos = 2;
  while (pos != std::string::npos) {
    pos = path.find_first_of("/\\", pos + 1);
    std::string partial = path.substr(0, pos);
    if (partial.empty() || (partial.size() == 2 && partial[1] == ':')) continue;
    if (!CreateDirectoryW(Widen(partial).c_str(), nullptr)) {
      DWORD err = GetLastError();
      if (err != ERROR_ALREADY_EXISTS && err != ERROR_ACCESS_DENIED) {
        return WindowsErrorStatus("cannot create directory", partial, err);
      }
    }
  }
  DWORD attrs = GetFileAttributesW(Widen(path).c_str());
  if (attrs == INVALID_FILE_ATTRIBUTES) {
    return WindowsErrorStatus("cannot create directory", path, GetLastError());
  }
  if ((attrs & FILE_ATTRIBUTE_DIRECTORY) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

bool PathExists(const std::string& path) {
  return GetFileAttributesW(Widen(path).c_str()) != INVALID_FILE_ATTRIBUTES;
}

absl::StatusOr<uint64_t> FileSize(const std::string& path) {
  WIN32_FILE_ATTRIBUTE_DATA data;
  if (!GetFileAttributesExW(Widen(path).c_str(), GetFileExInfoStandard, &data)) {
    return WindowsErrorStatus("cannot stat", path, GetLastError());
  }
  return (static_cast<uint64_t>(data.nFileSizeHigh) << 32) | data.nFileSizeLow;
}

absl::Status RenamePath(const std::string& from, const std::string& to) {
  // Without MOVEFILE_REPLACE_EXISTING: fails when `to` exists.
  if (!MoveFileExW(Widen(from).c_str(), Widen(to).c_str(), MOVEFILE_WRITE_THROUGH)) {
    return WindowsErrorStatus("cannot rename to", to, GetLastError());
  }
  return absl::OkStatus();
}

namespace {

absl::Status RemoveTreeW(const std::wstring& path) {
  const DWORD attrs = GetFileAttributesW(path.c_str());
  if (attrs == INVALID_FILE_ATTRIBUTES) return absl::OkStatus();
  // Read-only files (archives keep the attribute) cannot be deleted until it is cleared.
  if (attrs & FILE_ATTRIBUTE_READONLY) {
    SetFileAttributesW(path.c_str(), attrs & ~static_cast<DWORD>(FILE_ATTRIBUTE_READONLY));
  }
  if ((attrs & FILE_ATTRIBUTE_DIRECTORY) == 0) {
    if (!DeleteFileW(path.c_str())) {
      return WindowsErrorStatus("cannot remove", Narrow(path), GetLastError());
    }
    return absl::OkStatus();
  }
  // A junction or directory link: removed itself, what it points at left alone.
  if ((attrs & FILE_ATTRIBUTE_REPARSE_POINT) == 0) {
    WIN32_FIND_DATAW found;
    HANDLE find = FindFirstFileW((path + L"\\*").c_str(), &found);
    if (find != INVALID_HANDLE_VALUE) {
      absl::Status status;
      do {
        const std::wstring name = found.cFileName;
        if (name == L"." || name == L"..") continue;
        status = RemoveTreeW(path + L"\\" + name);
      } while (status.ok() && FindNextFileW(find, &found));
      FindClose(find);
      if (!status.ok()) return status;
    }
  }
  if (!RemoveDirectoryW(path.c_str())) {
    return WindowsErrorStatus("cannot remove", Narrow(path), GetLastError());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RemoveTree(const std::string& path) { return RemoveTreeW(Widen(path)); }

}  // namespace parc::common
