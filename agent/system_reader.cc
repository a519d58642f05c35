#include "agent/system_reader.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "common/file_util.h"

namespace parc::agent {

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

bool RootedSystemReader::Exists(const std::string& path) const {
  struct stat st;
  return ::stat(Resolve(path).c_str(), &st) == 0;
}

}  // namespace parc::agent
