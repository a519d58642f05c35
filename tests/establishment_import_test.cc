#include "server/establishment_import.h"

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace parc::server {
namespace {

using parc::testing::DataPath;
using parc::testing::ReadFileOrDie;

TEST(EstablishmentImport, ParsesTheAnnuaireExport) {
  auto f = ParseEstablishmentsCsv(ReadFileOrDie(DataPath("annuaire-occitanie.csv")));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->errors.empty());
  EXPECT_EQ(f->rows.size(), 9u);
  EXPECT_EQ(f->ignored, 1u);  // the médico-social institute
  std::map<std::string, parc::v1::Establishment> by_uai;
  for (const auto& e : f->rows) by_uai[e.uai()] = e;
  const auto& fermat = by_uai.at("0310036W");
  EXPECT_EQ(fermat.name(), "Lycée Pierre de Fermat");
  EXPECT_EQ(fermat.category(), "lycee");
  EXPECT_EQ(fermat.departement(), "31");
  EXPECT_EQ(fermat.academie(), "Toulouse");
  EXPECT_EQ(fermat.collectivite_kind(), "region");
  EXPECT_EQ(fermat.sector(), "public");
  const auto& college = by_uai.at("0340123Z");
  EXPECT_EQ(college.collectivite_kind(), "departement");
  EXPECT_EQ(college.collectivite_code(), "34");
  EXPECT_EQ(college.academie(), "Montpellier");
  const auto& ecole = by_uai.at("0120005R");
  EXPECT_EQ(ecole.category(), "ecole");
  EXPECT_EQ(ecole.collectivite_kind(), "commune");
  EXPECT_EQ(ecole.collectivite_code(), "12202");
  EXPECT_EQ(ecole.collectivite_name(), "Commune de Rodez");
  EXPECT_EQ(by_uai.at("0660010C").category(), "erea");
  EXPECT_EQ(by_uai.at("0660010C").collectivite_kind(), "region");
}

TEST(EstablishmentImport, AcceptsHeaderAliasesCommaAndBom) {
  std::string csv =
      "\xEF\xBB\xBF"
      "numero_uai,appellation_officielle,nature_uai_libe,code_commune,"
      "libelle_commune,tags\n"
      "0310036W,LYCEE GENERAL PIERRE DE FERMAT,LYCEE GENERAL ET TECHNOLOGIQUE,31555,TOULOUSE,"
      "\"labellycee:3, pilote\"\n"
      "0311234Y,COLLEGE JEAN JAURES,COLLEGE,31555,TOULOUSE,\n"
      "0312345F,ECOLE ELEMENTAIRE PUBLIQUE JULES FERRY,ECOLE ELEMENTAIRE "
      "PUBLIQUE,31555,TOULOUSE,\n";
  auto f = ParseEstablishmentsCsv(csv);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->errors.empty()) << f->errors[0].message();
  ASSERT_EQ(f->rows.size(), 3u);
  EXPECT_EQ(f->rows[0].category(), "lycee");
  EXPECT_EQ(f->rows[0].departement(), "31");  // from the UAI
  EXPECT_EQ(f->rows[0].academie(), "Toulouse");
  ASSERT_EQ(f->rows[0].tags_size(), 2);
  EXPECT_EQ(f->rows[0].tags(0), "labellycee:3");
  EXPECT_EQ(f->rows[0].tags(1), "pilote");
  EXPECT_EQ(f->rows[1].category(), "college");
  EXPECT_EQ(f->rows[2].category(), "ecole");
}

TEST(EstablishmentImport, ListsEveryBadRowWithLineAndField) {
  std::string csv =
      "uai;nom;type;code_commune\n"
      "0310036W;Lycée Fermat;Lycée;31555\n"
      "0310036X;Lycée faux;Lycée;31555\n"  // wrong check letter
      ";Sans UAI;Collège;31555\n"
      "0311234Y;;Collège;31555\n"             // no name
      "0312345F;École sans commune;Ecole;\n"  // école without commune
      "0310024H;Lycée;Crèche;31555\n"         // unknown type
      "0310036W;Doublon;Lycée;31555\n"        // duplicate
      "0340001S;Trop;de;champs;ici\n";
  auto f = ParseEstablishmentsCsv(csv);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->rows.size(), 1u);
  std::map<uint32_t, std::string> errors;
  for (const auto& e : f->errors) errors[e.line()] += e.field() + ":" + e.message() + " ";
  ASSERT_EQ(errors.size(), 7u);
  EXPECT_NE(errors[3].find("uai:"), std::string::npos);
  EXPECT_NE(errors[3].find("expected 'W'"), std::string::npos);
  EXPECT_NE(errors[4].find("UAI is empty"), std::string::npos);
  EXPECT_NE(errors[5].find("name"), std::string::npos);
  EXPECT_NE(errors[6].find("commune"), std::string::npos);
  EXPECT_NE(errors[7].find("Crèche"), std::string::npos);
  EXPECT_NE(errors[8].find("already on line 2"), std::string::npos);
  EXPECT_NE(errors[9].find("5 fields"), std::string::npos);
}

TEST(EstablishmentImport, MissingRequiredColumnFailsTheFile) {
  auto f = ParseEstablishmentsCsv("nom;type\nLycée;Lycée\n");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("no UAI column"), absl::string_view::npos);
  EXPECT_FALSE(ParseEstablishmentsCsv("").ok());
}

TEST(EstablishmentImport, CategoryOfType) {
  EXPECT_EQ(CategoryOfType("Lycée"), "lycee");
  EXPECT_EQ(CategoryOfType("LYCEE PROFESSIONNEL"), "lycee");
  EXPECT_EQ(CategoryOfType("Lycée agricole"), "lycee");
  EXPECT_EQ(CategoryOfType("Collège"), "college");
  EXPECT_EQ(CategoryOfType("ECOLE MATERNELLE PUBLIQUE"), "ecole");
  EXPECT_EQ(CategoryOfType("EREA"), "erea");
  EXPECT_EQ(CategoryOfType("Médico-social"), "ignored");
  EXPECT_EQ(CategoryOfType("Information et orientation"), "ignored");
  EXPECT_EQ(CategoryOfType("Université"), "");
}

TEST(PreassignImport, WithAndWithoutHeader) {
  auto with = ParsePreassignCsv("numero_de_serie;uai\n5CD1234ABC;0310036W\nHX7K2Q3;0340001s\n");
  ASSERT_TRUE(with.ok()) << with.status();
  ASSERT_EQ(with->rows.size(), 2u);
  EXPECT_EQ(with->rows[1].uai, "0340001S");
  EXPECT_EQ(with->rows[1].line, 3u);
  auto without = ParsePreassignCsv("5CD1234ABC;0310036W\n");
  ASSERT_TRUE(without.ok());
  ASSERT_EQ(without->rows.size(), 1u);
  EXPECT_EQ(without->rows[0].serial, "5CD1234ABC");
}

TEST(PreassignImport, BadRows) {
  auto f = ParsePreassignCsv("serial;uai\nA1;0310036W\n;0310036W\nA2;0310036X\nA1;0340001S\nA3\n");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->rows.size(), 1u);
  ASSERT_EQ(f->errors.size(), 4u);
  EXPECT_EQ(f->errors[0].line(), 3u);
  EXPECT_EQ(f->errors[1].line(), 4u);
  EXPECT_EQ(f->errors[2].line(), 5u);
  EXPECT_NE(f->errors[2].message().find("already on line 2"), std::string::npos);
  EXPECT_EQ(f->errors[3].line(), 6u);
  EXPECT_FALSE(ParsePreassignCsv("foo;bar\nx;y\n").ok());
}

}  // namespace
}  // namespace parc::server
