#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace parc::common {

// Text from devices or operators made safe to print on a terminal: control characters (C0,
// DEL, C1: ESC sequences that move the cursor, recolour, retitle the window or rewrite what
// was printed) and bytes that are not UTF-8 are each replaced by U+FFFD. With keep_newlines,
// '\n' and '\t' are kept (multi-line reports); otherwise they are replaced too.
std::string TerminalSafe(absl::string_view text, bool keep_newlines = false);

}  // namespace parc::common
