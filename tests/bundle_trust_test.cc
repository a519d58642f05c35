#include "common/bundle_trust.h"

#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tools/bundle/bundle_tool.h"

namespace parc::common {
namespace {

struct Keys {
  SigningKey toulouse, montpellier, stranger;
};

Keys MakeKeys() {
  auto make = [](const char* name) {
    auto pair = SigningKey::Generate();
    EXPECT_TRUE(pair.ok());
    parc::testing::TempDir dir;
    std::string path = dir.Sub(std::string(name) + ".key");
    parc::testing::WriteFile(path, pair->first);
    auto key = SigningKey::Load(path);
    EXPECT_TRUE(key.ok()) << key.status();
    return *key;
  };
  return {make("toulouse"), make("montpellier"), make("stranger")};
}

parc::v1::SignedManifest Sign(const parc::v1::BundleManifest& m,
                              std::vector<const SigningKey*> keys) {
  parc::v1::SignedManifest sm;
  sm.set_manifest(m.SerializeAsString());
  for (const SigningKey* k : keys) {
    auto* s = sm.add_signatures();
    s->set_key_id(k->public_key().key_id);
    s->set_signature(*k->Sign(sm.manifest()));
  }
  return sm;
}

class TrustTest : public ::testing::Test {
 protected:
  TrustTest() : keys_(MakeKeys()) {
    manifest_.set_name("mcnl");
    manifest_.set_version("2026.1");
    manifest_.set_sequence(5);
    manifest_.set_expires_at(absl::ToUnixSeconds(now_ + absl::Hours(24 * 300)));
    policy_.keys = {keys_.toulouse.public_key(), keys_.montpellier.public_key()};
    policy_.threshold = 1;
    policy_.now = now_;
  }
  std::string Refusal(const parc::v1::SignedManifest& sm) {
    auto r = VerifyManifest(sm, policy_);
    EXPECT_FALSE(r.ok());
    return TrustReason(r.status());
  }
  absl::Time now_ = absl::FromUnixSeconds(1790000000);
  Keys keys_;
  parc::v1::BundleManifest manifest_;
  TrustPolicy policy_;
};

TEST_F(TrustTest, AcceptsTrustedSignatures) {
  auto r = VerifyManifest(Sign(manifest_, {&keys_.toulouse}), policy_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version(), "2026.1");
  policy_.threshold = 2;
  EXPECT_TRUE(VerifyManifest(Sign(manifest_, {&keys_.toulouse, &keys_.montpellier}), policy_).ok());
  // An extra signature by an unknown key does not hurt.
  EXPECT_TRUE(VerifyManifest(
                  Sign(manifest_, {&keys_.toulouse, &keys_.stranger, &keys_.montpellier}), policy_)
                  .ok());
}

TEST_F(TrustTest, EachRefusalHasItsOwnReason) {
  EXPECT_EQ(Refusal(Sign(manifest_, {})), kReasonUnsigned);
  EXPECT_EQ(Refusal(Sign(manifest_, {&keys_.stranger})), kReasonUnknownKey);

  auto tampered = Sign(manifest_, {&keys_.toulouse});
  std::string bytes = tampered.manifest();
  bytes[bytes.size() - 1] ^= 1;
  tampered.set_manifest(bytes);
  EXPECT_EQ(Refusal(tampered), kReasonBadSignature);

  auto forged = Sign(manifest_, {&keys_.toulouse});
  forged.mutable_signatures(0)->set_key_id(keys_.montpellier.public_key().key_id);
  EXPECT_EQ(Refusal(forged), kReasonBadSignature);

  policy_.threshold = 2;
  EXPECT_EQ(Refusal(Sign(manifest_, {&keys_.toulouse})), kReasonBelowThreshold);
  EXPECT_EQ(Refusal(Sign(manifest_, {&keys_.toulouse, &keys_.toulouse})), kReasonBelowThreshold);
  policy_.threshold = 1;

  policy_.now = now_ + absl::Hours(24 * 301);
  EXPECT_EQ(Refusal(Sign(manifest_, {&keys_.toulouse})), kReasonExpired);
  policy_.now = now_;

  policy_.min_sequence = 6;
  auto rollback = VerifyManifest(Sign(manifest_, {&keys_.toulouse}), policy_);
  EXPECT_EQ(TrustReason(rollback.status()), kReasonRollback);
  EXPECT_NE(rollback.status().message().find("sequence 5"), absl::string_view::npos);
  policy_.min_sequence = 5;  // the same sequence again is fine
  EXPECT_TRUE(VerifyManifest(Sign(manifest_, {&keys_.toulouse}), policy_).ok());
}

TEST(BundleSpec, ErrorsNameThePackageAndField) {
  parc::testing::TempDir dir;
  parc::testing::WriteFile(dir.Sub("a.bin"), "payload");
  auto parse = [&](const std::string& text) {
    return parc::bundle::ParseSpec(text, "mcnl.toml", dir.path(), absl::FromUnixSeconds(1790000000),
                                   nullptr);
  };
  std::string head = "name = \"mcnl\"\nversion = \"2026.1\"\nsequence = 1\nexpires = \"365d\"\n";
  auto ok = parse(head +
                  "[[packages]]\nid = \"a\"\nversion = \"1\"\nartifact = \"a.bin\"\n"
                  "type = \"deb\"\ndeb_package = \"a\"\nkinds = [\"laptop\"]\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->packages(0).artifact().size(), 7u);
  EXPECT_EQ(ok->packages(0).kinds(0), parc::v1::DEVICE_KIND_LAPTOP);
  auto bad_type = parse(head +
                        "[[packages]]\nid = \"a\"\nversion = \"1\"\nartifact = \"a.bin\"\n"
                        "type = \"rpm\"\n");
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.status().message().find(
                "packages[0] (a): type \"rpm\" must be archive, command, deb, msi or exe"),
            absl::string_view::npos)
      << bad_type.status();
  // Windows packages: msi with its product code, exe with its arguments and detection.
  auto windows = parse(head +
                       "[[packages]]\nid = \"geogebra\"\nversion = \"6.0.850\"\n"
                       "artifact = \"a.bin\"\ntype = \"msi\"\n"
                       "product_code = \"{5C5C5C5C-1234-4ABC-9DEF-0123456789AB}\"\n"
                       "properties = [\"ALLUSERS=1\"]\n"
                       "[[packages]]\nid = \"scratch\"\nversion = \"3.29.1\"\n"
                       "artifact = \"a.bin\"\ntype = \"exe\"\nargs = [\"/S\"]\n"
                       "detect_installed = { display_name = \"Scratch 3\" }\n");
  ASSERT_TRUE(windows.ok()) << windows.status();
  EXPECT_EQ(windows->packages(0).msi().product_code(), "{5C5C5C5C-1234-4ABC-9DEF-0123456789AB}");
  EXPECT_EQ(windows->packages(0).msi().properties(0), "ALLUSERS=1");
  EXPECT_EQ(windows->packages(1).exe().args(0), "/S");
  EXPECT_EQ(windows->packages(1).detect_installed().display_name(), "Scratch 3");
  // Archives: a Linux or a Windows absolute directory, nothing relative.
  auto archives = parse(head +
                        "[[packages]]\nid = \"atlas\"\nversion = \"1\"\nartifact = \"a.bin\"\n"
                        "type = \"archive\"\ntarget_dir = 'C:\\Program Files\\Atlas'\n"
                        "[[packages]]\nid = \"atlas-linux\"\nversion = \"1\"\n"
                        "artifact = \"a.bin\"\ntype = \"archive\"\ntarget_dir = \"/opt/atlas\"\n");
  ASSERT_TRUE(archives.ok()) << archives.status();
  EXPECT_EQ(archives->packages(0).archive().target_dir(), "C:\\Program Files\\Atlas");
  auto relative = parse(head +
                        "[[packages]]\nid = \"r\"\nversion = \"1\"\nartifact = \"a.bin\"\n"
                        "type = \"archive\"\ntarget_dir = 'Program Files\\Atlas'\n");
  ASSERT_FALSE(relative.ok());
  EXPECT_NE(relative.status().message().find("(r): target_dir must be an absolute directory"),
            absl::string_view::npos)
      << relative.status();
  auto bad_code = parse(head +
                        "[[packages]]\nid = \"g\"\nversion = \"1\"\nartifact = \"a.bin\"\n"
                        "type = \"msi\"\nproduct_code = \"5C5C5C5C\"\n");
  ASSERT_FALSE(bad_code.ok());
  EXPECT_NE(bad_code.status().message().find("(g): product_code must be a {GUID}"),
            absl::string_view::npos)
      << bad_code.status();
  auto bad_property = parse(head +
                            "[[packages]]\nid = \"g\"\nversion = \"1\"\n"
                            "artifact = \"a.bin\"\ntype = \"msi\"\nproperties = [\"QUIET\"]\n");
  ASSERT_FALSE(bad_property.ok());
  EXPECT_NE(bad_property.status().message().find("\"QUIET\" is not NAME=value"),
            absl::string_view::npos)
      << bad_property.status();
  auto missing = parse(head +
                       "[[packages]]\nid = \"b\"\nversion = \"1\"\nartifact = \"nope\"\n"
                       "type = \"deb\"\ndeb_package = \"b\"\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("(b): artifact"), absl::string_view::npos);
  EXPECT_FALSE(parse("name = \"mcnl\"\n").ok());
  auto float_sequence =
      parse("name = \"mcnl\"\nversion = \"2026.1\"\nsequence = 1e300\nexpires = \"365d\"\n");
  ASSERT_FALSE(float_sequence.ok());
  EXPECT_NE(float_sequence.status().message().find("sequence must be a whole number"),
            absl::string_view::npos)
      << float_sequence.status();
}

}  // namespace
}  // namespace parc::common
