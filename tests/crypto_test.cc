// The platform-dependent parts of common/ (SHA-256, randomness, Ed25519, files), checked
// against published test vectors. Built and run on Linux (OpenSSL, POSIX) and on Windows (CNG,
// libgcrypt, the Windows file API, under Wine), so both agents agree on every hash, key and
// signature.
#include "common/crypto.h"

#include <filesystem>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/bundle_trust.h"
#include "common/file_util.h"
#include "common/pem.h"
#include "gtest/gtest.h"

namespace parc::common {
namespace {

std::string Unhex(absl::string_view hex) { return absl::HexStringToBytes(hex); }

// RFC 8032, section 7.1, tests 1 and 2.
struct Rfc8032Vector {
  const char* secret;
  const char* public_key;
  const char* message;
  const char* signature;
};
constexpr Rfc8032Vector kVectors[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
};

class ScratchDir {
 public:
  ScratchDir() {
    path_ = (std::filesystem::path(::testing::TempDir()) /
             absl::StrCat("parc-crypto-", RandomHex(8).value()))
                .string();
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Sub(absl::string_view name) const { return absl::StrCat(path_, "/", name); }

 private:
  std::string path_;
};

TEST(Crypto, Sha256MatchesTheStandardVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Fed in pieces (as downloads are hashed while they arrive): the same digest.
  Sha256 sha;
  sha.Update("ab");
  sha.Update("");
  sha.Update("c");
  EXPECT_EQ(sha.FinishHex(), Sha256Hex("abc"));
  const std::string million(1000000, 'a');
  EXPECT_EQ(Sha256Hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Crypto, RandomHexHasTheAskedLengthAndVaries) {
  auto a = RandomHex(16);
  auto b = RandomHex(16);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(ConstantTimeEquals(*a, *a));
  EXPECT_FALSE(ConstantTimeEquals(*a, *b));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
}

TEST(Crypto, Ed25519VerifiesTheRfc8032Vectors) {
  for (const auto& v : kVectors) {
    const std::string pub = Unhex(v.public_key), msg = Unhex(v.message), sig = Unhex(v.signature);
    EXPECT_TRUE(VerifyEd25519(pub, msg, sig)) << v.public_key;
    std::string tampered = sig;
    tampered[10] = static_cast<char>(tampered[10] ^ 1);
    EXPECT_FALSE(VerifyEd25519(pub, msg, tampered));
    EXPECT_FALSE(VerifyEd25519(pub, msg + "x", sig));
    EXPECT_FALSE(VerifyEd25519(pub, msg, sig.substr(0, 63)));
    EXPECT_FALSE(VerifyEd25519(pub.substr(0, 31), msg, sig));
  }
}

TEST(Crypto, SigningKeysReadPkcs8AndSignAsRfc8032) {
  ScratchDir dir;
  for (const auto& v : kVectors) {
    const std::string path = dir.Sub("academie.key");
    ASSERT_TRUE(
        WriteFileAtomic(
            path, PemEncode("PRIVATE KEY", absl::StrCat(kEd25519PrivateDerPrefix, Unhex(v.secret))))
            .ok());
    auto key = SigningKey::Load(path);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(absl::BytesToHexString(key->public_key().raw), v.public_key);
    EXPECT_EQ(key->public_key().name, "academie");
    auto sig = key->Sign(Unhex(v.message));
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_EQ(absl::BytesToHexString(*sig), v.signature);
  }
}

TEST(Crypto, GeneratedKeysRoundTripThroughPem) {
  ScratchDir dir;
  auto pair = SigningKey::Generate();
  ASSERT_TRUE(pair.ok()) << pair.status();
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("k.key"), pair->first).ok());
  auto key = SigningKey::Load(dir.Sub("k.key"));
  ASSERT_TRUE(key.ok()) << key.status();
  auto pub = ParsePublicKey(pair->second, "k");
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_EQ(pub->raw, key->public_key().raw);
  EXPECT_EQ(pub->key_id, KeyId(pub->raw));
  auto sig = key->Sign("MCNL 2026");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(VerifyEd25519(pub->raw, "MCNL 2026", *sig));
}

TEST(Crypto, PublicKeysOtherThanEd25519AreRefused) {
  EXPECT_FALSE(ParsePublicKey("garbage", "x").ok());
  // A P-256 SubjectPublicKeyInfo header with Ed25519's length: still refused.
  std::string der(44, '\0');
  der[0] = 0x30;
  auto status = ParsePublicKey(PemEncode("PUBLIC KEY", der), "rectorat").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("rectorat"), std::string::npos);
  EXPECT_FALSE(
      ParsePublicKey("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "x").ok());
}

TEST(Files, WriteAtomicReplacesReadsBackAndLimitsSize) {
  ScratchDir dir;
  const std::string nested = dir.Sub("a/b/c");
  ASSERT_TRUE(MakeDirs(nested, 0700).ok());
  ASSERT_TRUE(MakeDirs(nested, 0700).ok());  // again: fine
  const std::string path = nested + "/état.toml";
  EXPECT_FALSE(PathExists(path));
  EXPECT_EQ(ReadFile(path).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomic(path, "first", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(path, "second", 0600).ok());  // replaces an existing file
  EXPECT_TRUE(PathExists(path));
  EXPECT_EQ(ReadFile(path).value(), "second");
  EXPECT_EQ(ReadFile(path, 3).status().code(), absl::StatusCode::kResourceExhausted);
  // A file where a directory is asked for.
  EXPECT_EQ(MakeDirs(path).code(), absl::StatusCode::kFailedPrecondition);
  // No temporary file is left behind.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(nested)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

}  // namespace
}  // namespace parc::common
