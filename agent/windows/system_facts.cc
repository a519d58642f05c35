#include "agent/windows/system_facts.h"

#include <windows.h>
// windows.h first.
#include <oleauto.h>
#include <wbemidl.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/windows_util.h"

namespace parc::agent {
namespace {

using common::Narrow;

template <typename T>
struct ComRelease {
  void operator()(T* p) const {
    if (p != nullptr) p->Release();
  }
};
template <typename T>
using ComPtr = std::unique_ptr<T, ComRelease<T>>;

// A scalar VARIANT as text: integers in decimal, booleans TRUE/FALSE, strings as UTF-8.
bool ScalarText(VARIANT* v, std::string* out) {
  switch (V_VT(v)) {
    case VT_EMPTY:
    case VT_NULL:
      return false;
    case VT_BSTR:
      *out = V_BSTR(v) != nullptr ? Narrow(V_BSTR(v)) : std::string();
      return true;
    case VT_BOOL:
      *out = V_BOOL(v) != VARIANT_FALSE ? "TRUE" : "FALSE";
      return true;
    default: {
      VARIANT text;
      VariantInit(&text);
      if (FAILED(VariantChangeType(&text, v, 0, VT_BSTR))) return false;
      *out = V_BSTR(&text) != nullptr ? Narrow(V_BSTR(&text)) : std::string();
      VariantClear(&text);
      return true;
    }
  }
}

bool VariantText(VARIANT* v, std::string* out) {
  if ((V_VT(v) & VT_ARRAY) == 0) return ScalarText(v, out);
  SAFEARRAY* array = V_ARRAY(v);
  // The array's own element type (WMI may store narrower integers than the VARIANT says).
  VARTYPE element_type = VT_EMPTY;
  LONG lower = 0, upper = -1;
  if (array == nullptr || SafeArrayGetDim(array) != 1 ||
      FAILED(SafeArrayGetVartype(array, &element_type)) ||
      FAILED(SafeArrayGetLBound(array, 1, &lower)) ||
      FAILED(SafeArrayGetUBound(array, 1, &upper))) {
    return false;
  }
  std::vector<std::string> parts;
  for (LONG i = lower; i <= upper; ++i) {
    VARIANT element{};
    V_VT(&element) = element_type;
    // The element lands in the VARIANT's value union, whatever its type.
    if (FAILED(SafeArrayGetElement(array, &i, &V_UI1(&element)))) continue;
    std::string text;
    if (ScalarText(&element, &text)) parts.push_back(std::move(text));
    VariantClear(&element);
  }
  *out = absl::StrJoin(parts, ",");
  return true;
}

std::wstring RegString(HKEY key, const wchar_t* value) {
  DWORD size = 0;
  if (RegGetValueW(key, nullptr, value, RRF_RT_REG_SZ | RRF_RT_REG_EXPAND_SZ | RRF_NOEXPAND,
                   nullptr, nullptr, &size) != ERROR_SUCCESS ||
      size == 0) {
    return std::wstring();
  }
  std::wstring out(size / sizeof(wchar_t), L'\0');
  if (RegGetValueW(key, nullptr, value, RRF_RT_REG_SZ | RRF_RT_REG_EXPAND_SZ | RRF_NOEXPAND,
                   nullptr, out.data(), &size) != ERROR_SUCCESS) {
    return std::wstring();
  }
  out.resize(wcsnlen(out.c_str(), out.size()));
  return out;
}

DWORD RegDword(HKEY key, const wchar_t* value) {
  DWORD data = 0, size = sizeof(data);
  if (RegGetValueW(key, nullptr, value, RRF_RT_REG_DWORD, nullptr, &data, &size) != ERROR_SUCCESS) {
    return 0;
  }
  return data;
}

void ListUninstallKeys(REGSAM view, bool wow64, std::vector<InstalledProduct>* out) {
  HKEY root = nullptr;
  if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, L"SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall",
                    0, KEY_READ | view, &root) != ERROR_SUCCESS) {
    return;
  }
  for (DWORD i = 0;; ++i) {
    wchar_t name[256];
    DWORD name_len = 256;
    LONG rc = RegEnumKeyExW(root, i, name, &name_len, nullptr, nullptr, nullptr, nullptr);
    if (rc == ERROR_NO_MORE_ITEMS) break;
    if (rc != ERROR_SUCCESS) continue;
    HKEY entry = nullptr;
    if (RegOpenKeyExW(root, name, 0, KEY_READ | view, &entry) != ERROR_SUCCESS) continue;
    InstalledProduct p;
    p.key = Narrow(std::wstring_view(name, name_len));
    p.display_name = Narrow(RegString(entry, L"DisplayName"));
    p.display_version = Narrow(RegString(entry, L"DisplayVersion"));
    p.publisher = Narrow(RegString(entry, L"Publisher"));
    p.wow64 = wow64;
    p.system_component = RegDword(entry, L"SystemComponent") == 1;
    const std::wstring release = RegString(entry, L"ReleaseType");
    p.is_update = !RegString(entry, L"ParentKeyName").empty() || release == L"Update" ||
                  release == L"Hotfix" || release == L"Security Update";
    RegCloseKey(entry);
    out->push_back(std::move(p));
  }
  RegCloseKey(root);
}

}  // namespace

WmiNamespace::WmiNamespace(const wchar_t* name) {
  com_initialized_ = SUCCEEDED(CoInitializeEx(nullptr, COINIT_MULTITHREADED));
  static std::once_flag security;
  std::call_once(security, [] {
    // RPC_E_TOO_LATE when the process already did: fine.
    CoInitializeSecurity(nullptr, -1, nullptr, nullptr, RPC_C_AUTHN_LEVEL_DEFAULT,
                         RPC_C_IMP_LEVEL_IMPERSONATE, nullptr, EOAC_NONE, nullptr);
  });
  IWbemLocator* raw_locator = nullptr;
  if (FAILED(CoCreateInstance(CLSID_WbemLocator, nullptr, CLSCTX_INPROC_SERVER, IID_IWbemLocator,
                              reinterpret_cast<void**>(&raw_locator)))) {
    return;
  }
  ComPtr<IWbemLocator> locator(raw_locator);
  BSTR ns = SysAllocString(name);
  HRESULT hr =
      locator->ConnectServer(ns, nullptr, nullptr, nullptr, 0, nullptr, nullptr, &services_);
  SysFreeString(ns);
  if (FAILED(hr)) {
    services_ = nullptr;
    return;
  }
  CoSetProxyBlanket(services_, RPC_C_AUTHN_WINNT, RPC_C_AUTHZ_NONE, nullptr, RPC_C_AUTHN_LEVEL_CALL,
                    RPC_C_IMP_LEVEL_IMPERSONATE, nullptr, EOAC_NONE);
}

WmiNamespace::~WmiNamespace() {
  if (services_ != nullptr) services_->Release();
  if (com_initialized_) CoUninitialize();
}

std::vector<WmiObject> WmiNamespace::Query(const wchar_t* wql) const {
  std::vector<WmiObject> objects;
  if (services_ == nullptr) return objects;
  BSTR language = SysAllocString(L"WQL");
  BSTR query = SysAllocString(wql);
  IEnumWbemClassObject* raw_enum = nullptr;
  HRESULT hr = services_->ExecQuery(
      language, query, WBEM_FLAG_FORWARD_ONLY | WBEM_FLAG_RETURN_IMMEDIATELY, nullptr, &raw_enum);
  SysFreeString(language);
  SysFreeString(query);
  if (FAILED(hr)) return objects;
  ComPtr<IEnumWbemClassObject> results(raw_enum);
  while (true) {
    IWbemClassObject* raw_object = nullptr;
    ULONG returned = 0;
    // 30 s per object at most: a hung provider does not hold the cycle forever.
    if (results->Next(30000, 1, &raw_object, &returned) != WBEM_S_NO_ERROR || returned == 0) {
      break;
    }
    ComPtr<IWbemClassObject> object(raw_object);
    WmiObject fields;
    object->BeginEnumeration(WBEM_FLAG_NONSYSTEM_ONLY);
    BSTR name = nullptr;
    VARIANT value;
    VariantInit(&value);
    while (object->Next(0, &name, &value, nullptr, nullptr) == WBEM_S_NO_ERROR) {
      std::string text;
      if (name != nullptr && VariantText(&value, &text)) fields[Narrow(name)] = std::move(text);
      SysFreeString(name);
      VariantClear(&value);
    }
    object->EndEnumeration();
    objects.push_back(std::move(fields));
  }
  return objects;
}

std::string ReadMachineGuid() {
  HKEY key = nullptr;
  if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, L"SOFTWARE\\Microsoft\\Cryptography", 0,
                    KEY_READ | KEY_WOW64_64KEY, &key) != ERROR_SUCCESS) {
    return std::string();
  }
  std::string guid = Narrow(RegString(key, L"MachineGuid"));
  RegCloseKey(key);
  return guid;
}

std::vector<InstalledProduct> RegistryInstalledProducts::List() const {
  std::vector<InstalledProduct> products;
  ListUninstallKeys(KEY_WOW64_64KEY, /*wow64=*/false, &products);
  ListUninstallKeys(KEY_WOW64_32KEY, /*wow64=*/true, &products);
  return products;
}

WindowsFacts CollectWindowsFacts(bool with_software) {
  const WmiNamespace cimv2(L"ROOT\\CIMV2");
  WindowsFacts f;
  f.computer_system = cimv2.Query(L"SELECT * FROM Win32_ComputerSystem");
  f.computer_system_product = cimv2.Query(L"SELECT * FROM Win32_ComputerSystemProduct");
  f.bios = cimv2.Query(L"SELECT * FROM Win32_BIOS");
  f.enclosure = cimv2.Query(L"SELECT * FROM Win32_SystemEnclosure");
  f.processor = cimv2.Query(L"SELECT * FROM Win32_Processor");
  f.operating_system = cimv2.Query(L"SELECT * FROM Win32_OperatingSystem");
  f.disk_drive = cimv2.Query(L"SELECT * FROM Win32_DiskDrive");
  f.physical_disk =
      WmiNamespace(L"ROOT\\Microsoft\\Windows\\Storage").Query(L"SELECT * FROM MSFT_PhysicalDisk");
  f.battery = cimv2.Query(L"SELECT * FROM Win32_Battery");
  if (!f.battery.empty()) {
    const WmiNamespace wmi(L"ROOT\\WMI");
    f.battery_static = wmi.Query(L"SELECT * FROM BatteryStaticData");
    f.battery_full = wmi.Query(L"SELECT * FROM BatteryFullChargedCapacity");
    f.battery_cycles = wmi.Query(L"SELECT * FROM BatteryCycleCount");
  }
  f.network_adapter =
      cimv2.Query(L"SELECT * FROM Win32_NetworkAdapter WHERE PhysicalAdapter = TRUE");
  f.logical_disk =
      cimv2.Query(L"SELECT DeviceID, FreeSpace FROM Win32_LogicalDisk WHERE DriveType = 3");
  f.tpm = WmiNamespace(L"ROOT\\CIMV2\\Security\\MicrosoftTpm").Query(L"SELECT * FROM Win32_Tpm");
  // How the firmware booted Windows, as Windows records it (PEFirmwareType: 1 BIOS, 2 UEFI).
  // Not GetFirmwareType: Wine exports it as a stub that aborts the program.
  HKEY control = nullptr;
  if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, L"SYSTEM\\CurrentControlSet\\Control", 0,
                    KEY_READ | KEY_WOW64_64KEY, &control) == ERROR_SUCCESS) {
    const DWORD type = RegDword(control, L"PEFirmwareType");
    f.firmware_type = type == 2 ? "uefi" : type == 1 ? "bios" : "";
    RegCloseKey(control);
  }
  HKEY secure_boot = nullptr;
  if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, L"SYSTEM\\CurrentControlSet\\Control\\SecureBoot\\State", 0,
                    KEY_READ | KEY_WOW64_64KEY, &secure_boot) == ERROR_SUCCESS) {
    DWORD data = 0, size = sizeof(data);
    if (RegGetValueW(secure_boot, nullptr, L"UEFISecureBootEnabled", RRF_RT_REG_DWORD, nullptr,
                     &data, &size) == ERROR_SUCCESS) {
      f.secure_boot_state = data == 1 ? "1" : "0";
    }
    RegCloseKey(secure_boot);
  }
  f.machine_guid = ReadMachineGuid();
  if (with_software) f.products = RegistryInstalledProducts().List();
  return f;
}

}  // namespace parc::agent
