#include "agent/core/config.h"

// Header-only, without exceptions: parse errors come back as values (the shared library
// Debian ships is built with exceptions).
#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#include <sys/stat.h>
#include <toml++/toml.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/toml_text.h"

namespace parc::agent {
namespace {

absl::Status ReadString(const toml::table& t, const std::string& path, const char* key,
                        std::string* out) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return absl::OkStatus();
  auto v = node->value<std::string>();
  if (!v.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", node->source().begin.line, ": ", key, " must be a string"));
  }
  *out = *v;
  return absl::OkStatus();
}

// An enrollment token enrolls devices (and, with --reenroll, re-keys them): the file that holds
// it is readable by its owner only. A configuration preseeded with looser permissions (0644 by
// an image tool) is tightened; one the agent cannot tighten is reported.
void KeepTokenPrivate(const std::string& path) {
#ifdef _WIN32
  // Windows has no permission bits: ProgramData\Parc's ACL (parc-agent configure, run by the
  // MSI) keeps the file to SYSTEM and Administrators.
  (void)path;
#else
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || (st.st_mode & 077) == 0) return;
  if (::chmod(path.c_str(), st.st_mode & 0600) == 0) {
    std::fprintf(stderr,
                 "parc-agent: %s holds an enrollment token and was readable by other users: "
                 "now 0600\n",
                 path.c_str());
  } else {
    std::fprintf(stderr,
                 "parc-agent: %s holds an enrollment token and is readable by other users: "
                 "chmod 600 it\n",
                 path.c_str());
  }
#endif
}

}  // namespace

absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path, bool must_exist) {
  auto text = common::ReadFile(path, 1 << 20);
  if (absl::IsNotFound(text.status()) && !must_exist) return AgentConfig();
  PARC_RETURN_IF_ERROR(text.status());
  PARC_ASSIGN_OR_RETURN(AgentConfig config, ParseAgentConfig(*text, path));
  if (!config.enrollment_token.empty()) KeepTokenPrivate(path);
  return config;
}

absl::StatusOr<AgentConfig> ParseAgentConfig(const std::string& text, const std::string& path) {
  AgentConfig config;
  PARC_ASSIGN_OR_RETURN(std::string ascii, common::AsciiToml(text, path));
  toml::parse_result parsed = toml::parse(ascii, path);
  if (!parsed) {
    const auto& err = parsed.error();
    return absl::InvalidArgumentError(absl::StrCat(path, ":", err.source().begin.line, ":",
                                                   err.source().begin.column, ": ",
                                                   std::string(err.description())));
  }
  const toml::table& t = parsed.table();
  static const char* kKnown[] = {"server",
                                 "ca",
                                 "enrollment_token",
                                 "kind",
                                 "insecure",
                                 "state_dir",
                                 "outbox_max_reports",
                                 "publisher_keys",
                                 "signature_threshold",
                                 "cache_dir",
                                 "image_fingerprint"};
  for (const auto& [key, node] : t) {
    bool known = false;
    for (const char* k : kKnown) known |= key.str() == k;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", node.source().begin.line,
                                                     ": unknown setting \"", std::string(key.str()),
                                                     "\""));
    }
  }
  PARC_RETURN_IF_ERROR(ReadString(t, path, "server", &config.server));
  PARC_RETURN_IF_ERROR(ReadString(t, path, "ca", &config.ca));
  PARC_RETURN_IF_ERROR(ReadString(t, path, "image_fingerprint", &config.image_fingerprint));
  PARC_RETURN_IF_ERROR(ReadString(t, path, "enrollment_token", &config.enrollment_token));
  PARC_RETURN_IF_ERROR(ReadString(t, path, "kind", &config.kind));
  PARC_RETURN_IF_ERROR(ReadString(t, path, "state_dir", &config.state_dir));
  if (const toml::node* n = t.get("insecure")) {
    auto v = n->value<bool>();
    if (!v) return absl::InvalidArgumentError(absl::StrCat(path, ": insecure must be true/false"));
    config.insecure = *v;
  }
  PARC_RETURN_IF_ERROR(ReadString(t, path, "cache_dir", &config.cache_dir));
  if (const toml::node* n = t.get("publisher_keys")) {
    const toml::array* keys = n->as_array();
    if (keys == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n->source().begin.line,
                                                     ": publisher_keys must be a list of "
                                                     "file paths"));
    }
    for (const auto& k : *keys) {
      auto v = k.value<std::string>();
      if (!v) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": publisher_keys must be a list of file paths"));
      }
      config.publisher_keys.push_back(*v);
    }
  }
  // Integers only (as_integer): toml++ converts a float such as 1e300 to an integer without
  // checking its range, which is undefined behaviour (found by fuzz_agent_config).
  if (const toml::node* n = t.get("signature_threshold")) {
    const toml::value<int64_t>* v = n->as_integer();
    if (v == nullptr || v->get() < 1 || v->get() > 16) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": signature_threshold must be a number from 1 to 16"));
    }
    config.signature_threshold = static_cast<int>(v->get());
  }
  if (const toml::node* n = t.get("outbox_max_reports")) {
    const toml::value<int64_t>* v = n->as_integer();
    if (v == nullptr || v->get() < 1 || v->get() > 100000) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": outbox_max_reports must be a number from 1 to 100000"));
    }
    config.outbox_max_reports = static_cast<int>(v->get());
  }
  return config;
}

}  // namespace parc::agent
