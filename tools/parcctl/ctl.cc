#include "tools/parcctl/ctl.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/cli_args.h"
#include "common/csv.h"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/health_indicators.h"
#include "common/inventory_format.h"
#include "common/inventory_util.h"
#include "common/proto_json.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "common/toml_text.h"
#include "common/units.h"
#include "parc/v1/admin.grpc.pb.h"
#include "tools/bundle/bundle_tool.h"
#include "tools/parcctl/table.h"

namespace parc::cli {
namespace {

struct ConnectionFlags {
  std::string server;
  std::string ca;
  std::string token;
  std::string token_file;
  std::string config;
  bool insecure = false;
};

struct Connection {
  std::string server;
  std::string ca_pem;
  std::string token;
  bool insecure = false;
};

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  PARC_ASSIGN_OR_RETURN(std::string text, common::ReadFile(path, 4096));
  return std::string(absl::StripAsciiWhitespace(text));
}

// Flags, then environment, then config file.
absl::StatusOr<Connection> ResolveConnection(const ConnectionFlags& flags) {
  ConnectionFlags file;
  std::string config_path = flags.config;
  bool must_exist = !config_path.empty();
  if (config_path.empty()) {
    std::string home = Env("HOME");
    std::string user_config = home.empty() ? "" : home + "/.config/parc/parcctl.toml";
    config_path = !user_config.empty() && common::PathExists(user_config)
                      ? user_config
                      : "/etc/parc/parcctl.toml";
  }
  auto text = common::ReadFile(config_path, 1 << 20);
  if (text.ok()) {
    auto ascii = common::AsciiToml(*text, config_path);
    if (!ascii.ok()) return ascii.status();
    toml::parse_result parsed = toml::parse(*ascii, config_path);
    if (!parsed) {
      return absl::InvalidArgumentError(absl::StrCat(config_path, ":",
                                                     parsed.error().source().begin.line, ": ",
                                                     std::string(parsed.error().description())));
    }
    const toml::table& t = parsed.table();
    file.server = t["server"].value_or(std::string());
    file.ca = t["ca"].value_or(std::string());
    file.token = t["token"].value_or(std::string());
    file.token_file = t["token_file"].value_or(std::string());
    file.insecure = t["insecure"].value_or(false);
  } else if (must_exist || !absl::IsNotFound(text.status())) {
    return text.status();
  }

  auto pick = [](std::initializer_list<std::string> values) {
    for (const auto& v : values) {
      if (!v.empty()) return v;
    }
    return std::string();
  };
  Connection c;
  c.server = pick({flags.server, Env("PARC_SERVER"), file.server});
  c.insecure = flags.insecure || file.insecure;
  std::string ca = pick({flags.ca, Env("PARC_CA"), file.ca});
  c.token = pick({flags.token, Env("PARC_TOKEN")});
  std::string token_file = pick({flags.token_file, Env("PARC_TOKEN_FILE"), file.token_file});
  if (c.token.empty() && !token_file.empty()) {
    PARC_ASSIGN_OR_RETURN(c.token, ReadToken(token_file));
  }
  if (c.token.empty()) c.token = file.token;
  if (c.server.empty()) {
    return absl::InvalidArgumentError("no server: give --server HOST:PORT or set PARC_SERVER");
  }
  if (c.token.empty()) {
    return absl::InvalidArgumentError(
        "no operator token: give --token, --token-file or set PARC_TOKEN");
  }
  if (!c.insecure) {
    if (ca.empty()) {
      return absl::InvalidArgumentError(
          "no CA certificate: give --ca (the CA file parc-server printed) or set PARC_CA");
    }
    PARC_ASSIGN_OR_RETURN(c.ca_pem, common::ReadFile(ca, 1 << 20));
  }
  return c;
}

// A connected admin client: every call carries the token and a deadline.
class Admin {
 public:
  static absl::StatusOr<Admin> Connect(const Connection& c) {
    common::ChannelOptions o;
    o.target = c.server;
    o.ca_pem = c.ca_pem;
    o.insecure = c.insecure;
    PARC_ASSIGN_OR_RETURN(auto channel, common::MakeChannel(o));
    return Admin(parc::v1::AdminService::NewStub(channel), c);
  }

  parc::v1::AdminService::Stub* stub() { return stub_.get(); }
  const std::string& token() const { return connection_.token; }

  template <typename Request, typename Response>
  absl::Status Call(grpc::Status (parc::v1::AdminService::Stub::*method)(grpc::ClientContext*,
                                                                         const Request&, Response*),
                    const Request& request, Response* response,
                    absl::Duration timeout = absl::Seconds(60)) {
    grpc::ClientContext ctx;
    common::SetDeadline(&ctx, timeout);
    common::SetBearer(&ctx, connection_.token);
    grpc::Status s = ((*stub_).*method)(&ctx, request, response);
    absl::Status status = common::FromGrpcStatus(s);
    if (absl::IsUnavailable(status)) {
      return absl::UnavailableError(absl::StrCat(
          "cannot reach parc-server at ", connection_.server, ": ", status.message(),
          connection_.insecure ? "" : " (is it running, and is --ca the CA it printed?)"));
    }
    return status;
  }

 private:
  Admin(std::unique_ptr<parc::v1::AdminService::Stub> stub, Connection c)
      : stub_(std::move(stub)), connection_(std::move(c)) {}
  std::shared_ptr<parc::v1::AdminService::Stub> stub_;
  Connection connection_;
};

std::string FormatTimestamp(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0) return "";
  return absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixSeconds(ts.seconds()),
                          absl::LocalTimeZone());
}

std::string Ago(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0) return "never";
  return absl::StrCat(
      FormatTimestamp(ts), " (",
      common::FormatDurationShort(absl::Now() - absl::FromUnixSeconds(ts.seconds())), " ago)");
}

int Fail(std::ostream& err, const absl::Status& status) {
  err << "parcctl: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
  return 1;
}

void PrintRowErrors(const google::protobuf::RepeatedPtrField<parc::v1::CsvRowError>& errors,
                    std::ostream& out) {
  for (const auto& e : errors) {
    out << "  line " << e.line();
    if (!e.field().empty()) out << " (" << e.field() << ")";
    out << ": " << e.message() << "\n";
  }
}

absl::StatusOr<parc::v1::ImportCsvRequest> CsvRequest(const std::string& path, bool skip_invalid,
                                                      bool dry_run) {
  parc::v1::ImportCsvRequest request;
  auto content = common::ReadFile(path, 64u << 20);
  if (!content.ok()) return content.status();
  request.set_content(std::move(*content));
  request.set_filename(path);
  request.set_skip_invalid(skip_invalid);
  request.set_dry_run(dry_run);
  return request;
}

// ---------------------------------------------------------------------------------------------

struct Options {
  bool json = false;
  // establishments
  std::string file;
  bool skip_invalid = false;
  bool dry_run = false;
  std::string departement, academie, type, commune;
  // tokens
  std::string uai;
  bool region = false;
  std::string expires = "30d";
  uint32_t max_uses = 0;
  bool reenroll = false;
  std::string note;
  bool all = false;
  std::string id;
  // devices
  std::string kind;
  std::string stale;
  bool unassigned = false;
  // bundles and rollouts
  std::string bundle;
  std::string target = "all";
  std::string kinds;
  std::string waves;
  std::string pilots;
  uint32_t success = 95;
  std::string max_failures;
  std::string window;
  std::string rate;
  std::string action;
  // operators, audit, reports
  std::string name;
  std::string role;
  std::string scope;
  std::string since;
  std::string by;
  std::string format = "table";
  std::string indicator;
  // os-support
  std::string os_name;
  std::string os_version;
  std::string end_of_support;
  std::string label;
  // relays
  std::string url;
  std::vector<std::string> uais;
  bool new_token = false;
};

void PrintRelay(const parc::v1::Relay& r, std::ostream& out) {
  out << "  url          " << r.url() << "\n"
      << "  serves       " << (r.uais().empty() ? "-" : absl::StrJoin(r.uais(), " ")) << "\n"
      << "  health       " << r.health() << "\n";
}

int RelaysAdd(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::AddRelayRequest request;
  request.set_url(o.url);
  for (const auto& uai : o.uais) request.add_uais(uai);
  request.set_new_token(o.new_token);
  parc::v1::AddRelayResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::AddRelay, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << "Relay added: the devices of its establishments try it before the central server\n";
  PrintRelay(r.relay(), out);
  if (!r.token().empty()) {
    out << "Relay token (shown only now; the relay's parc-relay-sync reads it from "
           "/etc/parc-relay/token):\n"
        << r.token() << "\n";
  }
  return 0;
}

int RelaysList(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::ListRelaysRequest request;
  request.set_uai(o.uai);
  parc::v1::ListRelaysResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::ListRelays, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  Table table({"URL", "ESTABLISHMENTS", "HEALTH", "WRONG BYTES", "UNREACHABLE", "LAST FAULT",
               "SERVED", "CACHE", "MISSING", "REPORTED"});
  for (const auto& relay : r.relays()) {
    table.AddRow(
        {relay.url(), absl::StrJoin(relay.uais(), " "), relay.health(),
         std::to_string(relay.wrong_bytes()), std::to_string(relay.unreachable()),
         relay.has_last_fault_at()
             ? absl::StrCat(relay.last_fault(), " ", FormatTimestamp(relay.last_fault_at()))
             : "",
         common::HumanBytes(relay.bytes_served(), true),
         relay.has_reported_at() ? absl::StrCat(common::HumanBytes(relay.cache_bytes(), true), "/",
                                                common::HumanBytes(relay.cache_max_bytes(), true))
                                 : "",
         relay.has_reported_at() ? std::to_string(relay.artifacts_missing()) : "",
         relay.has_reported_at() ? FormatTimestamp(relay.reported_at()) : "never"});
  }
  table.Print(out);
  out << r.relays_size() << " relay(s); faults counted over the last 7 days\n";
  return 0;
}

int RelaysRemove(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::RemoveRelayRequest request;
  request.set_url(o.url);
  for (const auto& uai : o.uais) request.add_uais(uai);
  parc::v1::Relay r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::RemoveRelay, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  if (r.uais().empty()) {
    out << "Relay " << r.url() << " removed\n";
  } else {
    out << "Relay " << r.url() << " still serves " << absl::StrJoin(r.uais(), " ") << "\n";
  }
  return 0;
}

int EstablishmentsImport(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  auto request = CsvRequest(o.file, o.skip_invalid, o.dry_run);
  if (!request.ok()) return Fail(err, request.status());
  parc::v1::ImportEstablishmentsResponse r;
  // A bulk import: the annuaire's 10,000 lines take seconds, a large fleet's list longer.
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::ImportEstablishments, *request, &r,
                              absl::Minutes(10));
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return r.errors().empty() || o.skip_invalid ? 0 : 1;
  }
  if (o.dry_run) {
    out << o.file << ": " << r.inserted() << " valid rows, " << r.errors_size() << " invalid, "
        << r.ignored() << " ignored (types Parc does not serve); nothing imported\n";
  } else {
    out << "Imported " << o.file << ": " << r.inserted() << " new, " << r.updated() << " updated, "
        << r.unchanged() << " unchanged, " << r.ignored()
        << " ignored (types Parc does not serve)\n";
  }
  if (!r.errors().empty()) {
    out << (o.dry_run ? "Invalid rows:\n" : "Skipped invalid rows:\n");
    PrintRowErrors(r.errors(), out);
  }
  return o.dry_run && !r.errors().empty() ? 1 : 0;
}

int EstablishmentsList(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::ListEstablishmentsRequest request;
  request.set_departement(o.departement);
  request.set_academie(o.academie);
  request.set_category(o.type);
  request.set_commune(o.commune);
  parc::v1::ListEstablishmentsResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::ListEstablishments, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  Table table({"UAI", "NAME", "TYPE", "COMMUNE", "DEP", "ACADEMIE", "COLLECTIVITE", "DEVICES"});
  for (const auto& e : r.establishments()) {
    table.AddRow({e.uai(), e.name(), e.category(), e.commune_name(), e.departement(), e.academie(),
                  e.collectivite_name(), std::to_string(e.device_count())});
  }
  table.Print(out);
  out << r.establishments_size() << " establishment(s)\n";
  return 0;
}

void PrintToken(const parc::v1::EnrollmentToken& t, std::ostream& out) {
  out << "  id        " << t.id() << "\n"
      << "  scope     " << (t.uai().empty() ? "region-wide" : t.uai()) << "\n"
      << "  expires   " << FormatTimestamp(t.expires_at()) << "\n"
      << "  max uses  " << (t.max_uses() == 0 ? "unlimited" : std::to_string(t.max_uses())) << "\n";
  if (t.reenroll()) {
    out << "  reenroll  may re-key devices already enrolled "
        << (t.uai().empty() ? "anywhere" : "in this establishment") << "\n";
  }
  if (!t.note().empty()) out << "  note      " << common::TerminalSafe(t.note()) << "\n";
}

int TokensCreate(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  if (o.region == !o.uai.empty()) {
    err << "parcctl tokens create: give either --uai UAI or --region\n";
    return 2;
  }
  auto lifetime = common::ParseDuration(o.expires);
  if (!lifetime.ok()) return Fail(err, lifetime.status());
  parc::v1::CreateEnrollmentTokenRequest request;
  request.set_uai(o.uai);
  request.set_region(o.region);
  request.set_expires_in_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(*lifetime)));
  request.set_max_uses(o.max_uses);
  request.set_reenroll(o.reenroll);
  request.set_note(o.note);
  parc::v1::CreateEnrollmentTokenResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::CreateEnrollmentToken, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << "Enrollment token (shown only now; the server keeps its hash):\n" << r.token() << "\n";
  PrintToken(r.info(), out);
  return 0;
}

int TokensList(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::ListEnrollmentTokensRequest request;
  request.set_include_inactive(o.all);
  parc::v1::ListEnrollmentTokensResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::ListEnrollmentTokens, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  Table table({"ID", "SCOPE", "STATE", "USES", "EXPIRES", "NOTE"});
  for (const auto& t : r.tokens()) {
    table.AddRow(
        {t.id(),
         absl::StrCat(t.uai().empty() ? "region" : t.uai(), t.reenroll() ? " (reenroll)" : ""),
         t.state(),
         absl::StrCat(t.uses(), "/", t.max_uses() == 0 ? "∞" : std::to_string(t.max_uses())),
         FormatTimestamp(t.expires_at()), t.note()});
  }
  table.Print(out);
  return 0;
}

int TokensRevoke(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::RevokeEnrollmentTokenRequest request;
  request.set_id(o.id);
  parc::v1::EnrollmentToken r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::RevokeEnrollmentToken, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << "Revoked enrollment token " << r.id() << " (" << r.uses() << " use(s))\n";
  return 0;
}

int DevicesPreassign(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  auto request = CsvRequest(o.file, o.skip_invalid, o.dry_run);
  if (!request.ok()) return Fail(err, request.status());
  parc::v1::PreassignDevicesResponse r;
  // A bulk import: a supplier's delivery list may hold hundreds of thousands of lines.
  absl::Status s =
      admin.Call(&parc::v1::AdminService::Stub::PreassignDevices, *request, &r, absl::Minutes(10));
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  if (o.dry_run) {
    out << o.file << ": " << r.inserted() << " valid rows, " << r.errors_size()
        << " invalid; nothing imported\n";
  } else {
    out << "Imported " << o.file << ": " << r.inserted() << " new, " << r.updated() << " updated, "
        << r.unchanged() << " unchanged serial numbers; " << r.placed_devices()
        << " enrolled device(s) placed in their establishment\n";
  }
  if (!r.errors().empty()) {
    out << (o.dry_run ? "Invalid rows:\n" : "Skipped invalid rows:\n");
    PrintRowErrors(r.errors(), out);
  }
  return o.dry_run && !r.errors().empty() ? 1 : 0;
}

int DevicesList(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::ListDevicesRequest request;
  request.set_uai(o.uai);
  request.set_departement(o.departement);
  request.set_unassigned(o.unassigned);
  if (!o.kind.empty()) {
    auto kind = common::ParseKind(o.kind);
    if (!kind.ok()) return Fail(err, kind.status());
    request.set_kind(*kind);
  }
  if (!o.stale.empty()) {
    auto stale = common::ParseDuration(o.stale);
    if (!stale.ok()) return Fail(err, stale.status());
    request.set_stale_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(*stale)));
  }
  parc::v1::ListDevicesResponse all;
  while (true) {
    parc::v1::ListDevicesResponse page;
    absl::Status s = admin.Call(&parc::v1::AdminService::Stub::ListDevices, request, &page);
    if (!s.ok()) return Fail(err, s);
    for (auto& d : *page.mutable_devices()) *all.add_devices() = std::move(d);
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (o.json) {
    out << common::ToJson(all);
    return 0;
  }
  Table table({"ID", "SERIAL", "UAI", "ESTABLISHMENT", "KIND", "MODEL", "LAST SEEN"});
  for (const auto& d : all.devices()) {
    table.AddRow({d.id(), d.serial(), d.uai().empty() ? "(unassigned)" : d.uai(),
                  d.establishment_name(), common::KindName(d.kind()), d.model(),
                  FormatTimestamp(d.last_seen_at())});
  }
  table.Print(out);
  out << all.devices_size() << " device(s)\n";
  return 0;
}

int DevicesRetire(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::GetDeviceRequest request;
  request.set_device(o.id);
  parc::v1::Device r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::RetireDevice, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << "Retired device " << r.id() << " (serial " << common::TerminalSafe(r.serial()) << ", "
      << (r.uai().empty() ? "unassigned" : r.uai()) << "): its record, inventories and reports "
      << "are deleted and its credential no longer works\n";
  return 0;
}

int DevicesShow(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::GetDeviceRequest request;
  request.set_device(o.id);
  parc::v1::GetDeviceResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::GetDevice, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  const auto& d = r.device();
  Table info({"FIELD", "VALUE"});
  info.AddRow({"Device", d.id()});
  info.AddRow({"Serial", d.serial()});
  info.AddRow({"Establishment", d.uai().empty()
                                    ? "(unassigned)"
                                    : absl::StrCat(d.uai(), " ", d.establishment_name())});
  info.AddRow({"Kind", absl::StrCat(common::KindName(d.kind()), " (", d.kind_source(), ")")});
  info.AddRow({"Agent", d.agent_version()});
  info.AddRow({"Enrolled", absl::StrCat(FormatTimestamp(d.enrolled_at()),
                                        d.enroll_count() > 1
                                            ? absl::StrCat(" (", d.enroll_count(), " enrollments)")
                                            : "")});
  info.AddRow({"Last seen", Ago(d.last_seen_at())});
  info.AddRow({"Days seen", absl::StrCat(r.days_seen_last_30(), " of the last 30")});
  info.AddRow({"Inventory", r.has_inventory()
                                ? absl::StrCat(Ago(r.inventory_received_at()), ", ",
                                               r.inventory_history(), " kept in history")
                                : "none received yet"});
  info.Print(out);
  if (r.has_inventory()) {
    out << "\n" << common::TerminalSafe(common::FormatInventoryText(r.inventory()), true);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Bundles and rollouts

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    out.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return out;
}

absl::Status UploadArtifact(Admin& admin, const std::string& path, const std::string& sha256,
                            uint64_t size) {
  grpc::ClientContext ctx;
  common::SetDeadline(&ctx, absl::Hours(2));
  common::SetBearer(&ctx, admin.token());
  parc::v1::UploadArtifactResponse response;
  auto writer = admin.stub()->UploadArtifact(&ctx, &response);
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string buffer(1 << 20, '\0');
  parc::v1::ArtifactChunk chunk;
  chunk.set_sha256(sha256);
  chunk.set_size(size);
  bool first = true;
  while (true) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    std::streamsize n = in.gcount();
    if (n <= 0 && !first) break;
    chunk.set_data(buffer.data(), static_cast<size_t>(n));
    if (!writer->Write(chunk)) break;  // the server finished early: Finish says why
    first = false;
    chunk.clear_sha256();
    chunk.clear_size();
    if (n < static_cast<std::streamsize>(buffer.size())) break;
  }
  writer->WritesDone();
  return common::FromGrpcStatus(writer->Finish());
}

int BundlesPublish(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  auto signed_manifest = bundle::ReadBundleDir(o.file);
  if (!signed_manifest.ok()) return Fail(err, signed_manifest.status());
  parc::v1::BundleManifest manifest;  // read only to find the artifacts; the server verifies
  if (!manifest.ParseFromString(signed_manifest->manifest())) {
    return Fail(err, absl::InvalidArgumentError(absl::StrCat(o.file, ": unreadable manifest")));
  }
  parc::v1::MissingArtifactsRequest ask;
  for (const auto& p : manifest.packages()) ask.add_sha256(p.artifact().sha256());
  parc::v1::MissingArtifactsResponse missing;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::MissingArtifacts, ask, &missing);
  if (!s.ok()) return Fail(err, s);
  uint64_t uploaded_bytes = 0;
  std::set<std::string> to_upload(missing.sha256().begin(), missing.sha256().end());
  for (const auto& p : manifest.packages()) {
    if (to_upload.erase(p.artifact().sha256()) == 0) continue;
    std::string path = absl::StrCat(o.file, "/", bundle::kArtifactsDir, "/", p.artifact().sha256());
    s = UploadArtifact(admin, path, p.artifact().sha256(), p.artifact().size());
    if (!s.ok()) {
      return Fail(err, absl::Status(s.code(), absl::StrCat("package ", p.id(), ": ", s.message())));
    }
    uploaded_bytes += p.artifact().size();
  }
  parc::v1::PublishBundleRequest request;
  *request.mutable_bundle() = *signed_manifest;
  parc::v1::BundleSummary r;
  s = admin.Call(&parc::v1::AdminService::Stub::PublishBundle, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << "Uploaded " << missing.sha256_size() << " of " << manifest.packages_size()
      << " artifacts (" << common::HumanBytes(uploaded_bytes, true) << "), "
      << manifest.packages_size() - missing.sha256_size() << " already on the server\n"
      << "Published " << r.name() << "@" << r.version() << " (sequence " << r.sequence() << ", "
      << r.packages() << " packages, signed by " << absl::StrJoin(r.signer_key_ids(), ", ")
      << ")\n";
  return 0;
}

int BundlesList(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::ListBundlesResponse r;
  absl::Status s =
      admin.Call(&parc::v1::AdminService::Stub::ListBundles, parc::v1::ListBundlesRequest(), &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  Table table({"BUNDLE", "SEQUENCE", "PACKAGES", "SIZE", "PUBLISHED", "EXPIRES", "SIGNED BY"});
  for (const auto& b : r.bundles()) {
    table.AddRow({absl::StrCat(b.name(), "@", b.version()), std::to_string(b.sequence()),
                  std::to_string(b.packages()), common::HumanBytes(b.total_bytes(), true),
                  FormatTimestamp(b.published_at()), FormatTimestamp(b.expires_at()),
                  absl::StrJoin(b.signer_key_ids(), ", ")});
  }
  table.Print(out);
  return 0;
}

std::string RolloutLine(const parc::v1::Rollout& r) {
  std::vector<std::string> kinds;
  for (int k : r.kinds()) kinds.push_back(common::KindName(static_cast<parc::v1::DeviceKind>(k)));
  std::string state = r.state();
  if (r.state() == "running") {
    state = absl::StrCat("running, wave ", r.current_wave() + 1, " of ", r.wave_count());
  }
  // The reason of an automatic pause quotes a device's error: printed without control bytes.
  return common::TerminalSafe(absl::StrCat(
      "Rollout ", r.id(), ": ", r.bundle_name(), "@", r.bundle_version(), " to ", r.target(),
      kinds.empty() ? "" : absl::StrCat(" (", absl::StrJoin(kinds, ", "), ")"), " — ", state,
      r.state_reason().empty() ? "" : absl::StrCat(" (", r.state_reason(), ")")));
}

int RolloutsCreate(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::CreateRolloutRequest request;
  size_t at = o.bundle.find('@');
  if (at == std::string::npos) {
    err << "parcctl rollouts create: --bundle NAME@VERSION (e.g. mcnl@2026.1)\n";
    return 2;
  }
  request.set_bundle_name(o.bundle.substr(0, at));
  request.set_bundle_version(o.bundle.substr(at + 1));
  request.set_target(o.target);
  for (const auto& k : SplitList(o.kinds)) {
    auto kind = common::ParseKind(k);
    if (!kind.ok()) return Fail(err, kind.status());
    request.add_kinds(*kind);
  }
  for (const auto& w : SplitList(o.waves)) {
    uint32_t pct = 0;
    if (!absl::SimpleAtoi(absl::StripSuffix(w, "%"), &pct)) {
      err << "parcctl rollouts create: --waves: \"" << w << "\" is not a percentage\n";
      return 2;
    }
    request.add_waves(pct);
  }
  for (const auto& u : SplitList(o.pilots)) request.add_pilots(u);
  request.set_success_percent(o.success);
  if (!o.max_failures.empty()) {
    uint32_t n = 0;
    bool percent = absl::EndsWith(o.max_failures, "%");
    if (!absl::SimpleAtoi(absl::StripSuffix(o.max_failures, "%"), &n)) {
      err << "parcctl rollouts create: --max-failures: a percentage (5%) or a count (10)\n";
      return 2;
    }
    if (percent) {
      request.set_max_failures_percent(n);
    } else {
      request.set_max_failures_count(n);
    }
  }
  if (!o.window.empty()) {
    auto w = common::ParseDailyWindow(o.window);
    if (!w.ok()) return Fail(err, w.status());
    request.mutable_window()->set_start_minute(w->start_minute);
    request.mutable_window()->set_end_minute(w->end_minute);
  }
  if (!o.rate.empty()) {
    auto rate = common::ParseByteSize(o.rate);
    if (!rate.ok()) return Fail(err, rate.status());
    request.set_rate_limit_bytes_per_second(*rate);
  }
  parc::v1::Rollout r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::CreateRollout, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << RolloutLine(r) << "\n  " << r.establishments() << " establishment(s) in " << r.wave_count()
      << " wave(s); start it with: parcctl rollouts start " << r.id() << "\n";
  return 0;
}

int RolloutsUpdate(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::UpdateRolloutRequest request;
  request.set_id(o.id);
  request.set_action(o.action);
  parc::v1::Rollout r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::UpdateRollout, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << RolloutLine(r) << "\n";
  return 0;
}

int RolloutsList(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::ListRolloutsResponse r;
  absl::Status s =
      admin.Call(&parc::v1::AdminService::Stub::ListRollouts, parc::v1::ListRolloutsRequest(), &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  Table table({"ID", "BUNDLE", "TARGET", "STATE", "WAVE", "CREATED"});
  for (const auto& x : r.rollouts()) {
    table.AddRow({x.id(), absl::StrCat(x.bundle_name(), "@", x.bundle_version()), x.target(),
                  x.state(), absl::StrCat(x.current_wave() + 1, "/", x.wave_count()),
                  FormatTimestamp(x.created_at())});
  }
  table.Print(out);
  return 0;
}

std::string Percent(uint32_t part, uint32_t whole) {
  if (whole == 0) return "-";
  return absl::StrCat(part * 100 / whole, "%");
}

std::string TopError(const parc::v1::DeploymentCounts& c) {
  if (c.top_errors().empty()) return "";
  const auto& e = c.top_errors(0);
  return absl::StrCat(e.reason(), " (", e.devices(), ")");
}

int RolloutsStatus(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::GetRolloutStatusRequest request;
  request.set_id(o.id);
  parc::v1::RolloutStatus r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::GetRolloutStatus, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  const auto& ro = r.rollout();
  out << RolloutLine(ro) << "\n";
  out << "  success " << ro.success_percent() << "%, max failures "
      << (ro.max_failures_count() > 0     ? absl::StrCat(ro.max_failures_count(), " devices")
          : ro.max_failures_percent() > 0 ? absl::StrCat(ro.max_failures_percent(), "%")
                                          : std::string("none"))
      << ", download window "
      << common::FormatDailyWindow(ro.window().start_minute(), ro.window().end_minute())
      << ", rate "
      << (ro.rate_limit_bytes_per_second() == 0
              ? std::string("unlimited")
              : absl::StrCat(common::HumanBytes(ro.rate_limit_bytes_per_second(), false), "/s"))
      << "\n\n";
  Table waves({"WAVE", "STATE", "ESTABLISHMENTS", "TARGETED", "INSTALLED", "IN PROGRESS", "FAILED",
               "NOT SEEN", "DONE", "TOP ERROR"});
  for (const auto& w : r.waves()) {
    const auto& c = w.counts();
    waves.AddRow({std::to_string(w.index() + 1), w.state(), std::to_string(w.establishments_size()),
                  std::to_string(c.targeted()), std::to_string(c.installed()),
                  std::to_string(c.in_progress()), std::to_string(c.failed()),
                  std::to_string(c.not_seen()), Percent(c.installed(), c.targeted()), TopError(c)});
  }
  waves.Print(out);
  out << "\n";
  Table est({"WAVE", "UAI", "ESTABLISHMENT", "TARGETED", "INSTALLED", "IN PROGRESS", "FAILED",
             "NOT SEEN", "TOP ERROR"});
  for (const auto& w : r.waves()) {
    for (const auto& e : w.establishments()) {
      const auto& c = e.counts();
      est.AddRow({std::to_string(w.index() + 1), e.uai(), e.name(), std::to_string(c.targeted()),
                  std::to_string(c.installed()), std::to_string(c.in_progress()),
                  std::to_string(c.failed()), std::to_string(c.not_seen()), TopError(c)});
    }
  }
  est.Print(out);
  const auto& t = r.total();
  out << "\nTotal: " << t.installed() << " of " << t.targeted() << " devices installed ("
      << Percent(t.installed(), t.targeted()) << "), " << t.in_progress() << " in progress, "
      << t.failed() << " failed, " << t.not_seen() << " not seen since the start\n";
  for (const auto& e : t.top_errors()) {
    out << "  " << common::TerminalSafe(e.reason()) << ": " << e.devices() << " device(s), e.g. "
        << common::TerminalSafe(e.example()) << "\n";
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Operators, audit, reports

int OperatorsCreate(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::CreateOperatorRequest request;
  request.set_name(o.name);
  request.set_role(o.role);
  request.set_scope(o.scope);
  parc::v1::CreateOperatorResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::CreateOperator, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << "Operator token for " << r.operator_().name() << " (" << r.operator_().role() << ", scope "
      << r.operator_().scope() << "), shown only now:\n"
      << r.token() << "\n";
  return 0;
}

int OperatorsList(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::ListOperatorsResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::ListOperators,
                              parc::v1::ListOperatorsRequest(), &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  Table table({"ID", "NAME", "ROLE", "SCOPE", "CREATED", "REVOKED"});
  for (const auto& op : r.operators()) {
    table.AddRow({op.id(), op.name(), op.role(), op.scope(), FormatTimestamp(op.created_at()),
                  FormatTimestamp(op.revoked_at())});
  }
  table.Print(out);
  return 0;
}

int OperatorsRevoke(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::RevokeOperatorRequest request;
  request.set_operator_(o.id);
  parc::v1::Operator r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::RevokeOperator, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << "Revoked operator " << r.name() << " (" << r.id() << ")\n";
  return 0;
}

int Audit(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::ListAuditRequest request;
  if (!o.since.empty()) {
    auto d = common::ParseDuration(o.since);
    absl::Time t;
    std::string parse_err;
    if (d.ok()) {
      request.set_since_unix(absl::ToUnixSeconds(absl::Now() - *d));
    } else if (absl::ParseTime("%Y-%m-%d", o.since, absl::LocalTimeZone(), &t, &parse_err)) {
      request.set_since_unix(absl::ToUnixSeconds(t));
    } else {
      err << "parcctl audit: --since: a duration (7d) or a date (2026-11-01)\n";
      return 2;
    }
  }
  request.set_operator_(o.name);
  parc::v1::ListAuditResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::ListAudit, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  Table table({"WHEN", "OPERATOR", "ACTION", "TARGET", "OUTCOME"});
  for (const auto& e : r.entries()) {
    table.AddRow({FormatTimestamp(e.at()), e.operator_name(), e.action(), e.target(),
                  e.outcome() == "ok" ? "ok" : absl::StrCat(e.outcome(), ": ", e.detail())});
  }
  table.Print(out);
  return 0;
}

void PrintRows(const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows, const std::string& format,
               std::ostream& out) {
  if (format == "csv") {
    out << common::kCsvBom << common::CsvRow(header);
    for (const auto& row : rows) out << common::CsvExportRow(row);
    return;
  }
  Table table(header);
  for (const auto& row : rows) table.AddRow(row);
  table.Print(out);
}

int ReportDeployment(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::DeploymentReportRequest request;
  size_t at = o.bundle.find('@');
  request.set_bundle_name(o.bundle.substr(0, at));
  if (at != std::string::npos) request.set_bundle_version(o.bundle.substr(at + 1));
  request.set_by(o.by.empty() ? "departement" : o.by);
  if (!o.stale.empty()) {
    auto d = common::ParseDuration(o.stale);
    if (!d.ok()) return Fail(err, d.status());
    request.set_stale_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(*d)));
  }
  parc::v1::DeploymentReportResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::GetDeploymentReport, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json || o.format == "json") {
    out << common::ToJson(r);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  auto row = [](const parc::v1::DeploymentReportRow& x) {
    return std::vector<std::string>{x.group(),
                                    x.label(),
                                    std::to_string(x.establishments()),
                                    std::to_string(x.devices()),
                                    std::to_string(x.up_to_date()),
                                    std::to_string(x.in_progress()),
                                    std::to_string(x.failed()),
                                    std::to_string(x.never_seen()),
                                    std::to_string(x.stale()),
                                    absl::StrFormat("%.1f", x.percent_up_to_date())};
  };
  for (const auto& x : r.rows()) rows.push_back(row(x));
  rows.push_back(row(r.total()));
  PrintRows({"GROUP", "NAME", "ESTABLISHMENTS", "DEVICES", "UP TO DATE", "IN PROGRESS", "FAILED",
             "NEVER SEEN", "STALE", "% UP TO DATE"},
            rows, o.format, out);
  return 0;
}

int ReportInventory(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::InventoryReportRequest request;
  request.set_by(o.by.empty() ? "model" : o.by);
  parc::v1::InventoryReportResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::GetInventoryReport, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json || o.format == "json") {
    out << common::ToJson(r);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  auto row = [](const parc::v1::InventoryReportRow& x) {
    return std::vector<std::string>{
        x.group(), std::to_string(x.devices()), std::to_string(x.battery_below_60()),
        std::to_string(x.rotational_disk()), absl::StrFormat("%.1f", x.average_ram_gib())};
  };
  for (const auto& x : r.rows()) rows.push_back(row(x));
  rows.push_back(row(r.total()));
  PrintRows({"GROUP", "DEVICES", "BATTERY < 60%", "HARD DISK", "RAM (GiB, avg)"}, rows, o.format,
            out);
  return 0;
}

// "12 (3.4 %)", or "—" for a group without devices.
std::string CountAndShare(uint32_t count, uint32_t devices) {
  if (devices == 0) return "—";
  return absl::StrFormat("%u (%.1f %%)", count, 100.0 * count / devices);
}

int ReportHealth(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  std::vector<const common::HealthIndicatorInfo*> shown;
  if (o.indicator.empty()) {
    for (const auto& i : common::HealthIndicators()) shown.push_back(&i);
  } else {
    auto indicator = common::ParseHealthIndicator(o.indicator);
    if (!indicator.ok()) return Fail(err, indicator.status());
    shown.push_back(&common::InfoOf(*indicator));
  }
  parc::v1::HealthReportRequest request;
  request.set_by(o.by.empty() ? "departement" : o.by);
  parc::v1::HealthReportResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::GetHealthReport, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json || o.format == "json") {
    out << common::ToJson(r);
    return 0;
  }
  const bool csv = o.format == "csv";
  std::vector<std::string> header = {"GROUP", "NAME", "ESTABLISHMENTS", "DEVICES"};
  for (const auto* i : shown) {
    header.push_back(i->header);
    if (csv) header.push_back(absl::StrCat(i->header, " %"));
  }
  std::vector<std::vector<std::string>> rows;
  auto row = [&](const parc::v1::HealthReportRow& x) {
    std::vector<std::string> cells = {x.group(), x.label(), std::to_string(x.establishments()),
                                      std::to_string(x.devices())};
    for (const auto* i : shown) {
      const uint32_t n = i->count(x);
      if (csv) {
        // Numbers for spreadsheets; an empty share for a group without devices.
        cells.push_back(std::to_string(n));
        cells.push_back(x.devices() == 0 ? "" : absl::StrFormat("%.1f", 100.0 * n / x.devices()));
      } else {
        cells.push_back(CountAndShare(n, x.devices()));
      }
    }
    return cells;
  };
  for (const auto& x : r.rows()) rows.push_back(row(x));
  rows.push_back(row(r.total()));
  PrintRows(header, rows, o.format, out);
  if (!csv) {
    out << "As of " << r.as_of() << " (UTC); ";
    if (r.bundle_name().empty()) {
      out << "no published bundle declares requirements: none counted as unable to take it\n";
    } else {
      out << "bundle " << r.bundle_name() << "@" << r.bundle_version() << " needs "
          << common::HumanBytes(r.installed_bytes(), false) << " free and "
          << common::HumanBytes(r.min_ram_bytes(), false) << " of memory\n";
    }
  }
  return 0;
}

int OsSupportList(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::ListOsVersionsResponse r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::ListOsVersions,
                              parc::v1::ListOsVersionsRequest(), &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  Table table({"OS", "VERSION", "LABEL", "END OF SUPPORT", "DEVICES", "UPDATED"});
  for (const auto& v : r.versions()) {
    table.AddRow(
        {v.os_name(), v.os_version(), v.label(),
         v.end_of_support().empty() ? "unknown" : v.end_of_support(), std::to_string(v.devices()),
         v.has_updated_at() ? absl::StrCat(FormatTimestamp(v.updated_at()), " by ", v.updated_by())
                            : "seeded"});
  }
  table.Print(out);
  return 0;
}

int OsSupportSet(Admin& admin, const Options& o, std::ostream& out, std::ostream& err) {
  parc::v1::SetOsSupportRequest request;
  request.set_os_name(o.os_name);
  request.set_os_version(o.os_version);
  request.set_end_of_support(o.end_of_support == "unknown" ? "" : o.end_of_support);
  request.set_label(o.label);
  parc::v1::OsVersion r;
  absl::Status s = admin.Call(&parc::v1::AdminService::Stub::SetOsSupport, request, &r);
  if (!s.ok()) return Fail(err, s);
  if (o.json) {
    out << common::ToJson(r);
    return 0;
  }
  out << r.os_name() << " " << r.os_version() << " (" << r.label() << "): end of support "
      << (r.end_of_support().empty() ? "unknown" : r.end_of_support()) << "\n";
  return 0;
}

}  // namespace

int CtlMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"parcctl: operate a Parc server (establishments, enrollment tokens, devices).",
               "parcctl"};
  app.require_subcommand(1);
  app.set_version_flag("--version", PARC_VERSION);
  app.set_help_all_flag("--help-all", "Print the help of every command and exit");
  app.footer(
      "Examples:\n"
      "  parcctl establishments import fr-en-annuaire-education.csv --skip-invalid\n"
      "  parcctl tokens create --region --expires 90d --note \"image loRdi 2026\"\n"
      "  parcctl devices list --uai 0310036W --stale 7d\n"
      "  parcctl rollouts create --bundle mcnl@2026.1 --target all --waves 5,25,100\n"
      "  parcctl report deployment --bundle mcnl --by departement --format csv\n"
      "Connection: --server/--ca/--token flags, else PARC_SERVER, PARC_CA, PARC_TOKEN or\n"
      "PARC_TOKEN_FILE, else ~/.config/parc/parcctl.toml or /etc/parc/parcctl.toml.\n"
      "Exit status: 0 success, 1 refused by the server or unreachable, 2 bad usage.");
  app.fallthrough();
  ConnectionFlags conn;
  Options o;
  app.add_option("--server", conn.server, "Server address HOST:PORT (env PARC_SERVER)");
  app.add_option("--ca", conn.ca, "CA certificate of the server (env PARC_CA)");
  app.add_option("--token", conn.token, "Operator token (env PARC_TOKEN)");
  app.add_option("--token-file", conn.token_file, "File holding the operator token");
  app.add_option("--config", conn.config, "Config file (server, ca, token_file, insecure)");
  app.add_flag("--insecure", conn.insecure, "Plaintext connection (test servers on loopback)");
  app.add_flag("--json", o.json, "Print JSON for scripts");

  std::function<int(Admin&, const Options&, std::ostream&, std::ostream&)> action;
  auto bind = [&](CLI::App* cmd, decltype(action) fn) {
    cmd->callback([&action, fn] { action = fn; });
  };

  CLI::App* est = app.add_subcommand("establishments", "Establishments (annuaire de l'éducation)");
  est->require_subcommand(1);
  CLI::App* est_import = est->add_subcommand("import", "Import or update from a CSV export");
  est_import->add_option("FILE", o.file, "CSV file (';' or ',' separated, UTF-8)")->required();
  est_import->add_flag("--skip-invalid", o.skip_invalid,
                       "Import the valid rows and list the invalid ones");
  est_import->add_flag("--dry-run", o.dry_run, "Check every row, import nothing");
  bind(est_import, EstablishmentsImport);
  CLI::App* est_list = est->add_subcommand("list", "List establishments");
  est_list->add_option("--departement", o.departement, "Département code, e.g. 31");
  est_list->add_option("--academie", o.academie, "Toulouse or Montpellier");
  est_list->add_option("--type", o.type, "ecole, college, lycee or erea");
  est_list->add_option("--commune", o.commune, "Commune code or name");
  bind(est_list, EstablishmentsList);

  CLI::App* tokens = app.add_subcommand("tokens", "Enrollment tokens");
  tokens->require_subcommand(1);
  CLI::App* tok_create = tokens->add_subcommand("create", "Create an enrollment token");
  tok_create->add_option("--uai", o.uai, "Establishment whose devices it enrolls");
  tok_create->add_flag("--region", o.region,
                       "Region-wide: devices go to the establishment of their serial number "
                       "(devices preassign) or stay unassigned");
  tok_create->add_option("--expires", o.expires, "Lifetime, e.g. 30d, 12h")->capture_default_str();
  tok_create->add_option("--max-uses", o.max_uses,
                         "Number of enrollments allowed (default: unlimited for an "
                         "establishment, 500 for --region)");
  tok_create->add_flag("--reenroll", o.reenroll,
                       "May also re-key devices already enrolled in the establishment (after "
                       "re-imaging them); without it their records cannot be taken over");
  tok_create->add_option("--note", o.note, "Free text shown in listings");
  bind(tok_create, TokensCreate);
  CLI::App* tok_list = tokens->add_subcommand("list", "List enrollment tokens");
  tok_list->add_flag("--all", o.all, "Include expired, revoked and used-up tokens");
  bind(tok_list, TokensList);
  CLI::App* tok_revoke = tokens->add_subcommand("revoke", "Revoke an enrollment token");
  tok_revoke->add_option("ID", o.id, "Token id (or the token itself)")->required();
  bind(tok_revoke, TokensRevoke);

  CLI::App* relays = app.add_subcommand(
      "relays", "Establishment relays: HTTPS caches the devices download artifacts from");
  relays->require_subcommand(1);
  CLI::App* rel_add = relays->add_subcommand(
      "add", "Assign a relay to establishments (creates it, or adds establishments to it)");
  rel_add->add_option("--url", o.url, "Base URL, https://relay.example/parc")->required();
  rel_add->add_option("--uai", o.uais, "Establishment it serves (repeat for several)")->required();
  rel_add->add_flag("--new-token", o.new_token,
                    "Issue a new token for the relay (the old one stops working)");
  bind(rel_add, RelaysAdd);
  CLI::App* rel_list = relays->add_subcommand("list", "List relays, their health and bytes served");
  rel_list->add_option("--uai", o.uai, "Only the relays of this establishment");
  bind(rel_list, RelaysList);
  CLI::App* rel_remove = relays->add_subcommand(
      "remove", "Take establishments off a relay (all of them: the relay is removed)");
  rel_remove->add_option("--url", o.url, "The relay's URL")->required();
  rel_remove->add_option("--uai", o.uais, "Only these establishments (repeat for several)");
  bind(rel_remove, RelaysRemove);

  CLI::App* devices = app.add_subcommand("devices", "Devices");
  devices->require_subcommand(1);
  CLI::App* dev_pre = devices->add_subcommand(
      "preassign", "Import a supplier delivery list (serial;uai) placing devices at enrollment");
  dev_pre->add_option("FILE", o.file, "CSV file: serial number;UAI")->required();
  dev_pre->add_flag("--skip-invalid", o.skip_invalid, "Import the valid rows");
  dev_pre->add_flag("--dry-run", o.dry_run, "Check every row, import nothing");
  bind(dev_pre, DevicesPreassign);
  CLI::App* dev_list = devices->add_subcommand("list", "List devices");
  dev_list->add_option("--uai", o.uai, "Devices of one establishment");
  dev_list->add_option("--departement", o.departement, "Devices of a département");
  dev_list->add_option("--kind", o.kind, "laptop, tablet, display, desktop, other");
  dev_list->add_option("--stale", o.stale, "Only devices not seen for this long, e.g. 7d");
  dev_list->add_flag("--unassigned", o.unassigned,
                     "Only devices in no establishment (serial in no delivery list)");
  bind(dev_list, DevicesList);
  CLI::App* dev_retire = devices->add_subcommand(
      "retire", "Delete a device that left the fleet (with its inventories and reports)");
  dev_retire->add_option("DEVICE", o.id, "Device id or serial number")->required();
  bind(dev_retire, DevicesRetire);
  CLI::App* dev_show = devices->add_subcommand("show", "Show a device and its inventory");
  dev_show->add_option("DEVICE", o.id, "Device id or serial number")->required();
  bind(dev_show, DevicesShow);

  CLI::App* bundles = app.add_subcommand("bundles", "Signed application bundles");
  bundles->require_subcommand(1);
  CLI::App* b_pub = bundles->add_subcommand(
      "publish", "Upload a bundle built by parc-bundle (only the artifacts the server lacks)");
  b_pub->add_option("DIR", o.file, "Bundle directory")->required();
  bind(b_pub, BundlesPublish);
  CLI::App* b_list = bundles->add_subcommand("list", "List published bundles");
  bind(b_list, BundlesList);

  CLI::App* rollouts = app.add_subcommand("rollouts", "Roll bundles out in waves");
  rollouts->require_subcommand(1);
  CLI::App* r_create = rollouts->add_subcommand("create", "Plan a rollout (then start it)");
  r_create->add_option("--bundle", o.bundle, "NAME@VERSION, e.g. mcnl@2026.1")->required();
  r_create
      ->add_option("--target", o.target,
                   "all | academie:NAME | departement:CODE | commune:CODE | uai:UAI,… | "
                   "tag:TAG")
      ->capture_default_str();
  r_create->add_option("--kinds", o.kinds, "Device kinds, e.g. laptop,tablet (default: all)");
  r_create->add_option("--waves", o.waves,
                       "Cumulative percentages of establishments, e.g. 5,25,100 (default 100)");
  r_create->add_option("--pilot", o.pilots, "Pilot establishments (first wave): UAI,UAI");
  r_create->add_option("--success", o.success, "Percent installed that completes a wave")
      ->capture_default_str();
  r_create->add_option("--max-failures", o.max_failures,
                       "Pause when failures exceed this percentage (5%) or reach this count");
  r_create->add_option("--window", o.window, "Device-local download hours, e.g. 18:00-07:00");
  r_create->add_option("--rate", o.rate, "Download bandwidth cap per device, e.g. 4MiB");
  bind(r_create, RolloutsCreate);
  for (const char* verb : {"start", "pause", "resume", "cancel"}) {
    CLI::App* c = rollouts->add_subcommand(verb, std::string(verb) + " a rollout");
    c->add_option("ID", o.id, "Rollout id")->required();
    c->callback([&action, &o, verb] {
      o.action = verb;
      action = RolloutsUpdate;
    });
  }
  CLI::App* r_list = rollouts->add_subcommand("list", "List rollouts");
  bind(r_list, RolloutsList);
  CLI::App* r_status = rollouts->add_subcommand(
      "status", "Progress per wave and establishment, with the most common errors");
  r_status->add_option("ID", o.id, "Rollout id")->required();
  bind(r_status, RolloutsStatus);

  CLI::App* operators = app.add_subcommand("operators", "Operator tokens (admin)");
  operators->require_subcommand(1);
  CLI::App* op_create = operators->add_subcommand("create", "Create an operator; prints its token");
  op_create->add_option("--name", o.name, "Operator name (a person or a service)")->required();
  op_create->add_option("--role", o.role, "admin, publisher, technician or viewer")->required();
  op_create
      ->add_option("--scope", o.scope,
                   "region | academie:NAME | departement:CODE | commune:CODE,… | uai:UAI,… | "
                   "collectivite:region | collectivite:departement:CODE | "
                   "collectivite:commune:CODE,…")
      ->required();
  bind(op_create, OperatorsCreate);
  CLI::App* op_list = operators->add_subcommand("list", "List operators");
  bind(op_list, OperatorsList);
  CLI::App* op_revoke = operators->add_subcommand("revoke", "Revoke an operator's token");
  op_revoke->add_option("OPERATOR", o.id, "Operator id or name")->required();
  bind(op_revoke, OperatorsRevoke);

  CLI::App* audit = app.add_subcommand("audit", "Audit log of state-changing actions (admin)");
  audit->add_option("--since", o.since, "A duration (7d) or a date (2026-11-01)");
  audit->add_option("--operator", o.name, "Only this operator's actions");
  bind(audit, Audit);

  CLI::App* report = app.add_subcommand("report", "Reports within your scope");
  report->require_subcommand(1);
  CLI::App* rep_dep = report->add_subcommand("deployment", "Deployment status of a bundle");
  rep_dep->add_option("--bundle", o.bundle, "NAME[@VERSION] (default: latest)")->required();
  rep_dep->add_option("--by", o.by, "region, academie, departement, commune, establishment or kind")
      ->capture_default_str();
  rep_dep->add_option("--stale", o.stale, "Not seen for this long counts as stale (default 7d)");
  rep_dep->add_option("--format", o.format, "table, csv or json")->capture_default_str();
  bind(rep_dep, ReportDeployment);
  CLI::App* rep_inv = report->add_subcommand("inventory", "Fleet composition");
  rep_inv->add_option("--by", o.by, "model, os, kind or departement");
  rep_inv->add_option("--format", o.format, "table, csv or json")->capture_default_str();
  bind(rep_inv, ReportInventory);
  CLI::App* rep_health = report->add_subcommand(
      "health", "Fleet health: what to replace, repair or reinstall, and where");
  rep_health->add_option("--by", o.by, "region, academie, departement, commune or establishment");
  std::string indicators;
  for (const auto& i : common::HealthIndicators()) {
    absl::StrAppend(&indicators, indicators.empty() ? "" : ", ", i.name);
  }
  rep_health->add_option("--indicator", o.indicator, absl::StrCat("Only this one: ", indicators));
  rep_health->add_option("--format", o.format, "table, csv or json")->capture_default_str();
  bind(rep_health, ReportHealth);

  CLI::App* os_support = app.add_subcommand(
      "os-support", "Operating system versions and the end of their security support");
  os_support->require_subcommand(1);
  CLI::App* os_list = os_support->add_subcommand("list", "Versions known, with their devices");
  bind(os_list, OsSupportList);
  CLI::App* os_set =
      os_support->add_subcommand("set", "Set a version's end of support (region-wide admin)");
  os_set->add_option("--os", o.os_name, "As devices report it: \"Windows\", \"Debian GNU/Linux\"")
      ->required();
  os_set->add_option("--os-version", o.os_version, "As devices report it: 10.0.19045, 12")
      ->required();
  os_set
      ->add_option("--end", o.end_of_support,
                   "The last day of security updates (YYYY-MM-DD), "
                   "or \"unknown\"")
      ->required();
  os_set->add_option("--label", o.label, "For people: \"Windows 10 22H2\"");
  bind(os_set, OsSupportSet);

  if (auto exit_status = common::ParseCommandLine(app, args, out, err)) return *exit_status;
  if (!action) return 2;
  auto connection = ResolveConnection(conn);
  if (!connection.ok()) {
    err << "parcctl: " << connection.status().message() << "\n";
    return 2;
  }
  auto admin = Admin::Connect(*connection);
  if (!admin.ok()) {
    err << "parcctl: " << admin.status().message() << "\n";
    return 2;
  }
  return action(*admin, o, out, err);
}

}  // namespace parc::cli
