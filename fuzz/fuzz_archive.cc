// Archive extraction as the agent does it, as root, with bytes that passed no hash check: the
// last line of defence when a publisher's key is misused.
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "agent/linux/packages.h"
#include "agent/linux/process_runner.h"

namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    // In memory (tmpfs) when there is one: each input is unpacked to disk.
    char tmpl[] = "/dev/shm/parc-fuzz-archive.XXXXXX";
    if (::access("/dev/shm", W_OK) != 0) std::strcpy(tmpl, "/tmp/parc-fuzz-archive.XXXXXX");
    return std::string(::mkdtemp(tmpl));
  }();
  const std::string artifact = dir + "/artifact";
  const std::string target = dir + "/target";
  int fd = ::open(artifact.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  ssize_t written = ::write(fd, data, size);
  ::close(fd);
  if (written != static_cast<ssize_t>(size)) return 0;
  parc::v1::PackageSpec spec;
  spec.set_id("fuzz");
  spec.set_version("1");
  spec.mutable_archive()->set_target_dir(target);
  parc::agent::InstallerOptions options;
  options.max_extracted_bytes = 4 << 20;
  parc::agent::PosixProcessRunner runner;
  (void)parc::agent::LinuxPackages(&runner, options).Install(spec, artifact);
  // Nothing may land outside the target directory: only "artifact" and "target" exist here.
  ::nftw(target.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
