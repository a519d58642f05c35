#pragma once

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "parc/v1/inventory.pb.h"

namespace parc::server {

// A ReportInventoryRequest (agent.proto) as the server reads it: every field parsed but the
// software list, which is only walked where it arrived (the gRPC message's slices, or the
// gRPC-Web body) to count its packages and check its encoding, and read out only when the
// server does not hold that list yet. Devices cloned from one master image send the same
// ~1,000 packages (~50 KB): copying them out only to drop them was ~2 % of a first
// inventory's server CPU. The field numbers are the agent message's own (its generated
// constants); fields the server does not know are skipped, as a generated parser would.
class InventoryRequest {
 public:
  // False when the bytes are not a ReportInventoryRequest. A software list that is not an
  // encoded SoftwareList parses here (software_packages() is then empty): the validation
  // refuses it naming the field.
  bool Parse(const grpc::ByteBuffer& message);
  bool ParseFromArray(const void* data, int size);  // a copy is kept

  const std::string& inventory_hash() const { return inventory_hash_; }
  const std::string& software_hash() const { return software_hash_; }
  int64_t collected_at() const { return collected_at_; }
  const parc::v1::Hardware& hardware() const { return hardware_; }
  parc::v1::Hardware* mutable_hardware() { return &hardware_; }
  // The whole message's size, in bytes.
  size_t encoded_size() const { return encoded_size_; }
  // The software list's size as sent (0: none sent) and its packages; nullopt when those
  // bytes are not an encoded SoftwareList. A list field sent twice is merged, as the agent's
  // message would parse it.
  size_t software_size() const { return software_size_; }
  std::optional<int> software_packages() const { return software_packages_; }
  // The software list's encoding, copied out of the message.
  absl::StatusOr<std::string> SoftwareBytes() const;

 private:
  bool ParseKept();

  std::variant<grpc::ByteBuffer, std::string> message_;
  std::string inventory_hash_;
  std::string software_hash_;
  int64_t collected_at_ = 0;
  parc::v1::Hardware hardware_;
  size_t encoded_size_ = 0;
  // Where the software list's bytes are in the message: one range as agents send it, more
  // when the field comes again (a parser then merges them: their packages follow one another).
  struct Range {
    size_t offset = 0;
    size_t size = 0;
  };
  std::vector<Range> software_;
  size_t software_size_ = 0;
  std::optional<int> software_packages_ = 0;
};

}  // namespace parc::server
