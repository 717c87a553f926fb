#include "proxy/watchdog.h"

namespace lp {

struct Watchdog::State {
  explicit State(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  Deadline deadline = no_deadline();  // of the current wait
  Deadline timer_at = no_deadline();  // when the pending timer wait ends; max: none pending
  bool fired = false;
  std::function<void()> on_expire;  // empty once the owner is gone
};

Watchdog::Watchdog(const asio::any_io_executor& executor, std::function<void()> on_expire)
    : state_(std::make_shared<State>(executor)) {
  state_->on_expire = std::move(on_expire);
}

Watchdog::~Watchdog() {
  state_->on_expire = nullptr;
  state_->timer.cancel();
}

void Watchdog::arm(Deadline deadline) {
  State& s = *state_;
  s.deadline = deadline;
  s.fired = false;
  // A pending wait that ends sooner re-arms itself for this deadline when it fires.
  if (deadline == no_deadline() || s.timer_at <= deadline) return;
  s.timer_at = deadline;
  s.timer.expires_at(deadline);  // aborts the pending wait, if any
  wait(state_);
}

void Watchdog::disarm() {
  state_->deadline = no_deadline();
}

bool Watchdog::fired() const {
  return state_->fired;
}

void Watchdog::wait(const std::shared_ptr<State>& state) {
  state->timer.async_wait([state](const error_code& ec) {
    if (ec) return;  // replaced by a nearer deadline, or the owner is gone
    State& s = *state;
    s.timer_at = no_deadline();
    if (!s.on_expire || s.deadline == no_deadline()) return;
    if (Clock::now() >= s.deadline) {
      s.fired = true;
      s.deadline = no_deadline();
      s.on_expire();
      return;
    }
    s.timer_at = s.deadline;
    s.timer.expires_at(s.deadline);
    wait(state);
  });
}

}  // namespace lp
