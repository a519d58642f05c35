#include "server/inventory_request.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <climits>
#include <utility>

#include "absl/status/status.h"
#include "parc/v1/agent.pb.h"

namespace parc::server {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

constexpr uint32_t Tag(int field, WireFormatLite::WireType type) {
  return static_cast<uint32_t>(field) << 3 | static_cast<uint32_t>(type);
}

constexpr uint32_t kInventoryHash = Tag(parc::v1::ReportInventoryRequest::kInventoryHashFieldNumber,
                                        WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kSoftwareHash = Tag(parc::v1::ReportInventoryRequest::kSoftwareHashFieldNumber,
                                       WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kInventory = Tag(parc::v1::ReportInventoryRequest::kInventoryFieldNumber,
                                    WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kCollectedAt =
    Tag(parc::v1::ReportInventoryRequest::kCollectedAtFieldNumber, WireFormatLite::WIRETYPE_VARINT);
constexpr uint32_t kHardware =
    Tag(parc::v1::Inventory::kHardwareFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kSoftware =
    Tag(parc::v1::Inventory::kSoftwareFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kPackage =
    Tag(parc::v1::SoftwareList::kPackagesFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);

// Counts the packages of the SoftwareList encoding the next `length` bytes hold, skipping
// over them, into *packages (nullopt when they are not one, and from then on). False only
// when the message itself ends before them.
bool WalkSoftware(CodedInputStream* in, int length, std::optional<int>* packages) {
  const CodedInputStream::Limit limit = in->PushLimit(length);
  int n = 0;
  bool broken = false;
  for (uint32_t tag = in->ReadTag(); tag != 0; tag = in->ReadTag()) {
    if (tag == kPackage) {
      uint32_t size = 0;
      if (!in->ReadVarint32(&size) || size > INT_MAX || !in->Skip(static_cast<int>(size))) {
        broken = true;
        break;
      }
      ++n;
    } else if (!WireFormatLite::SkipField(in, tag)) {
      broken = true;
      break;
    }
  }
  const int left = in->BytesUntilLimit();
  if (broken || left != 0 || !in->ConsumedEntireMessage()) {
    *packages = std::nullopt;
    // Past what is left of the list: the message goes on after it.
    if (left > 0 && !in->Skip(left)) return false;
  } else if (packages->has_value()) {
    **packages += n;
  }
  in->PopLimit(limit);
  return true;
}

absl::Status ReadAgainError() {
  return absl::InternalError("inventory.software: the request's bytes could not be read again");
}

}  // namespace

bool InventoryRequest::Parse(const grpc::ByteBuffer& message) {
  message_ = message;  // the slices are shared, not copied
  return ParseKept();
}

bool InventoryRequest::ParseFromArray(const void* data, int size) {
  message_ = std::string(static_cast<const char*>(data), static_cast<size_t>(size));
  return ParseKept();
}

bool InventoryRequest::ParseKept() {
  inventory_hash_.clear();
  software_hash_.clear();
  collected_at_ = 0;
  hardware_.Clear();
  software_.clear();
  software_size_ = 0;
  software_packages_ = 0;
  auto parse = [this](CodedInputStream* in) {
    for (uint32_t tag = in->ReadTag(); tag != 0; tag = in->ReadTag()) {
      switch (tag) {
        case kInventoryHash:
          if (!WireFormatLite::ReadString(in, &inventory_hash_)) return false;
          break;
        case kSoftwareHash:
          if (!WireFormatLite::ReadString(in, &software_hash_)) return false;
          break;
        case kCollectedAt: {
          uint64_t v = 0;
          if (!in->ReadVarint64(&v)) return false;
          collected_at_ = static_cast<int64_t>(v);
          break;
        }
        case kInventory: {
          int length = 0;
          if (!in->ReadVarintSizeAsInt(&length)) return false;
          const CodedInputStream::Limit limit = in->PushLimit(length);
          for (uint32_t inner = in->ReadTag(); inner != 0; inner = in->ReadTag()) {
            if (inner == kHardware) {
              if (!WireFormatLite::ReadMessage(in, &hardware_)) return false;
            } else if (inner == kSoftware) {
              int size = 0;
              if (!in->ReadVarintSizeAsInt(&size)) return false;
              software_.push_back(
                  {static_cast<size_t>(in->CurrentPosition()), static_cast<size_t>(size)});
              software_size_ += static_cast<size_t>(size);
              if (!WalkSoftware(in, size, &software_packages_)) return false;
            } else if (!WireFormatLite::SkipField(in, inner)) {
              return false;
            }
          }
          // Its end reached (not the message's, cut short).
          if (!in->ConsumedEntireMessage() || in->BytesUntilLimit() != 0) return false;
          in->PopLimit(limit);
          break;
        }
        default:
          if (!WireFormatLite::SkipField(in, tag)) return false;
      }
    }
    if (!in->ConsumedEntireMessage()) return false;
    encoded_size_ = static_cast<size_t>(in->CurrentPosition());
    return true;
  };
  if (auto* bytes = std::get_if<std::string>(&message_)) {
    CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes->data()),
                        static_cast<int>(bytes->size()));
    return parse(&in);
  }
  grpc::ByteBuffer copy(std::get<grpc::ByteBuffer>(message_));
  grpc::ProtoBufferReader reader(&copy);
  if (!reader.status().ok()) return false;
  CodedInputStream in(&reader);
  return parse(&in);
}

absl::StatusOr<std::string> InventoryRequest::SoftwareBytes() const {
  std::string out;
  out.reserve(software_size_);
  if (auto* bytes = std::get_if<std::string>(&message_)) {
    for (const Range& r : software_) out.append(*bytes, r.offset, r.size);
    return out;
  }
  grpc::ByteBuffer copy(std::get<grpc::ByteBuffer>(message_));
  grpc::ProtoBufferReader reader(&copy);
  if (!reader.status().ok()) return ReadAgainError();
  CodedInputStream in(&reader);
  std::string part;
  for (const Range& r : software_) {
    const int skip = static_cast<int>(r.offset) - in.CurrentPosition();
    if (skip < 0 || !in.Skip(skip) || !in.ReadString(&part, static_cast<int>(r.size))) {
      return ReadAgainError();
    }
    out += part;
  }
  return out;
}

}  // namespace parc::server
