#include "agent/core/cli.h"

#include <cstdlib>
#include <iomanip>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/core/config.h"
#include "agent/core/daemon.h"
#include "agent/core/enrollment.h"
#include "agent/core/sqlite_state.h"
#include "asio.hpp"
#include "common/bundle_trust.h"
#include "common/cli_args.h"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/inventory_format.h"
#include "common/inventory_util.h"
#include "common/logging.h"
#include "common/proto_json.h"
#include "common/text.h"

namespace parc::agent {
namespace {

// text as a JSON string literal.
std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out += absl::StrFormat("\\u%04x", u);
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

struct CommonFlags {
  std::string config_path = kDefaultAgentConfigPath;
  bool config_given = false;
  std::string root;
  std::string state_dir;
};

void AddCommonFlags(CLI::App* cmd, CommonFlags* flags) {
  cmd->add_option("--config", flags->config_path, "Configuration file")
      ->each([flags](const std::string&) { flags->config_given = true; })
      ->capture_default_str();
  cmd->add_option("--root", flags->root,
                  "Read the system under this directory instead of / (fixture trees)");
  cmd->add_option("--state-dir", flags->state_dir,
                  "Directory of the agent's identity and local state");
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

// Enrollment parameters from flags, falling back to the configuration file.
absl::StatusOr<EnrollParams> ResolveEnrollParams(const AgentConfig& config,
                                                 const std::string& server,
                                                 const std::string& token, const std::string& ca,
                                                 const std::string& kind, bool insecure) {
  EnrollParams p;
  p.server = server.empty() ? config.server : server;
  p.token = token.empty() ? config.enrollment_token : token;
  p.insecure = insecure || config.insecure;
  std::string ca_path = ca.empty() ? config.ca : ca;
  std::string kind_name = kind.empty() ? config.kind : kind;
  if (p.server.empty()) return absl::InvalidArgumentError("no server: give --server HOST:PORT");
  if (p.token.empty()) return absl::InvalidArgumentError("no enrollment token: give --token");
  if (!p.insecure) {
    if (ca_path.empty()) {
      return absl::InvalidArgumentError(
          "no CA certificate: give --ca with the CA file printed by parc-server");
    }
    auto pem = common::ReadFile(ca_path, 1 << 20);
    if (!pem.ok())
      return absl::InvalidArgumentError(absl::StrCat("--ca: ", pem.status().message()));
    if (pem->find("BEGIN CERTIFICATE") == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ca: ", ca_path, " holds no PEM certificate"));
    }
    p.ca_pem = *pem;
  }
  if (!kind_name.empty()) {
    auto k = common::ParseKind(kind_name);
    if (!k.ok()) return absl::InvalidArgumentError(absl::StrCat("--kind: ", k.status().message()));
    p.kind = *k;
  }
  return p;
}

// Before imaging: is the server reachable, is its certificate from this CA, does the token
// work, is this hardware identifiable? Enrolls nothing.
int CheckEnroll(const Platform& platform, const EnrollParams& params, std::ostream& out,
                std::ostream& err) {
  TransportOptions o;
  o.server = params.server;
  o.ca_pem = params.ca_pem;
  o.insecure = params.insecure;
  o.enroll_timeout = absl::Seconds(15);
  auto client = platform.transport->Connect(o);
  if (!client.ok()) {
    err << "parc-agent: " << client.status().message() << "\n";
    return 1;
  }
  auto r = (*client)->CheckEnrollment(MakeEnrollRequest(*platform.inventory, params));
  if (!r.ok()) {
    err << "parc-agent enroll --check: FAILED: " << absl::StatusCodeToString(r.status().code())
        << ": " << r.status().message() << "\n";
    if (absl::IsUnavailable(r.status())) {
      err << "  Is the address right and the server running? Is the CA file the one the server "
             "printed (not another académie's)? Is a proxy or firewall in the way?\n";
    }
    return 1;
  }
  out << "OK: server " << params.server << " reachable over "
      << (params.insecure ? "plaintext" : "TLS with this CA") << ", token valid";
  if (r->uai().empty()) {
    out << " (region-wide: devices go to the establishment of their serial number)";
  } else {
    out << " for " << r->uai() << " " << r->establishment_name();
  }
  out << ", expires in " << common::FormatDurationShort(absl::Seconds(r->expires_in_seconds()));
  if (r->uses_left() > 0) out << ", " << r->uses_left() << " enrollment(s) left";
  out << ". Nothing was enrolled.\n";
  return 0;
}

int Enroll(const AgentConfig& config, const Platform& platform, const EnrollParams& params,
           std::ostream& out, std::ostream& err) {
  auto state = SqliteAgentState::Open(config.state_dir);
  if (!state.ok()) {
    err << "parc-agent: state: " << state.status().message() << "\n";
    return 1;
  }
  TransportOptions o;
  o.server = params.server;
  o.ca_pem = params.ca_pem;
  o.insecure = params.insecure;
  auto client = platform.transport->Connect(o);
  if (!client.ok()) {
    err << "parc-agent: " << client.status().message() << "\n";
    return 1;
  }
  auto request = MakeEnrollRequest(*platform.inventory, params);
  // Enrolled already on this hardware: the current credential proves it is this device, so
  // the server may re-key it without a re-enrollment token.
  auto held = (*state)->LoadIdentity();
  const std::string fingerprint = Fingerprint(request.identity());
  if (held.ok() && held->has_value() && (*held)->fingerprint == fingerprint) {
    request.set_device_credential(CredentialOf(**held));
  } else if (std::string spare = (*state)->SpareCredential(fingerprint); !spare.empty()) {
    // The state database was lost or damaged, not the device's credential.
    request.set_device_credential(spare);
  }
  auto response = (*client)->Enroll(request);
  if (!response.ok()) {
    err << "parc-agent: enrollment failed: " << absl::StatusCodeToString(response.status().code())
        << ": " << response.status().message() << "\n";
    return 1;
  }
  Identity id =
      IdentityFromEnrollment(params, *response, Fingerprint(request.identity()), absl::Now());
  // Whatever was queued belongs to the previous identity.
  absl::Status s = (*state)->ClearIdentity();
  if (s.ok()) s = (*state)->SaveIdentity(id);
  if (!s.ok()) {
    err << "parc-agent: cannot save identity: " << s.message() << "\n";
    return 1;
  }
  out << (response->reenrolled() ? "Re-enrolled" : "Enrolled") << " as device " << id.device_id;
  if (id.uai.empty()) {
    out << " (not assigned to an establishment yet: its serial number is in no delivery list)";
  } else {
    out << " in " << id.uai << " " << id.establishment_name;
  }
  out << "\n";
  return 0;
}

int Run(const AgentConfig& config, Platform& platform, bool once, absl::Duration retry_base,
        absl::Duration splay, std::ostream& out, std::ostream& err) {
  OutboxLimits limits;
  limits.max_entries = config.outbox_max_reports;
  auto state = SqliteAgentState::Open(config.state_dir, limits);
  if (!state.ok()) {
    err << "parc-agent: state: " << state.status().message() << "\n";
    return 1;
  }
  DaemonOptions options;
  options.once = once;
  options.deploy.cache_dir =
      config.cache_dir.empty() ? config.state_dir + "/cache" : config.cache_dir;
  options.deploy.threshold = config.signature_threshold;
  for (const auto& path : config.publisher_keys) {
    auto key = common::LoadPublicKey(path);
    if (!key.ok()) {
      err << "parc-agent: publisher_keys: " << key.status().message() << "\n";
      return 2;
    }
    options.deploy.keys.push_back(*key);
  }
  options.retry_base = retry_base;
  options.image_fingerprint = config.image_fingerprint;
  options.initial_splay = splay;
  if (!config.server.empty() && !config.enrollment_token.empty()) {
    auto params = ResolveEnrollParams(config, "", "", "", "", false);
    if (!params.ok()) {
      err << "parc-agent: configuration: " << params.status().message() << "\n";
      return 2;
    }
    options.enroll = *params;
  }
  asio::io_context io;
  ServiceHost* host = platform.host.get();
  options.on_stop = [host] { host->Unwatch(); };
  Daemon daemon(io, &platform, state->get(), options, common::RealClock::Get());
  host->Watch(
      io,
      [&daemon] {
        spdlog::info("stopping");
        daemon.Stop();
      },
      [&daemon] { daemon.TriggerNow(); });
  daemon.Start();
  // Runs until the daemon stops (signal, or the end of the --once cycle).
  io.run();
  if (once) {
    if (!daemon.last_status().ok()) {
      err << "parc-agent: " << daemon.last_status().message() << "\n";
      return 1;
    }
    auto queued = (*state)->QueuedCount();
    out << "Checked in; " << (queued.ok() ? *queued : -1) << " report(s) still queued\n";
  }
  return 0;
}

const char* PackageStateName(parc::v1::PackageState s) {
  switch (s) {
    case parc::v1::PACKAGE_STATE_QUEUED:
      return "queued";
    case parc::v1::PACKAGE_STATE_DOWNLOADING:
      return "downloading";
    case parc::v1::PACKAGE_STATE_DOWNLOADED:
      return "downloaded";
    case parc::v1::PACKAGE_STATE_INSTALLING:
      return "installing";
    case parc::v1::PACKAGE_STATE_INSTALLED:
      return "installed";
    case parc::v1::PACKAGE_STATE_FAILED:
      return "failed";
    case parc::v1::PACKAGE_STATE_REMOVED:
      return "removed";
    case parc::v1::PACKAGE_STATE_WAITING:
      return "waiting for the download window";
    default:
      return "?";
  }
}

int Bundles(const AgentConfig& config, std::ostream& out, std::ostream& err) {
  if (!common::PathExists(config.state_dir + "/agent.db")) {
    out << "No bundle: this device is not enrolled (no state in " << config.state_dir << ")\n";
    return 0;
  }
  auto state = SqliteAgentState::Open(config.state_dir);
  if (!state.ok()) {
    err << "parc-agent: state: " << state.status().message() << "\n";
    return 1;
  }
  auto bundles = (*state)->LoadBundles();
  if (!bundles.ok()) {
    err << "parc-agent: " << bundles.status().message() << "\n";
    return 1;
  }
  auto refused = (*state)->Get("refused_bundle");
  if (refused.ok() && !refused->empty()) {
    out << "REFUSED " << common::TerminalSafe(*refused) << "\n";
  }
  if (bundles->empty()) out << "No bundle assigned to this device yet\n";
  for (const auto& b : *bundles) {
    out << b.name << "@" << b.version << " (sequence " << b.sequence << ", rollout " << b.rollout_id
        << "): " << b.state << "\n";
    auto packages = (*state)->LoadPackages(b.name);
    if (!packages.ok()) continue;
    for (const auto& p : *packages) {
      out << "  " << std::left << std::setw(20) << p.package_id << std::setw(14) << p.version
          << PackageStateName(p.state);
      if (!p.reason.empty()) out << " (" << p.reason << ")";
      if (p.state == parc::v1::PACKAGE_STATE_FAILED) {
        if (p.exit_status != 0) out << ", exit " << p.exit_status;
        if (p.attempts > 0) out << ", " << p.attempts << " attempt(s)";
        if (!p.message.empty()) out << ": " << p.message;
      }
      out << "\n";
    }
  }
  return 0;
}

int Status(const AgentConfig& config, const Platform& platform, bool json, std::ostream& out,
           std::ostream& err) {
  if (!common::PathExists(config.state_dir + "/agent.db")) {
    out << "Not enrolled (no state in " << config.state_dir
        << "). Enroll with: parc-agent enroll --server HOST:PORT --token TOKEN --ca CA.pem\n";
    return 3;
  }
  auto state = SqliteAgentState::Open(config.state_dir);
  if (!state.ok()) {
    err << "parc-agent: state: " << state.status().message() << "\n";
    return 1;
  }
  auto identity = (*state)->LoadIdentity();
  if (!identity.ok()) {
    err << "parc-agent: " << identity.status().message() << "\n";
    return 1;
  }
  std::string fingerprint = Fingerprint(platform.inventory->CollectIdentity());
  auto queued = (*state)->QueuedCount();
  auto dropped = (*state)->DroppedCount();
  auto last_checkin = (*state)->Get("last_checkin_at");
  auto next_checkin = (*state)->Get("next_checkin_at");
  auto last_error = (*state)->Get("last_error");
  auto last_refused = (*state)->Get("last_refused");
  auto refused_bundle = (*state)->Get("refused_bundle");
  auto when = [](const absl::StatusOr<std::string>& v) -> std::string {
    int64_t secs = 0;
    if (!v.ok() || !absl::SimpleAtoi(*v, &secs)) return "-";
    return FormatUtc(absl::FromUnixSeconds(secs));
  };
  if (json) {
    out << "{\n";
    if (identity->has_value()) {
      const Identity& id = **identity;
      out << "  \"enrolled\": true,\n  \"device_id\": \"" << id.device_id << "\",\n"
          << "  \"server\": \"" << id.server << "\",\n  \"uai\": \"" << id.uai << "\",\n"
          << "  \"hardware_matches\": " << (id.fingerprint == fingerprint ? "true" : "false")
          << ",\n";
    } else {
      out << "  \"enrolled\": false,\n";
    }
    out << "  \"last_checkin\": \"" << when(last_checkin) << "\",\n"
        << "  \"queued_reports\": " << (queued.ok() ? *queued : -1) << ",\n"
        << "  \"dropped_reports\": " << (dropped.ok() ? *dropped : 0) << ",\n"
        << "  \"refused_bundle\": " << JsonString(refused_bundle.ok() ? *refused_bundle : "")
        << ",\n"
        << "  \"last_refused\": " << JsonString(last_refused.ok() ? *last_refused : "") << "\n}\n";
    return identity->has_value() ? 0 : 3;
  }
  auto row = [&](const char* label, const std::string& value) {
    out << std::left << std::setw(16) << label << value << "\n";
  };
  if (!identity->has_value()) {
    row("Device", "not enrolled");
  } else {
    const Identity& id = **identity;
    row("Device", id.device_id);
    row("Server", absl::StrCat(id.server, id.insecure ? " (plaintext)" : " (TLS)"));
    row("Establishment",
        id.uai.empty() ? "not assigned yet" : absl::StrCat(id.uai, " ", id.establishment_name));
    row("Enrolled", FormatUtc(id.enrolled_at));
    row("Hardware", id.fingerprint == fingerprint
                        ? "matches the enrolled device"
                        : "DIFFERS from the enrolled device: the next start enrolls as a new "
                          "device");
  }
  row("Last check-in", when(last_checkin));
  row("Next check-in", when(next_checkin));
  row("Queued reports", absl::StrCat(queued.ok() ? *queued : -1, " (", dropped.ok() ? *dropped : 0,
                                     " dropped since enrollment)"));
  row("Last error", last_error.ok() && !last_error->empty() ? *last_error : "-");
  row("Last refusal", last_refused.ok() && !last_refused->empty() ? *last_refused : "-");
  if (refused_bundle.ok() && !refused_bundle->empty()) {
    row("Refused bundle", common::TerminalSafe(*refused_bundle));
  }
  return identity->has_value() ? 0 : 3;
}

}  // namespace

int AgentMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
              const PlatformFactory& make_platform, bool supervise) {
  CLI::App app{
      "parc-agent: inventories this device for Parc and keeps it enrolled.\n"
      "Reads /etc/parc/agent.toml (server, ca, enrollment_token, kind, state_dir); flags "
      "override it.",
      "parc-agent"};
  app.require_subcommand(1);
  app.set_version_flag("--version", PARC_VERSION);
  app.set_help_all_flag("--help-all", "Print the help of every command and exit");
  app.footer(
      "Examples:\n"
      "  parc-agent enroll --server parc.example.fr:8443 --ca /etc/parc/ca.pem --token TOKEN\n"
      "  parc-agent enroll --check --config /etc/parc/agent.toml   (before imaging)\n"
      "  parc-agent status\n"
      "  parc-agent inventory --json\n"
      "  parc-agent bundles\n"
      "Files: /etc/parc/agent.toml (settings), /var/lib/parc-agent (identity, outbox, cache).\n"
      "Exit status: 0 success, 1 failure (message on stderr), 2 bad usage, 3 not enrolled\n"
      "(status).");
  CommonFlags common_flags;

  std::string server, token, ca, kind;
  bool insecure = false;
  CLI::App* enroll = app.add_subcommand("enroll", "Enroll this device with a Parc server");
  AddCommonFlags(enroll, &common_flags);
  enroll->add_option("--server", server, "Server address HOST:PORT");
  std::string token_file;
  enroll->add_option("--token", token,
                     "Enrollment token from `parcctl tokens create` (visible to other users in "
                     "ps: prefer --token-file or PARC_ENROLLMENT_TOKEN)");
  enroll->add_option("--token-file", token_file, "File holding the enrollment token");
  enroll->add_option("--ca", ca, "CA certificate (PEM) the server's certificate is signed by");
  enroll->add_option("--kind", kind,
                     "Device kind: laptop, tablet, display, desktop or other (default: "
                     "detected from the chassis type; displays must be given)");
  enroll->add_flag("--insecure", insecure, "Plaintext connection (test servers on loopback)");
  bool check = false;
  enroll->add_flag("--check", check,
                   "Only check that the server, CA and token work (before imaging); enroll "
                   "nothing");

  bool once = false;
  std::string retry_base = "10s";
  std::string splay = "10s";
  CLI::App* run = app.add_subcommand("run", "Run the agent daemon (check-ins, inventory)");
  AddCommonFlags(run, &common_flags);
  run->add_flag("--once", once, "Run one check-in cycle and exit (status 1 if it failed)");
  run->add_option("--retry-base", retry_base, "First retry delay after a failure")
      ->capture_default_str();
  run->add_option("--splay", splay, "Random delay before the first check-in")
      ->capture_default_str();

  bool json = false;
  CLI::App* inventory =
      app.add_subcommand("inventory", "Collect and print this device's inventory (no server)");
  AddCommonFlags(inventory, &common_flags);
  inventory->add_flag("--json", json, "Print JSON");

  CLI::App* status = app.add_subcommand("status", "Show enrollment and check-in status");
  AddCommonFlags(status, &common_flags);
  status->add_flag("--json", json, "Print JSON");

  CLI::App* bundles =
      app.add_subcommand("bundles", "Show the installed bundle and each package's state");
  AddCommonFlags(bundles, &common_flags);

  if (auto exit_status = common::ParseCommandLine(app, args, out, err)) return *exit_status;

  auto config = LoadAgentConfig(common_flags.config_path, common_flags.config_given);
  if (!config.ok()) {
    err << "parc-agent: " << config.status().message() << "\n";
    return 2;
  }
  if (!common_flags.root.empty()) config->root = common_flags.root;
  if (!common_flags.state_dir.empty()) config->state_dir = common_flags.state_dir;
  std::unique_ptr<Platform> platform = make_platform(*config);

  if (enroll->parsed()) {
    // The token from --token, else --token-file, else PARC_ENROLLMENT_TOKEN, else the
    // configuration.
    if (token.empty() && !token_file.empty()) {
      auto text = common::ReadFile(token_file, 4096);
      if (!text.ok()) {
        err << "parc-agent enroll: --token-file: " << text.status().message() << "\n";
        return 2;
      }
      token = std::string(absl::StripAsciiWhitespace(*text));
    }
    if (const char* env = std::getenv("PARC_ENROLLMENT_TOKEN"); token.empty() && env != nullptr) {
      token = env;
    }
    auto params = ResolveEnrollParams(*config, server, token, ca, kind, insecure);
    if (!params.ok()) {
      err << "parc-agent enroll: " << params.status().message() << "\n";
      return 2;
    }
    return check ? CheckEnroll(*platform, *params, out, err)
                 : Enroll(*config, *platform, *params, out, err);
  }
  if (run->parsed()) {
    auto base = common::ParseDuration(retry_base);
    auto sp = common::ParseDuration(splay);
    if (!base.ok() || !sp.ok()) {
      err << "parc-agent run: " << (base.ok() ? sp.status() : base.status()).message() << "\n";
      return 2;
    }
    if (!once && supervise) platform->host->Supervise(args, *sp, *base, err);
    return Run(*config, *platform, once, *base, once ? absl::ZeroDuration() : *sp, out, err);
  }
  if (inventory->parsed()) {
    parc::v1::Inventory inv = platform->inventory->CollectInventory();
    out << (json ? common::ToJson(inv) : common::FormatInventoryText(inv));
    return 0;
  }
  if (status->parsed()) return Status(*config, *platform, json, out, err);
  if (bundles->parsed()) return Bundles(*config, out, err);
  return 2;
}

}  // namespace parc::agent
