// Parc's programs keep OpenSSL from freeing its state at exit, where it races with gRPC's and
// libcurl's threads still ending (common/openssl_exit.h). Each case runs in a child process with
// an OpenSSL never used before, as a program's main is: OPENSSL_atexit's handler runs only from
// OpenSSL's own exit handler, so it tells whether that was registered.
#include "common/openssl_exit.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>

#include "gtest/gtest.h"

namespace parc::common {
namespace {

int g_pipe = -1;

void OnOpenSslCleanup() { (void)!::write(g_pipe, "cleanup", 7); }

// Runs body in a child that then exits through exit() (atexit handlers run), with status 1 if
// body failed; returns what OpenSSL's cleanup wrote ("cleanup", or nothing when it never ran).
std::string ExitOutput(const std::function<bool()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    g_pipe = fds[1];
    const bool ok = body() && OPENSSL_atexit(OnOpenSslCleanup) == 1;
    std::exit(ok ? 0 : 1);
  }
  ::close(fds[1]);
  std::string out;
  char buf[64];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return out;
}

TEST(OpenSslExit, OpenSslFreesItsStateAtExitByDefault) {
  // What gRPC and libcurl do when they start, with nothing before them.
  EXPECT_EQ(ExitOutput([] { return OPENSSL_init_ssl(0, nullptr) == 1; }), "cleanup");
}

TEST(OpenSslExit, KeptWhenAskedFirstWhateverInitializesOpenSslAfter) {
  EXPECT_EQ(ExitOutput([] {
              return KeepOpenSslStateAtExit() && OPENSSL_init_ssl(0, nullptr) == 1 &&
                     OPENSSL_init_crypto(0, nullptr) == 1;
            }),
            "");
}

}  // namespace
}  // namespace parc::common
