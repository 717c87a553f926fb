// A deadline on the current wait of one socket, enforced by a single timer that is re-armed
// only when it fires or when a nearer deadline is set: moving the deadline before each read or
// write is a store, not a timer operation, so per-chunk deadlines cost nothing on a busy
// stream. When the deadline passes, on_expire runs (it cancels the socket's pending
// operations) and fired() tells the waiter that the failure it sees was a timeout.
//
// Used from the one thread that runs the socket's io_context. The timer's handler holds the
// shared state, never the owner: destroying the Watchdog detaches on_expire at once, so a
// handler already queued does nothing.
#pragma once

#include <functional>
#include <memory>

#include "proxy/asio_base.h"
#include "proxy/io_result.h"

namespace lp {

class Watchdog {
 public:
  Watchdog(const asio::any_io_executor& executor, std::function<void()> on_expire);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // The current wait ends at `deadline` (no_deadline(): never). Clears fired().
  void arm(Deadline deadline);
  // No wait in progress; fired() keeps its value for the waiter to read.
  void disarm();
  bool fired() const;

 private:
  struct State;
  static void wait(const std::shared_ptr<State>& state);
  std::shared_ptr<State> state_;
};

}  // namespace lp
