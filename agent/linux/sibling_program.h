#pragma once

#include <unistd.h>

#include <string>

namespace parc::agent {

// The path of this running program (/proc/self/exe), "" if unknown.
inline std::string SelfPath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// The agent's programs sit together: next to this one in a build tree, in /usr/lib/parc when
// this one is /usr/bin/parc-agent. The first of <dir>/<name> and <dir>/../lib/parc/<name>
// that is executable, "" if neither.
inline std::string SiblingProgram(const std::string& name) {
  std::string self = SelfPath();
  if (self.empty()) return "";
  std::string dir = self.substr(0, self.find_last_of('/'));
  for (const std::string& candidate : {dir + "/" + name, dir + "/../lib/parc/" + name}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace parc::agent
