// The live feed behind GET /live (DESIGN.md §7 "Live feed and web UI"): exchanges as they
// begin, end and get their LLM fields, fanned out to Server-Sent-Events subscribers.
//
// Threads. publish() runs on the thread leading ingest (after COMMIT, one call at a time) and
// on the deriver thread (after its COMMIT). It must never wait on a subscriber: it formats each
// row once, then appends a shared pointer to the queue of every subscriber whose filters match
// (O(subscribers x rows), under one short mutex). Each subscriber's queue is drained by the HTTP
// worker serving its request (LiveSubscription::next, which waits on a condition variable with
// a timeout so the worker can send keep-alives and notice a closed feed).
//
// Bounds and overflow. A subscriber's queue holds at most Options::buffer_bytes of event text;
// an event that would overflow it DROPS the subscriber: its queue is freed, its stream ends
// (next() says kDropped) and log_server_live_dropped_total counts it. A subscriber therefore
// costs at most buffer_bytes queued plus the batch its worker is writing (also <= buffer_bytes).
// At most Options::max_subscribers subscriptions exist at once (each holds an HTTP worker for
// its whole life, dropped ones until their worker lets go); subscribe() refuses more, so the
// API's worker pool can be sized to never be starved by feeds (ApiServer).
//
// Resume. Recent events are kept in a ring (at most ring_events events and buffer_bytes of
// text, an unformatted event counted by an estimate; a replay that would not fit a fresh queue
// is not resumed). Event ids are a sequence that starts at the
// wall-clock µs of construction, so ids of an earlier run are older than every id of this one.
// subscribe() with a Last-Event-ID still in the ring replays the matching events after it;
// otherwise the stream starts live (resumed=false) and the client should re-list /requests.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "log-server/index_schema.h"
#include "log-server/list_query.h"
#include "log-server/metrics.h"

namespace lp::logsrv {

// Whether `row` passes the /requests filters `q` (limit and cursor are ignored). The same
// semantics as the SQL of IndexReader::list: exact route/method/status/outcome/replay_of/
// model/provider (a NULL column matches no filter), since inclusive, until exclusive, q a
// case-sensitive substring of proxy_path. Pure.
bool matches(const ListQuery& q, const ExchangeRow& row);

// One event: "id: SEQ\nevent: exchange\ndata: {summary_json}\n\n". In the ring `text` may be
// empty, formatted only when a resume replays it; every event a subscriber gets is formatted.
struct LiveEvent {
  uint64_t seq = 0;
  ExchangeRow row;  // what the filters look at (llm_json and timings_json dropped)
  std::string text;
};

class LiveFeed;

// A subscription, owned by the HTTP worker that serves it; destroying it unsubscribes.
class LiveSubscription {
 public:
  enum class Wait {
    kEvents,   // *out holds the text of one or more events
    kTimeout,  // nothing arrived within the timeout (time for a keep-alive)
    kDropped,  // the subscriber fell buffer_bytes behind: end the stream
    kClosed,   // the feed is shutting down: end the stream
  };
  ~LiveSubscription();
  LiveSubscription(const LiveSubscription&) = delete;
  LiveSubscription& operator=(const LiveSubscription&) = delete;

  // Waits up to `timeout` for events; appends their text to *out. Any one thread.
  Wait next(std::string* out, std::chrono::milliseconds timeout);
  // False when a Last-Event-ID was given but its events are no longer in the ring.
  bool resumed() const { return resumed_; }

 private:
  friend class LiveFeed;
  LiveSubscription(LiveFeed& feed, ListQuery filter) : feed_(feed), filter_(std::move(filter)) {}

  LiveFeed& feed_;
  const ListQuery filter_;
  bool resumed_ = true;
  bool registered_ = false;  // in feed_.subs_ (set by subscribe() before it returns)
  // Guarded by feed_.mu_.
  std::deque<std::shared_ptr<const LiveEvent>> queue_;
  size_t queued_bytes_ = 0;
  bool dropped_ = false;
  std::condition_variable cv_;
};

class LiveFeed {
 public:
  struct Options {
    size_t max_subscribers = 100;
    size_t buffer_bytes = 256 * 1024;  // per subscriber; also the ring's byte bound
    size_t ring_events = 1024;
    std::chrono::milliseconds keepalive{15000};  // ": keepalive" comment interval
  };

  // `metrics` (log_server_live_subscribers, log_server_live_dropped_total) must outlive this.
  LiveFeed(Metrics& metrics, Options options);
  explicit LiveFeed(Metrics& metrics) : LiveFeed(metrics, Options{}) {}
  // Every subscription must be destroyed first.
  ~LiveFeed() = default;
  LiveFeed(const LiveFeed&) = delete;
  LiveFeed& operator=(const LiveFeed&) = delete;

  // A new subscription, or nullptr at max_subscribers (or once closed). `last_event_id`: the
  // client's Last-Event-ID, replayed from the ring when possible (see the file comment).
  std::unique_ptr<LiveSubscription> subscribe(const ListQuery& filter,
                                              std::optional<uint64_t> last_event_id = {});

  // Any thread; never blocks beyond the feed mutex. Rows are published in order, each once.
  void publish(const std::vector<ExchangeRow>& rows);

  // Ends every stream (kClosed) and refuses new subscriptions: for shutdown. Idempotent.
  void close();

  const Options& options() const { return options_; }
  size_t subscribers() const;

 private:
  friend class LiveSubscription;
  void unsubscribe(LiveSubscription* sub);
  // A new event for `row` (seq assigned); `data`, the row's summary JSON, may be empty: then
  // the event is unformatted (empty text) until it is needed.
  std::shared_ptr<LiveEvent> make_event(const ExchangeRow& row, std::string data);
  void deliver(LiveSubscription* sub, const std::shared_ptr<const LiveEvent>& event);
  void remember(std::shared_ptr<const LiveEvent> event);

  Metrics& metrics_;
  const Options options_;
  mutable std::mutex mu_;
  std::vector<LiveSubscription*> subs_;  // every live subscription (dropped ones too)
  std::atomic<size_t> subscribed_{0};    // subs_.size(), read by publish() before the mutex
  std::deque<std::shared_ptr<const LiveEvent>> ring_;
  size_t ring_bytes_ = 0;
  uint64_t next_seq_;
  bool closed_ = false;
};

}  // namespace lp::logsrv
