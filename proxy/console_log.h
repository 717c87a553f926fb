// Console output off the client's path: lines go into a bounded queue that one thread writes
// to stdout, so a slow terminal or a full pipe never stalls a request. When the queue is
// full, lines are dropped and counted, and the count is printed once there is room again.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace lp {

class ConsoleLog {
 public:
  explicit ConsoleLog(bool enabled, size_t max_queued_lines = 10000);
  ~ConsoleLog();  // flushes what is queued
  ConsoleLog(const ConsoleLog&) = delete;
  ConsoleLog& operator=(const ConsoleLog&) = delete;

  bool enabled() const { return enabled_; }
  // Queues one line (without its newline). Never blocks on output.
  void line(std::string text);
  // Writes everything queued so far, then returns.
  void flush();

 private:
  void run();

  const bool enabled_;
  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable drained_;
  std::deque<std::string> queue_;
  uint64_t dropped_ = 0;
  bool writing_ = false;
  bool stop_ = false;
  std::thread thread_;
};

// "2006-01-02 15:04:05" in local time: the seed's console timestamp.
std::string console_timestamp(std::chrono::system_clock::time_point t);

}  // namespace lp
