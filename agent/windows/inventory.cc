#include "agent/windows/inventory.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/inventory_util.h"

namespace parc::agent {
namespace {

std::string Get(const WmiObject& o, const std::string& key) {
  auto it = o.find(key);
  return it == o.end() ? std::string() : std::string(absl::StripAsciiWhitespace(it->second));
}

std::string First(const std::vector<WmiObject>& objects, const std::string& key) {
  for (const auto& o : objects) {
    std::string v = Get(o, key);
    if (!v.empty()) return v;
  }
  return "";
}

uint64_t Number(const WmiObject& o, const std::string& key) {
  uint64_t v = 0;
  return absl::SimpleAtoi(Get(o, key), &v) ? v : 0;
}

// Win32_Processor.Architecture.
std::string ArchitectureName(const std::string& code) {
  if (code == "9") return "x86_64";
  if (code == "12") return "aarch64";
  if (code == "0") return "x86";
  if (code == "5") return "arm";
  return "";
}

// Win32_Battery.Chemistry.
std::string Chemistry(const std::string& code) {
  if (code == "3") return "Lead Acid";
  if (code == "4") return "NiCd";
  if (code == "5") return "NiMH";
  if (code == "6") return "Li-ion";
  if (code == "7") return "Zinc air";
  if (code == "8") return "Li-poly";
  return "";
}

// WMI instance names of one battery in ROOT\WMI end with the same "_0".
const WmiObject* ByInstance(const std::vector<WmiObject>& objects, size_t index) {
  return index < objects.size() ? &objects[index] : nullptr;
}

}  // namespace

parc::v1::Hardware ParseWindowsHardware(const WindowsFacts& f) {
  parc::v1::Hardware hw;
  hw.set_manufacturer(First(f.computer_system, "Manufacturer"));
  hw.set_model(First(f.computer_system, "Model"));
  hw.set_serial(First(f.bios, "SerialNumber"));
  hw.set_bios_version(First(f.bios, "SMBIOSBIOSVersion"));
  hw.set_firmware_date(common::FirmwareDate(First(f.bios, "ReleaseDate")));
  // SpecVersion: "2.0, 0, 1.38" (specification, level, revision).
  const std::string spec = First(f.tpm, "SpecVersion");
  const std::string tpm = std::string(absl::StripAsciiWhitespace(spec.substr(0, spec.find(','))));
  if (tpm == "2.0" || tpm == "1.2") hw.set_tpm_version(tpm);
  if (f.firmware_type == "bios") {
    hw.set_secure_boot(parc::v1::SECURE_BOOT_UNSUPPORTED);
  } else if (f.secure_boot_state == "1") {
    hw.set_secure_boot(parc::v1::SECURE_BOOT_ENABLED);
  } else if (f.secure_boot_state == "0") {
    hw.set_secure_boot(parc::v1::SECURE_BOOT_DISABLED);
  }
  // ChassisTypes is an array; its first value is the enclosure's type.
  const std::string chassis = First(f.enclosure, "ChassisTypes");
  uint32_t chassis_type = 0;
  if (absl::SimpleAtoi(std::string(absl::StripAsciiWhitespace(
                           std::vector<std::string>(absl::StrSplit(chassis, ','))[0])),
                       &chassis_type)) {
    hw.set_chassis_type(chassis_type);
  }
  hw.set_detected_kind(common::KindFromChassisType(hw.chassis_type()));

  uint64_t cores = 0, threads = 0;
  for (const auto& cpu : f.processor) {
    if (hw.cpu_model().empty()) hw.set_cpu_model(Get(cpu, "Name"));
    if (hw.architecture().empty()) hw.set_architecture(ArchitectureName(Get(cpu, "Architecture")));
    cores += Number(cpu, "NumberOfCores");
    threads += Number(cpu, "NumberOfLogicalProcessors");
  }
  hw.set_cpu_cores(static_cast<uint32_t>(cores));
  hw.set_cpu_threads(static_cast<uint32_t>(threads));
  if (!f.computer_system.empty())
    hw.set_ram_bytes(Number(f.computer_system[0], "TotalPhysicalMemory"));
  std::string host = First(f.computer_system, "DNSHostName");
  if (host.empty()) host = First(f.computer_system, "Name");
  hw.set_hostname(absl::AsciiStrToLower(host));

  if (!f.operating_system.empty()) {
    const WmiObject& os = f.operating_system[0];
    hw.set_os_name("Windows");
    hw.set_os_version(Get(os, "Version"));      // 10.0.22631
    hw.set_os_pretty_name(Get(os, "Caption"));  // Microsoft Windows 11 Éducation
    hw.set_kernel(Get(os, "BuildNumber"));
    // The free space of the system drive ("C:").
    for (const auto& d : f.logical_disk) {
      if (absl::EqualsIgnoreCase(Get(d, "DeviceID"), Get(os, "SystemDrive"))) {
        hw.set_system_free_bytes(common::RoundDownToGiB(Number(d, "FreeSpace")));
      }
    }
  }

  // Fixed disks (USB sticks and card readers are not the device's). SSD or HDD from
  // MSFT_PhysicalDisk.MediaType (3 HDD, 4 SSD), matched by disk number.
  for (const auto& d : f.disk_drive) {
    const std::string iface = Get(d, "InterfaceType");
    const std::string media = Get(d, "MediaType");
    if (iface == "USB" || absl::StrContains(absl::AsciiStrToLower(media), "removable")) continue;
    parc::v1::Disk* disk = hw.add_disks();
    disk->set_name(absl::StrCat("disk", Get(d, "Index")));
    disk->set_model(Get(d, "Model"));
    disk->set_size_bytes(Number(d, "Size"));
    for (const auto& p : f.physical_disk) {
      if (Get(p, "DeviceId") == Get(d, "Index")) disk->set_rotational(Get(p, "MediaType") == "3");
    }
  }

  for (size_t i = 0; i < f.battery.size(); ++i) {
    const WmiObject& b = f.battery[i];
    parc::v1::Battery* battery = hw.add_batteries();
    battery->set_name(Get(b, "DeviceID"));
    battery->set_technology(Chemistry(Get(b, "Chemistry")));
    battery->set_unit("Wh");
    // ROOT\WMI gives capacities in mWh; the message holds µWh like Linux's energy_* files.
    if (const WmiObject* s = ByInstance(f.battery_static, i)) {
      battery->set_manufacturer(Get(*s, "ManufactureName"));
      battery->set_model(Get(*s, "DeviceName"));
      battery->set_design_capacity(Number(*s, "DesignedCapacity") * 1000);
    }
    if (const WmiObject* full = ByInstance(f.battery_full, i)) {
      battery->set_full_capacity(Number(*full, "FullChargedCapacity") * 1000);
    }
    if (const WmiObject* cycles = ByInstance(f.battery_cycles, i)) {
      battery->set_cycle_count(static_cast<uint32_t>(Number(*cycles, "CycleCount")));
    }
    if (battery->model().empty()) battery->set_model(Get(b, "Name"));
    if (battery->design_capacity() > 0) {
      battery->set_health_percent(
          static_cast<uint32_t>(battery->full_capacity() * 100 / battery->design_capacity()));
    }
  }

  // Physical adapters with a MAC address (not VPNs, Hyper-V switches or Bluetooth PANs, which
  // Windows marks PhysicalAdapter FALSE).
  for (const auto& n : f.network_adapter) {
    if (Get(n, "PhysicalAdapter") != "TRUE" || Get(n, "MACAddress").empty()) continue;
    if (absl::StrContains(Get(n, "PNPDeviceID"), "BTH")) continue;  // Bluetooth
    parc::v1::NetworkInterface* nic = hw.add_network_interfaces();
    std::string name = Get(n, "NetConnectionID");
    nic->set_name(name.empty() ? Get(n, "Name") : name);
    nic->set_mac(absl::AsciiStrToLower(Get(n, "MACAddress")));
    nic->set_wireless(Get(n, "AdapterTypeID") == "9" ||
                      absl::StrContains(absl::AsciiStrToLower(Get(n, "Name")), "wi-fi") ||
                      absl::StrContains(absl::AsciiStrToLower(Get(n, "Name")), "wireless"));
  }
  return hw;
}

parc::v1::SoftwareList ParseWindowsSoftware(const std::vector<InstalledProduct>& products) {
  parc::v1::SoftwareList list;
  for (const auto& p : products) {
    const std::string name(absl::StripAsciiWhitespace(p.display_name));
    if (name.empty() || p.system_component || p.is_update) continue;
    auto* pkg = list.add_packages();
    pkg->set_name(name);
    pkg->set_version(std::string(absl::StripAsciiWhitespace(p.display_version)));
    pkg->set_architecture(p.wow64 ? "x86" : "x64");
    pkg->set_publisher(std::string(absl::StripAsciiWhitespace(p.publisher)));
  }
  common::CanonicalizeSoftware(&list);
  return list;
}

parc::v1::Inventory ParseWindowsInventory(const WindowsFacts& facts) {
  parc::v1::Inventory inventory;
  *inventory.mutable_hardware() = ParseWindowsHardware(facts);
  *inventory.mutable_software() = ParseWindowsSoftware(facts.products);
  return inventory;
}

parc::v1::HardwareIdentity ParseWindowsIdentity(const WindowsFacts& facts) {
  parc::v1::HardwareIdentity id;
  id.set_product_uuid(absl::AsciiStrToLower(First(facts.computer_system_product, "UUID")));
  id.set_serial(First(facts.bios, "SerialNumber"));
  id.set_machine_id(absl::AsciiStrToLower(facts.machine_guid));
  return id;
}

}  // namespace parc::agent
