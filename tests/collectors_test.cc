#include "agent/linux/collectors.h"

#include <sys/statvfs.h>

#include "agent/core/enrollment.h"
#include "agent/linux/system_reader.h"
#include "common/inventory_util.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace parc::agent {
namespace {

using parc::testing::DataPath;

parc::v1::Inventory Collect(const std::string& fixture) {
  RootedSystemReader reader(DataPath(fixture));
  return CollectInventory(reader);
}

TEST(Collectors, Laptop) {
  parc::v1::Inventory inv = Collect("laptop");
  const auto& hw = inv.hardware();
  EXPECT_EQ(hw.manufacturer(), "HP");
  EXPECT_EQ(hw.model(), "HP ProBook x360 11 G7 Education Edition");
  EXPECT_EQ(hw.serial(), "5CD1234ABC");
  EXPECT_EQ(hw.chassis_type(), 31u);
  EXPECT_EQ(hw.detected_kind(), parc::v1::DEVICE_KIND_LAPTOP);
  EXPECT_EQ(hw.bios_version(), "S90 Ver. 01.12.00");
  EXPECT_EQ(hw.cpu_model(), "Intel(R) Pentium(R) Silver N6000 @ 1.10GHz");
  EXPECT_EQ(hw.cpu_cores(), 4u);
  EXPECT_EQ(hw.cpu_threads(), 4u);
  EXPECT_EQ(hw.ram_bytes(), 7989764ull * 1024);
  EXPECT_EQ(hw.os_name(), "Debian GNU/Linux");
  EXPECT_EQ(hw.os_version(), "12");
  EXPECT_EQ(hw.os_pretty_name(), "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(hw.kernel(), "6.1.0-17-amd64");
  EXPECT_EQ(hw.hostname(), "lordi-0042");
  EXPECT_EQ(hw.architecture(), "amd64");
  // loop0 is not a disk.
  ASSERT_EQ(hw.disks_size(), 1);
  EXPECT_EQ(hw.disks(0).name(), "nvme0n1");
  EXPECT_EQ(hw.disks(0).model(), "KIOXIA BG4 KBG40ZNS128G");
  EXPECT_EQ(hw.disks(0).size_bytes(), 250069680ull * 512);
  EXPECT_FALSE(hw.disks(0).rotational());
  // The AC adapter is not a battery.
  ASSERT_EQ(hw.batteries_size(), 1);
  const auto& bat = hw.batteries(0);
  EXPECT_EQ(bat.name(), "BAT0");
  EXPECT_EQ(bat.unit(), "Wh");
  EXPECT_EQ(bat.design_capacity(), 47000000u);
  EXPECT_EQ(bat.full_capacity(), 40890000u);
  EXPECT_EQ(bat.health_percent(), 87u);
  EXPECT_EQ(bat.cycle_count(), 312u);
  EXPECT_EQ(bat.technology(), "Li-ion");
  // lo is virtual.
  ASSERT_EQ(hw.network_interfaces_size(), 1);
  EXPECT_EQ(hw.network_interfaces(0).name(), "wlo1");
  EXPECT_EQ(hw.network_interfaces(0).mac(), "a4:c3:f0:11:22:33");
  EXPECT_TRUE(hw.network_interfaces(0).wireless());
  // Only "install ok installed" packages; libc6 for two architectures.
  ASSERT_EQ(inv.software().packages_size(), 8);
  for (const auto& p : inv.software().packages()) EXPECT_NE(p.name(), "old-removed-tool");
  EXPECT_EQ(inv.software().packages(0).name(), "base-files");
  // Windows 11 readiness and age: UEFI with Secure Boot on, a TPM 2.0, firmware of 2021.
  EXPECT_EQ(hw.firmware_date(), "2021-01-15");
  EXPECT_EQ(hw.tpm_version(), "2.0");
  EXPECT_EQ(hw.secure_boot(), parc::v1::SECURE_BOOT_ENABLED);
  // The free space of the file system under the root, in whole GiB.
  struct statvfs st;
  ASSERT_EQ(::statvfs(parc::testing::DataPath("laptop").c_str(), &st), 0);
  const uint64_t free = uint64_t{st.f_bavail} * st.f_frsize;
  EXPECT_EQ(hw.system_free_bytes() % (1u << 30), 0u);
  EXPECT_LE(hw.system_free_bytes(), free);
  EXPECT_GT(hw.system_free_bytes() + (uint64_t{2} << 30), free);
}

TEST(Collectors, Tablet) {
  parc::v1::Inventory inv = Collect("tablet");
  const auto& hw = inv.hardware();
  EXPECT_EQ(hw.detected_kind(), parc::v1::DEVICE_KIND_TABLET);
  EXPECT_EQ(hw.cpu_cores(), 4u);
  EXPECT_EQ(hw.cpu_threads(), 8u);
  EXPECT_EQ(hw.os_pretty_name(), "Debian GNU/Linux 12 (bookworm)");  // from /usr/lib/os-release
  // The eMMC boot partition is not a disk; the model comes from device/name.
  ASSERT_EQ(hw.disks_size(), 1);
  EXPECT_EQ(hw.disks(0).name(), "mmcblk0");
  EXPECT_EQ(hw.disks(0).model(), "DG4064");
  // Charge-based battery; the stylus battery (scope Device) is not the tablet's.
  ASSERT_EQ(hw.batteries_size(), 1);
  EXPECT_EQ(hw.batteries(0).unit(), "Ah");
  EXPECT_EQ(hw.batteries(0).health_percent(), 55u);
  ASSERT_EQ(hw.network_interfaces_size(), 1);
  EXPECT_TRUE(hw.network_interfaces(0).wireless());
  EXPECT_EQ(inv.software().packages_size(), 5);
  // UEFI with Secure Boot off, no TPM, a firmware date that is not one.
  EXPECT_EQ(hw.secure_boot(), parc::v1::SECURE_BOOT_DISABLED);
  EXPECT_EQ(hw.tpm_version(), "");
  EXPECT_EQ(hw.firmware_date(), "");
}

TEST(Collectors, Desktop) {
  parc::v1::Inventory inv = Collect("desktop");
  const auto& hw = inv.hardware();
  EXPECT_EQ(hw.detected_kind(), parc::v1::DEVICE_KIND_DESKTOP);
  EXPECT_EQ(hw.os_name(), "Ubuntu");  // single-quoted value
  EXPECT_EQ(hw.os_version(), "22.04");
  EXPECT_EQ(hw.ram_bytes(), 16207732ull * 1024);
  ASSERT_EQ(hw.disks_size(), 2);  // dm-0 is not a disk
  EXPECT_EQ(hw.disks(0).name(), "sda");
  EXPECT_TRUE(hw.disks(0).rotational());
  EXPECT_EQ(hw.disks(1).name(), "sdb");
  EXPECT_FALSE(hw.disks(1).rotational());
  EXPECT_EQ(hw.batteries_size(), 0);
  ASSERT_EQ(hw.network_interfaces_size(), 1);  // docker0 and lo are virtual
  EXPECT_EQ(hw.network_interfaces(0).name(), "enp1s0");
  EXPECT_FALSE(hw.network_interfaces(0).wireless());
  // half-installed packages are not installed.
  EXPECT_EQ(inv.software().packages_size(), 5);
  // Legacy BIOS boot (no Secure Boot), a TPM 1.2 (its caps file), firmware of 2014.
  EXPECT_EQ(hw.secure_boot(), parc::v1::SECURE_BOOT_UNSUPPORTED);
  EXPECT_EQ(hw.tpm_version(), "1.2");
  EXPECT_EQ(hw.firmware_date(), "2014-06-20");
}

TEST(Collectors, EmptyRootYieldsEmptyFields) {
  parc::testing::TempDir dir;
  RootedSystemReader reader(dir.path());
  parc::v1::Inventory inv = CollectInventory(reader);
  EXPECT_EQ(inv.hardware().manufacturer(), "");
  EXPECT_EQ(inv.hardware().detected_kind(), parc::v1::DEVICE_KIND_UNSPECIFIED);
  EXPECT_EQ(inv.hardware().disks_size(), 0);
  EXPECT_EQ(inv.software().packages_size(), 0);
  EXPECT_EQ(inv.hardware().tpm_version(), "");
  EXPECT_EQ(inv.hardware().firmware_date(), "");
}

TEST(Parsers, FirmwareDate) {
  EXPECT_EQ(common::FirmwareDate("01/15/2021"), "2021-01-15");                 // SMBIOS
  EXPECT_EQ(common::FirmwareDate("20200301000000.000000+000"), "2020-03-01");  // CIM
  EXPECT_EQ(common::FirmwareDate(" 12/31/2099\n"), "2099-12-31");
  for (const char* bad : {"", "13/01/2020", "00/10/2020", "01/32/2020", "01/15/1979", "1/15/2021",
                          "2021-01-15", "2021011", "abcdefgh", "01/1a/2021"}) {
    EXPECT_EQ(common::FirmwareDate(bad), "") << bad;
  }
}

TEST(Collectors, IdentityAndFingerprint) {
  RootedSystemReader laptop(DataPath("laptop"));
  RootedSystemReader tablet(DataPath("tablet"));
  auto a = CollectIdentity(laptop);
  EXPECT_EQ(a.product_uuid(), "4c4c4544-0042-3510-8052-b4c04f4b3132");
  EXPECT_EQ(a.serial(), "5CD1234ABC");
  EXPECT_EQ(a.machine_id(), "3f1e0c9a2b7d4e5f8a6b1c2d3e4f5a6b");
  EXPECT_EQ(Fingerprint(a), Fingerprint(CollectIdentity(laptop)));
  EXPECT_NE(Fingerprint(a), Fingerprint(CollectIdentity(tablet)));
}

TEST(Parsers, CpuInfoArm) {
  CpuInfo info = ParseCpuInfo(
      "processor\t: 0\nBogoMIPS\t: 108.00\n\nprocessor\t: 1\nBogoMIPS\t: 108.00\n\n"
      "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n");
  EXPECT_EQ(info.threads, 2u);
  EXPECT_EQ(info.cores, 2u);
  EXPECT_EQ(info.model, "BCM2835");
}

TEST(Parsers, OsReleaseQuotingAndComments) {
  auto f = ParseOsRelease("# c\nNAME=\"Debian \\\"x\\\"\"\nID=debian\nVERSION_ID='12'\nBROKEN\n");
  EXPECT_EQ(f["NAME"], "Debian \"x\"");
  EXPECT_EQ(f["ID"], "debian");
  EXPECT_EQ(f["VERSION_ID"], "12");
  EXPECT_EQ(f.count("BROKEN"), 0u);
}

TEST(Parsers, MemTotal) {
  EXPECT_EQ(ParseMemTotal("MemFree: 5 kB\nMemTotal:  2048 kB\n"), 2048u * 1024);
  EXPECT_EQ(ParseMemTotal("garbage"), 0u);
}

TEST(Parsers, DpkgStatusContinuationLinesAndCrlf) {
  auto list = ParseDpkgStatus(
      "Package: b\r\nStatus: install ok installed\r\nVersion: 2\r\nArchitecture: all\r\n"
      "Description: x\r\n Package: fake\r\n\r\n"
      "Package: a\nStatus: deinstall ok config-files\nVersion: 1\n\n"
      "Package: c\nStatus: install ok installed\nVersion: 3\nArchitecture: amd64\n");
  ASSERT_EQ(list.packages_size(), 2);
  EXPECT_EQ(list.packages(0).name(), "b");
  EXPECT_EQ(list.packages(0).architecture(), "all");
  EXPECT_EQ(list.packages(1).name(), "c");
}

}  // namespace
}  // namespace parc::agent
