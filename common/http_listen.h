// Serving an httplib::Server on a thread of its own, safely stoppable at once.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace parc::common {

// Runs `http->listen_after_bind()` (after a successful bind_to_port or bind_to_any_port) on a
// new thread and returns it once the server accepts connections. httplib's stop() does nothing
// until listen_after_bind has begun, so a stop that came sooner (a server whose next start-up
// step failed, a test that ends quickly) left the thread listening for ever and its join hung.
inline std::thread ListenInBackground(httplib::Server* http) {
  auto ended = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([http, ended] {
    http->listen_after_bind();
    ended->store(true);
  });
  while (!http->is_running() && !ended->load()) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return thread;
}

}  // namespace parc::common
