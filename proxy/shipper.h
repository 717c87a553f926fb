// The shipper: one background thread that turns queued capture frames into batches and POSTs
// them to the log server's /ingest over one keep-alive connection. A batch goes out when it
// reaches logging.batch_bytes or logging.batch_interval. When the log server is down, slow or
// refusing, batches go to the on-disk spool and are re-sent in order, with backoff, before
// any newer batch. When the spool is full too, the shipper stops taking frames, the queue
// fills, and new exchanges are marked truncated: the client path never waits on any of this.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/config.h"
#include "proxy/capture_queue.h"
#include "proxy/capture_tee.h"
#include "proxy/console_log.h"
#include "proxy/spool.h"

namespace httplib {
class Client;
}

namespace lp {

struct ShipperCounters {
  std::atomic<uint64_t> batches_sent{0};
  std::atomic<uint64_t> batches_spooled{0};
  std::atomic<uint64_t> batches_rejected{0};  // 4xx from the log server: dropped, not retried
  std::atomic<uint64_t> send_failures{0};
};

class Shipper {
 public:
  // Opens the spool; throws std::runtime_error naming the problem (e.g. an unusable spool dir).
  Shipper(const Config& config, CaptureQueue& queue, const CaptureTee& tee, ConsoleLog& console);
  ~Shipper();

  void start();
  // Ships what is queued, spooling whatever cannot be delivered within `budget`, then ends
  // the thread.
  void stop(std::chrono::milliseconds budget);
  const ShipperCounters& counters() const { return counters_; }
  const std::string& proxy_id() const { return proxy_id_; }

 private:
  enum class SendResult { kDelivered, kRejected, kFailed };
  void run();
  SendResult send(const std::string& batch);
  void warn_truncations();

  const Config& config_;
  CaptureQueue& queue_;
  const CaptureTee& tee_;
  ConsoleLog& console_;
  Spool spool_;
  std::unique_ptr<httplib::Client> client_;
  std::string ingest_path_;
  std::string proxy_id_;
  uint64_t seq_ = 0;
  ShipperCounters counters_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> stop_deadline_ns_{0};
  bool server_down_ = false;
  uint64_t truncations_reported_ = 0;
  std::chrono::steady_clock::time_point last_truncation_warning_;
  std::thread thread_;
};

}  // namespace lp
