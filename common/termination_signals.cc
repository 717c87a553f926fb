#include "common/termination_signals.h"

#include <pthread.h>

#include "common/thread_name.h"

namespace lp {

TerminationSignals::TerminationSignals(bool hangup) {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  if (hangup) sigaddset(&set_, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

TerminationSignals::~TerminationSignals() {
  stop();
}

void TerminationSignals::start(std::function<void(const char* name)> on_signal,
                               std::function<void()> on_hangup) {
  thread_ = std::thread([this, on_signal = std::move(on_signal), on_hangup = std::move(on_hangup)] {
    name_this_thread("signals");
    int sig = 0;
    while (true) {
      sigwait(&set_, &sig);
      if (stopping_) return;
      if (sig != SIGHUP) break;
      if (on_hangup) on_hangup();
    }
    on_signal(sig == SIGINT ? "SIGINT" : "SIGTERM");
  });
}

void TerminationSignals::stop() {
  if (stopping_.exchange(true) || !thread_.joinable()) return;
  // A signal of our own wakes the thread when no real one came; stopping_ tells it apart.
  pthread_kill(thread_.native_handle(), SIGTERM);
  thread_.join();
}

}  // namespace lp
