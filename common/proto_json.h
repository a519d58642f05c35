#pragma once

#include <string>

#include "google/protobuf/message.h"

namespace parc::common {

// Indented JSON with the .proto field names (snake_case), for scripts.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace parc::common
