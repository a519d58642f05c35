#pragma once

// What the Windows agent reads from the system: WMI (COM) and the registry. The parsing of
// what comes back is in inventory.cc, tested on every platform with recorded values.

#include <string>
#include <vector>

#include "agent/windows/installed_products.h"
#include "agent/windows/inventory.h"

namespace parc::agent {

// Every WMI query and registry read of WindowsFacts. A query that fails (a class missing on
// this machine, WMI not running) leaves its list empty. products only with_software.
WindowsFacts CollectWindowsFacts(bool with_software);

// One WQL query: each object with every non-system property as text (see WmiObject).
std::vector<WmiObject> QueryWmi(const wchar_t* wmi_namespace, const wchar_t* wql);

// HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid, "" when unreadable.
std::string ReadMachineGuid();

// The Uninstall keys of HKLM, 64-bit and 32-bit views.
class RegistryInstalledProducts final : public InstalledProducts {
 public:
  std::vector<InstalledProduct> List() const override;
};

}  // namespace parc::agent
