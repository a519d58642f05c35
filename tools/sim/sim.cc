#include "tools/sim/sim.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <deque>
#include <mutex>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/linux/curl_fetcher.h"
#include "common/cli_args.h"
#include "common/crypto.h"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/http_listen.h"
#include "common/inventory_util.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "parc/v1/agent.pb.h"
#include "tools/sim/fleet.h"
#include "tools/sim/load.h"

namespace parc::sim {
namespace {

constexpr char kEnroll[] = "/parc.v1.AgentService/Enroll";
constexpr char kCheckIn[] = "/parc.v1.AgentService/CheckIn";
constexpr char kReportInventory[] = "/parc.v1.AgentService/ReportInventory";
constexpr char kReportDeployment[] = "/parc.v1.AgentService/ReportDeployment";

struct Connection {
  std::string server;
  std::string ca;
  bool insecure = false;
  int channels = 4;
};

absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> Channels(const Connection& c) {
  common::ChannelOptions o;
  o.target = c.server;
  o.insecure = c.insecure;
  if (!c.insecure) {
    auto pem = common::ReadFile(c.ca);
    if (!pem.ok()) return pem.status();
    o.ca_pem = *pem;
  }
  std::vector<std::shared_ptr<grpc::Channel>> out;
  for (int i = 0; i < c.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // distinct channels: one connection each
    std::shared_ptr<grpc::ChannelCredentials> creds =
        c.insecure ? grpc::InsecureChannelCredentials() : [&] {
          grpc::SslCredentialsOptions ssl;
          ssl.pem_root_certs = o.ca_pem;
          return grpc::SslCredentials(ssl);
        }();
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    out.push_back(grpc::CreateCustomChannel(c.server, creds, args));
  }
  return out;
}

// Frames a length-delimited protobuf field (wire type 2).
void AppendField(std::string* out, uint32_t field, const std::string& bytes) {
  google::protobuf::io::StringOutputStream raw(out);
  google::protobuf::io::CodedOutputStream coded(&raw);
  coded.WriteTag((field << 3) | 2);
  coded.WriteVarint32(static_cast<uint32_t>(bytes.size()));
  coded.WriteRaw(bytes.data(), static_cast<int>(bytes.size()));
}

std::string Deterministic(const google::protobuf::Message& m) {
  std::string bytes;
  google::protobuf::io::StringOutputStream raw(&bytes);
  google::protobuf::io::CodedOutputStream coded(&raw);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  return bytes;
}

// What the simulated devices send, built once per device (hashes) or per image (software).
class Payloads {
 public:
  explicit Payloads(const std::vector<SimDevice>* devices) : devices_(devices) {
    for (uint32_t i = 0; i < kImages; ++i) {
      image_bytes_.push_back(ImageSoftware(i).SerializeAsString());
      image_hash_.push_back(common::SoftwareHash(ImageSoftware(i)));
    }
  }

  // Which of its inventories a device reports: 0, the first (as enrolled); round r > 0, a
  // later one where only the firmware version moved (a BIOS update campaign): a new inventory
  // hash, every fact the server derives the same.
  void set_round(uint32_t round) { round_ = round; }

  // Device i's hardware in this round.
  parc::v1::Hardware Hardware(size_t i) const {
    const SimDevice& d = (*devices_)[i];
    parc::v1::Hardware hw = DeviceHardware(d);
    if (round_ > 0) hw.set_bios_version(absl::StrFormat("1.%d.%d", d.image % 9, round_));
    return hw;
  }

  // Hashes of device i's inventory.
  std::pair<std::string, std::string> Hashes(size_t i) const {
    const SimDevice& d = (*devices_)[i];
    std::string sw_hash =
        d.variant ? common::SoftwareHash(DeviceSoftware(d)) : image_hash_[d.image];
    return {common::InventoryHash(Hardware(i), sw_hash), sw_hash};
  }

  // Builds every device's check-in request before a load starts, on all cores: a check-in
  // of a variant device hashes its 1,000-package list, which would otherwise be the load
  // generator's own cost per call.
  void PrepareCheckIns() {
    checkins_.resize(devices_->size());
    const size_t workers = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> threads;
    for (size_t w = 0; w < workers; ++w) {
      threads.emplace_back([this, w, workers] {
        for (size_t i = w; i < checkins_.size(); i += workers) checkins_[i] = BuildCheckIn(i);
      });
    }
    for (auto& t : threads) t.join();
  }

  // Device i's check-in request (prepared, or built now).
  std::string CheckIn(size_t i) const {
    return i < checkins_.size() ? checkins_[i] : BuildCheckIn(i);
  }

  // A full inventory report (software list included unless with_software is false).
  std::string Inventory(size_t i, bool with_software = true) {
    const SimDevice& d = (*devices_)[i];
    parc::v1::Hardware hw = Hardware(i);
    std::string sw_bytes, sw_hash;
    if (d.variant) {
      auto list = DeviceSoftware(d);
      sw_bytes = list.SerializeAsString();
      sw_hash = common::SoftwareHash(list);
    } else {
      sw_bytes = image_bytes_[d.image];
      sw_hash = image_hash_[d.image];
    }
    std::string inventory;
    AppendField(&inventory, 1, Deterministic(hw));
    if (with_software) AppendField(&inventory, 2, sw_bytes);
    std::string request;
    AppendField(&request, 1, common::InventoryHash(hw, sw_hash));
    AppendField(&request, 2, sw_hash);
    AppendField(&request, 3, inventory);
    return request;
  }

  std::string BuildCheckIn(size_t i) const {
    parc::v1::CheckInRequest r;
    r.set_agent_version("0.1.0-sim");
    auto [inv, sw] = Hashes(i);
    r.set_inventory_hash(inv);
    r.set_software_hash(sw);
    // As an agent does: free space travels with every check-in.
    r.set_system_free_bytes(DeviceHardware((*devices_)[i]).system_free_bytes());
    return r.SerializeAsString();
  }

  std::string Enroll(size_t i, const std::string& token) {
    const SimDevice& d = (*devices_)[i];
    parc::v1::EnrollRequest r;
    r.set_token(token);
    *r.mutable_identity() = DeviceIdentity(d);
    r.set_detected_kind(DeviceHardware(d).detected_kind());
    if (d.kind == parc::v1::DEVICE_KIND_DISPLAY) r.set_kind(d.kind);
    r.set_agent_version("0.1.0-sim");
    r.set_hostname(DeviceHardware(d).hostname());
    return r.SerializeAsString();
  }

 private:
  const std::vector<SimDevice>* devices_;
  std::vector<std::string> image_bytes_;
  std::vector<std::string> image_hash_;
  std::vector<std::string> checkins_;
  uint32_t round_ = 0;
};

absl::StatusOr<std::vector<SimDevice>> LoadFleet(const std::string& dir) {
  auto text = common::ReadFile(dir + "/fleet.tsv", size_t{1} << 30);
  if (!text.ok()) return text.status();
  std::vector<SimDevice> devices;
  if (!ParseFleetTsv(*text, &devices)) {
    return absl::InvalidArgumentError(dir + "/fleet.tsv is malformed");
  }
  return devices;
}

absl::StatusOr<std::vector<std::string>> LoadCredentials(const std::string& dir, size_t n) {
  auto text = common::ReadFile(dir + "/credentials.tsv", size_t{1} << 30);
  if (!text.ok()) return text.status();
  std::vector<std::string> out(n);
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, '\t');
    size_t i = 0;
    if (f.size() != 2 || !absl::SimpleAtoi(f[0], &i) || i >= n) continue;
    out[i] = std::string(f[1]);
  }
  return out;
}

int Region(uint32_t devices, const std::string& dir, std::ostream& out, std::ostream& err) {
  Fleet fleet = MakeFleet(devices);
  absl::Status s = common::MakeDirs(dir);
  if (s.ok()) s = common::WriteFileAtomic(dir + "/annuaire.csv", AnnuaireCsv(fleet));
  if (s.ok()) s = common::WriteFileAtomic(dir + "/delivery.csv", DeliveryCsv(fleet));
  if (s.ok()) s = common::WriteFileAtomic(dir + "/fleet.tsv", FleetTsv(fleet));
  if (!s.ok()) {
    err << "parc-sim: " << s.message() << "\n";
    return 1;
  }
  out << "{\"establishments\": " << fleet.establishments.size()
      << ", \"devices\": " << fleet.devices.size() << "}\n";
  return 0;
}

int Enroll(const Connection& c, const std::string& dir, const std::string& token, int concurrency,
           std::ostream& out, std::ostream& err) {
  auto devices = LoadFleet(dir);
  auto channels = Channels(c);
  if (!devices.ok() || !channels.ok()) {
    err << "parc-sim: " << (devices.ok() ? channels.status() : devices.status()).message() << "\n";
    return 1;
  }
  Payloads payloads(&*devices);
  std::vector<std::string> credentials(devices->size());
  std::mutex mu;
  LoadOptions o;
  o.channels = *channels;
  o.concurrency = concurrency;
  o.max_calls = devices->size();
  o.warmup = absl::ZeroDuration();
  o.duration = absl::Hours(24);
  o.deadline = absl::Seconds(60);
  o.make_call = [&](uint64_t i) { return Call{kEnroll, i, payloads.Enroll(i, token), ""}; };
  o.on_response = [&](const Call& call, const grpc::Status& status, const std::string& bytes) {
    parc::v1::EnrollResponse r;
    if (status.ok() && r.ParseFromString(bytes)) {
      std::lock_guard<std::mutex> lock(mu);
      credentials[call.tag] = absl::StrCat(r.device_id(), ".", r.device_secret());
    }
  };
  LoadResult result = RunLoad(o);
  std::string tsv;
  size_t enrolled = 0;
  for (size_t i = 0; i < credentials.size(); ++i) {
    if (credentials[i].empty()) continue;
    ++enrolled;
    absl::StrAppend(&tsv, i, "\t", credentials[i], "\n");
  }
  absl::Status s = common::WriteFileAtomic(dir + "/credentials.tsv", tsv, 0600);
  if (!s.ok()) {
    err << "parc-sim: " << s.message() << "\n";
    return 1;
  }
  out << "{\"enrolled\": " << enrolled << ", \"load\": " << result.ToJson() << "}\n";
  return enrolled == devices->size() ? 0 : 1;
}

// The device loop of a real agent, interleaved over the fleet: check-ins, and after each the
// follow-ups the server asks for (inventory, deployment progress).
class Cycle {
 public:
  Cycle(const std::vector<SimDevice>* devices, const std::vector<std::string>* credentials,
        Payloads* payloads)
      : devices_(devices), credentials_(credentials), payloads_(payloads) {}

  Call Next(uint64_t i) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!followups_.empty()) {
        Call c = std::move(followups_.front());
        followups_.pop_front();
        return c;
      }
    }
    size_t d = i % devices_->size();
    return Call{kCheckIn, d, payloads_->CheckIn(d), (*credentials_)[d]};
  }

  void OnResponse(const Call& call, const grpc::Status& status, const std::string& bytes) {
    if (call.method != kCheckIn || !status.ok()) return;
    parc::v1::CheckInResponse r;
    if (!r.ParseFromString(bytes)) return;
    const size_t d = call.tag;
    std::lock_guard<std::mutex> lock(mu_);
    if (followups_.size() > 100000) return;
    if (r.send_inventory()) {
      followups_.push_back(
          Call{kReportInventory, d, payloads_->Inventory(d, r.send_software()), call.bearer});
    }
    if (r.has_assignment()) {
      parc::v1::DeploymentReport report;
      report.set_rollout_id(r.assignment().rollout_id());
      report.set_state(parc::v1::DEPLOYMENT_STATE_INSTALLED);
      followups_.push_back(Call{kReportDeployment, d, report.SerializeAsString(), call.bearer});
    }
  }

 private:
  const std::vector<SimDevice>* devices_;
  const std::vector<std::string>* credentials_;
  Payloads* payloads_;
  std::mutex mu_;
  std::deque<Call> followups_;
};

int Load(const Connection& c, const std::string& dir, const std::string& workload, int concurrency,
         double rate, absl::Duration duration, absl::Duration warmup, uint64_t calls,
         int server_pid, const std::string& shard, uint32_t round, std::ostream& out,
         std::ostream& err) {
  // K/N: only the devices whose index is K modulo N (one of N load generators, each for its
  // own part of the fleet, as each device talks to one server node at a time).
  uint64_t shard_k = 0, shard_n = 1;
  if (!shard.empty()) {
    std::vector<std::string> parts = absl::StrSplit(shard, '/');
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &shard_k) ||
        !absl::SimpleAtoi(parts[1], &shard_n) || shard_n == 0 || shard_k >= shard_n) {
      err << "parc-sim load: --shard K/N with 0 <= K < N (e.g. 0/2)\n";
      return 2;
    }
  }
  auto devices = LoadFleet(dir);
  auto channels = Channels(c);
  if (!devices.ok() || !channels.ok()) {
    err << "parc-sim: " << (devices.ok() ? channels.status() : devices.status()).message() << "\n";
    return 1;
  }
  auto credentials = LoadCredentials(dir, devices->size());
  if (!credentials.ok()) {
    err << "parc-sim: " << credentials.status().message() << " (run parc-sim enroll first)\n";
    return 1;
  }
  Payloads payloads(&*devices);
  payloads.set_round(round);
  if (workload != "inventory") payloads.PrepareCheckIns();
  Cycle cycle(&*devices, &*credentials, &payloads);
  LoadOptions o;
  o.server_pid = server_pid;
  o.channels = *channels;
  o.concurrency = concurrency;
  o.rate = rate;
  o.duration = duration;
  o.warmup = warmup;
  if (calls > 0) {
    // A counted pass (e.g. every device reports once): no warm-up, no time limit.
    o.max_calls = calls;
    o.warmup = absl::ZeroDuration();
    o.duration = absl::Hours(24);
  }
  const size_t n = devices->size();
  // The shard's devices: shard_k, shard_k + shard_n, …
  const uint64_t m = std::max<uint64_t>(1, (n - shard_k + shard_n - 1) / shard_n);
  // Devices are visited in a scattered order, as check-ins from a real fleet arrive (a
  // counted pass visits each device once, in order).
  auto device = [m, calls, shard_k, shard_n](uint64_t i) {
    const uint64_t idx = calls > 0 ? i % m : (i * 2654435761u) % m;
    return static_cast<size_t>(shard_k + idx * shard_n);
  };
  if (workload == "checkin") {
    o.make_call = [&](uint64_t i) {
      size_t d = device(i);
      return Call{kCheckIn, d, payloads.CheckIn(d), (*credentials)[d]};
    };
  } else if (workload == "inventory") {
    o.make_call = [&](uint64_t i) {
      size_t d = device(i);
      return Call{kReportInventory, d, payloads.Inventory(d), (*credentials)[d]};
    };
  } else if (workload == "cycle") {
    o.make_call = [&](uint64_t i) { return cycle.Next(device(i)); };
    o.on_response = [&](const Call& call, const grpc::Status& s, const std::string& b) {
      cycle.OnResponse(call, s, b);
    };
  } else {
    err << "parc-sim load: --workload checkin, inventory or cycle\n";
    return 2;
  }
  LoadResult r = RunLoad(o);
  // shard_devices: the devices this run may call. A run that started more calls than that
  // called some device twice (tools/bench/run.sh checks its first inventories did not).
  out << "{\"workload\": \"" << workload << "\", \"devices\": " << n << ", \"shard_devices\": " << m
      << ", \"concurrency\": " << concurrency << ", \"result\": " << r.ToJson() << "}\n";
  return 0;
}

// The reference: a gRPC server that answers every unary call at once with a small message,
// whatever the method, so the same generator measures what gRPC alone costs here.
class EchoService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Reactor : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() { StartRead(&request_); }
      void OnReadDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        // A CheckInResponse-sized answer: next check-in in an hour, nothing to send.
        static const std::string kReply = [] {
          parc::v1::CheckInResponse r;
          r.set_next_checkin_seconds(3600);
          r.set_uai("0310036W");
          return r.SerializeAsString();
        }();
        grpc::Slice slice(kReply);
        response_ = grpc::ByteBuffer(&slice, 1);
        StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer request_, response_;
    };
    return new Reactor();
  }
};

int EchoServer(const std::string& listen, const std::string& cert, const std::string& key,
               const std::string& port_file, std::ostream& out, std::ostream& err) {
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!cert.empty()) {
    auto c = common::ReadFile(cert);
    auto k = common::ReadFile(key);
    if (!c.ok() || !k.ok()) {
      err << "parc-sim: cannot read --tls-cert/--tls-key\n";
      return 1;
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*k, *c});
    creds = grpc::SslServerCredentials(ssl);
  }
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, creds, &port);
  builder.RegisterCallbackGenericService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  auto server = builder.BuildAndStart();
  if (!server || port == 0) {
    err << "parc-sim: cannot listen on " << listen << "\n";
    return 1;
  }
  out << "echo server listening on port " << port << std::endl;
  if (!port_file.empty()) (void)common::WriteFileAtomic(port_file, std::to_string(port) + "\n");
  static std::atomic<bool> stop{false};
  std::signal(SIGTERM, [](int) { stop = true; });
  std::signal(SIGINT, [](int) { stop = true; });
  while (!stop) absl::SleepFor(absl::Milliseconds(100));
  server->Shutdown();
  return 0;
}

// Downloads one artifact with the agent's downloader; prints bytes and seconds.
int Download(const std::string& url, const std::string& ca, const std::string& sha256,
             uint64_t size, uint64_t rate, const std::string& out_path, std::ostream& out,
             std::ostream& err) {
  agent::DownloadRequest d;
  d.url = url;
  if (!ca.empty()) {
    auto pem = common::ReadFile(ca);
    if (!pem.ok()) {
      err << "parc-sim: " << pem.status().message() << "\n";
      return 1;
    }
    d.ca_pem = *pem;
  }
  d.sha256 = sha256;
  d.size = size;
  d.rate_limit = rate;
  absl::Time start = absl::Now();
  auto r = agent::DownloadArtifact(d, out_path + ".part", out_path);
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!r.ok()) {
    err << "parc-sim: " << r.status() << "\n";
    return 1;
  }
  out << absl::StrFormat("{\"bytes\": %d, \"seconds\": %.3f, \"mib_per_s\": %.1f}\n",
                         r->bytes_transferred, seconds,
                         static_cast<double>(r->bytes_transferred) / seconds / (1 << 20));
  return 0;
}

// P9: an HTTP server that drops the connection at half of the first transfer, then the
// agent's downloader resumes; reports how many bytes were sent twice.
int Resume(uint64_t size, std::ostream& out, std::ostream& err) {
  std::string content(size, '\0');
  uint64_t x = 88172645463325252ull;
  for (auto& ch : content) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ch = static_cast<char>(x);
  }
  std::atomic<int> requests{0};
  std::atomic<uint64_t> served{0};
  httplib::Server http;
  http.Get("/artifacts/x", [&](const httplib::Request&, httplib::Response& res) {
    const bool drop = ++requests == 1;
    res.set_header("ETag", "\"x\"");
    res.set_content_provider(content.size(), "application/octet-stream",
                             [&, drop](size_t offset, size_t length, httplib::DataSink& sink) {
                               size_t n = std::min<size_t>(length, 256 * 1024);
                               if (drop && offset + n > content.size() / 2) {
                                 n = content.size() / 2 > offset ? content.size() / 2 - offset : 0;
                                 if (n > 0) sink.write(content.data() + offset, n);
                                 served += n;
                                 return false;
                               }
                               sink.write(content.data() + offset, n);
                               served += n;
                               return true;
                             });
  });
  int port = http.bind_to_any_port("127.0.0.1");
  std::thread t = common::ListenInBackground(&http);
  std::string dir = absl::StrCat("/tmp/parc-sim-resume-", ::getpid());
  (void)common::MakeDirs(dir);
  agent::DownloadRequest d;
  d.url = absl::StrCat("http://127.0.0.1:", port, "/artifacts/x");
  d.sha256 = common::Sha256Hex(content);
  d.size = size;
  auto first = agent::DownloadArtifact(d, dir + "/a.part", dir + "/a");
  auto second = agent::DownloadArtifact(d, dir + "/a.part", dir + "/a");
  http.stop();
  t.join();
  std::remove((dir + "/a").c_str());
  std::remove((dir + "/a.part").c_str());
  ::rmdir(dir.c_str());
  if (first.ok() || !second.ok()) {
    err << "parc-sim: expected a failed then a resumed download\n";
    return 1;
  }
  uint64_t twice = served.load() - size;
  out << absl::StrFormat(
      "{\"size\": %d, \"bytes_served\": %d, \"downloaded_twice\": %d, "
      "\"percent_twice\": %.3f, \"resumed\": %s}\n",
      size, served.load(), twice, 100.0 * static_cast<double>(twice) / static_cast<double>(size),
      second->resumed ? "true" : "false");
  return 0;
}

}  // namespace

// Device i's check-in request and credential, for the minimal reference client.
int Payload(const std::string& dir, size_t device, std::ostream& out, std::ostream& err) {
  auto devices = LoadFleet(dir);
  if (!devices.ok() || device >= devices->size()) {
    err << "parc-sim: " << (devices.ok() ? "no such device" : devices.status().message()) << "\n";
    return 1;
  }
  auto credentials = LoadCredentials(dir, devices->size());
  Payloads payloads(&*devices);
  out << "{\"method\": \"" << kCheckIn << "\", \"request_hex\": \""
      << absl::BytesToHexString(payloads.CheckIn(device)) << "\", \"bearer\": \""
      << (credentials.ok() ? (*credentials)[device] : "") << "\"}\n";
  return 0;
}

int SimMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "parc-sim: a simulated fleet of devices against a Parc server, and the "
      "reference echo server; results as JSON.",
      "parc-sim"};
  app.require_subcommand(1);
  Connection c;
  std::string dir, token, workload = "checkin", duration = "10s", warmup = "2s";
  std::string listen = "127.0.0.1:0", cert, key, port_file;
  uint32_t devices = 1000;
  int concurrency = 64;
  double rate = 0;
  auto connection = [&](CLI::App* cmd) {
    cmd->add_option("--server", c.server, "HOST:PORT")->required();
    cmd->add_option("--ca", c.ca, "CA certificate (PEM)");
    cmd->add_flag("--insecure", c.insecure, "Plaintext");
    cmd->add_option("--channels", c.channels, "Connections to spread calls over")
        ->capture_default_str();
  };
  auto* region =
      app.add_subcommand("region", "Write a simulated region: annuaire, delivery list, fleet");
  region->add_option("--devices", devices, "Number of devices")->capture_default_str();
  region->add_option("--out", dir, "Directory")->required();
  auto* enroll = app.add_subcommand("enroll", "Enroll every device of the fleet");
  connection(enroll);
  enroll->add_option("--fleet", dir, "Directory written by region")->required();
  enroll->add_option("--token", token, "Region-wide enrollment token")->required();
  enroll->add_option("--concurrency", concurrency)->capture_default_str();
  auto* load = app.add_subcommand("load", "Run a workload and report throughput and latency");
  connection(load);
  load->add_option("--fleet", dir, "Directory written by region and enroll")->required();
  load->add_option("--workload", workload, "checkin, inventory or cycle")->capture_default_str();
  load->add_option("--concurrency", concurrency, "Calls in flight (closed loop)")
      ->capture_default_str();
  load->add_option("--rate", rate, "Calls per second (open loop; 0: closed loop)");
  load->add_option("--duration", duration)->capture_default_str();
  load->add_option("--warmup", warmup)->capture_default_str();
  uint64_t calls = 0;
  load->add_option("--calls", calls, "Make exactly this many calls (devices in order)");
  std::string shard;
  load->add_option("--shard", shard, "K/N: only the devices whose index is K modulo N");
  uint32_t round = 0;
  load->add_option("--round", round,
                   "Which inventory each device reports: 0 its first, R > 0 a later one "
                   "(its firmware version moved)")
      ->capture_default_str();
  int server_pid = 0;
  load->add_option("--server-pid", server_pid,
                   "Also report this process's CPU time per call (the server under load)");
  size_t payload_device = 0;
  auto* payload = app.add_subcommand("payload", "Print a device's check-in request (hex)");
  payload->add_option("--fleet", dir, "Directory written by region and enroll")->required();
  payload->add_option("--device", payload_device)->capture_default_str();
  auto* echo = app.add_subcommand("echo-server", "The reference no-op gRPC server");
  echo->add_option("--listen", listen)->capture_default_str();
  echo->add_option("--tls-cert", cert);
  echo->add_option("--tls-key", key);
  echo->add_option("--port-file", port_file);
  std::string url, sha256, output;
  uint64_t size = 0, dl_rate = 0;
  auto* download = app.add_subcommand("download", "Download an artifact with the agent's code");
  download->add_option("--url", url)->required();
  download->add_option("--ca", c.ca);
  download->add_option("--sha256", sha256)->required();
  download->add_option("--size", size)->required();
  download->add_option("--rate", dl_rate, "Bytes per second (0: no cap)");
  download->add_option("--out", output)->required();
  auto* resume = app.add_subcommand("resume", "Drop at half, resume: bytes downloaded twice");
  resume->add_option("--size", size)->required();
  if (auto exit_status = common::ParseCommandLine(app, args, out, err)) return *exit_status;
  if (download->parsed()) return Download(url, c.ca, sha256, size, dl_rate, output, out, err);
  if (resume->parsed()) return Resume(size, out, err);
  if (region->parsed()) return Region(devices, dir, out, err);
  if (enroll->parsed()) return Enroll(c, dir, token, concurrency, out, err);
  if (load->parsed()) {
    auto d = common::ParseDuration(duration);
    auto w = common::ParseDuration(warmup);
    if (!d.ok() || !w.ok()) {
      err << "parc-sim: bad --duration or --warmup\n";
      return 2;
    }
    return Load(c, dir, workload, concurrency, rate, *d, *w, calls, server_pid, shard, round, out,
                err);
  }
  if (payload->parsed()) return Payload(dir, payload_device, out, err);
  if (echo->parsed()) return EchoServer(listen, cert, key, port_file, out, err);
  return 2;
}

}  // namespace parc::sim
