#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parc/v1/bundle.pb.h"

namespace parc::bundle {

// A bundle directory as parc-bundle writes it and parcctl publishes it:
//   DIR/bundle.pb              the SignedManifest (manifest bytes and signatures)
//   DIR/manifest.json          the manifest in JSON, for people (not trusted)
//   DIR/artifacts/<sha256>     every artifact, named by content
inline constexpr char kSignedManifestFile[] = "bundle.pb";
inline constexpr char kManifestJsonFile[] = "manifest.json";
inline constexpr char kArtifactsDir[] = "artifacts";

// Parses a human-edited bundle spec (TOML) into a manifest. Artifact paths are resolved
// relative to base_dir; sizes and hashes are computed here. Errors name the package and field.
[[nodiscard]] absl::StatusOr<parc::v1::BundleManifest> ParseSpec(
    const std::string& spec_text, const std::string& spec_name, const std::string& base_dir,
    absl::Time now, std::vector<std::string>* artifact_paths);

[[nodiscard]] absl::StatusOr<parc::v1::SignedManifest> ReadBundleDir(const std::string& dir);
[[nodiscard]] absl::Status WriteSignedManifest(const std::string& dir,
                                               const parc::v1::SignedManifest& signed_manifest);

// The parc-bundle command line (keygen, build, sign, verify). Returns the exit status.
int BundleMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace parc::bundle
