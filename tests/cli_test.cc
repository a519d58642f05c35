// parcctl against a real server: CSV imports with bad rows, listings, JSON output.
#include "absl/strings/match.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "parc/v1/admin.pb.h"
#include "tests/test_util.h"

namespace parc::testing {
namespace {

class CtlTest : public ::testing::Test {
 protected:
  CtlTest() : server_(dir_.Sub("server")) {}
  CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.end(), {"--server", server_.address(), "--ca", server_.ca_path(), "--token",
                             server_.admin_token(), "--config", Config()});
    return RunCtl(args);
  }
  std::string Config() {
    std::string path = dir_.Sub("parcctl.toml");
    WriteFile(path, "");
    return path;
  }
  TempDir dir_;
  TestServer server_;
};

TEST_F(CtlTest, ImportWithBadRowsImportsNothingAndNamesEveryLine) {
  std::string csv = dir_.Sub("annuaire.csv");
  WriteFile(csv,
            "Identifiant_de_l_etablissement;Nom_etablissement;Type_etablissement;Code_commune\n"
            "0310036W;Lycée Pierre de Fermat;Lycée;31555\n"
            "0310036X;Lycée mal saisi;Lycée;31555\n"
            "0311234Y;Collège Jean Jaurès;Collège;31555\n"
            "0312345F;École;Garderie;31555\n");
  auto r = Ctl({"establishments", "import", csv});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "INVALID_ARGUMENT")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "2 invalid rows")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "line 3 (uai)")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "line 5 (type)")) << r.err;
  auto list = Ctl({"establishments", "list"});
  ASSERT_EQ(list.status, 0);
  EXPECT_TRUE(absl::StrContains(list.out, "0 establishment(s)")) << list.out;

  auto dry = Ctl({"establishments", "import", csv, "--dry-run"});
  EXPECT_EQ(dry.status, 1);
  EXPECT_TRUE(absl::StrContains(dry.out, "2 valid rows, 2 invalid")) << dry.out;

  auto skip = Ctl({"establishments", "import", csv, "--skip-invalid"});
  ASSERT_EQ(skip.status, 0) << skip.err;
  EXPECT_TRUE(absl::StrContains(skip.out, "2 new")) << skip.out;
  EXPECT_TRUE(absl::StrContains(skip.out, "line 3 (uai)")) << skip.out;
  list = Ctl({"establishments", "list", "--departement", "031"});
  EXPECT_TRUE(absl::StrContains(list.out, "2 establishment(s)")) << list.out;
  EXPECT_TRUE(absl::StrContains(list.out, "Collège Jean Jaurès"));
}

TEST_F(CtlTest, ReimportUpdatesWithoutDuplicates) {
  auto first = Ctl({"establishments", "import", DataPath("annuaire-occitanie.csv")});
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_TRUE(absl::StrContains(first.out, "9 new")) << first.out;
  EXPECT_TRUE(absl::StrContains(first.out, "1 ignored")) << first.out;
  auto again = Ctl({"establishments", "import", DataPath("annuaire-occitanie.csv")});
  ASSERT_EQ(again.status, 0);
  EXPECT_TRUE(absl::StrContains(again.out, "0 new, 0 updated, 9 unchanged")) << again.out;
  auto json = Ctl({"establishments", "list", "--academie", "montpellier", "--json"});
  ASSERT_EQ(json.status, 0);
  parc::v1::ListEstablishmentsResponse response;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &response).ok()) << json.out;
  EXPECT_EQ(response.establishments_size(), 3);  // Joffre, Clemenceau, EREA (66)
}

TEST_F(CtlTest, TokensCreateListRevoke) {
  ASSERT_EQ(Ctl({"establishments", "import", DataPath("annuaire-occitanie.csv")}).status, 0);
  auto created = Ctl({"tokens", "create", "--uai", "0310036W", "--max-uses", "30", "--expires",
                      "7d", "--note", "chariot 1"});
  ASSERT_EQ(created.status, 0) << created.err;
  EXPECT_TRUE(absl::StrContains(created.out, "shown only now"));
  auto unknown = Ctl({"tokens", "create", "--uai", "0340123Z"});
  EXPECT_EQ(unknown.status, 0) << unknown.err;
  auto missing = Ctl({"tokens", "create", "--uai", "0310500A"});  // valid UAI, not imported
  EXPECT_EQ(missing.status, 1);
  EXPECT_TRUE(absl::StrContains(missing.err, "NOT_FOUND")) << missing.err;
  auto both = Ctl({"tokens", "create"});
  EXPECT_EQ(both.status, 2);
  auto list = Ctl({"tokens", "list"});
  EXPECT_TRUE(absl::StrContains(list.out, "chariot 1")) << list.out;
  EXPECT_TRUE(absl::StrContains(list.out, "0/30")) << list.out;
  // The token's secret never appears in listings.
  std::string token = created.out.substr(created.out.find('\n') + 1);
  token = token.substr(0, token.find('\n'));
  std::string secret = token.substr(token.find('.') + 1);
  EXPECT_FALSE(absl::StrContains(list.out, secret));
  auto revoked = Ctl({"tokens", "revoke", token});
  ASSERT_EQ(revoked.status, 0) << revoked.err;
  list = Ctl({"tokens", "list"});
  EXPECT_FALSE(absl::StrContains(list.out, "chariot 1")) << list.out;
  list = Ctl({"tokens", "list", "--all"});
  EXPECT_TRUE(absl::StrContains(list.out, "revoked")) << list.out;
}

TEST_F(CtlTest, ConnectionErrorsAreExplained) {
  auto no_server = RunCtl({"devices", "list", "--config", Config()});
  EXPECT_EQ(no_server.status, 2);
  EXPECT_TRUE(absl::StrContains(no_server.err, "no server")) << no_server.err;
  auto bad_token = RunCtl({"devices", "list", "--server", server_.address(), "--ca",
                           server_.ca_path(), "--token", "o1.2", "--config", Config()});
  EXPECT_EQ(bad_token.status, 1);
  EXPECT_TRUE(absl::StrContains(bad_token.err, "UNAUTHENTICATED")) << bad_token.err;
  auto bad_uai = Ctl({"devices", "list", "--uai", "0310036X"});
  EXPECT_EQ(bad_uai.status, 1);
  EXPECT_TRUE(absl::StrContains(bad_uai.err, "expected 'W'")) << bad_uai.err;
}

}  // namespace
}  // namespace parc::testing
