// The shipper: turns queued capture frames into batches and POSTs them to the log server's
// /ingest, up to kMaxBatchesInFlight at a time, each on its own keep-alive connection.
// Threads, all owned here:
// - the shipper thread owns the queue's consumer side, sequence numbers, the spool and every
//   decision; it never waits on the network;
// - each sender thread only runs the POST of the batch handed to it and reports the outcome
//   (waking the shipper thread through CaptureQueue::wake()).
// A batch goes out when it reaches logging.batch_bytes or logging.batch_interval; while one is
// in flight, another goes out only when a full batch is queued (a burst), and names the batch
// before it (wire::kAfterHeader) so the log server applies them in seq order whatever
// connection is faster. Several in flight only once the log server has said it honours that.
// When the queue passes its high-water mark (a log server slower than the traffic, or
// stalled), the shipper thread moves the oldest frames as batches to the on-disk spool
// instead of letting the queue fill. When the log server is down or refusing, batches go to
// the spool too. Order of age, oldest first: failed batches kept in memory (only when the
// spool refused them), the spool, a batch the spool refused, the queue; those older than the
// queue are sent alone, but for spooled batches of one proxy run, which stream out up to
// kMaxBatchesInFlight at a time, each naming the one before it; the log server applies every
// batch in seq order, each once. A spooled batch leaves the spool only once acknowledged. When the
// spool is full too, frames stay in the queue, it fills, and new exchanges are marked truncated:
// the client path never waits on any of this. Every batch the shipper holds in memory counts
// against the queue's bound (CaptureQueue::set_outside), so logging.queue_bytes bounds it all.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
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
  std::atomic<uint64_t> batches_overflowed{0};  // spooled because the queue passed high water
  std::atomic<uint64_t> batches_rejected{0};    // 4xx from the log server: dropped, not retried
  std::atomic<uint64_t> send_failures{0};
  // Gauges, refreshed by the shipper thread at least once a second.
  std::atomic<uint64_t> spool_batches{0};
  std::atomic<uint64_t> spool_bytes{0};
  std::atomic<uint64_t> batches_in_flight{0};
  // The last POST's outcome: unknown (none yet), reachable (any HTTP answer) or unreachable.
  enum class LogServer { kUnknown, kReachable, kUnreachable };
  std::atomic<LogServer> log_server{LogServer::kUnknown};
};

class Shipper {
 public:
  // Opens the spool; throws std::runtime_error naming the problem (e.g. an unusable spool dir).
  // `config`, `queue`, `capture` and `console` must outlive this.
  Shipper(const Config& config, CaptureQueue& queue, const CaptureCounters& capture,
          ConsoleLog& console);
  ~Shipper();

  // Starts both threads. Called once, from the thread that owns the Shipper.
  void start();
  // Ships what is queued, spooling whatever cannot be delivered within `budget` (a POST in
  // flight is waited for, up to its 10 s timeout), then ends both threads. Same thread as
  // start().
  void stop(std::chrono::milliseconds budget);
  const ShipperCounters& counters() const { return counters_; }
  const std::string& proxy_id() const { return proxy_id_; }

  // Connections to the log server, each with at most one batch in flight.
  static constexpr size_t kMaxBatchesInFlight = 3;

 private:
  enum class SendResult { kDelivered, kRejected, kFailed };
  // A batch not in the spool, with the place in the spool's order it takes if it has to go
  // there (Spool::reserve()).
  struct Held {
    std::string batch;
    uint64_t seq = 0;
    uint64_t slot = 0;
  };
  void run();  // the shipper thread
  // Cuts the next batch of up to max_frame_bytes of frames (a larger single frame goes alone)
  // from the queue into *out, preamble included; 0 if no frame came.
  size_t cut_batch(std::string* out, size_t max_frame_bytes,
                   std::chrono::steady_clock::time_point first_frame_deadline,
                   std::chrono::steady_clock::duration batch_age);
  // Spools a batch cut from the queue behind all others; false (and logged once per episode)
  // if the spool refused it.
  bool spool_behind(const std::string& batch, uint64_t seq);
  void spool_full_episode(const std::string& why);

  // The senders' mailboxes. begin_send() hands a batch (which must outlive the send) to an
  // idle sender; poll_send() takes one outcome if there is one (which sender, what result);
  // await_send() waits for one until `deadline`. All three from the shipper thread.
  using Outcome = std::pair<size_t, SendResult>;
  void begin_send(size_t sender, const std::string* batch, std::optional<uint64_t> after);
  std::optional<Outcome> poll_send();
  std::optional<Outcome> await_send(std::chrono::steady_clock::time_point deadline);
  void sender_run(size_t sender);  // a sender thread
  SendResult send(httplib::Client& client, const std::string& batch,
                  std::optional<uint64_t> after);  // a sender thread
  void warn_truncations();
  std::string unrecorded_text();  // the unrecorded exchanges since the last warning, worded

  const Config& config_;
  CaptureQueue& queue_;
  const CaptureCounters& capture_;
  ConsoleLog& console_;
  Spool spool_;
  std::string ingest_path_;
  std::string proxy_id_;
  uint64_t seq_ = 0;
  ShipperCounters counters_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> stop_deadline_ns_{0};
  std::atomic<bool> ordered_{false};      // the log server's last answer announced ordered ingest
  std::atomic<bool> server_down_{false};  // told on the console; any sender thread
  bool spool_full_told_ = false;          // shipper thread
  bool overflow_told_ = false;            // shipper thread
  struct Sender {
    std::unique_ptr<httplib::Client> client;
    const std::string* job = nullptr;  // guarded by send_mu_, as are the two below
    std::optional<uint64_t> after;
    std::optional<SendResult> result;
    std::thread thread;
  };
  std::mutex send_mu_;
  std::condition_variable send_cv_;
  std::array<Sender, kMaxBatchesInFlight> senders_;
  bool sender_exit_ = false;
  uint64_t truncations_reported_ = 0;
  uint64_t unrecorded_reported_ = 0;
  std::chrono::steady_clock::time_point last_truncation_warning_;
  std::thread thread_;
};

}  // namespace lp
