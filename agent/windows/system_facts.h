#pragma once

// What the Windows agent reads from the system: WMI (COM) and the registry. The parsing of
// what comes back is in inventory.cc, tested on every platform with recorded values.

#include <string>
#include <vector>

#include "agent/windows/installed_products.h"
#include "agent/windows/inventory.h"

struct IWbemServices;  // wbemidl.h

namespace parc::agent {

// Every WMI query and registry read of WindowsFacts. A query that fails (a class missing on
// this machine, WMI not running) leaves its list empty. products only with_software.
WindowsFacts CollectWindowsFacts(bool with_software);

// One WMI namespace, connected once for all its queries (each connection costs a round trip to
// the WMI service). A namespace that cannot be connected answers every query with nothing.
// Use on one thread; COM is initialised for that thread while the object lives.
class WmiNamespace {
 public:
  explicit WmiNamespace(const wchar_t* name);
  ~WmiNamespace();
  WmiNamespace(const WmiNamespace&) = delete;
  WmiNamespace& operator=(const WmiNamespace&) = delete;

  // One WQL query: each object with every non-system property as text (see WmiObject).
  std::vector<WmiObject> Query(const wchar_t* wql) const;

 private:
  bool com_initialized_ = false;
  IWbemServices* services_ = nullptr;
};

// HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid, "" when unreadable.
std::string ReadMachineGuid();

// The Uninstall keys of HKLM, 64-bit and 32-bit views.
class RegistryInstalledProducts final : public InstalledProducts {
 public:
  std::vector<InstalledProduct> List() const override;
};

}  // namespace parc::agent
