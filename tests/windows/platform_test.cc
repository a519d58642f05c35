// The Windows platform's own code, run as a Windows program (under Wine in CI): processes in a
// Job object, command-line quoting, the registry's installed products, and the master-image
// fingerprint written by `configure --image`.
#include "agent/windows/platform.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "agent/core/enrollment.h"
#include "agent/windows/process_runner.h"
#include "agent/windows/service.h"
#include "agent/windows/system_facts.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace parc::agent {
namespace {

TEST(WindowsProcessRunner, CapturesOutputAndExitCode) {
  WindowsProcessRunner runner;
  auto r = runner.Run({"cmd", "/c", "echo MCNL 2026& exit 3"}, absl::Seconds(30), 4096);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_status, 3);
  EXPECT_FALSE(r->timed_out);
  EXPECT_TRUE(absl::StrContains(r->output_tail, "MCNL 2026")) << r->output_tail;
}

TEST(WindowsProcessRunner, KeepsOnlyTheTail) {
  WindowsProcessRunner runner;
  auto r =
      runner.Run({"cmd", "/c", "for /L %i in (1,1,300) do @echo line %i"}, absl::Seconds(30), 64);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LE(r->output_tail.size(), 64u);
  EXPECT_TRUE(absl::StrContains(r->output_tail, "line 300")) << r->output_tail;
}

TEST(WindowsProcessRunner, KillsTheProgramAtItsTimeout) {
  WindowsProcessRunner runner;
  const absl::Time start = absl::Now();
  // ping waits about a second between echoes: 60 of them outlast the timeout.
  auto r = runner.Run({"ping", "-n", "60", "127.0.0.1"}, absl::Seconds(2), 4096);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

TEST(WindowsProcessRunner, AMissingProgramIsNotFound) {
  WindowsProcessRunner runner;
  auto r = runner.Run({"parc-no-such-program-2026"}, absl::Seconds(5), 4096);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
}

TEST(WindowsCommandLine, QuotesAsCommandLineToArgvWReadsBack) {
  EXPECT_EQ(WindowsCommandLine({"msiexec", "/i", "C:\\cache\\a b.msi", "/qn"}),
            L"msiexec /i \"C:\\cache\\a b.msi\" /qn");
  EXPECT_EQ(WindowsCommandLine({"x", ""}), L"x \"\"");
  EXPECT_EQ(WindowsCommandLine({"x", "say \"hi\""}), L"x \"say \\\"hi\\\"\"");
  EXPECT_EQ(WindowsCommandLine({"x", "C:\\dir with space\\"}), L"x \"C:\\dir with space\\\\\"");
}

TEST(WindowsFacts, ReadTheRegistryAndWmi) {
  // Whatever the machine (Windows or Wine), these exist.
  EXPECT_FALSE(ReadMachineGuid().empty());
  WindowsFacts f = CollectWindowsFacts(/*with_software=*/false);
  ASSERT_FALSE(f.operating_system.empty());
  EXPECT_TRUE(absl::StrContains(f.operating_system[0]["Caption"], "Windows"));
  ASSERT_FALSE(f.computer_system.empty());
  EXPECT_FALSE(f.computer_system[0]["TotalPhysicalMemory"].empty());
}

TEST(ConfigureMachine, WritesTheConfigurationAndTheImageFingerprint) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("parc-configure-" + *common::RandomHex(6)))
          .string();
  ASSERT_TRUE(common::MakeDirs(dir).ok());
  ASSERT_TRUE(
      common::WriteFileAtomic(dir + "\\ca-src.pem",
                              "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
          .ok());
  MachineSetup setup;
  setup.server = "https://parc.ac-toulouse.test:8444";
  setup.token = "e0123.abcdef";
  setup.ca_file = dir + "\\ca-src.pem";
  setup.publisher_key_files = {""};  // the MSI passes an empty property as ""
  setup.image = true;
  const std::string parc = dir + "\\Parc";
  ASSERT_TRUE(ConfigureMachine(setup, parc).ok());
  auto toml = common::ReadFile(parc + "\\agent.toml");
  ASSERT_TRUE(toml.ok());
  EXPECT_TRUE(absl::StrContains(*toml, "server = 'https://parc.ac-toulouse.test:8444'"));
  EXPECT_TRUE(absl::StrContains(*toml, "enrollment_token = 'e0123.abcdef'"));
  const std::string fingerprint = Fingerprint(WindowsInventorySource().CollectIdentity());
  EXPECT_TRUE(absl::StrContains(*toml, "image_fingerprint = '" + fingerprint + "'")) << *toml;
  // An upgrade passes nothing: the configuration stays.
  ASSERT_TRUE(ConfigureMachine(MachineSetup{"", "", "", {""}, false}, parc).ok());
  EXPECT_EQ(*common::ReadFile(parc + "\\agent.toml"), *toml);
  // Bad input is refused with the property's name.
  MachineSetup bad = setup;
  bad.server = "parc.ac-toulouse.test:8443";
  EXPECT_TRUE(absl::StrContains(ConfigureMachine(bad, parc).message(), "PARC_SERVER"));
  bad = setup;
  bad.ca_file = dir + "\\missing.pem";
  EXPECT_TRUE(absl::StrContains(ConfigureMachine(bad, parc).message(), "PARC_CA"));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace parc::agent
