#include "tools/bundle/bundle_tool.h"

#include <sys/stat.h>

#include <set>
#include <sstream>

#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/bundle_trust.h"
#include "common/cli_args.h"
#include "common/crypto.h"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/inventory_util.h"
#include "common/proto_json.h"
#include "common/status_macros.h"
#include "common/toml_text.h"
#include "common/units.h"

namespace parc::bundle {
namespace {

absl::Status SpecError(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::StatusOr<std::vector<std::string>> StringList(const toml::table& t, const char* key,
                                                    const std::string& where) {
  std::vector<std::string> out;
  const toml::node* node = t.get(key);
  if (node == nullptr) return out;
  const toml::array* arr = node->as_array();
  if (arr == nullptr) return SpecError(where, absl::StrCat(key, " must be a list of strings"));
  for (const auto& item : *arr) {
    auto v = item.value<std::string>();
    if (!v) return SpecError(where, absl::StrCat(key, " must be a list of strings"));
    out.push_back(*v);
  }
  return out;
}

absl::StatusOr<uint32_t> Seconds(const toml::table& t, const char* key, const std::string& where) {
  auto v = t[key].value<std::string>();
  if (!v) return 0u;
  auto d = common::ParseDuration(*v);
  if (!d.ok()) return SpecError(where, absl::StrCat(key, ": ", d.status().message()));
  return static_cast<uint32_t>(absl::ToInt64Seconds(*d));
}

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

absl::StatusOr<absl::Time> ParseExpiry(const std::string& text, absl::Time now) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &err)) return t;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return t;
  auto d = common::ParseDuration(text);
  if (d.ok()) return now + *d;
  return absl::InvalidArgumentError(
      absl::StrCat("expires: \"", text,
                   "\" is not a date (2027-08-31), a time (RFC 3339) or a duration (365d)"));
}

absl::Status CopyFile(const std::string& from, const std::string& to) {
  PARC_ASSIGN_OR_RETURN(std::string data, common::ReadFile(from, size_t{8} << 30));
  return common::WriteFileAtomic(to, data, 0644);
}

}  // namespace

namespace {

// "{8-4-4-4-12 hex}", as Windows Installer writes product codes.
bool IsProductCode(absl::string_view code) {
  if (code.size() != 38 || code.front() != '{' || code.back() != '}') return false;
  for (size_t i = 1; i < 37; ++i) {
    const bool dash = i == 9 || i == 14 || i == 19 || i == 24;
    if (dash ? code[i] != '-' : !absl::ascii_isxdigit(static_cast<unsigned char>(code[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<parc::v1::BundleManifest> ParseSpec(const std::string& spec_text,
                                                   const std::string& spec_name,
                                                   const std::string& base_dir, absl::Time now,
                                                   std::vector<std::string>* artifact_paths) {
  PARC_ASSIGN_OR_RETURN(std::string ascii, common::AsciiToml(spec_text, spec_name));
  toml::parse_result parsed = toml::parse(ascii, spec_name);
  if (!parsed) {
    return absl::InvalidArgumentError(absl::StrCat(spec_name, ":",
                                                   parsed.error().source().begin.line, ": ",
                                                   std::string(parsed.error().description())));
  }
  const toml::table& t = parsed.table();
  parc::v1::BundleManifest m;
  m.set_name(t["name"].value_or(std::string()));
  m.set_version(t["version"].value_or(std::string()));
  if (!ValidId(m.name())) return SpecError(spec_name, "name must be set ([A-Za-z0-9._-])");
  if (m.version().empty()) return SpecError(spec_name, "version must be set");
  // An integer only: toml++ converts a float such as 1e300 to an integer without checking its
  // range (undefined behaviour).
  const toml::value<int64_t>* sequence = t["sequence"].as_integer();
  if (sequence == nullptr || sequence->get() < 1) {
    return SpecError(spec_name, "sequence must be a whole number ≥ 1");
  }
  m.set_sequence(static_cast<uint64_t>(sequence->get()));
  auto expires = t["expires"].value<std::string>();
  if (!expires)
    return SpecError(spec_name, "expires must be set (e.g. \"2027-08-31\" or \"365d\")");
  PARC_ASSIGN_OR_RETURN(absl::Time expiry, ParseExpiry(*expires, now));
  if (expiry <= now) return SpecError(spec_name, "expires is in the past");
  m.set_created_at(absl::ToUnixSeconds(now));
  m.set_expires_at(absl::ToUnixSeconds(expiry));
  // What a device needs to take the bundle (fleet health on the server).
  if (const toml::node* req = t.get("requirements")) {
    const toml::table* r = req->as_table();
    if (r == nullptr) return SpecError(spec_name, "[requirements] must be a table");
    for (const auto& [toml_key, value] : *r) {
      const std::string key(toml_key.str());
      const bool installed = key == "installed_size";
      if (!installed && key != "min_ram") {
        return SpecError(
            spec_name, absl::StrCat("[requirements] ", key, ": unknown (installed_size, min_ram)"));
      }
      auto text = value.value<std::string>();
      absl::StatusOr<uint64_t> bytes =
          text ? common::ParseByteSize(*text) : absl::InvalidArgumentError("not a string");
      if (!bytes.ok() || *bytes == 0 || *bytes > (uint64_t{1} << 50)) {
        return SpecError(
            spec_name, absl::StrCat("[requirements] ", key, " must be a size such as \"12 GiB\""));
      }
      if (installed) {
        m.mutable_requirements()->set_installed_bytes(*bytes);
      } else {
        m.mutable_requirements()->set_min_ram_bytes(*bytes);
      }
    }
  }

  const toml::array* packages = t["packages"].as_array();
  if (packages == nullptr || packages->empty()) {
    return SpecError(spec_name, "no [[packages]]");
  }
  std::set<std::string> ids;
  size_t index = 0;
  for (const auto& node : *packages) {
    const toml::table* p = node.as_table();
    std::string where = absl::StrCat(spec_name, ": packages[", index++, "]");
    if (p == nullptr) return SpecError(where, "must be a table");
    parc::v1::PackageSpec* pkg = m.add_packages();
    pkg->set_id((*p)["id"].value_or(std::string()));
    where = absl::StrCat(where, " (", pkg->id(), ")");
    if (!ValidId(pkg->id())) return SpecError(where, "id must be set ([A-Za-z0-9._-], ≤ 64)");
    if (!ids.insert(pkg->id()).second) return SpecError(where, "id used twice");
    pkg->set_version((*p)["version"].value_or(std::string()));
    if (pkg->version().empty()) return SpecError(where, "version must be set");
    PARC_ASSIGN_OR_RETURN(auto kinds, StringList(*p, "kinds", where));
    for (const auto& k : kinds) {
      auto kind = common::ParseKind(k);
      if (!kind.ok()) return SpecError(where, absl::StrCat("kinds: ", kind.status().message()));
      pkg->add_kinds(*kind);
    }
    std::string artifact = (*p)["artifact"].value_or(std::string());
    if (artifact.empty()) return SpecError(where, "artifact must name a file");
    std::string path = artifact[0] == '/' ? artifact : absl::StrCat(base_dir, "/", artifact);
    auto content = common::ReadFile(path, size_t{8} << 30);
    if (!content.ok())
      return SpecError(where, absl::StrCat("artifact: ", content.status().message()));
    pkg->mutable_artifact()->set_sha256(common::Sha256Hex(*content));
    pkg->mutable_artifact()->set_size(content->size());
    pkg->mutable_artifact()->set_filename(artifact.substr(artifact.find_last_of('/') + 1));
    if (artifact_paths != nullptr) artifact_paths->push_back(path);

    std::string type = (*p)["type"].value_or(std::string());
    if (type == "archive") {
      std::string target = (*p)["target_dir"].value_or(std::string());
      // "/opt/..." for Linux devices, "C:\\..." for Windows devices.
      const bool windows = common::IsWindowsDirectory(target);
      if (!windows && (target.empty() || target[0] != '/')) {
        return SpecError(where,
                         "target_dir must be an absolute directory for type archive (/opt/... "
                         "for Linux devices, C:\\... for Windows devices)");
      }
      pkg->mutable_archive()->set_target_dir(target);
    } else if (type == "command") {
      PARC_ASSIGN_OR_RETURN(auto install, StringList(*p, "install", where));
      if (install.empty())
        return SpecError(where, "install must be a command (list) for type command");
      PARC_ASSIGN_OR_RETURN(auto remove, StringList(*p, "remove", where));
      PARC_ASSIGN_OR_RETURN(uint32_t timeout, Seconds(*p, "timeout", where));
      auto* c = pkg->mutable_command();
      for (auto& a : install) c->mutable_install()->add_argv(a);
      c->mutable_install()->set_timeout_seconds(timeout);
      for (auto& a : remove) c->mutable_remove()->add_argv(a);
      c->mutable_remove()->set_timeout_seconds(timeout);
    } else if (type == "deb") {
      std::string name = (*p)["deb_package"].value_or(std::string());
      if (name.empty()) return SpecError(where, "deb_package must name the Debian package");
      pkg->mutable_deb()->set_package_name(name);
    } else if (type == "msi") {
      // Windows Installer: the product code finds it installed and removes it.
      std::string code = (*p)["product_code"].value_or(std::string());
      if (!code.empty() && !IsProductCode(code)) {
        return SpecError(where, "product_code must be a {GUID} (e.g. the MSI's ProductCode)");
      }
      PARC_ASSIGN_OR_RETURN(auto properties, StringList(*p, "properties", where));
      auto* msi = pkg->mutable_msi();
      msi->set_product_code(code);
      for (auto& prop : properties) {
        if (prop.find('=') == std::string::npos) {
          return SpecError(where, absl::StrCat("properties: \"", prop, "\" is not NAME=value"));
        }
        msi->add_properties(prop);
      }
    } else if (type == "exe") {
      PARC_ASSIGN_OR_RETURN(auto args, StringList(*p, "args", where));
      PARC_ASSIGN_OR_RETURN(auto remove, StringList(*p, "remove", where));
      PARC_ASSIGN_OR_RETURN(uint32_t timeout, Seconds(*p, "timeout", where));
      auto* exe = pkg->mutable_exe();
      for (auto& a : args) exe->add_args(a);
      exe->set_timeout_seconds(timeout);
      for (auto& a : remove) exe->mutable_remove()->add_argv(a);
      exe->mutable_remove()->set_timeout_seconds(timeout);
    } else {
      return SpecError(
          where, absl::StrCat("type \"", type, "\" must be archive, command, deb, msi or exe"));
    }
    // Windows: detection among the installed products (Apps & features).
    if (const toml::table* installed = (*p)["detect_installed"].as_table()) {
      auto* d = pkg->mutable_detect_installed();
      d->set_product_code((*installed)["product_code"].value_or(std::string()));
      d->set_display_name((*installed)["display_name"].value_or(std::string()));
      d->set_display_version((*installed)["display_version"].value_or(std::string()));
      if (!d->product_code().empty() && !IsProductCode(d->product_code())) {
        return SpecError(where, "detect_installed.product_code must be a {GUID}");
      }
      if (d->product_code().empty() && d->display_name().empty()) {
        return SpecError(where, "detect_installed needs product_code or display_name");
      }
    }
    PARC_ASSIGN_OR_RETURN(auto detect, StringList(*p, "detect", where));
    PARC_ASSIGN_OR_RETURN(uint32_t detect_timeout, Seconds(*p, "detect_timeout", where));
    for (auto& a : detect) pkg->mutable_detect()->add_argv(a);
    if (!detect.empty()) pkg->mutable_detect()->set_timeout_seconds(detect_timeout);
  }
  return m;
}

absl::StatusOr<parc::v1::SignedManifest> ReadBundleDir(const std::string& dir) {
  PARC_ASSIGN_OR_RETURN(std::string bytes,
                        common::ReadFile(absl::StrCat(dir, "/", kSignedManifestFile), 16 << 20));
  parc::v1::SignedManifest sm;
  if (!sm.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, "/", kSignedManifestFile, " is not a signed bundle manifest"));
  }
  return sm;
}

absl::Status WriteSignedManifest(const std::string& dir, const parc::v1::SignedManifest& sm) {
  return common::WriteFileAtomic(absl::StrCat(dir, "/", kSignedManifestFile),
                                 sm.SerializeAsString(), 0644);
}

namespace {

int Fail(std::ostream& err, const absl::Status& s) {
  err << "parc-bundle: " << s.message() << "\n";
  return 1;
}

int Keygen(const std::string& out_name, std::ostream& out, std::ostream& err) {
  std::string key_path = out_name + ".key", pub_path = out_name + ".pub";
  if (common::PathExists(key_path) || common::PathExists(pub_path)) {
    err << "parc-bundle: " << key_path << " or " << pub_path << " already exists\n";
    return 1;
  }
  auto pair = common::SigningKey::Generate();
  if (!pair.ok()) return Fail(err, pair.status());
  absl::Status s;
  if (size_t slash = out_name.find_last_of('/'); slash != std::string::npos && slash > 0) {
    s = common::MakeDirs(out_name.substr(0, slash), 0700);
  }
  if (s.ok()) s = common::WriteFileAtomic(key_path, pair->first, 0600);
  if (s.ok()) s = common::WriteFileAtomic(pub_path, pair->second, 0644);
  if (!s.ok()) return Fail(err, s);
  auto pub = common::ParsePublicKey(pair->second, out_name);
  out << "Private key " << key_path << " (keep it offline), public key " << pub_path << ", key id "
      << (pub.ok() ? pub->key_id : "?") << "\n";
  return 0;
}

int Build(const std::string& spec_path, const std::string& key_path, const std::string& out_dir,
          std::ostream& out, std::ostream& err) {
  auto key = common::SigningKey::Load(key_path);
  if (!key.ok()) return Fail(err, key.status());
  auto text = common::ReadFile(spec_path, 1 << 20);
  if (!text.ok()) return Fail(err, text.status());
  std::string base = spec_path.find('/') == std::string::npos
                         ? "."
                         : spec_path.substr(0, spec_path.find_last_of('/'));
  std::vector<std::string> paths;
  auto manifest = ParseSpec(*text, spec_path, base, absl::Now(), &paths);
  if (!manifest.ok()) return Fail(err, manifest.status());
  absl::Status s = common::MakeDirs(absl::StrCat(out_dir, "/", kArtifactsDir));
  for (int i = 0; s.ok() && i < manifest->packages_size(); ++i) {
    s = CopyFile(
        paths[static_cast<size_t>(i)],
        absl::StrCat(out_dir, "/", kArtifactsDir, "/", manifest->packages(i).artifact().sha256()));
  }
  if (!s.ok()) return Fail(err, s);
  parc::v1::SignedManifest sm;
  sm.set_manifest(manifest->SerializeAsString());
  auto sig = key->Sign(sm.manifest());
  if (!sig.ok()) return Fail(err, sig.status());
  auto* entry = sm.add_signatures();
  entry->set_key_id(key->public_key().key_id);
  entry->set_signature(*sig);
  s = WriteSignedManifest(out_dir, sm);
  if (s.ok()) {
    s = common::WriteFileAtomic(absl::StrCat(out_dir, "/", kManifestJsonFile),
                                common::ToJson(*manifest), 0644);
  }
  if (!s.ok()) return Fail(err, s);
  out << "Built " << manifest->name() << "@" << manifest->version() << " (sequence "
      << manifest->sequence() << ", " << manifest->packages_size() << " packages) in " << out_dir
      << ", signed by " << key->public_key().name << " (" << key->public_key().key_id << ")\n";
  return 0;
}

int Sign(const std::string& dir, const std::string& key_path, std::ostream& out,
         std::ostream& err) {
  auto key = common::SigningKey::Load(key_path);
  if (!key.ok()) return Fail(err, key.status());
  auto sm = ReadBundleDir(dir);
  if (!sm.ok()) return Fail(err, sm.status());
  parc::v1::BundleManifest manifest;
  if (!manifest.ParseFromString(sm->manifest())) {
    err << "parc-bundle: " << dir << ": the manifest is unreadable\n";
    return 1;
  }
  for (const auto& s : sm->signatures()) {
    if (s.key_id() == key->public_key().key_id) {
      err << "parc-bundle: " << dir << " is already signed by " << key->public_key().key_id << "\n";
      return 1;
    }
  }
  auto sig = key->Sign(sm->manifest());
  if (!sig.ok()) return Fail(err, sig.status());
  auto* entry = sm->add_signatures();
  entry->set_key_id(key->public_key().key_id);
  entry->set_signature(*sig);
  absl::Status s = WriteSignedManifest(dir, *sm);
  if (!s.ok()) return Fail(err, s);
  out << "Co-signed " << manifest.name() << "@" << manifest.version() << " with "
      << key->public_key().name << " (" << key->public_key().key_id << "); "
      << sm->signatures_size() << " signatures\n";
  return 0;
}

int Verify(const std::string& dir, const std::vector<std::string>& pubs, int threshold,
           std::ostream& out, std::ostream& err) {
  common::TrustPolicy policy;
  for (const auto& p : pubs) {
    auto key = common::LoadPublicKey(p);
    if (!key.ok()) return Fail(err, key.status());
    policy.keys.push_back(*key);
  }
  policy.threshold = threshold;
  policy.now = absl::Now();
  auto sm = ReadBundleDir(dir);
  if (!sm.ok()) return Fail(err, sm.status());
  auto manifest = common::VerifyManifest(*sm, policy);
  if (!manifest.ok()) {
    err << "parc-bundle: " << dir << ": REFUSED (" << common::TrustReason(manifest.status())
        << "): " << manifest.status().message() << "\n";
    return 1;
  }
  int problems = 0;
  for (const auto& pkg : manifest->packages()) {
    std::string path = absl::StrCat(dir, "/", kArtifactsDir, "/", pkg.artifact().sha256());
    auto content = common::ReadFile(path, size_t{8} << 30);
    if (!content.ok()) {
      err << "parc-bundle: package " << pkg.id() << ": artifact " << pkg.artifact().sha256()
          << " missing (" << content.status().message() << ")\n";
      ++problems;
      continue;
    }
    if (content->size() != pkg.artifact().size()) {
      err << "parc-bundle: package " << pkg.id() << ": artifact " << pkg.artifact().sha256()
          << " is " << content->size() << " bytes, the manifest says " << pkg.artifact().size()
          << "\n";
      ++problems;
      continue;
    }
    std::string actual = common::Sha256Hex(*content);
    if (actual != pkg.artifact().sha256()) {
      err << "parc-bundle: package " << pkg.id() << ": artifact hash mismatch: expected "
          << pkg.artifact().sha256() << ", found " << actual << "\n";
      ++problems;
    }
  }
  if (problems > 0) return 1;
  std::vector<std::string> signers;
  for (const auto& s : sm->signatures()) signers.push_back(s.key_id());
  out << manifest->name() << "@" << manifest->version() << " (sequence " << manifest->sequence()
      << "): signatures OK (" << absl::StrJoin(signers, ", ") << "; " << threshold << " required), "
      << manifest->packages_size() << " artifacts OK\n";
  return 0;
}

}  // namespace

int BundleMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"parc-bundle: build, sign and verify Parc application bundles (offline).",
               "parc-bundle"};
  app.require_subcommand(1);
  app.set_version_flag("--version", PARC_VERSION);
  app.set_help_all_flag("--help-all", "Print the help of every command and exit");
  app.footer(
      "Examples:\n"
      "  parc-bundle keygen --out toulouse\n"
      "  parc-bundle build mcnl-2026.toml --key toulouse.key --out mcnl-2026.1\n"
      "  parc-bundle sign mcnl-2026.1 --key montpellier.key\n"
      "  parc-bundle verify mcnl-2026.1 --pub toulouse.pub --pub montpellier.pub --threshold 2\n"
      "Exit status: 0 success, 1 failure (what is wrong on stderr), 2 bad usage.");
  std::string name, spec, key, dir;
  std::vector<std::string> pubs;
  int threshold = 1;
  auto* keygen = app.add_subcommand("keygen", "Generate an Ed25519 publisher key pair");
  keygen->add_option("--out", name, "Writes NAME.key (0600) and NAME.pub")->required();
  auto* build = app.add_subcommand("build", "Build and sign a bundle from a spec");
  build->add_option("SPEC", spec, "Bundle spec (TOML)")->required();
  build->add_option("--key", key, "Private key")->required();
  build->add_option("--out", dir, "Output directory")->required();
  auto* sign = app.add_subcommand("sign", "Co-sign a built bundle");
  sign->add_option("DIR", dir, "Bundle directory")->required();
  sign->add_option("--key", key, "Private key")->required();
  auto* verify = app.add_subcommand("verify", "Verify signatures and artifacts of a bundle");
  verify->add_option("DIR", dir, "Bundle directory")->required();
  verify->add_option("--pub", pubs, "Trusted public key (repeatable)")->required();
  verify->add_option("--threshold", threshold, "Valid signatures required")->capture_default_str();
  if (auto exit_status = common::ParseCommandLine(app, args, out, err)) return *exit_status;
  if (keygen->parsed()) return Keygen(name, out, err);
  if (build->parsed()) return Build(spec, key, dir, out, err);
  if (sign->parsed()) return Sign(dir, key, out, err);
  if (verify->parsed()) return Verify(dir, pubs, threshold, out, err);
  return 2;
}

}  // namespace parc::bundle
