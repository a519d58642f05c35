#include "server/relays.h"

#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "server/tls_bootstrap.h"

namespace parc::server {

absl::StatusOr<std::string> NormalizeRelayUrl(absl::string_view url) {
  constexpr absl::string_view kScheme = "https://";
  if (url.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(url.substr(0, kScheme.size()), kScheme)) {
    // Artifacts are verified by hash wherever they come from; HTTPS also keeps what a device
    // installs, and from where, private on the school network.
    return absl::InvalidArgumentError("url: a relay's URL starts with https://");
  }
  std::string rest(url.substr(kScheme.size()));
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.size() + kScheme.size() > 512) {
    return absl::InvalidArgumentError("url: longer than 512 characters");
  }
  size_t host_end = rest.find('/');
  std::string host = rest.substr(0, host_end);
  if (host.empty()) return absl::InvalidArgumentError("url: no host name");
  for (char ch : rest) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '?' || c == '#') {
      return absl::InvalidArgumentError("url: a relay's URL has no query or fragment");
    }
    if (c == '@') {
      return absl::InvalidArgumentError(
          "url: no user name or password in a relay's URL (agents report it back)");
    }
    bool allowed = absl::ascii_isalnum(c) || absl::StrContains("-._~:/%[]!$&'()*+,;=", ch);
    if (!allowed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "url: character '", c < 0x20 || c >= 0x7f ? std::string("?") : std::string(1, ch),
          "' is not allowed (percent-encode it)"));
    }
  }
  return absl::StrCat(kScheme, absl::AsciiStrToLower(host),
                      host_end == std::string::npos ? "" : rest.substr(host_end));
}

std::string RelayHealth(const RelayRecord& r, absl::Time now) {
  if (r.wrong_bytes > 0) return "flagged";
  if (r.unreachable > 0) return "unreachable";
  // parc-relay-sync reports every 15 minutes; an hour without a word is worth a look.
  if (r.reported_at != absl::InfinitePast() && now - r.reported_at > kRelaySilentAfter) {
    return "silent";
  }
  return "ok";
}

parc::v1::Relay RelayProto(const RelayRecord& r, absl::Time now) {
  parc::v1::Relay p;
  p.set_url(r.url);
  for (const auto& uai : r.uais) p.add_uais(uai);
  p.mutable_created_at()->set_seconds(absl::ToUnixSeconds(r.created_at));
  p.set_wrong_bytes(r.wrong_bytes);
  p.set_unreachable(r.unreachable);
  if (r.last_fault_at != absl::InfinitePast()) {
    p.mutable_last_fault_at()->set_seconds(absl::ToUnixSeconds(r.last_fault_at));
  }
  p.set_last_fault(r.last_fault);
  p.set_health(RelayHealth(r, now));
  p.set_bytes_served(r.bytes_served);
  if (r.reported_at != absl::InfinitePast()) {
    p.mutable_reported_at()->set_seconds(absl::ToUnixSeconds(r.reported_at));
  }
  p.set_cache_bytes(r.cache_bytes);
  p.set_cache_max_bytes(r.cache_max_bytes);
  p.set_artifacts_missing(r.artifacts_missing);
  return p;
}

int RelayCertMain(int argc, char** argv) {
  std::string data_dir, out;
  std::vector<std::string> names;
  CLI::App app{
      "parc-server relay-cert: a TLS certificate for an establishment relay, signed by this "
      "server's private CA (DATA/tls/ca.key), which the agents already trust.",
      "parc-server relay-cert"};
  app.add_option("--data-dir", data_dir, "The server's data directory")->required();
  app.add_option("--name", names, "DNS name or IP address of the relay (repeat for several)")
      ->required();
  app.add_option("--out", out, "Directory receiving relay.pem and relay.key")->required();
  app.footer(
      "Example:\n"
      "  parc-server relay-cert --data-dir /var/lib/parc-server \\\n"
      "      --name relais.lycee-fermat.fr --name 10.31.0.5 --out /tmp/relais-fermat\n"
      "then copy both files to /etc/parc-relay/ on the relay.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto m = IssueCertificate(data_dir + "/tls", names);
  absl::Status s = m.status();
  if (s.ok()) s = common::MakeDirs(out, 0700);
  if (s.ok()) s = common::WriteFileAtomic(out + "/relay.key", m->key_pem, 0600);
  if (s.ok()) s = common::WriteFileAtomic(out + "/relay.pem", m->cert_pem, 0644);
  if (!s.ok()) {
    std::cerr << "parc-server relay-cert: " << s.message() << "\n";
    return 1;
  }
  std::cout << "parc-server relay-cert: wrote " << out << "/relay.pem and " << out
            << "/relay.key (valid 2 years) for " << names[0] << "\n";
  return 0;
}

}  // namespace parc::server
