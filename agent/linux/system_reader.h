#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parc::agent {

// Read access to the system the agent inventories. Every collector goes through it, so tests
// point it at a fixture tree instead of "/". Paths are absolute ("/sys/class/dmi/id/...").
// Implementations are thread-compatible.
class SystemReader {
 public:
  virtual ~SystemReader() = default;
  // NOT_FOUND when the file does not exist.
  [[nodiscard]] virtual absl::StatusOr<std::string> ReadFile(const std::string& path) const = 0;
  // Names of the entries of a directory, sorted; NOT_FOUND when it does not exist.
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& path) const = 0;
  virtual bool Exists(const std::string& path) const = 0;
  // Bytes available to unprivileged users on the file system holding path (statvfs).
  [[nodiscard]] virtual absl::StatusOr<uint64_t> FreeBytes(const std::string& path) const = 0;
  // Calls line for each line of the file, without its end of line. NOT_FOUND when the file
  // does not exist. This default reads the whole file first; RootedSystemReader reads it a
  // line at a time (dpkg's status file is megabytes on a laptop with the MCNL bundle).
  [[nodiscard]] virtual absl::Status ForEachLine(
      const std::string& path, const std::function<void(absl::string_view)>& line) const;
};

// Reads the real file system under root ("/" in production, a fixture tree in tests).
class RootedSystemReader final : public SystemReader {
 public:
  explicit RootedSystemReader(std::string root);
  absl::StatusOr<std::string> ReadFile(const std::string& path) const override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) const override;
  bool Exists(const std::string& path) const override;
  absl::StatusOr<uint64_t> FreeBytes(const std::string& path) const override;
  absl::Status ForEachLine(const std::string& path,
                           const std::function<void(absl::string_view)>& line) const override;

 private:
  std::string Resolve(const std::string& path) const;
  std::string root_;
};

}  // namespace parc::agent
