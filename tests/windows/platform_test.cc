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
#include "agent/windows/winhttp.h"
#include "common/crypto.h"
#include "common/file_util.h"
#include "common/pem.h"
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

// Wine's crypt32 hands BCrypt an ECDSA signature's r and s without their leading zero bytes:
// a certificate whose signature has a 31-byte s (about one in 128; made with openssl until one
// came out so) was refused as "not issued by the CA". PinnedCa checks such signatures itself.
constexpr char kTestCa[] = R"pem(-----BEGIN CERTIFICATE-----
MIIBejCCASGgAwIBAgIUFmwNLIIWJf67DELKtoiowIxuFYQwCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHVGVzdCBDQTAgFw0yNjExMzAwMjMzMjVaGA8yMTI2MTEwNjAy
MzMyNVowEjEQMA4GA1UEAwwHVGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABIEMKZDyqwbJY5NOVnQ7zd5SPLCjg/AfAwyJ6LP0zdSYcaHDPPZgqx5j/C02
rxYSTY/TGh1ZfV/Y3acidrkAOAqjUzBRMB0GA1UdDgQWBBSrPRvXa+hNhSJvWFab
H9Fxh8ZsbDAfBgNVHSMEGDAWgBSrPRvXa+hNhSJvWFabH9Fxh8ZsbDAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCICkVCRM1F9uSs0Zzf/yRXyQyKmUC
e2TPgA89j9/xQgY1AiAx8QbIvFJWFMJcfXx+jwHPWIPfYdpvJtb/OYbbEFhv+w==
-----END CERTIFICATE-----
)pem";
// Another CA with the same name and another key.
constexpr char kImpostorCa[] = R"pem(-----BEGIN CERTIFICATE-----
MIIBfDCCASGgAwIBAgIUXdU1QLA1y/eRWENbn/yLSOThVi0wCgYIKoZIzj0EAwIw
EjEQMA4GA1UEAwwHVGVzdCBDQTAgFw0yNjExMzAwMjMzMjhaGA8yMTI2MTEwNjAy
MzMyOFowEjEQMA4GA1UEAwwHVGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABJ5lWM9j/dM1T8LXv7JjSSxQtBtqhF0ah54x4fbziwRQGUTvhRQ7QZ3p4lNW
f1wfYDYVYT3lA9zTcDkaq59VKzmjUzBRMB0GA1UdDgQWBBTGfZxON0UJWGPUx5Cl
zB/js9ciFjAfBgNVHSMEGDAWgBTGfZxON0UJWGPUx5ClzB/js9ciFjAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQD6ni34ImF25HqK2TTbE73Qm73J
cf5BVUjhg0fJOcDOGQIhAM1OfZkeAr2fJvIVMdFFGzPcYeK+DzNZo1Hv1CLWi5Hk
-----END CERTIFICATE-----
)pem";
// "localhost", signed by kTestCa; its signature's s is 31 bytes long.
constexpr char kShortSignatureLeaf[] = R"pem(-----BEGIN CERTIFICATE-----
MIIBdDCCARugAwIBAgIBHDAKBggqhkjOPQQDAjASMRAwDgYDVQQDDAdUZXN0IENB
MCAXDTI2MTEzMDAyMzMyOFoYDzIxMjYxMTA2MDIzMzI4WjAUMRIwEAYDVQQDDAls
b2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASBO5jPesOqkR3sl6WI
H6ws7WWzvM/BpV+f2rlvmtDjkLSCp8GFIhVhsMP0nr/zbB91bEOyoxH+hHQmrl7v
Rtyro14wXDAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwHQYDVR0OBBYEFLE/
H87kr6PPpuWxSuZ1aQa04Mf2MB8GA1UdIwQYMBaAFKs9G9dr6E2FIm9YVpsf0XGH
xmxsMAoGCCqGSM49BAMCA0cAMEQCIQDsA4g0aW8w5e19RJ8XjpDgO48ivdCiUHaL
dC3q0GufsQIfSPdBZxy+sgc94DvXIASwcFAipo9FnjlNw8fEb7WKow==
-----END CERTIFICATE-----
)pem";

TEST(PinnedCa, AcceptsEcdsaSignaturesWithShortIntegersAndOnlyFromItsKey) {
  const std::optional<std::string> der = common::PemDecode(kShortSignatureLeaf, "CERTIFICATE");
  ASSERT_TRUE(der.has_value());
  PCCERT_CONTEXT leaf =
      CertCreateCertificateContext(X509_ASN_ENCODING, reinterpret_cast<const BYTE*>(der->data()),
                                   static_cast<DWORD>(der->size()));
  ASSERT_NE(leaf, nullptr);
  auto ca = PinnedCa::FromPem(kTestCa);
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_TRUE((*ca)->Check(leaf).ok()) << (*ca)->Check(leaf);
  auto impostor = PinnedCa::FromPem(kImpostorCa);
  ASSERT_TRUE(impostor.ok()) << impostor.status();
  absl::Status refused = (*impostor)->Check(leaf);
  EXPECT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StrContains(refused.message(), "not issued by the CA")) << refused;
  CertFreeCertificateContext(leaf);
}

}  // namespace
}  // namespace parc::agent
