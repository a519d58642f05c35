#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "parc/v1/agent.pb.h"
#include "parc/v1/inventory.pb.h"

namespace parc::sim {

// A simulated region shaped like Occitanie: establishments with valid UAIs in its 13
// départements; lycées with hundreds of laptops (70 % of the devices), collèges with carts of
// 15 tablets, écoles with an interactive display and a few tablets, some desktops.
struct SimEstablishment {
  std::string uai;
  std::string name;
  std::string type;  // Lycée, Collège, Ecole
  std::string commune_code;
  std::string commune_name;
  std::string departement;
};

struct SimDevice {
  uint32_t index = 0;
  std::string serial;
  std::string uai;
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_LAPTOP;
  // Master image the device was cloned from, and whether it has a few packages of its own.
  uint32_t image = 0;
  bool variant = false;
};

struct Fleet {
  std::vector<SimEstablishment> establishments;
  std::vector<SimDevice> devices;
};

inline constexpr uint32_t kImages = 48;

Fleet MakeFleet(uint32_t devices, uint32_t seed = 1);

// CSV files as the operators would import them.
std::string AnnuaireCsv(const Fleet& fleet);
std::string DeliveryCsv(const Fleet& fleet);
// One line per device: index, serial, uai, kind, image, variant (tab-separated).
std::string FleetTsv(const Fleet& fleet);
[[nodiscard]] bool ParseFleetTsv(const std::string& text, std::vector<SimDevice>* devices);

// About 1,000 Debian packages per image: a base shared by images of the same release, plus
// the image's own applications.
const parc::v1::SoftwareList& ImageSoftware(uint32_t image);
// The device's list: its image's, plus a few packages of its own for variants.
parc::v1::SoftwareList DeviceSoftware(const SimDevice& device);
parc::v1::Hardware DeviceHardware(const SimDevice& device);
parc::v1::HardwareIdentity DeviceIdentity(const SimDevice& device);

}  // namespace parc::sim
