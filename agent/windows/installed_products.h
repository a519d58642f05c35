#pragma once

#include <string>
#include <vector>

namespace parc::agent {

// One entry of the Uninstall registry keys (HKLM SOFTWARE\Microsoft\Windows\CurrentVersion
// \Uninstall and its WOW6432Node twin): what Windows lists under "Apps & features".
struct InstalledProduct {
  // The entry's key name: the product code ("{GUID}") for Windows Installer packages.
  std::string key;
  std::string display_name;
  std::string display_version;
  std::string publisher;
  // Found in the 32-bit view (WOW6432Node).
  bool wow64 = false;
  // SystemComponent = 1 (hidden from the list), or an update of another product
  // (ParentKeyName set, or ReleaseType "Update"/"Hotfix"/"Security Update").
  bool system_component = false;
  bool is_update = false;
};

// The installed products, read from the registry on Windows (registry.cc) or given by tests.
class InstalledProducts {
 public:
  virtual ~InstalledProducts() = default;
  virtual std::vector<InstalledProduct> List() const = 0;
};

}  // namespace parc::agent
