#include "agent/linux/collectors.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/inventory_util.h"

namespace parc::agent {
namespace {

std::string Trim(absl::string_view s) { return std::string(absl::StripAsciiWhitespace(s)); }

// Contents of a small text file, trimmed; "" when unreadable.
std::string ReadValue(const SystemReader& reader, const std::string& path) {
  auto content = reader.ReadFile(path);
  return content.ok() ? Trim(*content) : std::string();
}

uint64_t ReadU64(const SystemReader& reader, const std::string& path) {
  uint64_t v = 0;
  return absl::SimpleAtoi(ReadValue(reader, path), &v) ? v : 0;
}

// "key : value" → (key, value), both trimmed.
bool SplitColon(absl::string_view line, absl::string_view* key, absl::string_view* value) {
  size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return false;
  *key = absl::StripAsciiWhitespace(line.substr(0, colon));
  *value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  return true;
}

std::vector<std::string> ListOrEmpty(const SystemReader& reader, const std::string& path) {
  auto names = reader.ListDir(path);
  return names.ok() ? *names : std::vector<std::string>();
}

void CollectDmi(const SystemReader& reader, parc::v1::Hardware* hw) {
  const std::string dmi = "/sys/class/dmi/id/";
  hw->set_manufacturer(ReadValue(reader, dmi + "sys_vendor"));
  hw->set_model(ReadValue(reader, dmi + "product_name"));
  hw->set_serial(ReadValue(reader, dmi + "product_serial"));
  hw->set_bios_version(ReadValue(reader, dmi + "bios_version"));
  hw->set_firmware_date(common::FirmwareDate(ReadValue(reader, dmi + "bios_date")));
  uint64_t chassis = ReadU64(reader, dmi + "chassis_type");
  hw->set_chassis_type(static_cast<uint32_t>(chassis));
  hw->set_detected_kind(common::KindFromChassisType(hw->chassis_type()));
}

void CollectDisks(const SystemReader& reader, parc::v1::Hardware* hw) {
  // Kernel block devices that are not disks: loop devices, RAM disks, device-mapper and RAID
  // volumes, network block devices, optical and floppy drives.
  static constexpr absl::string_view kNotDisks[] = {"loop", "ram", "zram", "dm-",
                                                    "md",   "nbd", "sr",   "fd"};
  for (const std::string& name : ListOrEmpty(reader, "/sys/block")) {
    bool skip = false;
    for (auto prefix : kNotDisks) skip |= absl::StartsWith(name, prefix);
    // eMMC hardware partitions (mmcblk0boot0, mmcblk0rpmb) are not separate disks.
    skip |= absl::StartsWith(name, "mmcblk") &&
            (absl::StrContains(name, "boot") || absl::StrContains(name, "rpmb"));
    const std::string base = "/sys/block/" + name;
    if (skip || !reader.Exists(base + "/device")) continue;
    parc::v1::Disk* disk = hw->add_disks();
    disk->set_name(name);
    std::string model = ReadValue(reader, base + "/device/model");
    if (model.empty()) model = ReadValue(reader, base + "/device/name");  // eMMC
    disk->set_model(model);
    disk->set_size_bytes(ReadU64(reader, base + "/size") * 512);
    disk->set_rotational(ReadValue(reader, base + "/queue/rotational") == "1");
  }
}

void CollectBatteries(const SystemReader& reader, parc::v1::Hardware* hw) {
  for (const std::string& name : ListOrEmpty(reader, "/sys/class/power_supply")) {
    const std::string base = "/sys/class/power_supply/" + name + "/";
    if (ReadValue(reader, base + "type") != "Battery") continue;
    // Batteries of peripherals (mouse, stylus) have scope "Device".
    if (ReadValue(reader, base + "scope") == "Device") continue;
    parc::v1::Battery* b = hw->add_batteries();
    b->set_name(name);
    b->set_manufacturer(ReadValue(reader, base + "manufacturer"));
    b->set_model(ReadValue(reader, base + "model_name"));
    b->set_technology(ReadValue(reader, base + "technology"));
    uint64_t design = ReadU64(reader, base + "energy_full_design");
    uint64_t full = ReadU64(reader, base + "energy_full");
    b->set_unit("Wh");
    if (design == 0) {
      design = ReadU64(reader, base + "charge_full_design");
      full = ReadU64(reader, base + "charge_full");
      b->set_unit("Ah");
    }
    b->set_design_capacity(design);
    b->set_full_capacity(full);
    if (design > 0) b->set_health_percent(static_cast<uint32_t>(full * 100 / design));
    b->set_cycle_count(static_cast<uint32_t>(ReadU64(reader, base + "cycle_count")));
  }
}

void CollectNetwork(const SystemReader& reader, parc::v1::Hardware* hw) {
  for (const std::string& name : ListOrEmpty(reader, "/sys/class/net")) {
    const std::string base = "/sys/class/net/" + name;
    // Physical interfaces only: virtual ones (lo, bridges, VPNs, containers) have no device.
    if (!reader.Exists(base + "/device")) continue;
    parc::v1::NetworkInterface* nic = hw->add_network_interfaces();
    nic->set_name(name);
    nic->set_mac(absl::AsciiStrToLower(ReadValue(reader, base + "/address")));
    nic->set_wireless(reader.Exists(base + "/wireless") || reader.Exists(base + "/phy80211"));
  }
}

// What Windows 11 readiness needs to know of the firmware, and the room for the next bundle.
void CollectPlatform(const SystemReader& reader, parc::v1::Hardware* hw) {
  auto free = reader.FreeBytes("/");
  if (free.ok()) hw->set_system_free_bytes(common::RoundDownToGiB(*free));
  // The kernel's TPM driver: tpm_version_major since Linux 5.6; a TPM 1.2 also has "caps".
  const std::string tpm = "/sys/class/tpm/tpm0";
  if (reader.Exists(tpm)) {
    const std::string major = ReadValue(reader, tpm + "/tpm_version_major");
    if (major == "2") {
      hw->set_tpm_version("2.0");
    } else if (major == "1" || reader.Exists(tpm + "/caps")) {
      hw->set_tpm_version("1.2");
    } else {
      hw->set_tpm_version("2.0");  // no caps file: the 2.0 driver (kernels before 5.6)
    }
  }
  // Booted by legacy BIOS: no /sys/firmware/efi. Under UEFI the SecureBoot variable holds
  // 4 bytes of attributes, then 1 (on) or 0 (off).
  if (!reader.Exists("/sys/firmware/efi")) {
    hw->set_secure_boot(parc::v1::SECURE_BOOT_UNSUPPORTED);
  } else {
    auto var = reader.ReadFile(
        "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c");
    if (var.ok() && var->size() >= 5) {
      hw->set_secure_boot((*var)[4] == 1 ? parc::v1::SECURE_BOOT_ENABLED
                                         : parc::v1::SECURE_BOOT_DISABLED);
    }
  }
}

void CollectOs(const SystemReader& reader, parc::v1::Hardware* hw) {
  auto text = reader.ReadFile("/etc/os-release");
  if (!text.ok()) text = reader.ReadFile("/usr/lib/os-release");
  if (text.ok()) {
    auto fields = ParseOsRelease(*text);
    hw->set_os_name(fields["NAME"]);
    hw->set_os_version(fields["VERSION_ID"]);
    hw->set_os_pretty_name(fields["PRETTY_NAME"]);
  }
  hw->set_kernel(ReadValue(reader, "/proc/sys/kernel/osrelease"));
  std::string host = ReadValue(reader, "/proc/sys/kernel/hostname");
  if (host.empty()) host = ReadValue(reader, "/etc/hostname");
  hw->set_hostname(host);
}

}  // namespace

std::map<std::string, std::string> ParseOsRelease(absl::string_view text) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos) continue;
    std::string key = Trim(line.substr(0, eq));
    absl::string_view raw = line.substr(eq + 1);
    std::string value;
    if (!raw.empty() && (raw[0] == '"' || raw[0] == '\'')) {
      char quote = raw[0];
      for (size_t i = 1; i < raw.size() && raw[i] != quote; ++i) {
        if (quote == '"' && raw[i] == '\\' && i + 1 < raw.size()) ++i;
        value.push_back(raw[i]);
      }
    } else {
      value = std::string(raw);
    }
    out[key] = value;
  }
  return out;
}

CpuInfo ParseCpuInfo(absl::string_view text) {
  CpuInfo info;
  std::set<std::string> physical_ids;
  uint32_t cores_per_package = 0;
  std::string physical_id;
  std::string arm_model;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view key, value;
    if (!SplitColon(line, &key, &value)) continue;
    if (key == "processor") {
      ++info.threads;
    } else if (key == "model name" && info.model.empty()) {
      info.model = std::string(value);
    } else if ((key == "Model" || key == "Hardware") && arm_model.empty()) {
      arm_model = std::string(value);
    } else if (key == "physical id") {
      physical_ids.insert(std::string(value));
    } else if (key == "cpu cores") {
      uint32_t n = 0;
      if (absl::SimpleAtoi(value, &n)) cores_per_package = n;
    }
  }
  if (info.model.empty()) info.model = arm_model;
  // Collapse the runs of spaces some firmware pads model names with.
  std::string squeezed;
  for (char c : info.model) {
    if (c == ' ' && !squeezed.empty() && squeezed.back() == ' ') continue;
    squeezed.push_back(c);
  }
  info.model = squeezed;
  uint32_t packages = physical_ids.empty() ? 1u : static_cast<uint32_t>(physical_ids.size());
  info.cores = cores_per_package > 0 ? cores_per_package * packages : info.threads;
  return info;
}

uint64_t ParseMemTotal(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view key, value;
    if (!SplitColon(line, &key, &value) || key != "MemTotal") continue;
    uint64_t kb = 0;
    absl::ConsumeSuffix(&value, "kB");
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &kb)) return kb * 1024;
  }
  return 0;
}

namespace {

// dpkg's status file, a line at a time: one paragraph per package, installed ones kept.
class DpkgStatusParser {
 public:
  void Line(absl::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      Flush();
      return;
    }
    if (line[0] == ' ' || line[0] == '\t') return;  // continuation of a multi-line field
    absl::string_view key, value;
    if (!SplitColon(line, &key, &value)) return;
    if (key == "Package") {
      name_ = std::string(value);
    } else if (key == "Version") {
      version_ = std::string(value);
    } else if (key == "Architecture") {
      arch_ = std::string(value);
    } else if (key == "Status") {
      installed_ = absl::EndsWith(value, " installed") && absl::StartsWith(value, "install ");
    }
  }
  parc::v1::SoftwareList Finish() {
    Flush();
    common::CanonicalizeSoftware(&list_);
    return std::move(list_);
  }

 private:
  void Flush() {
    if (installed_ && !name_.empty()) {
      auto* p = list_.add_packages();
      p->set_name(name_);
      p->set_version(version_);
      p->set_architecture(arch_);
    }
    name_.clear();
    version_.clear();
    arch_.clear();
    installed_ = false;
  }
  parc::v1::SoftwareList list_;
  std::string name_, version_, arch_;
  bool installed_ = false;
};

}  // namespace

parc::v1::SoftwareList ParseDpkgStatus(absl::string_view text) {
  DpkgStatusParser parser;
  for (absl::string_view line : absl::StrSplit(text, '\n')) parser.Line(line);
  return parser.Finish();
}

parc::v1::Hardware CollectHardware(const SystemReader& reader) {
  parc::v1::Hardware hw;
  CollectDmi(reader, &hw);
  auto cpuinfo = reader.ReadFile("/proc/cpuinfo");
  if (cpuinfo.ok()) {
    CpuInfo cpu = ParseCpuInfo(*cpuinfo);
    hw.set_cpu_model(cpu.model);
    hw.set_cpu_cores(cpu.cores);
    hw.set_cpu_threads(cpu.threads);
  }
  auto meminfo = reader.ReadFile("/proc/meminfo");
  if (meminfo.ok()) hw.set_ram_bytes(ParseMemTotal(*meminfo));
  CollectDisks(reader, &hw);
  CollectBatteries(reader, &hw);
  CollectNetwork(reader, &hw);
  CollectOs(reader, &hw);
  CollectPlatform(reader, &hw);
  return hw;
}

parc::v1::SoftwareList CollectSoftware(const SystemReader& reader) {
  // Read a line at a time: only the package, version, architecture and status fields are kept.
  DpkgStatusParser parser;
  if (!reader.ForEachLine("/var/lib/dpkg/status", [&](absl::string_view l) { parser.Line(l); })
           .ok()) {
    return parc::v1::SoftwareList();
  }
  return parser.Finish();
}

parc::v1::Inventory CollectInventory(const SystemReader& reader) {
  parc::v1::Inventory inv;
  *inv.mutable_hardware() = CollectHardware(reader);
  *inv.mutable_software() = CollectSoftware(reader);
  // The machine's architecture is the one dpkg itself is built for.
  for (const auto& p : inv.software().packages()) {
    if (p.name() == "dpkg") inv.mutable_hardware()->set_architecture(p.architecture());
  }
  return inv;
}

parc::v1::HardwareIdentity CollectIdentity(const SystemReader& reader) {
  parc::v1::HardwareIdentity id;
  id.set_product_uuid(absl::AsciiStrToLower(ReadValue(reader, "/sys/class/dmi/id/product_uuid")));
  id.set_serial(ReadValue(reader, "/sys/class/dmi/id/product_serial"));
  std::string machine_id = ReadValue(reader, "/etc/machine-id");
  if (machine_id.empty()) machine_id = ReadValue(reader, "/var/lib/dbus/machine-id");
  id.set_machine_id(machine_id);
  return id;
}

}  // namespace parc::agent
