#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/postgres/connection.h"

namespace parc::server::pg {

// What ties the server nodes on one PostgreSQL database together, on one connection of each
// node's own with a thread to read it:
//   - notifications: the node LISTENs on the given channels and passes what arrives (sent by
//     any node's committed transactions, sql::Connection::Notify) to on_message;
//   - the lease: an advisory lock held by this connection's session, which makes its node the
//     one that runs the jobs that must run on one node at a time (rollout evaluation, the
//     retention purge). A node that dies loses its session and the lock with it; the others
//     try to take it every lease_retry, so it passes on within about that long.
// While the connection is down, notifications may be missed: on_connected(false) tells the
// node (which then stops trusting what it caches), on_connected(true) once it is back and
// listening again. The lease is given up with the connection.
class Coordinator {
 public:
  struct Options {
    std::string conninfo;
    std::vector<std::string> channels;
    // This node's origin (pg::EngineOptions::origin): messages are "<origin> <message>", and
    // those this node sent itself are not passed on (it acted on its own writes already).
    std::string origin;
    int64_t lease_key = 7061726302;
    absl::Duration lease_retry = absl::Seconds(1);
    // How often the leading node checks that its session (and so its lease) is still there.
    absl::Duration lease_check = absl::Seconds(2);
  };
  using MessageHandler = std::function<void(const std::string& channel, const std::string&)>;

  // Connects, listens and tries the lease once before returning; UNAVAILABLE when the
  // database cannot be reached.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Coordinator>> Start(
      Options options, MessageHandler on_message, std::function<void(bool)> on_connected);
  // Stops the thread and closes the connection (giving up the lease).
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  bool leads() const { return leads_.load(); }

 private:
  Coordinator(Options options, MessageHandler on_message, std::function<void(bool)> on_connected);
  absl::Status Listen();
  void TryLease();
  void Loop();

  Options options_;
  MessageHandler on_message_;
  std::function<void(bool)> on_connected_;
  std::unique_ptr<Connection> db_;
  std::atomic<bool> leads_{false};
  std::atomic<bool> stop_{false};
  int wake_fd_ = -1;  // eventfd: wakes the thread to stop
  std::thread thread_;
};

}  // namespace parc::server::pg
