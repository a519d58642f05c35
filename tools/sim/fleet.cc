#include "tools/sim/fleet.h"

#include <array>
#include <map>
#include <mutex>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/csv.h"
#include "common/inventory_util.h"
#include "common/uai.h"

namespace parc::sim {
namespace {

struct Dep {
  const char* code;
  const char* name;
  const char* chef_lieu;
  int weight;  // rough share of pupils
};

constexpr std::array<Dep, 13> kDeps = {{{"09", "Ariège", "Foix", 2},
                                        {"11", "Aude", "Carcassonne", 6},
                                        {"12", "Aveyron", "Rodez", 4},
                                        {"30", "Gard", "Nîmes", 12},
                                        {"31", "Haute-Garonne", "Toulouse", 24},
                                        {"32", "Gers", "Auch", 3},
                                        {"34", "Hérault", "Montpellier", 19},
                                        {"46", "Lot", "Cahors", 3},
                                        {"48", "Lozère", "Mende", 1},
                                        {"65", "Hautes-Pyrénées", "Tarbes", 4},
                                        {"66", "Pyrénées-Orientales", "Perpignan", 8},
                                        {"81", "Tarn", "Albi", 6},
                                        {"82", "Tarn-et-Garonne", "Montauban", 4}}};

std::string Uai(const std::string& dep, int n) {
  std::string seven = absl::StrFormat("0%s%04d", dep, n);
  return absl::StrCat(seven, std::string(1, common::UaiCheckLetter(seven)));
}

}  // namespace

Fleet MakeFleet(uint32_t devices, uint32_t seed) {
  std::mt19937 rng(seed);
  Fleet fleet;
  const uint32_t laptops = devices * 70 / 100;
  const uint32_t college_tablets = devices * 10 / 100;
  const uint32_t ecole_devices = devices * 10 / 100;
  const uint32_t desktops = devices - laptops - college_tablets - ecole_devices;
  const uint32_t lycees = std::max<uint32_t>(1, laptops / 900);
  const uint32_t colleges = std::max<uint32_t>(1, college_tablets / 30);
  const uint32_t ecoles = std::max<uint32_t>(1, ecole_devices / 6);
  int total_weight = 0;
  for (const auto& d : kDeps) total_weight += d.weight;
  std::map<std::string, int> counters;
  auto add = [&](const char* type, uint32_t n) {
    std::vector<size_t> ids;
    std::discrete_distribution<int> pick({2, 6, 4, 12, 24, 3, 19, 3, 1, 4, 8, 6, 4});
    for (uint32_t i = 0; i < n; ++i) {
      const Dep& d = kDeps[static_cast<size_t>(pick(rng))];
      int k = ++counters[d.code];
      int commune = 1 + (k % 40);
      SimEstablishment e;
      e.uai = Uai(d.code, k);
      e.type = type;
      e.departement = d.code;
      e.commune_code = absl::StrFormat("%s%03d", d.code, commune * 7);
      e.commune_name = commune == 1 ? d.chef_lieu : absl::StrCat("Commune ", d.code, "-", commune);
      e.name = absl::StrCat(type, " ", e.commune_name, " ", k);
      ids.push_back(fleet.establishments.size());
      fleet.establishments.push_back(std::move(e));
    }
    return ids;
  };
  auto lycee_ids = add("Lycée", lycees);
  auto college_ids = add("Collège", colleges);
  auto ecole_ids = add("Ecole", ecoles);
  (void)total_weight;

  uint32_t index = 0;
  auto device = [&](const SimEstablishment& e, parc::v1::DeviceKind kind, uint32_t image) {
    SimDevice d;
    d.index = index++;
    d.serial = absl::StrFormat("SIM%09u", d.index);
    d.uai = e.uai;
    d.kind = kind;
    d.image = image % kImages;
    d.variant = (rng() % 100) < 5;
    fleet.devices.push_back(std::move(d));
  };
  for (uint32_t i = 0; i < laptops; ++i) {
    // Each lycée's laptops come from one of the Région's images of the year.
    size_t l = lycee_ids[i % lycee_ids.size()];
    device(fleet.establishments[l], parc::v1::DEVICE_KIND_LAPTOP, static_cast<uint32_t>(l % 16));
  }
  for (uint32_t i = 0; i < college_tablets; ++i) {
    size_t c = college_ids[i % college_ids.size()];
    device(fleet.establishments[c], parc::v1::DEVICE_KIND_TABLET,
           16 + static_cast<uint32_t>(c % 12));
  }
  for (uint32_t i = 0; i < ecole_devices; ++i) {
    size_t e = ecole_ids[i % ecole_ids.size()];
    bool display = i < ecole_ids.size();  // the first device of each école is its display
    device(fleet.establishments[e],
           display ? parc::v1::DEVICE_KIND_DISPLAY : parc::v1::DEVICE_KIND_TABLET,
           28 + static_cast<uint32_t>(e % 10));
  }
  for (uint32_t i = 0; i < desktops; ++i) {
    size_t c = i % 2 == 0 ? lycee_ids[i % lycee_ids.size()] : college_ids[i % college_ids.size()];
    device(fleet.establishments[c], parc::v1::DEVICE_KIND_DESKTOP,
           38 + static_cast<uint32_t>(c % 10));
  }
  return fleet;
}

std::string AnnuaireCsv(const Fleet& fleet) {
  std::string out =
      common::CsvRow({"Identifiant_de_l_etablissement", "Nom_etablissement", "Type_etablissement",
                      "Statut_public_prive", "Code_commune", "Nom_commune", "Code_departement"});
  for (const auto& e : fleet.establishments) {
    out += common::CsvRow({e.uai, e.name, e.type, "Public", e.commune_code, e.commune_name,
                           absl::StrCat("0", e.departement)});
  }
  return out;
}

std::string DeliveryCsv(const Fleet& fleet) {
  std::string out = "numero_de_serie;uai\r\n";
  for (const auto& d : fleet.devices) absl::StrAppend(&out, d.serial, ";", d.uai, "\r\n");
  return out;
}

std::string FleetTsv(const Fleet& fleet) {
  std::string out;
  for (const auto& d : fleet.devices) {
    absl::StrAppend(&out, d.index, "\t", d.serial, "\t", d.uai, "\t", static_cast<int>(d.kind),
                    "\t", d.image, "\t", d.variant ? 1 : 0, "\n");
  }
  return out;
}

bool ParseFleetTsv(const std::string& text, std::vector<SimDevice>* devices) {
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, '\t');
    if (f.size() != 6) return false;
    SimDevice d;
    int kind = 0, variant = 0;
    if (!absl::SimpleAtoi(f[0], &d.index) || !absl::SimpleAtoi(f[3], &kind) ||
        !absl::SimpleAtoi(f[4], &d.image) || !absl::SimpleAtoi(f[5], &variant)) {
      return false;
    }
    d.serial = std::string(f[1]);
    d.uai = std::string(f[2]);
    d.kind = static_cast<parc::v1::DeviceKind>(kind);
    d.variant = variant != 0;
    devices->push_back(std::move(d));
  }
  return true;
}

const parc::v1::SoftwareList& ImageSoftware(uint32_t image) {
  static std::once_flag once;
  static std::vector<parc::v1::SoftwareList>* images = nullptr;
  std::call_once(once, [] {
    images = new std::vector<parc::v1::SoftwareList>(kImages);
    for (uint32_t i = 0; i < kImages; ++i) {
      auto& list = (*images)[i];
      const uint32_t release = i / 12;  // four OS releases across the images
      for (int p = 0; p < 900; ++p) {
        auto* pkg = list.add_packages();
        pkg->set_name(absl::StrFormat("lib%s-%d", p % 3 == 0 ? "gnome" : "base", p));
        pkg->set_version(
            absl::StrFormat("%d.%d.%d-%d+deb12u%d", 1 + p % 7, p % 13, p % 5, 1 + p % 3, release));
        pkg->set_architecture(p % 10 == 0 ? "all" : "amd64");
      }
      for (int p = 0; p < 100; ++p) {
        auto* pkg = list.add_packages();
        pkg->set_name(absl::StrFormat("app-image%02d-%d", i, p));
        pkg->set_version(absl::StrFormat("2026.%d", p % 9));
        pkg->set_architecture("amd64");
      }
      common::CanonicalizeSoftware(&list);
    }
  });
  return (*images)[image % kImages];
}

parc::v1::SoftwareList DeviceSoftware(const SimDevice& device) {
  parc::v1::SoftwareList list = ImageSoftware(device.image);
  if (device.variant) {
    for (uint32_t k = 0; k < 1 + device.index % 3; ++k) {
      auto* pkg = list.add_packages();
      pkg->set_name(absl::StrFormat("extra-%u", (device.index + k) % 97));
      pkg->set_version("1.0");
      pkg->set_architecture("amd64");
    }
    common::CanonicalizeSoftware(&list);
  }
  return list;
}

parc::v1::Hardware DeviceHardware(const SimDevice& d) {
  parc::v1::Hardware hw;
  static constexpr const char* kLaptops[] = {"HP ProBook x360 11 G7 Education Edition",
                                             "Lenovo ThinkPad 11e Yoga Gen 6",
                                             "Dell Latitude 3120"};
  switch (d.kind) {
    case parc::v1::DEVICE_KIND_LAPTOP:
      hw.set_manufacturer(d.image % 3 == 1 ? "LENOVO" : d.image % 3 == 2 ? "Dell Inc." : "HP");
      hw.set_model(kLaptops[d.image % 3]);
      hw.set_chassis_type(31);
      break;
    case parc::v1::DEVICE_KIND_TABLET:
      hw.set_manufacturer("Dell Inc.");
      hw.set_model("Latitude 7220 Rugged Extreme Tablet");
      hw.set_chassis_type(30);
      break;
    case parc::v1::DEVICE_KIND_DISPLAY:
      hw.set_manufacturer("Speechi");
      hw.set_model("SPE-75UI-OPS");
      hw.set_chassis_type(3);
      break;
    default:
      hw.set_manufacturer("Dell Inc.");
      hw.set_model("OptiPlex 3080");
      hw.set_chassis_type(3);
  }
  hw.set_detected_kind(common::KindFromChassisType(hw.chassis_type()));
  hw.set_serial(d.serial);
  hw.set_bios_version(absl::StrFormat("1.%d.0", d.image % 9));
  hw.set_cpu_model("Intel(R) Pentium(R) Silver N6000 @ 1.10GHz");
  hw.set_cpu_cores(4);
  hw.set_cpu_threads(4);
  // Memory follows the equipment's age (set below with the firmware date).
  auto* disk = hw.add_disks();
  disk->set_name("nvme0n1");
  disk->set_model("KIOXIA BG4 KBG40ZNS128G");
  disk->set_size_bytes(128035676160);
  if (d.kind == parc::v1::DEVICE_KIND_LAPTOP || d.kind == parc::v1::DEVICE_KIND_TABLET) {
    auto* b = hw.add_batteries();
    b->set_name("BAT0");
    b->set_unit("Wh");
    b->set_design_capacity(47000000);
    uint32_t health = 25 + (d.index * 37) % 76;
    b->set_full_capacity(47000000ull * health / 100);
    b->set_health_percent(health);
    b->set_cycle_count(d.index % 700);
  }
  auto* nic = hw.add_network_interfaces();
  nic->set_name("wlo1");
  nic->set_mac(absl::StrFormat("02:5a:%02x:%02x:%02x:%02x", (d.index >> 24) & 0xff,
                               (d.index >> 16) & 0xff, (d.index >> 8) & 0xff, d.index & 0xff));
  nic->set_wireless(true);
  // Operating systems by master image: Windows 10 22H2 (out of support), Windows 11 23H2 and
  // 24H2, Debian 12 and 11, as on the Région's images.
  struct System {
    const char* name;
    const char* version;
    const char* pretty;
  };
  static constexpr System kSystems[] = {
      {"Windows", "10.0.19045", "Microsoft Windows 10 Éducation"},
      {"Windows", "10.0.22631", "Microsoft Windows 11 Éducation"},
      {"Windows", "10.0.26100", "Microsoft Windows 11 Éducation"},
      {"Debian GNU/Linux", "12", "Debian GNU/Linux 12 (bookworm)"},
      {"Debian GNU/Linux", "11", "Debian GNU/Linux 11 (bullseye)"}};
  const System& os = kSystems[d.image % 5];
  hw.set_os_name(os.name);
  hw.set_os_version(os.version);
  hw.set_os_pretty_name(os.pretty);
  hw.set_kernel("6.1.0-17-amd64");
  hw.set_hostname(absl::StrFormat("poste-%07u", d.index));
  hw.set_architecture("amd64");
  // Fleet health: equipment bought from 2013 to 2024 (by master image), TPM 2.0 from 2016 on
  // and 1.2 before, Secure Boot mostly on (legacy BIOS boot on a tenth of the oldest), free
  // space spread from 1 to 80 GiB, batteries from 25 to 100 % (above).
  const int year = 2013 + static_cast<int>((d.image * 7 + d.index % 3) % 12);
  hw.set_firmware_date(absl::StrFormat("%04d-%02d-%02d", year, 1 + d.index % 12, 1 + d.index % 28));
  if (d.kind != parc::v1::DEVICE_KIND_DISPLAY) hw.set_tpm_version(year >= 2016 ? "2.0" : "1.2");
  hw.set_secure_boot(year < 2016 && d.index % 10 == 0 ? parc::v1::SECURE_BOOT_UNSUPPORTED
                     : d.index % 5 == 0               ? parc::v1::SECURE_BOOT_DISABLED
                                                      : parc::v1::SECURE_BOOT_ENABLED);
  hw.set_system_free_bytes(uint64_t{1 + (d.index * 13) % 80} << 30);
  // 4 GiB before 2016, then 8; a third of the newest with 16 (as seen by the system: a little
  // less than installed).
  const uint64_t ram_gib = year < 2016 ? 4 : (year >= 2021 && d.index % 3 == 0 ? 16 : 8);
  hw.set_ram_bytes((ram_gib << 30) - (uint64_t{300} << 20));
  return hw;
}

parc::v1::HardwareIdentity DeviceIdentity(const SimDevice& d) {
  parc::v1::HardwareIdentity id;
  id.set_serial(d.serial);
  id.set_product_uuid(absl::StrFormat("5e1a0000-0000-4000-8000-%012x", d.index + 1));
  id.set_machine_id(absl::StrFormat("%032x", d.index + 1));
  return id;
}

}  // namespace parc::sim
