#include "server/postgres/coordinator.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace parc::server::pg {

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(
    Options options, MessageHandler on_message, std::function<void(bool)> on_connected) {
  std::unique_ptr<Coordinator> c(
      new Coordinator(std::move(options), std::move(on_message), std::move(on_connected)));
  c->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->wake_fd_ < 0) return absl::InternalError("eventfd failed");
  PARC_ASSIGN_OR_RETURN(c->db_, Connection::Open(c->options_.conninfo));
  PARC_RETURN_IF_ERROR(c->Listen());
  c->on_connected_(true);
  c->TryLease();
  c->thread_ = std::thread([p = c.get()] { p->Loop(); });
  return c;
}

Coordinator::Coordinator(Options options, MessageHandler on_message,
                         std::function<void(bool)> on_connected)
    : options_(std::move(options)),
      on_message_(std::move(on_message)),
      on_connected_(std::move(on_connected)) {}

Coordinator::~Coordinator() {
  stop_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

absl::Status Coordinator::Listen() {
  std::string sql;
  for (const auto& channel : options_.channels) absl::StrAppend(&sql, "LISTEN ", channel, ";");
  return db_->Run(sql);
}

void Coordinator::TryLease() {
  auto locked = db_->Exec("SELECT pg_try_advisory_lock($1)", {options_.lease_key});
  if (locked.ok() && locked->Int(0, 0) == 1) {
    leads_ = true;
    spdlog::info("store: this node now runs the rollout evaluation and the purge ({})",
                 db_->where());
  }
}

void Coordinator::Loop() {
  pthread_setname_np(pthread_self(), "parc-coord");
  absl::Time next_lease = absl::Now() + options_.lease_retry;
  absl::Time next_retry = absl::InfinitePast();
  bool connected = true;
  while (!stop_) {
    const absl::Time now = absl::Now();
    if (!connected) {
      if (now >= next_retry) {
        next_retry = now + options_.lease_retry;
        if (db_->Reset().ok() && Listen().ok()) {
          connected = true;
          spdlog::warn("store: postgresql notifications connection re-established ({})",
                       db_->where());
          on_connected_(true);
          next_lease = now;
        }
      }
    } else if (now >= next_lease) {
      if (leads_) {
        next_lease = now + options_.lease_check;
        if (!db_->Exec("SELECT 1").ok()) {
          // The session is gone, and the lock with it: another node may hold it already.
        }
      } else {
        next_lease = now + options_.lease_retry;
        TryLease();
      }
    }
    if (connected && !db_->connected()) {
      connected = false;
      if (leads_.exchange(false)) {
        spdlog::warn("store: lost the database session: this node stops running rollouts");
      }
      on_connected_(false);
      continue;
    }
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {connected ? db_->socket() : -1, POLLIN, 0}};
    const absl::Time wake = connected ? next_lease : next_retry;
    const int timeout_ms =
        static_cast<int>(std::max<int64_t>(1, absl::ToInt64Milliseconds(wake - absl::Now())));
    (void)::poll(fds, 2, std::min(timeout_ms, 1000));
    if (connected && (fds[1].revents != 0)) {
      absl::Status read = db_->ReadNotifications([this](const std::string& channel,
                                                        const std::string& payload) {
        const size_t space = payload.find(' ');
        if (space == std::string::npos) return;
        if (payload.compare(0, space, options_.origin) == 0 && space == options_.origin.size()) {
          return;  // this node's own
        }
        on_message_(channel, payload.substr(space + 1));
      });
      if (!read.ok()) spdlog::warn("store: {}", read.ToString());
    }
  }
}

}  // namespace parc::server::pg
