#include "common/termination_signals.h"

#include <pthread.h>

namespace lp {

TerminationSignals::TerminationSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

TerminationSignals::~TerminationSignals() {
  stop();
}

void TerminationSignals::start(std::function<void(const char* name)> on_signal) {
  thread_ = std::thread([this, on_signal = std::move(on_signal)] {
    int sig = 0;
    sigwait(&set_, &sig);
    if (stopping_) return;
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
