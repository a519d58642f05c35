#include "agent/linux/system_reader.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

namespace parc::agent {

absl::Status SystemReader::ForEachLine(const std::string& path,
                                       const std::function<void(absl::string_view)>& line) const {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  for (absl::string_view l : absl::StrSplit(*text, '\n')) line(l);
  return absl::OkStatus();
}

absl::Status RootedSystemReader::ForEachLine(
    const std::string& path, const std::function<void(absl::string_view)>& line) const {
  std::string full = Resolve(path);
  FILE* f = std::fopen(full.c_str(), "re");
  if (f == nullptr) return common::ErrnoStatus("cannot read", full, errno);
  char* buf = nullptr;
  size_t cap = 0;
  ssize_t n;
  while ((n = ::getline(&buf, &cap, f)) >= 0) {
    absl::string_view l(buf, static_cast<size_t>(n));
    if (!l.empty() && l.back() == '\n') l.remove_suffix(1);
    line(l);
  }
  const bool failed = std::ferror(f) != 0;
  std::free(buf);
  std::fclose(f);
  if (failed) return absl::DataLossError(absl::StrCat("cannot read ", full));
  return absl::OkStatus();
}

RootedSystemReader::RootedSystemReader(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  if (root_ == "/") root_.clear();
}

std::string RootedSystemReader::Resolve(const std::string& path) const { return root_ + path; }

absl::StatusOr<std::string> RootedSystemReader::ReadFile(const std::string& path) const {
  // sysfs and procfs files are small; dpkg's status file is the largest read (a few MiB).
  return common::ReadFile(Resolve(path), 64u << 20);
}

absl::StatusOr<std::vector<std::string>> RootedSystemReader::ListDir(
    const std::string& path) const {
  std::string full = Resolve(path);
  DIR* dir = ::opendir(full.c_str());
  if (dir == nullptr) return common::ErrnoStatus("cannot list", full, errno);
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<uint64_t> RootedSystemReader::FreeBytes(const std::string& path) const {
  const std::string full = Resolve(path);
  struct statvfs st;
  if (::statvfs(full.c_str(), &st) != 0) return common::ErrnoStatus("cannot statvfs", full, errno);
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

bool RootedSystemReader::Exists(const std::string& path) const {
  struct stat st;
  return ::stat(Resolve(path).c_str(), &st) == 0;
}

}  // namespace parc::agent
