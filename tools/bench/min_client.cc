// The reference load generator of P1: the least a gRPC client can do per unary call. One
// completion queue per channel drained by its own thread, a fixed number of calls in flight,
// the same request bytes and bearer every time. parc-sim load is measured against it
// (client CPU per call), and both drive the echo server and parc-server.
//
//   parc-bench-client --server HOST:PORT [--ca ca.pem | --insecure] --method /pkg.Svc/M
//       --request-hex HEX [--bearer TOKEN] [--concurrency 128] [--duration 10s] [--warmup 2s]
//
// Prints {"throughput": calls/s, "client_cpu_us_per_call": µs} on stdout.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/openssl_exit.h"

namespace {

struct Options {
  std::string server, ca, method, request, bearer;
  bool insecure = false;
  int concurrency = 128;
  int channels = 4;
  absl::Duration duration = absl::Seconds(10), warmup = absl::Seconds(2);
};

struct CallState {
  grpc::ClientContext ctx;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
};

absl::Duration OwnCpu() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return absl::DurationFromTimeval(ru.ru_utime) + absl::DurationFromTimeval(ru.ru_stime);
}

int Run(const Options& o) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (o.insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    auto pem = parc::common::ReadFile(o.ca);
    if (!pem.ok()) {
      std::cerr << "parc-bench-client: " << pem.status().message() << "\n";
      return 1;
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *pem;
    creds = grpc::SslCredentials(ssl);
  }
  grpc::Slice request_slice(o.request);
  const grpc::ByteBuffer request(&request_slice, 1);
  const absl::Time start = absl::Now();
  const absl::Time measure_from = start + o.warmup, end = measure_from + o.duration;
  std::atomic<uint64_t> counted{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < o.channels; ++c) {
    threads.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection per channel
      auto channel = grpc::CreateCustomChannel(o.server, creds, args);
      grpc::GenericStub stub(channel);
      grpc::CompletionQueue cq;
      auto start_call = [&](CallState* call) {
        if (!o.bearer.empty()) call->ctx.AddMetadata("authorization", "Bearer " + o.bearer);
        call->reader = stub.PrepareUnaryCall(&call->ctx, o.method, request, &cq);
        call->reader->StartCall();
        call->reader->Finish(&call->response, &call->status, call);
      };
      const int in_flight = o.concurrency / o.channels + (c < o.concurrency % o.channels ? 1 : 0);
      for (int i = 0; i < in_flight; ++i) start_call(new CallState());
      int pending = in_flight;
      void* tag = nullptr;
      bool ok = false;
      while (pending > 0 && cq.Next(&tag, &ok)) {
        auto* call = static_cast<CallState*>(tag);
        const absl::Time now = absl::Now();
        if (call->status.ok() && now >= measure_from && now <= end) counted.fetch_add(1);
        delete call;
        if (now < end) {
          start_call(new CallState());
        } else {
          --pending;
        }
      }
      cq.Shutdown();
      while (cq.Next(&tag, &ok)) {
      }
    });
  }
  absl::SleepFor(measure_from - absl::Now());
  const absl::Duration cpu0 = OwnCpu();
  absl::SleepFor(end - absl::Now());
  const absl::Duration cpu = OwnCpu() - cpu0;
  for (auto& t : threads) t.join();
  const double calls = static_cast<double>(std::max<uint64_t>(1, counted.load()));
  std::printf("{\"throughput\": %.1f, \"client_cpu_us_per_call\": %.1f}\n",
              calls / absl::ToDoubleSeconds(o.duration), absl::ToDoubleMicroseconds(cpu) / calls);
  return counted.load() > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  parc::common::KeepOpenSslStateAtExit();  // common/openssl_exit.h
  Options o;
  std::string request_hex;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--server") {
      o.server = value();
    } else if (a == "--ca") {
      o.ca = value();
    } else if (a == "--insecure") {
      o.insecure = true;
    } else if (a == "--method") {
      o.method = value();
    } else if (a == "--request-hex") {
      request_hex = value();
    } else if (a == "--bearer") {
      o.bearer = value();
    } else if (a == "--concurrency") {
      o.concurrency = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--duration" || a == "--warmup") {
      auto d = parc::common::ParseDuration(value());
      if (!d.ok()) {
        std::cerr << "parc-bench-client: bad " << a << "\n";
        return 2;
      }
      (a == "--duration" ? o.duration : o.warmup) = *d;
    } else {
      std::cerr << "parc-bench-client: unknown argument " << a << "\n";
      return 2;
    }
  }
  if (o.server.empty() || o.method.empty() || (!o.insecure && o.ca.empty())) {
    std::cerr << "usage: parc-bench-client --server HOST:PORT (--ca PEM | --insecure) --method "
                 "/pkg.Service/Method [--request-hex HEX] [--bearer TOKEN]\n";
    return 2;
  }
  o.request = absl::HexStringToBytes(request_hex);
  o.channels = std::min(o.channels, o.concurrency);
  return Run(o);
}
