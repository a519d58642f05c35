#include "common/inventory_format.h"

#include <iomanip>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/inventory_util.h"

namespace parc::common {

std::string HumanBytes(uint64_t bytes, bool decimal) {
  const double base = decimal ? 1000.0 : 1024.0;
  const char* const units_dec[] = {"B", "kB", "MB", "GB", "TB"};
  const char* const units_bin[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= base && u < 4) {
    v /= base;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, decimal ? units_dec[u] : units_bin[u]);
}

std::string SecureBootName(parc::v1::SecureBoot s) {
  switch (s) {
    case parc::v1::SECURE_BOOT_ENABLED:
      return "on";
    case parc::v1::SECURE_BOOT_DISABLED:
      return "off";
    case parc::v1::SECURE_BOOT_UNSUPPORTED:
      return "unsupported (legacy BIOS boot)";
    default:
      return "unknown";
  }
}

std::string FormatInventoryText(const parc::v1::Inventory& inv) {
  return FormatInventoryText(inv, SoftwareHash(inv.software()).substr(0, 12));
}

std::string FormatInventoryText(const parc::v1::Inventory& inv, absl::string_view list_id) {
  std::ostringstream out;
  const auto& hw = inv.hardware();
  auto row = [&](const char* label, const std::string& value) {
    out << "  " << std::left << std::setw(14) << label << (value.empty() ? "-" : value) << "\n";
  };
  out << "Device\n";
  row("Manufacturer", hw.manufacturer());
  row("Model", hw.model());
  row("Serial", hw.serial());
  std::string kind = KindName(hw.detected_kind());
  row("Kind",
      absl::StrCat(kind.empty() ? "unknown" : kind, " (chassis type ", hw.chassis_type(), ")"));
  row("BIOS", hw.firmware_date().empty()
                  ? hw.bios_version()
                  : absl::StrCat(hw.bios_version(), " (", hw.firmware_date(), ")"));
  row("TPM", hw.tpm_version().empty() ? "none seen" : hw.tpm_version());
  row("Secure Boot", SecureBootName(hw.secure_boot()));
  row("CPU", absl::StrCat(hw.cpu_model(), " (", hw.cpu_cores(), " cores, ", hw.cpu_threads(),
                          " threads)"));
  row("RAM", HumanBytes(hw.ram_bytes(), false));
  row("OS", hw.os_pretty_name().empty() ? absl::StrCat(hw.os_name(), " ", hw.os_version())
                                        : hw.os_pretty_name());
  row("Kernel", hw.kernel());
  row("Hostname", hw.hostname());
  row("Architecture", hw.architecture());
  row("System free", hw.has_system_free_bytes() ? HumanBytes(hw.system_free_bytes(), false) : "");
  out << "Disks\n";
  if (hw.disks().empty()) out << "  -\n";
  for (const auto& d : hw.disks()) {
    out << "  " << d.name() << "  " << (d.model().empty() ? "-" : d.model()) << "  "
        << HumanBytes(d.size_bytes(), true) << "  " << (d.rotational() ? "HDD" : "SSD/flash")
        << "\n";
  }
  out << "Batteries\n";
  if (hw.batteries().empty()) out << "  -\n";
  for (const auto& b : hw.batteries()) {
    double scale = 1e6;
    out << "  " << b.name() << "  " << b.manufacturer() << " " << b.model() << "  health "
        << b.health_percent() << "% (design "
        << absl::StrFormat("%.1f", static_cast<double>(b.design_capacity()) / scale) << " "
        << b.unit() << ", full "
        << absl::StrFormat("%.1f", static_cast<double>(b.full_capacity()) / scale) << " "
        << b.unit() << ")";
    if (b.cycle_count() > 0) out << ", " << b.cycle_count() << " cycles";
    out << "\n";
  }
  out << "Network\n";
  if (hw.network_interfaces().empty()) out << "  -\n";
  for (const auto& n : hw.network_interfaces()) {
    out << "  " << n.name() << "  " << n.mac() << "  " << (n.wireless() ? "wireless" : "wired")
        << "\n";
  }
  out << "Software\n  " << inv.software().packages_size() << " installed packages";
  if (!list_id.empty()) out << " (list " << list_id << ")";
  out << "\n";
  return out.str();
}

}  // namespace parc::common
