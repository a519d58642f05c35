#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cli_args.h"
#include "common/crypto.h"
#include "common/csv.h"
#include "common/duration.h"
#include "common/grpc_util.h"
#include "common/inventory_util.h"
#include "common/text.h"
#include "common/toml_text.h"
#include "common/uai.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "server/dashboard.h"
#include "server/inventory_request.h"
#include "server/report_validation.h"
#include "server/software_sets.h"
#include "tests/test_util.h"

namespace parc::common {
namespace {

TEST(Uai, AcceptsValidCodesAndNormalizes) {
  EXPECT_EQ(*NormalizeUai("0310036W"), "0310036W");
  EXPECT_EQ(*NormalizeUai(" 0310036w "), "0310036W");
  EXPECT_EQ(*NormalizeUai("0310024H"), "0310024H");
  EXPECT_EQ(UaiCheckLetter("0310036"), 'W');
}

TEST(Uai, RejectsWrongCheckLetterNamingTheExpectedOne) {
  auto r = NormalizeUai("0310036X");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("expected 'W'"), absl::string_view::npos);
}

TEST(Uai, RejectsMalformedCodes) {
  EXPECT_FALSE(NormalizeUai("").ok());
  EXPECT_FALSE(NormalizeUai("031003W").ok());    // too short
  EXPECT_FALSE(NormalizeUai("03100361W").ok());  // too long
  EXPECT_FALSE(NormalizeUai("03100A6W").ok());   // letter among digits
}

TEST(Uai, DepartementAndAcademie) {
  EXPECT_EQ(DepartementFromUai("0310036W"), "31");
  EXPECT_EQ(DepartementFromUai("0090001X"), "09");
  EXPECT_EQ(NormalizeDepartement("031"), "31");
  EXPECT_EQ(NormalizeDepartement("9"), "09");
  EXPECT_EQ(NormalizeDepartement("2a"), "2A");
  EXPECT_EQ(NormalizeDepartement("971"), "971");
  EXPECT_EQ(NormalizeDepartement("Haute-Garonne"), "");
  EXPECT_EQ(AcademieForDepartement("31"), "Toulouse");
  EXPECT_EQ(AcademieForDepartement("34"), "Montpellier");
  EXPECT_EQ(AcademieForDepartement("75"), "");
  // The 13 départements of Occitanie, split between the two académies.
  int toulouse = 0, montpellier = 0;
  for (const char* d :
       {"09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"}) {
    std::string a = AcademieForDepartement(d);
    toulouse += a == "Toulouse";
    montpellier += a == "Montpellier";
    EXPECT_FALSE(DepartementName(d).empty()) << d;
  }
  EXPECT_EQ(toulouse, 8);
  EXPECT_EQ(montpellier, 5);
}

TEST(Csv, DetectsDelimiterAndHandlesQuotesBomAndCrlf) {
  auto t = ParseCsv(
      "\xEF\xBB\xBF"
      "a;b;c\r\n1;\"x;y\";\"say \"\"hi\"\"\"\r\n\r\n2;z;\"multi\nline\"\n3;q;r");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->delimiter, ';');
  ASSERT_EQ(t->records.size(), 4u);
  EXPECT_EQ(t->records[0].fields, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(t->records[1].fields, (std::vector<std::string>{"1", "x;y", "say \"hi\""}));
  EXPECT_EQ(t->records[1].line, 2u);
  EXPECT_EQ(t->records[2].line, 4u);  // blank line 3 skipped
  EXPECT_EQ(t->records[2].fields[2], "multi\nline");
  EXPECT_EQ(t->records[3].line, 6u);  // the quoted newline counted
}

TEST(Csv, CommaAndTab) {
  EXPECT_EQ(ParseCsv("a,b\n1,2\n")->delimiter, ',');
  EXPECT_EQ(ParseCsv("a\tb\n1\t2\n")->delimiter, '\t');
}

TEST(Csv, UnterminatedQuoteNamesItsLine) {
  auto t = ParseCsv("a;b\n1;2\n3;\"open\n4;5\n");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("line 3"), absl::string_view::npos) << t.status();
}

TEST(Csv, FlagsInvalidUtf8PerRecord) {
  auto t = ParseCsv("a;b\n\xE9t\xE9;1\nok;2\n");  // Latin-1 "été"
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->records[1].error.empty());
  EXPECT_TRUE(t->records[2].error.empty());
}

TEST(Csv, NormalizeHeader) {
  EXPECT_EQ(NormalizeHeader("Identifiant_de_l_etablissement"), "identifiant_de_l_etablissement");
  EXPECT_EQ(NormalizeHeader(" Numéro d'UAI "), "numero_d_uai");
  EXPECT_EQ(NormalizeHeader("Libellé académie"), "libelle_academie");
}

TEST(Duration, ParsesOperatorForms) {
  EXPECT_EQ(*ParseDuration("30d"), absl::Hours(24 * 30));
  EXPECT_EQ(*ParseDuration("12h"), absl::Hours(12));
  EXPECT_EQ(*ParseDuration("1d12h"), absl::Hours(36));
  EXPECT_EQ(*ParseDuration("90"), absl::Seconds(90));
  EXPECT_EQ(*ParseDuration("2w"), absl::Hours(24 * 14));
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("d").ok());
  EXPECT_FALSE(ParseDuration("3y").ok());
  EXPECT_FALSE(ParseDuration("1d2").ok());
}

TEST(Crypto, Sha256AndCredentials) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto c = NewCredential("e", 6);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->id.size(), 13u);
  EXPECT_EQ(c->secret.size(), 64u);
  auto parsed = ParseCredential(FormatCredential(*c));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->id, c->id);
  EXPECT_EQ(parsed->secret, c->secret);
  EXPECT_FALSE(ParseCredential("nodot").ok());
  EXPECT_FALSE(ParseCredential(".secret").ok());
  EXPECT_FALSE(ParseCredential("a.b.c").ok());
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
}

TEST(Inventory, SoftwareHashIgnoresOrderAndDuplicates) {
  parc::v1::SoftwareList a, b;
  auto add = [](parc::v1::SoftwareList* l, const char* n, const char* v) {
    auto* p = l->add_packages();
    p->set_name(n);
    p->set_version(v);
    p->set_architecture("amd64");
  };
  add(&a, "zsh", "5.9");
  add(&a, "bash", "5.2");
  add(&b, "bash", "5.2");
  add(&b, "zsh", "5.9");
  add(&b, "bash", "5.2");
  CanonicalizeSoftware(&a);
  CanonicalizeSoftware(&b);
  EXPECT_EQ(b.packages_size(), 2);
  EXPECT_EQ(SoftwareHash(a), SoftwareHash(b));
  add(&b, "vim", "9.0");
  CanonicalizeSoftware(&b);
  EXPECT_NE(SoftwareHash(a), SoftwareHash(b));
}

TEST(Inventory, APublisherChangesTheHashAndNoPublisherKeepsTheOldOne) {
  parc::v1::SoftwareList list;
  auto* p = list.add_packages();
  p->set_name("bash");
  p->set_version("5.2");
  p->set_architecture("amd64");
  // Lists without publishers (every Linux list) hash as they always did: "name\tversion\tarch\n".
  EXPECT_EQ(SoftwareHash(list), Sha256Hex("bash\t5.2\tamd64\n"));
  p->set_publisher("GNU");
  EXPECT_EQ(SoftwareHash(list), Sha256Hex("bash\t5.2\tamd64\tGNU\n"));
}

TEST(Inventory, ALongListHashesAsTheDigestOfItsWholeText) {
  // Hashed in pieces: a list of ~42 KiB, mixed with and without publishers, hashes as its
  // whole text at once.
  parc::v1::SoftwareList list;
  std::string text;
  for (int i = 0; i < 1500; ++i) {
    auto* p = list.add_packages();
    p->set_name(absl::StrCat("package-", i));
    p->set_version(absl::StrCat("1.", i % 17, std::string(static_cast<size_t>(i % 9), 'x')));
    p->set_architecture(i % 3 == 0 ? "all" : "amd64");
    if (i % 4 == 0) p->set_publisher(absl::StrCat("Publisher ", i % 5));
    absl::StrAppend(&text, p->name(), "\t", p->version(), "\t", p->architecture(),
                    p->publisher().empty() ? "" : "\t", p->publisher(), "\n");
  }
  ASSERT_GT(text.size(), 40u << 10);
  EXPECT_EQ(SoftwareHash(list), Sha256Hex(text));
}

TEST(Inventory, KindsFromChassisType) {
  EXPECT_EQ(KindFromChassisType(9), parc::v1::DEVICE_KIND_LAPTOP);
  EXPECT_EQ(KindFromChassisType(10), parc::v1::DEVICE_KIND_LAPTOP);
  EXPECT_EQ(KindFromChassisType(31), parc::v1::DEVICE_KIND_LAPTOP);
  EXPECT_EQ(KindFromChassisType(30), parc::v1::DEVICE_KIND_TABLET);
  EXPECT_EQ(KindFromChassisType(32), parc::v1::DEVICE_KIND_TABLET);
  EXPECT_EQ(KindFromChassisType(3), parc::v1::DEVICE_KIND_DESKTOP);
  EXPECT_EQ(KindFromChassisType(35), parc::v1::DEVICE_KIND_DESKTOP);
  EXPECT_EQ(KindFromChassisType(0), parc::v1::DEVICE_KIND_UNSPECIFIED);
  EXPECT_EQ(KindFromChassisType(17), parc::v1::DEVICE_KIND_OTHER);
  EXPECT_EQ(*ParseKind("Display"), parc::v1::DEVICE_KIND_DISPLAY);
  EXPECT_FALSE(ParseKind("phone").ok());
}

}  // namespace
}  // namespace parc::common

namespace parc::common {
namespace {

TEST(Csv, ExportsNeutralizeWhatSpreadsheetsWouldEvaluate) {
  EXPECT_EQ(NeutralizeFormula("=HYPERLINK(\"https://evil.example\";\"x\")"),
            "'=HYPERLINK(\"https://evil.example\";\"x\")");
  EXPECT_EQ(NeutralizeFormula("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0");
  EXPECT_EQ(NeutralizeFormula("-2+3"), "'-2+3");
  EXPECT_EQ(NeutralizeFormula("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(NeutralizeFormula("\t=1"), "'\t=1");
  EXPECT_EQ(NeutralizeFormula("-12"), "-12");
  EXPECT_EQ(NeutralizeFormula("+3,5"), "+3,5");
  EXPECT_EQ(NeutralizeFormula("HP ProBook"), "HP ProBook");
  EXPECT_EQ(NeutralizeFormula(""), "");
  EXPECT_EQ(CsvExportRow({"=1+1", "a;b", "42"}), "'=1+1;\"a;b\";42\r\n");
}

TEST(Text, TerminalSafeDropsControlSequences) {
  EXPECT_EQ(TerminalSafe("ok\x1b]0;pwned\x07 done"), "ok\xEF\xBF\xBD]0;pwned\xEF\xBF\xBD done");
  EXPECT_EQ(TerminalSafe("a\nb\tc"),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD"
            "c");
  EXPECT_EQ(TerminalSafe("a\nb\tc", true), "a\nb\tc");
  EXPECT_EQ(TerminalSafe("\xC2\x9B"
                         "31m"),
            "\xEF\xBF\xBD"
            "31m");  // C1 CSI
  EXPECT_EQ(TerminalSafe("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(TerminalSafe("Lycée — é"), "Lycée — é");
}

}  // namespace
}  // namespace parc::common

namespace parc::server {
namespace {

TEST(Dashboard, SignInSendsOnlyToItsOwnPages) {
  EXPECT_EQ(SafeNextPath("/departement/31?lot=mcnl%402026.1&tri=nom&ordre=asc"),
            "/departement/31?lot=mcnl%402026.1&tri=nom&ordre=asc");
  EXPECT_EQ(SafeNextPath("/etablissement/0310036W"), "/etablissement/0310036W");
  EXPECT_EQ(SafeNextPath("/"), "/");
  for (const char* evil :
       {"//evil.example", "/\t/evil.example", "/\n/evil.example", "/\\evil.example",
        "https://evil.example/", "/%2F%2Fevil.example", "/deploiements/../../x",
        "javascript:alert(1)", "", "/departement/31?x=\"><script>"}) {
    EXPECT_EQ(SafeNextPath(evil), "/") << evil;
  }
}

}  // namespace
}  // namespace parc::server

namespace parc::common {
namespace {

TEST(Channel, PlaintextIsOnlyForThisMachine) {
  ChannelOptions o;
  o.insecure = true;
  for (const char* remote : {"10.1.2.3:8443", "parc.example.fr:8443", "[2001:db8::1]:8443"}) {
    o.target = remote;
    auto channel = MakeChannel(o);
    ASSERT_FALSE(channel.ok()) << remote;
    EXPECT_NE(channel.status().message().find("--insecure"), std::string::npos);
  }
  for (const char* local : {"127.0.0.1:8443", "localhost:1", "[::1]:2"}) {
    o.target = local;
    EXPECT_TRUE(MakeChannel(o).ok()) << local;
  }
}

TEST(CommandLine, SecretArgumentsAreHiddenFromPs) {
  char prog[] = "parcctl", a[] = "--token", b[] = "o123.secret", c[] = "--token=o456.secret",
       d[] = "devices", e[] = "list";
  char* argv[] = {prog, a, b, c, d, e};
  HideSecretArgs(6, argv, {"--token"});
  EXPECT_STREQ(argv[2], "xxxxxxxxxxx");
  EXPECT_STREQ(argv[3], "--token=xxxxxxxxxxx");
  EXPECT_STREQ(argv[4], "devices");
}

}  // namespace
}  // namespace parc::common

namespace parc::common {
namespace {

TEST(Toml, TextReachesTomlPlusPlusInAsciiWithTheSameValues) {
  auto out = AsciiToml("# Configuré à la main\nnote = \"Lycée — 2ᵉ\"\nkind = 'écran'\n", "a.toml");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "# Configur? ? la main\nnote = \"Lyc\\u00E9e \\u2014 2\\u1D49\"\n"
            "kind = \"\\u00E9cran\"\n");
  auto bare = AsciiToml("server = 1\nclé = 2\n", "a.toml");
  ASSERT_FALSE(bare.ok());
  EXPECT_EQ(bare.status().message(),
            "a.toml:2: a non-ASCII character outside a string or a comment");
  EXPECT_FALSE(AsciiToml("a = \"\xff\"\n", "a.toml").ok());
  EXPECT_EQ(*AsciiToml("plain = \"ascii\" # ok\n", "a.toml"), "plain = \"ascii\" # ok\n");
}

}  // namespace
}  // namespace parc::common

namespace parc::testing {
namespace {

// Free space alone never makes the agent send its inventory again.
TEST(InventoryHash, FreeSpaceIsLeftOut) {
  parc::v1::Hardware hw;
  hw.set_model("HP ProBook x360 11 G7");
  hw.set_system_free_bytes(uint64_t{12} << 30);
  const std::string h = common::InventoryHash(hw, "sw");
  hw.set_system_free_bytes(uint64_t{11} << 30);
  EXPECT_EQ(common::InventoryHash(hw, "sw"), h);
  hw.set_system_free_bytes(0);  // less than 1 GiB: still measured, still left out
  EXPECT_EQ(common::InventoryHash(hw, "sw"), h);
  hw.clear_system_free_bytes();
  EXPECT_EQ(common::InventoryHash(hw, "sw"), h);
  hw.set_tpm_version("2.0");
  EXPECT_NE(common::InventoryHash(hw, "sw"), h);
}

// What the agents send for the health facts, and only that.
TEST(ReportValidation, FirmwareDateAndTpmVersionAreTheAgentsForms) {
  parc::v1::Hardware hw;
  EXPECT_TRUE(server::ValidateHardware(hw).ok());
  hw.set_firmware_date("2021-01-15");
  hw.set_tpm_version("2.0");
  EXPECT_TRUE(server::ValidateHardware(hw).ok());
  hw.set_tpm_version("1.2");
  EXPECT_TRUE(server::ValidateHardware(hw).ok());
  for (const char* bad : {"2021-13-01", "01/15/2021", "2021-1-15", "2021-01-15x", "9999-01-01"}) {
    hw.set_firmware_date(bad);
    absl::Status st = server::ValidateHardware(hw);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("hardware.firmware_date"), std::string::npos) << st;
  }
  hw.set_firmware_date("");
  hw.set_tpm_version("3.0");
  absl::Status st = server::ValidateHardware(hw);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("hardware.tpm_version"), std::string::npos) << st;
}

// The hash cuts free space out of the encoded bytes: the same as hashing a copy without it.
TEST(InventoryHash, EqualsTheHashOfTheHardwareWithoutFreeSpace) {
  parc::v1::Hardware hw;
  hw.set_manufacturer("HP");
  hw.set_model("ProBook x360 11 G7");
  hw.set_hostname("PC-0310001A-042");
  hw.set_ram_bytes(uint64_t{8} << 30);
  hw.set_firmware_date("2021-01-15");
  hw.set_tpm_version("2.0");
  hw.set_secure_boot(parc::v1::SecureBoot(1));
  for (int i = 0; i < 2; ++i) {
    auto* d = hw.add_disks();
    d->set_name(absl::StrCat("nvme", i, "n1"));
    d->set_size_bytes(uint64_t{256} << 30);
  }
  hw.add_batteries()->set_name("BAT0");
  auto reference = [](const parc::v1::Hardware& h) {
    parc::v1::Hardware without = h;
    without.clear_system_free_bytes();
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream raw(&bytes);
      google::protobuf::io::CodedOutputStream out(&raw);
      out.SetSerializationDeterministic(true);
      without.SerializeToCodedStream(&out);
    }
    common::Sha256 sha;
    sha.Update(bytes);
    sha.Update("\nsoftware:sw");
    return sha.FinishHex();
  };
  for (uint64_t free :
       {uint64_t{0}, uint64_t{1}, uint64_t{300}, uint64_t{12} << 30, ~uint64_t{0}}) {
    hw.set_system_free_bytes(free);
    EXPECT_EQ(common::InventoryHash(hw, "sw"), reference(hw)) << free;
    // The server hashes the encoding it stores: the same hash, and the encoding reads back.
    const std::string encoded = common::EncodeHardware(hw);
    EXPECT_EQ(common::InventoryHashOfEncoded(encoded, "sw"), reference(hw)) << free;
    parc::v1::Hardware back;
    ASSERT_TRUE(back.ParseFromString(encoded));
    EXPECT_EQ(back.SerializeAsString(), hw.SerializeAsString());
  }
  hw.clear_system_free_bytes();
  EXPECT_EQ(common::InventoryHash(hw, "sw"), reference(hw));
  EXPECT_EQ(common::InventoryHashOfEncoded(common::EncodeHardware(hw), "sw"), reference(hw));
  EXPECT_NE(common::InventoryHashOfEncoded(common::EncodeHardware(hw), "other"), reference(hw));
}

// A report as the server reads it from the wire: split into slices of `slice` bytes, as a
// message read from TCP arrives (0: one slice).
server::InventoryRequest Read(const std::string& bytes, size_t slice, bool* ok) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += slice == 0 ? bytes.size() : slice) {
    slices.emplace_back(bytes.substr(at, slice == 0 ? bytes.size() : slice));
  }
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  server::InventoryRequest request;
  *ok = request.Parse(buffer);
  return request;
}

// The report an agent sends, read field by field without parsing its software list: from one
// slice, from many, from a gRPC-Web body; what a generated parser of the agent's message reads.
TEST(InventoryRequest, ReadsTheAgentsReportFieldByFieldWithTheListLeftWhereItArrived) {
  // Every field of the agent's messages is read: one more there must be read here too.
  EXPECT_EQ(parc::v1::ReportInventoryRequest::descriptor()->field_count(), 4);
  EXPECT_EQ(parc::v1::Inventory::descriptor()->field_count(), 2);
  parc::v1::ReportInventoryRequest report;
  report.set_inventory_hash(std::string(64, 'a'));
  report.set_software_hash(std::string(64, 'b'));
  report.set_collected_at(1764000000);
  auto* hw = report.mutable_inventory()->mutable_hardware();
  hw->set_model("Latitude 3190");
  hw->set_hostname("PC-0042");
  hw->add_disks()->set_size_bytes(uint64_t{256} << 30);
  for (int i = 0; i < 300; ++i) {
    auto* p = report.mutable_inventory()->mutable_software()->add_packages();
    p->set_name(absl::StrCat("pkg", i, std::string(static_cast<size_t>(i), 'x')));
    p->set_version("1.0");
  }
  const std::string bytes = report.SerializeAsString();
  for (size_t slice : {size_t{0}, size_t{1}, size_t{7}, size_t{4096}}) {
    bool ok = false;
    server::InventoryRequest read = Read(bytes, slice, &ok);
    ASSERT_TRUE(ok) << slice;
    EXPECT_EQ(read.inventory_hash(), report.inventory_hash());
    EXPECT_EQ(read.software_hash(), report.software_hash());
    EXPECT_EQ(read.collected_at(), 1764000000);
    EXPECT_EQ(read.hardware().SerializeAsString(), hw->SerializeAsString());
    EXPECT_EQ(read.encoded_size(), bytes.size());
    EXPECT_EQ(read.software_packages(), 300);
    const std::string list = report.inventory().software().SerializeAsString();
    EXPECT_EQ(read.software_size(), list.size());
    EXPECT_EQ(*read.SoftwareBytes(), list) << slice;
  }
  server::InventoryRequest web;
  ASSERT_TRUE(web.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
  EXPECT_EQ(*web.SoftwareBytes(), report.inventory().software().SerializeAsString());
  EXPECT_EQ(web.software_packages(), 300);

  // As a generated parser: unknown fields skipped (a newer agent's), a message field sent
  // twice merged (the hardware's fields, the list's packages one after the other).
  parc::v1::ReportInventoryRequest second;
  second.mutable_inventory()->mutable_hardware()->set_manufacturer("Dell Inc.");
  second.mutable_inventory()->mutable_software()->add_packages()->set_name("geogebra-classic");
  const std::string twice = std::string("\x98\x06\x01", 3) + bytes +
                            std::string("\x1a\x03\xa0\x06\x05", 5) + second.SerializeAsString();
  parc::v1::ReportInventoryRequest generated;
  ASSERT_TRUE(generated.ParseFromString(twice));
  for (size_t slice : {size_t{0}, size_t{3}}) {
    bool ok = false;
    server::InventoryRequest read = Read(twice, slice, &ok);
    ASSERT_TRUE(ok);
    EXPECT_EQ(read.hardware().SerializeAsString(),
              generated.inventory().hardware().SerializeAsString());
    EXPECT_EQ(*read.SoftwareBytes(), generated.inventory().software().SerializeAsString());
    EXPECT_EQ(read.software_packages(), 301);
    EXPECT_EQ(read.inventory_hash(), report.inventory_hash());
  }

  // Bytes that are not a report (cut, a length past the end, a broken hardware message) do
  // not read; nor does what the generated parser refuses.
  for (const std::string& bad :
       {bytes.substr(0, bytes.size() - 1), std::string("\x0a\xff\xff\xff\x0f", 5),
        std::string("\x1a\x04\x0a\x02\x0a\x05", 6), std::string("\x1a\x01", 2)}) {
    bool ok = true;
    Read(bad, 0, &ok);
    EXPECT_FALSE(ok);
    EXPECT_FALSE(parc::v1::ReportInventoryRequest().ParseFromString(bad));
  }
}

// The count of an agent's list, made while the report is read, and of lists agents do not
// send; bytes that are not a list are refused naming the field, whatever the rest.
TEST(ReportValidation, SoftwarePackagesAreCountedWithoutParsing) {
  parc::v1::ReportInventoryRequest report;
  report.set_inventory_hash(std::string(64, 'a'));
  report.set_software_hash(std::string(64, 'b'));
  report.mutable_inventory()->mutable_hardware()->set_model("Latitude 3190");
  auto count = [&](const std::string& software) -> std::optional<int> {
    bool ok = false;
    server::InventoryRequest read =
        Read(parc::testing::ReportWithSoftwareBytes(report, software), 5, &ok);
    EXPECT_TRUE(ok);
    return read.software_packages();
  };
  parc::v1::SoftwareList list;
  EXPECT_EQ(count(list.SerializeAsString()), 0);
  for (int i = 0; i < 300; ++i) {
    auto* p = list.add_packages();
    p->set_name(absl::StrCat("pkg", i, std::string(static_cast<size_t>(i), 'x')));
    p->set_version("1.0");
  }
  const std::string bytes = list.SerializeAsString();
  EXPECT_EQ(count(bytes), 300);
  // An unknown field (from a newer agent) is skipped, not counted.
  std::string with_unknown = bytes;
  with_unknown += std::string("\x10\x05", 2);
  EXPECT_EQ(count(with_unknown), 300);
  server::ReportLimits limits;
  limits.max_packages = 299;
  {
    bool ok = false;
    server::InventoryRequest read =
        Read(parc::testing::ReportWithSoftwareBytes(report, with_unknown), 0, &ok);
    ASSERT_TRUE(ok);
    EXPECT_EQ(server::ValidateInventory(read, limits).code(), absl::StatusCode::kResourceExhausted);
    limits.max_packages = 300;
    EXPECT_TRUE(server::ValidateInventory(read, limits).ok());
  }
  // A cut list, a length past the end, a zero tag: refused, naming the field.
  for (const std::string& bad :
       {bytes.substr(0, bytes.size() - 1), std::string("\x0a\x05\x01", 3), std::string("\x0a", 1),
        std::string("\x0a\xff\xff\xff\xff\xff\xff", 7), std::string("\x00\x0a\x00", 3)}) {
    EXPECT_EQ(count(bad), std::nullopt);
    bool ok = false;
    server::InventoryRequest read =
        Read(parc::testing::ReportWithSoftwareBytes(report, bad), 0, &ok);
    ASSERT_TRUE(ok);
    absl::Status s = server::ValidateInventory(read, limits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("inventory.software"), std::string::npos) << s;
  }
}

parc::v1::SoftwareList Image(const std::string& prefix, int n) {
  parc::v1::SoftwareList list;
  for (int i = 0; i < n; ++i) {
    auto* p = list.add_packages();
    p->set_name(absl::StrCat(prefix, "-", i));
    p->set_version("1.0");
    p->set_architecture("amd64");
  }
  common::CanonicalizeSoftware(&list);
  return list;
}

// A list is stored against the image it shares most with; an image evicted from the cache is
// never offered again, and the slot it left serves the next image.
TEST(SoftwareBases, ClosestIsTheImageSharingMostAndForgetsEvictedOnes) {
  server::SoftwareBases bases(/*capacity=*/3);
  std::vector<parc::v1::SoftwareList> images;
  for (int k = 0; k < 5; ++k) {
    images.push_back(Image(absl::StrCat("img", k), 400));
    bases.Add(absl::StrCat("h", k), images.back());
  }
  auto variant_of = [](parc::v1::SoftwareList list) {
    list.mutable_packages()->DeleteSubrange(7, 3);
    auto* p = list.add_packages();
    p->set_name("vlc");
    p->set_version("3.0");
    common::CanonicalizeSoftware(&list);
    return list;
  };
  // Images 0 and 1 went; 2, 3, 4 remain.
  EXPECT_FALSE(bases.Closest(variant_of(images[0])).has_value());
  EXPECT_FALSE(bases.Closest(variant_of(images[1])).has_value());
  for (int k = 2; k < 5; ++k) {
    const parc::v1::SoftwareList variant = variant_of(images[static_cast<size_t>(k)]);
    auto match = bases.Closest(variant);
    ASSERT_TRUE(match.has_value()) << k;
    EXPECT_EQ(match->base_hash, absl::StrCat("h", k));
    EXPECT_EQ(match->delta.removed_size(), 3);
    EXPECT_EQ(match->delta.added_size(), 1);
    EXPECT_EQ(server::ApplyDelta(images[static_cast<size_t>(k)], match->delta).SerializeAsString(),
              variant.SerializeAsString());
  }
  // A sixth image takes the slot of the oldest (2).
  images.push_back(Image("img5", 400));
  bases.Add("h5", images.back());
  EXPECT_FALSE(bases.Closest(variant_of(images[2])).has_value());
  EXPECT_EQ(bases.Closest(variant_of(images[5]))->base_hash, "h5");
  // A list far from every image is stored whole.
  EXPECT_FALSE(bases.Closest(Image("other", 400)).has_value());
}

}  // namespace
}  // namespace parc::testing
