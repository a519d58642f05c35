// The Windows platform's logic that needs no Windows API, on any platform: msi and exe
// installs over a fake process runner and fake installed products, and the inventory parsers
// over values in the shape WMI and the registry return them.
#include <archive.h>
#include <archive_entry.h>

#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "agent/windows/inventory.h"
#include "agent/windows/packages.h"
#include "common/file_util.h"
#include "common/inventory_util.h"
#include "gtest/gtest.h"
#include "tests/agent_fakes.h"

namespace parc::testing {
namespace {

using agent::InstalledProduct;

constexpr char kGeoGebraCode[] = "{5C5C5C5C-1234-4ABC-9DEF-0123456789AB}";

class FakeInstalledProducts final : public agent::InstalledProducts {
 public:
  std::vector<InstalledProduct> List() const override { return products; }
  std::vector<InstalledProduct> products;
};

agent::CommandResult Exit(int code) {
  agent::CommandResult r;
  r.exit_status = code;
  return r;
}

class WindowsPackagesTest : public ::testing::Test {
 protected:
  WindowsPackagesTest() : packages_(&runner_, &products_, agent::WindowsInstallerOptions()) {
    msi_.set_id("geogebra");
    msi_.set_version("6.0.850");
    msi_.mutable_msi()->set_product_code(kGeoGebraCode);
    msi_.mutable_msi()->add_properties("ALLUSERS=1");
    artifact_ = ::testing::TempDir() + "parc-geogebra.msi";
    std::remove((artifact_ + ".log").c_str());
  }

  FakeProcessRunner runner_;
  FakeInstalledProducts products_;
  agent::WindowsPackages packages_;
  parc::v1::PackageSpec msi_;
  std::string artifact_;
};

TEST_F(WindowsPackagesTest, HandlesTheWindowsTypesOnly) {
  parc::v1::PackageSpec spec;
  EXPECT_TRUE(packages_.Handles(msi_));
  spec.mutable_exe();
  EXPECT_TRUE(packages_.Handles(spec));
  spec.mutable_command();
  EXPECT_TRUE(packages_.Handles(spec));
  spec.mutable_deb();
  EXPECT_FALSE(packages_.Handles(spec));
  // Archives by their target directory: one bundle carries both platforms' archives.
  spec.mutable_archive()->set_target_dir("/opt/mcnl/geogebra");
  EXPECT_FALSE(packages_.Handles(spec));
  spec.mutable_archive()->set_target_dir("C:\\Program Files\\MCNL\\GeoGebra");
  EXPECT_TRUE(packages_.Handles(spec));
  spec.mutable_archive()->set_target_dir("D:/Apps");
  EXPECT_TRUE(packages_.Handles(spec));
  spec.mutable_archive()->set_target_dir("Apps\\GeoGebra");
  EXPECT_FALSE(packages_.Handles(spec));
}

TEST_F(WindowsPackagesTest, MsiInstallsSilentlyWithALogAndReadsItsExitCodes) {
  runner_.Answer("msiexec", Exit(0));
  agent::InstallOutcome o = packages_.Install(msi_, artifact_);
  EXPECT_TRUE(o.ok);
  EXPECT_FALSE(o.reboot_pending);
  EXPECT_EQ(runner_.runs().back(),
            (std::vector<std::string>{"msiexec", "/i", artifact_, "/qn", "/norestart", "/l*v",
                                      artifact_ + ".log", "ALLUSERS=1"}));

  for (int code : {3010, 1641}) {
    runner_.Answer("msiexec", Exit(code));
    o = packages_.Install(msi_, artifact_);
    EXPECT_TRUE(o.ok) << code;
    EXPECT_TRUE(o.reboot_pending) << code;
  }

  runner_.Answer("msiexec", Exit(1618));
  o = packages_.Install(msi_, artifact_);
  EXPECT_FALSE(o.ok);
  EXPECT_TRUE(o.retry_later);
  EXPECT_EQ(o.reason, "install_busy");

  // A failure carries the code and the end of msiexec's log, which is UTF-16LE.
  std::u16string log =
      u"=== Verbose logging started ===\r\nAction start: InstallFiles.\r\n"
      u"Produit : GeoGebra -- Échec de l'installation.\r\n";
  std::ofstream(artifact_ + ".log", std::ios::binary)
      << std::string("\xff\xfe", 2)
      << std::string(reinterpret_cast<const char*>(log.data()), log.size() * 2);
  runner_.Answer("msiexec", Exit(1603));
  o = packages_.Install(msi_, artifact_);
  EXPECT_FALSE(o.ok);
  EXPECT_FALSE(o.retry_later);
  EXPECT_EQ(o.reason, "install_failed");
  EXPECT_EQ(o.exit_status, 1603);
  EXPECT_EQ(o.message, "msiexec exited with status 1603");
  EXPECT_TRUE(absl::EndsWith(o.output_tail, "Produit : GeoGebra -- Échec de l'installation.\n"))
      << o.output_tail;
  EXPECT_EQ(agent::LogTail(artifact_ + ".log", 10), "allation.\n");

  agent::CommandResult slow;
  slow.timed_out = true;
  runner_.Answer("msiexec", slow);
  o = packages_.Install(msi_, artifact_);
  EXPECT_EQ(o.reason, "install_timeout");
}

TEST_F(WindowsPackagesTest, MsiRemovalUsesTheProductCodeAndAnAbsentProductIsRemoved) {
  runner_.Answer("msiexec", Exit(0));
  EXPECT_TRUE(packages_.Remove(msi_).ok);
  EXPECT_EQ(runner_.runs().back(),
            (std::vector<std::string>{"msiexec", "/x", kGeoGebraCode, "/qn", "/norestart"}));
  runner_.Answer("msiexec", Exit(1605));  // not installed
  EXPECT_TRUE(packages_.Remove(msi_).ok);
  runner_.Answer("msiexec", Exit(1603));
  agent::InstallOutcome o = packages_.Remove(msi_);
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.reason, "remove_failed");
}

TEST_F(WindowsPackagesTest, DetectionLooksAtTheInstalledProducts) {
  EXPECT_EQ(packages_.Detect(msi_), false);
  InstalledProduct geogebra;
  geogebra.key = "{5c5c5c5c-1234-4abc-9def-0123456789ab}";  // the registry keeps its own case
  geogebra.display_name = "GeoGebra Classic";
  geogebra.display_version = "6.0.800";
  products_.products = {geogebra};
  EXPECT_EQ(packages_.Detect(msi_), false);  // an older version
  products_.products[0].display_version = "6.0.850";
  EXPECT_EQ(packages_.Detect(msi_), true);

  parc::v1::PackageSpec exe;
  exe.set_id("scratch");
  exe.set_version("3.29.1");
  exe.mutable_exe()->add_args("/S");
  EXPECT_EQ(packages_.Detect(exe), std::nullopt);  // nothing to detect it by
  exe.mutable_detect_installed()->set_display_name("Scratch 3");
  EXPECT_EQ(packages_.Detect(exe), false);
  InstalledProduct scratch;
  scratch.key = "d4b6fc7d-7bd6-5bd9-9f9c-5c3f7b9f1f0e";
  scratch.display_name = "Scratch 3";
  scratch.display_version = "3.29.1";
  scratch.wow64 = true;
  products_.products.push_back(scratch);
  EXPECT_EQ(packages_.Detect(exe), true);
}

TEST_F(WindowsPackagesTest, ExeInstallersRunWithTheirArguments) {
  parc::v1::PackageSpec exe;
  exe.set_id("scratch");
  exe.set_version("3.29.1");
  exe.mutable_exe()->add_args("/S");
  exe.mutable_exe()->add_args("/VERSION={version}");
  const std::string setup = ::testing::TempDir() + "parc-scratch-setup.exe";
  runner_.Answer(setup, Exit(3010));
  agent::InstallOutcome o = packages_.Install(exe, setup);
  EXPECT_TRUE(o.ok);
  EXPECT_TRUE(o.reboot_pending);
  EXPECT_EQ(runner_.runs().back(), (std::vector<std::string>{setup, "/S", "/VERSION=3.29.1"}));
  runner_.Answer(setup, Exit(2));
  o = packages_.Install(exe, setup);
  EXPECT_EQ(o.reason, "install_failed");
  EXPECT_EQ(o.message, "the installer exited with status 2");
  // Without a remove command, removal leaves it in place.
  o = packages_.Remove(exe);
  EXPECT_TRUE(o.ok);
  EXPECT_EQ(o.message, "no remove command: left in place");
}

// ---------------------------------------------------------------------------------------------
// Archives: real zip files, written with libarchive, unpacked into a real directory (the
// temporary directory: C:\\users\\...\\Temp under Wine, /tmp on Linux).
std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class WindowsArchiveTest : public WindowsPackagesTest {
 protected:
  WindowsArchiveTest() {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    target_ = ::testing::TempDir() + "parc-archive-" + name;
    for (const char* suffix : {"", ".parc-new", ".parc-old"}) {
      EXPECT_TRUE(common::RemoveTree(target_ + suffix).ok());
    }
    spec_.set_id("geogebra-portable");
    spec_.mutable_archive()->set_target_dir(target_);
  }
  ~WindowsArchiveTest() override {
    for (const char* suffix : {"", ".parc-new", ".parc-old"}) {
      (void)common::RemoveTree(target_ + suffix);
    }
  }

  // A zip of (name, content) entries; a name ending in '/' is a directory.
  std::string Zip(const std::string& file,
                  const std::vector<std::pair<std::string, std::string>>& entries) {
    const std::string path = ::testing::TempDir() + file;
    struct archive* a = archive_write_new();
    archive_write_set_format_zip(a);
    EXPECT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK) << path;
    for (const auto& [name, content] : entries) {
      struct archive_entry* e = archive_entry_new();
      archive_entry_set_pathname(e, name.c_str());
      const bool dir = absl::EndsWith(name, "/");
      archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
      archive_entry_set_perm(e, dir ? 0755 : 0644);
      archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
      EXPECT_EQ(archive_write_header(a, e), ARCHIVE_OK) << name;
      if (!dir) archive_write_data(a, content.data(), content.size());
      archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return path;
  }

  std::string In(const std::string& name) const { return target_ + "/" + name; }

  std::string target_;
  parc::v1::PackageSpec spec_;
};

TEST_F(WindowsArchiveTest, UnpacksIntoTheTargetDirectoryOneVersionAtATime) {
  spec_.set_version("6.0.1");
  const std::string v1 =
      Zip("parc-v1.zip",
          {{"bin/", ""}, {"bin/geogebra.exe", "MZ version 1"}, {"old-notes.txt", "only in 6.0.1"}});
  agent::InstallOutcome o = packages_.Install(spec_, v1);
  ASSERT_TRUE(o.ok) << o.message;
  EXPECT_EQ(Slurp(In("bin/geogebra.exe")), "MZ version 1");
  EXPECT_EQ(Slurp(In(agent::kArchiveVersionFile)), "6.0.1");
  EXPECT_EQ(packages_.Detect(spec_), std::optional<bool>(true));
  EXPECT_TRUE(runner_.runs().empty());  // no process: unpacked in the agent

  // The next version replaces it whole: no file of the previous one stays, nothing beside it.
  parc::v1::PackageSpec next = spec_;
  next.set_version("6.0.2");
  EXPECT_EQ(packages_.Detect(next), std::optional<bool>(false));
  const std::string v2 = Zip("parc-v2.zip", {{"bin/geogebra.exe", "MZ version 2"}});
  o = packages_.Install(next, v2);
  ASSERT_TRUE(o.ok) << o.message;
  EXPECT_EQ(Slurp(In("bin/geogebra.exe")), "MZ version 2");
  EXPECT_FALSE(common::PathExists(In("old-notes.txt")));
  EXPECT_FALSE(common::PathExists(target_ + ".parc-new"));
  EXPECT_FALSE(common::PathExists(target_ + ".parc-old"));

  // The version already there (an agent killed after the swap): nothing unpacked again, even
  // from an artifact that is gone.
  o = packages_.Install(next, ::testing::TempDir() + "parc-no-such.zip");
  EXPECT_TRUE(o.ok) << o.message;

  // Removing the older version leaves the newer one; removing the newer one removes it all.
  EXPECT_TRUE(packages_.Remove(spec_).ok);
  EXPECT_EQ(Slurp(In("bin/geogebra.exe")), "MZ version 2");
  EXPECT_TRUE(packages_.Remove(next).ok);
  EXPECT_FALSE(common::PathExists(target_));
  EXPECT_EQ(packages_.Detect(next), std::optional<bool>(false));
}

TEST_F(WindowsArchiveTest, AnArchiveThatClimbsOutIsRefusedAndTheInstalledVersionStays) {
  spec_.set_version("1.0");
  ASSERT_TRUE(packages_.Install(spec_, Zip("parc-good.zip", {{"app.txt", "good"}})).ok);
  parc::v1::PackageSpec bad = spec_;
  bad.set_version("1.1");
  for (const char* name : {"../escaped.txt", "sub/../../escaped.txt", "/escaped.txt"}) {
    agent::InstallOutcome o =
        packages_.Install(bad, Zip("parc-bad.zip", {{"app.txt", "evil"}, {name, "evil"}}));
    EXPECT_FALSE(o.ok) << name;
    EXPECT_EQ(o.reason, "install_failed");
    EXPECT_TRUE(absl::StrContains(o.message, "outside the install directory")) << o.message;
    EXPECT_EQ(Slurp(In("app.txt")), "good") << name;
    EXPECT_FALSE(common::PathExists(::testing::TempDir() + "escaped.txt")) << name;
    EXPECT_FALSE(common::PathExists(target_ + ".parc-new")) << name;
  }
  // Not an archive at all.
  std::ofstream(::testing::TempDir() + "parc-garbage.zip") << "garbage, not a zip";
  agent::InstallOutcome o = packages_.Install(bad, ::testing::TempDir() + "parc-garbage.zip");
  EXPECT_FALSE(o.ok);
  EXPECT_TRUE(absl::StrContains(o.message, "archive")) << o.message;
  EXPECT_EQ(Slurp(In(agent::kArchiveVersionFile)), "1.0");
}

TEST_F(WindowsArchiveTest, ADecompressionBombIsRefused) {
  agent::WindowsInstallerOptions options;
  options.max_extracted_bytes = 1 << 20;
  agent::WindowsPackages packages(&runner_, &products_, options);
  spec_.set_version("1.0");
  agent::InstallOutcome o =
      packages.Install(spec_, Zip("parc-bomb.zip", {{"zeros.bin", std::string(4 << 20, '\0')}}));
  EXPECT_FALSE(o.ok);
  EXPECT_TRUE(absl::StrContains(o.message, "decompression bomb")) << o.message;
  EXPECT_FALSE(common::PathExists(target_));
}

// Inventory: the values below have the shape WMI and the registry return on a Windows 11
// laptop (a Lenovo ThinkPad of the loRdi kind), as the Windows layer turns them into text.

agent::WindowsFacts Laptop() {
  agent::WindowsFacts f;
  f.computer_system = {{{"Manufacturer", "LENOVO"},
                        {"Model", "21FNS0JA00"},
                        {"Name", "LORDI-0042"},
                        {"DNSHostName", "lordi-0042"},
                        {"TotalPhysicalMemory", "16856723456"}}};
  f.computer_system_product = {{{"UUID", "4C4C4544-0042-3510-8052-B2C04F4A4E31"}}};
  f.bios = {{{"SerialNumber", "PF4ABCDE"},
             {"SMBIOSBIOSVersion", "R2BET38W (1.18 )"},
             {"ReleaseDate", "20230614000000.000000+000"}}};
  f.enclosure = {{{"ChassisTypes", "10"}}};
  f.processor = {{{"Name", "13th Gen Intel(R) Core(TM) i5-1335U"},
                  {"NumberOfCores", "10"},
                  {"NumberOfLogicalProcessors", "12"},
                  {"Architecture", "9"}}};
  f.operating_system = {{{"Caption", "Microsoft Windows 11 Éducation"},
                         {"Version", "10.0.22631"},
                         {"BuildNumber", "22631"},
                         {"SystemDrive", "C:"},
                         {"OSArchitecture", "64 bits"}}};
  f.disk_drive = {{{"Index", "0"},
                   {"Model", "SAMSUNG MZVL4512HBLU-00BL7"},
                   {"Size", "512105932800"},
                   {"InterfaceType", "SCSI"},
                   {"MediaType", "Fixed hard disk media"}},
                  {{"Index", "1"},
                   {"Model", "SanDisk Ultra USB Device"},
                   {"Size", "30751506432"},
                   {"InterfaceType", "USB"},
                   {"MediaType", "Removable Media"}}};
  f.physical_disk = {{{"DeviceId", "0"}, {"MediaType", "4"}}};
  f.battery = {{{"DeviceID", "5B11M90034"}, {"Name", "5B11M90034"}, {"Chemistry", "6"}}};
  f.battery_static = {
      {{"DesignedCapacity", "57000"}, {"ManufactureName", "SMP"}, {"DeviceName", "5B11M90034"}}};
  f.battery_full = {{{"FullChargedCapacity", "45600"}}};
  f.battery_cycles = {{{"CycleCount", "212"}}};
  f.network_adapter = {{{"Name", "Intel(R) Wi-Fi 6E AX211 160MHz"},
                        {"NetConnectionID", "Wi-Fi"},
                        {"MACAddress", "A4:C3:F0:12:34:56"},
                        {"PhysicalAdapter", "TRUE"},
                        {"AdapterTypeID", "9"},
                        {"PNPDeviceID", "PCI\\VEN_8086&DEV_51F1"}},
                       {{"Name", "Intel(R) Ethernet Connection (16) I219-LM"},
                        {"NetConnectionID", "Ethernet"},
                        {"MACAddress", "8C:8C:AA:65:43:21"},
                        {"PhysicalAdapter", "TRUE"},
                        {"AdapterTypeID", "0"}},
                       {{"Name", "WAN Miniport (IP)"}, {"PhysicalAdapter", "FALSE"}},
                       {{"Name", "Bluetooth Device (Personal Area Network)"},
                        {"MACAddress", "A4:C3:F0:12:34:5A"},
                        {"PhysicalAdapter", "TRUE"},
                        {"PNPDeviceID", "BTH\\MS_BTHPAN\\6&1"}}};
  f.logical_disk = {{{"DeviceID", "D:"}, {"FreeSpace", "900000000000"}},
                    {{"DeviceID", "C:"}, {"FreeSpace", "98765432101"}}};
  f.tpm = {{{"SpecVersion", "2.0, 0, 1.38"}, {"IsEnabled_InitialValue", "TRUE"}}};
  f.firmware_type = "uefi";
  f.secure_boot_state = "1";
  f.machine_guid = "0F3C6A2E-9B5D-4C1E-8A7F-6B5C4D3E2F10";
  InstalledProduct geogebra{"{5C5C5C5C-1234-4ABC-9DEF-0123456789AB}",
                            "GeoGebra Classic",
                            "6.0.850",
                            "International GeoGebra Institute",
                            false,
                            false,
                            false};
  InstalledProduct scratch{"d4b6fc7d", "Scratch 3", "3.29.1", "Scratch Foundation",
                           true,       false,       false};
  InstalledProduct runtime{
      "{A1}", "Microsoft Edge WebView2 Runtime", "131.0", "Microsoft", true, true, false};
  InstalledProduct update{"KB5031455", "Update for Microsoft Office", "", "Microsoft", false, false,
                          true};
  InstalledProduct nameless{"{B2}", "", "1.0", "", false, false, false};
  f.products = {scratch, geogebra, runtime, update, nameless};
  return f;
}

TEST(WindowsInventory, HardwareFromWmi) {
  const parc::v1::Hardware hw = agent::ParseWindowsHardware(Laptop());
  EXPECT_EQ(hw.manufacturer(), "LENOVO");
  EXPECT_EQ(hw.model(), "21FNS0JA00");
  EXPECT_EQ(hw.serial(), "PF4ABCDE");
  EXPECT_EQ(hw.bios_version(), "R2BET38W (1.18 )");
  EXPECT_EQ(hw.chassis_type(), 10u);
  EXPECT_EQ(hw.detected_kind(), parc::v1::DEVICE_KIND_LAPTOP);
  EXPECT_EQ(hw.cpu_model(), "13th Gen Intel(R) Core(TM) i5-1335U");
  EXPECT_EQ(hw.cpu_cores(), 10u);
  EXPECT_EQ(hw.cpu_threads(), 12u);
  EXPECT_EQ(hw.ram_bytes(), 16856723456u);
  EXPECT_EQ(hw.hostname(), "lordi-0042");
  EXPECT_EQ(hw.architecture(), "x86_64");
  EXPECT_EQ(hw.os_name(), "Windows");
  EXPECT_EQ(hw.os_version(), "10.0.22631");
  EXPECT_EQ(hw.os_pretty_name(), "Microsoft Windows 11 Éducation");
  EXPECT_EQ(hw.kernel(), "22631");
  ASSERT_EQ(hw.disks_size(), 1);  // the USB stick is not the laptop's
  EXPECT_EQ(hw.disks(0).model(), "SAMSUNG MZVL4512HBLU-00BL7");
  EXPECT_EQ(hw.disks(0).size_bytes(), 512105932800u);
  EXPECT_FALSE(hw.disks(0).rotational());
  ASSERT_EQ(hw.batteries_size(), 1);
  EXPECT_EQ(hw.batteries(0).technology(), "Li-ion");
  EXPECT_EQ(hw.batteries(0).manufacturer(), "SMP");
  EXPECT_EQ(hw.batteries(0).unit(), "Wh");
  EXPECT_EQ(hw.batteries(0).design_capacity(), 57000000u);
  EXPECT_EQ(hw.batteries(0).full_capacity(), 45600000u);
  EXPECT_EQ(hw.batteries(0).health_percent(), 80u);
  EXPECT_EQ(hw.batteries(0).cycle_count(), 212u);
  ASSERT_EQ(hw.network_interfaces_size(), 2);  // neither the WAN miniport nor Bluetooth
  EXPECT_EQ(hw.network_interfaces(0).name(), "Wi-Fi");
  EXPECT_EQ(hw.network_interfaces(0).mac(), "a4:c3:f0:12:34:56");
  EXPECT_TRUE(hw.network_interfaces(0).wireless());
  EXPECT_FALSE(hw.network_interfaces(1).wireless());
  // Windows 11 readiness, age and room on the system drive (C:, in whole GiB).
  EXPECT_EQ(hw.tpm_version(), "2.0");
  EXPECT_EQ(hw.secure_boot(), parc::v1::SECURE_BOOT_ENABLED);
  EXPECT_EQ(hw.firmware_date(), "2023-06-14");
  EXPECT_EQ(hw.system_free_bytes(), uint64_t{91} << 30);
}

TEST(WindowsInventory, OlderFirmwareTpmAndBoot) {
  agent::WindowsFacts f = Laptop();
  f.firmware_type = "bios";  // legacy boot: no Secure Boot, whatever the registry says
  f.tpm = {{{"SpecVersion", "1.2, 2, 3"}}};
  f.bios[0]["ReleaseDate"] = "garbage";
  parc::v1::Hardware hw = agent::ParseWindowsHardware(f);
  EXPECT_EQ(hw.secure_boot(), parc::v1::SECURE_BOOT_UNSUPPORTED);
  EXPECT_EQ(hw.tpm_version(), "1.2");
  EXPECT_EQ(hw.firmware_date(), "");
  f.firmware_type = "uefi";
  f.secure_boot_state = "0";
  f.tpm.clear();
  f.operating_system[0].erase("SystemDrive");
  hw = agent::ParseWindowsHardware(f);
  EXPECT_EQ(hw.secure_boot(), parc::v1::SECURE_BOOT_DISABLED);
  EXPECT_EQ(hw.tpm_version(), "");
  EXPECT_FALSE(hw.has_system_free_bytes());
}

TEST(WindowsInventory, SoftwareFromTheUninstallKeys) {
  const parc::v1::SoftwareList list = agent::ParseWindowsSoftware(Laptop().products);
  ASSERT_EQ(list.packages_size(), 2);  // no system component, update or nameless entry
  EXPECT_EQ(list.packages(0).name(), "GeoGebra Classic");
  EXPECT_EQ(list.packages(0).architecture(), "x64");
  EXPECT_EQ(list.packages(0).publisher(), "International GeoGebra Institute");
  EXPECT_EQ(list.packages(1).name(), "Scratch 3");
  EXPECT_EQ(list.packages(1).version(), "3.29.1");
  EXPECT_EQ(list.packages(1).architecture(), "x86");
  // Canonical: the same list hashes the same whatever order the registry gave.
  auto reversed = Laptop().products;
  std::reverse(reversed.begin(), reversed.end());
  EXPECT_EQ(common::SoftwareHash(agent::ParseWindowsSoftware(reversed)),
            common::SoftwareHash(list));
}

TEST(WindowsInventory, IdentityRestsOnTheHardwareNotOnMachineGuidAlone) {
  agent::WindowsFacts f = Laptop();
  const parc::v1::HardwareIdentity id = agent::ParseWindowsIdentity(f);
  EXPECT_EQ(id.product_uuid(), "4c4c4544-0042-3510-8052-b2c04f4a4e31");
  EXPECT_EQ(id.serial(), "PF4ABCDE");
  EXPECT_EQ(id.machine_id(), "0f3c6a2e-9b5d-4c1e-8a7f-6b5c4d3e2f10");
  // A sysprep'd image keeps MachineGuid: on other hardware the identity still differs.
  agent::WindowsFacts clone = f;
  clone.computer_system_product = {{{"UUID", "4C4C4544-0099-3510-8052-B2C04F4A4E31"}}};
  clone.bios = {{{"SerialNumber", "PF4ZZZZZ"}}};
  EXPECT_NE(agent::ParseWindowsIdentity(clone).SerializeAsString(), id.SerializeAsString());
}

TEST(WindowsInventory, WinesPlaceholdersAndMissingClassesLeaveFieldsEmpty) {
  agent::WindowsFacts wine;
  wine.computer_system = {{{"Manufacturer", "The Wine Project"}, {"Model", "Wine"}}};
  wine.bios = {{{"SerialNumber", "0"}}};
  wine.enclosure = {{{"ChassisTypes", "3"}}};
  const parc::v1::Hardware hw = agent::ParseWindowsHardware(wine);
  EXPECT_EQ(hw.model(), "Wine");
  EXPECT_EQ(hw.detected_kind(), parc::v1::DEVICE_KIND_DESKTOP);
  EXPECT_EQ(hw.cpu_cores(), 0u);
  EXPECT_EQ(hw.batteries_size(), 0);
  EXPECT_EQ(hw.os_name(), "");
  EXPECT_TRUE(agent::ParseWindowsHardware(agent::WindowsFacts()).model().empty());
}

}  // namespace
}  // namespace parc::testing
