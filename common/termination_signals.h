// SIGINT and SIGTERM for a server process, turned into one call on a thread of this class's
// own. The constructor blocks both in the calling thread, so construct it on the main thread
// before any other thread starts: every thread inherits the mask and only sigwait(2) here takes
// them. SIGPIPE is ignored as well: a peer that goes away must fail a write (OpenSSL and
// cpp-httplib write with write(2)), not kill the process.
//
// With `hangup` set, SIGHUP is taken too and calls on_hangup (the proxy's reload) each time it
// comes, without ending anything.
//
// The main thread constructs it, calls start() once and stop() (or lets the destructor do it)
// after its server returned; `on_signal` and `on_hangup` run on the signal thread.
#pragma once

#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>

namespace lp {

class TerminationSignals {
 public:
  explicit TerminationSignals(bool hangup = false);
  ~TerminationSignals();
  TerminationSignals(const TerminationSignals&) = delete;
  TerminationSignals& operator=(const TerminationSignals&) = delete;

  // Waits for SIGINT or SIGTERM and then calls on_signal("SIGINT" or "SIGTERM") once.
  void start(std::function<void(const char* name)> on_signal,
             std::function<void()> on_hangup = nullptr);
  // Ends the signal thread; on_signal is not called for a signal that comes after this.
  // Idempotent.
  void stop();

 private:
  sigset_t set_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace lp
