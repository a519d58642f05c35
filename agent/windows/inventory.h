#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/windows/installed_products.h"
#include "parc/v1/agent.pb.h"
#include "parc/v1/inventory.pb.h"

namespace parc::agent {

// One WMI object as text: the Windows layer turns each VARIANT into a string (integers in
// decimal, booleans "TRUE"/"FALSE", arrays as their values joined by ','), and leaves NULL
// properties out.
using WmiObject = std::map<std::string, std::string>;

// What the Windows inventory asks of WMI and the registry, as returned. Each field is the
// result of one query (ROOT\CIMV2 unless said otherwise).
struct WindowsFacts {
  std::vector<WmiObject> computer_system;          // Win32_ComputerSystem
  std::vector<WmiObject> computer_system_product;  // Win32_ComputerSystemProduct
  std::vector<WmiObject> bios;                     // Win32_BIOS
  std::vector<WmiObject> enclosure;                // Win32_SystemEnclosure
  std::vector<WmiObject> processor;                // Win32_Processor
  std::vector<WmiObject> operating_system;         // Win32_OperatingSystem
  std::vector<WmiObject> disk_drive;               // Win32_DiskDrive
  std::vector<WmiObject> physical_disk;    // MSFT_PhysicalDisk (ROOT\Microsoft\Windows\Storage)
  std::vector<WmiObject> battery;          // Win32_Battery
  std::vector<WmiObject> battery_static;   // BatteryStaticData (ROOT\WMI)
  std::vector<WmiObject> battery_full;     // BatteryFullChargedCapacity (ROOT\WMI)
  std::vector<WmiObject> battery_cycles;   // BatteryCycleCount (ROOT\WMI)
  std::vector<WmiObject> network_adapter;  // Win32_NetworkAdapter
  std::vector<WmiObject> logical_disk;     // Win32_LogicalDisk (local fixed disks)
  std::vector<WmiObject> tpm;              // Win32_Tpm (ROOT\CIMV2\Security\MicrosoftTpm)
  // HKLM\SYSTEM\CurrentControlSet\Control\PEFirmwareType: "uefi", "bios" or "" (unknown).
  std::string firmware_type;
  // HKLM\SYSTEM\CurrentControlSet\Control\SecureBoot\State\UEFISecureBootEnabled: "1",
  // "0", or "" when absent.
  std::string secure_boot_state;
  // HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid.
  std::string machine_guid;
  std::vector<InstalledProduct> products;
};

// Pure parsers from those facts into the Inventory message, under the same data catalogue as
// Linux. Missing or malformed values leave fields empty; nothing here fails.
parc::v1::Hardware ParseWindowsHardware(const WindowsFacts& facts);
// The Uninstall entries as a software list in canonical order: entries without a name, system
// components and updates left out; architecture "x86" for the 32-bit view, else "x64".
parc::v1::SoftwareList ParseWindowsSoftware(const std::vector<InstalledProduct>& products);
parc::v1::Inventory ParseWindowsInventory(const WindowsFacts& facts);

// SMBIOS UUID (Win32_ComputerSystemProduct), BIOS serial number, and MachineGuid. The
// fingerprint covers all three: sysprep keeps MachineGuid in a cloned image, but the UUID and
// serial are the hardware's, so a state copied onto other hardware no longer matches; and the
// server's hardware key rests on the UUID and serial, never on MachineGuid alone.
parc::v1::HardwareIdentity ParseWindowsIdentity(const WindowsFacts& facts);

}  // namespace parc::agent
