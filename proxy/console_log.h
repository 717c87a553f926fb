// Console output off the client's path: a line costs the caller one short mutex-held append
// into a shared buffer, nothing more. One thread formats (timestamps, localtime) and writes to
// stdout, so a slow terminal or a full pipe never stalls a request. The writer is woken only
// when it sleeps, then lingers a moment to collect more lines, so under load there is no
// futex wake-up per line and one write() carries many. When the buffer is full, lines are
// dropped and counted, and the count is printed once there is room again.
//
// In JSON format (logging.console_format: json) every line is one JSON object with a "time"
// (RFC 3339, UTC, microseconds): an exchange's record carries its facts as members, any other
// line is {"time":...,"message":"..."}; stamped text lines are not written (the forwarder
// writes records instead).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace lp {

class ConsoleLog {
 public:
  enum class Format { kText, kJson };
  explicit ConsoleLog(bool enabled, Format format = Format::kText, size_t max_queued_lines = 10000);
  ~ConsoleLog();  // flushes what is queued
  ConsoleLog(const ConsoleLog&) = delete;
  ConsoleLog& operator=(const ConsoleLog&) = delete;

  bool enabled() const { return enabled_; }
  bool json() const { return format_ == Format::kJson; }
  // Queues one line (without its newline). Never blocks on output.
  void line(std::string_view text) { append(Kind::kLine, kNoTime, {text}); }
  // Queues "<console_timestamp(t)><parts...>"; the timestamp is formatted by the writer thread.
  void stamped_line(std::chrono::system_clock::time_point t,
                    std::initializer_list<std::string_view> parts) {
    append(Kind::kStamped, micros(t), parts);
  }
  // JSON format: queues {"time":<t>,<members>} where `members` is JSON object members
  // ("\"id\":\"...\",..."). Ignored in text format.
  void json_record(std::chrono::system_clock::time_point t, std::string_view members) {
    if (json()) append(Kind::kJson, micros(t), {members});
  }
  // Writes everything queued so far, then returns.
  void flush();

 private:
  static constexpr int64_t kNoTime = INT64_MIN;
  enum class Kind : uint8_t { kLine, kStamped, kJson };
  static int64_t micros(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  }
  void append(Kind kind, int64_t t_us, std::initializer_list<std::string_view> parts);
  void format_record(std::string* out, Kind kind, int64_t t_us, std::string_view text);
  void run();

  const bool enabled_;
  const Format format_;
  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable drained_;
  std::string queued_;  // records: time i64 | kind u8 | length u32 | text
  size_t queued_lines_ = 0;
  uint64_t dropped_ = 0;
  bool sleeping_ = false;  // the writer waits for a line: the next append wakes it
  bool writing_ = false;
  bool stop_ = false;
  std::thread thread_;
};

// "2006-01-02 15:04:05" in local time: the seed's console timestamp.
std::string console_timestamp(std::chrono::system_clock::time_point t);

}  // namespace lp
