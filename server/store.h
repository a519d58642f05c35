#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parc/v1/admin.pb.h"
#include "parc/v1/agent.pb.h"
#include "parc/v1/inventory.pb.h"

namespace parc::server {

template <typename T>
using StoreCallback = std::function<void(absl::StatusOr<T>)>;

struct ImportCounts {
  uint32_t inserted = 0;
  uint32_t updated = 0;
  uint32_t unchanged = 0;
  // Preassignment only: enrolled, unassigned devices placed by this import.
  uint32_t placed_devices = 0;
};

struct OperatorRecord {
  std::string id;
  std::string name;
  std::string secret_hash;
  std::string role;
  std::string scope;
  absl::Time created_at;
  std::optional<absl::Time> revoked_at;
};

struct EnrollmentTokenRecord {
  std::string id;
  std::string secret_hash;
  std::string uai;  // empty: region-wide
  absl::Time created_at;
  absl::Time expires_at;
  uint32_t max_uses = 0;
  uint32_t uses = 0;
  std::optional<absl::Time> revoked_at;
  std::string note;
  std::string created_by;
};

struct Preassignment {
  uint32_t line = 0;
  std::string serial;
  std::string uai;
};

struct EnrollInput {
  std::string token_id;
  std::string token_secret_hash;
  // Hardware key the server matches re-enrollments on (see identity.h).
  std::string hw_key;
  std::string serial;
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
  bool kind_from_technician = false;
  std::string hostname;
  std::string agent_version;
  // Used when the hardware is new to the server.
  std::string new_device_id;
  // Hash of the newly issued secret; replaces the old one on re-enrollment.
  std::string secret_hash;
  absl::Time now;
};

struct EnrollOutcome {
  std::string device_id;
  std::string uai;
  std::string establishment_name;
  bool reenrolled = false;
};

// What an agent call needs to authenticate and answer.
struct DeviceAuth {
  std::string id;
  std::string secret_hash;
  std::string uai;
  std::string inventory_hash;
};

struct CheckInInput {
  std::string device_id;
  std::string agent_version;
  absl::Time now;
};

struct InventoryInput {
  std::string device_id;
  std::string inventory_hash;
  std::string software_hash;
  parc::v1::Hardware hardware;
  // Present when the agent sent the list; otherwise software_hash must already be stored.
  std::optional<parc::v1::SoftwareList> software;
  absl::Time collected_at;
  absl::Time received_at;
};

struct DeviceFilter {
  std::string uai;
  std::string departement;
  parc::v1::DeviceKind kind = parc::v1::DEVICE_KIND_UNSPECIFIED;
  // Only devices whose last check-in (or enrollment) is before this time.
  std::optional<absl::Time> seen_before;
  bool unassigned = false;
  uint32_t limit = 1000;
  // Devices with id > after.
  std::string after;
};

struct DeviceDetails {
  parc::v1::Device device;
  std::optional<parc::v1::Inventory> inventory;
  absl::Time inventory_received_at;
  uint32_t inventory_history = 0;
};

// Persistent state of parc-server. Implementations are thread-safe.
//
// Writes are asynchronous: the callback runs once the write is durable (or has failed), on a
// thread owned by the store, and must not block. Reads are synchronous and never wait for
// writes.
class Store {
 public:
  virtual ~Store() = default;

  // Operators (admin API credentials).
  virtual void CreateOperator(OperatorRecord op, StoreCallback<bool> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<OperatorRecord> GetOperator(const std::string& id) = 0;
  [[nodiscard]] virtual absl::StatusOr<int64_t> CountOperators() = 0;

  // Establishments: upsert by UAI, all rows in one transaction.
  virtual void UpsertEstablishments(std::vector<parc::v1::Establishment> rows, absl::Time now,
                                    StoreCallback<ImportCounts> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<parc::v1::Establishment>> ListEstablishments(
      const parc::v1::ListEstablishmentsRequest& filter) = 0;
  // NOT_FOUND when unknown.
  [[nodiscard]] virtual absl::StatusOr<parc::v1::Establishment> GetEstablishment(
      const std::string& uai) = 0;

  // Enrollment tokens.
  virtual void CreateEnrollmentToken(EnrollmentTokenRecord token, StoreCallback<bool> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<EnrollmentTokenRecord>>
  ListEnrollmentTokens() = 0;
  virtual void RevokeEnrollmentToken(std::string id, absl::Time now,
                                     StoreCallback<EnrollmentTokenRecord> done) = 0;

  // Serial number → establishment, from supplier delivery lists. Every UAI must exist
  // (FAILED_PRECONDITION naming the line otherwise). Places unassigned devices whose serial
  // matches.
  virtual void UpsertPreassignments(std::vector<Preassignment> rows, absl::Time now,
                                    StoreCallback<ImportCounts> done) = 0;

  // Validates the token (UNAUTHENTICATED when unknown, wrong secret, expired or revoked;
  // PERMISSION_DENIED when used up), counts its use, and creates the device or, when hw_key
  // is known, re-keys the existing one — atomically.
  virtual void Enroll(EnrollInput input, StoreCallback<EnrollOutcome> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<DeviceAuth> GetDeviceAuth(const std::string& id) = 0;
  virtual void RecordCheckIn(CheckInInput input, StoreCallback<bool> done) = 0;
  [[nodiscard]] virtual absl::StatusOr<bool> HasSoftwareSet(const std::string& hash) = 0;
  // FAILED_PRECONDITION when software is absent and software_hash unknown.
  virtual void StoreInventory(InventoryInput input, StoreCallback<bool> done) = 0;

  [[nodiscard]] virtual absl::StatusOr<std::vector<parc::v1::Device>> ListDevices(
      const DeviceFilter& filter) = 0;
  // By id, or by serial number. NOT_FOUND when neither matches.
  [[nodiscard]] virtual absl::StatusOr<DeviceDetails> GetDevice(
      const std::string& id_or_serial) = 0;

  // Deletes inventories received before cutoff, except each device's latest, and software
  // sets no inventory refers to any more. Returns the number of inventories deleted.
  virtual void PurgeInventoryHistory(absl::Time cutoff, StoreCallback<int64_t> done) = 0;
};

}  // namespace parc::server
