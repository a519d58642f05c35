#include "agent/linux/collectors.h"

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
}

TEST(Collectors, EmptyRootYieldsEmptyFields) {
  parc::testing::TempDir dir;
  RootedSystemReader reader(dir.path());
  parc::v1::Inventory inv = CollectInventory(reader);
  EXPECT_EQ(inv.hardware().manufacturer(), "");
  EXPECT_EQ(inv.hardware().detected_kind(), parc::v1::DEVICE_KIND_UNSPECIFIED);
  EXPECT_EQ(inv.hardware().disks_size(), 0);
  EXPECT_EQ(inv.software().packages_size(), 0);
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
