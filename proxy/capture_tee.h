// The capture tee: turns what the forwarder reports about an exchange into wire frames
// (common/capture_wire.h), redacted, and queues them for the shipper. Runs on the client's
// thread and never blocks it: if the queue is full, the exchange stops being captured and
// its end frame says `truncated`.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "proxy/capture_queue.h"
#include "proxy/exchange_observer.h"
#include "proxy/redaction.h"

namespace lp {

struct CaptureCounters {
  std::atomic<uint64_t> exchanges{0};
  std::atomic<uint64_t> truncated{0};
  // Truncated exchanges whose end frame found the queue's reserve full too: the log server
  // never hears of them (counted here and on the console, never silent).
  std::atomic<uint64_t> unrecorded{0};
};

class CaptureTee : public ExchangeObserverFactory {
 public:
  // `shared`, when given, counts instead of this tee's own counters: a reload builds a new tee
  // (new redaction settings) that goes on counting where the previous one was. `queue` and
  // `shared` must outlive this and every observer it started.
  CaptureTee(CaptureQueue& queue, Redactor redactor, CaptureCounters* shared = nullptr)
      : queue_(queue), redactor_(std::move(redactor)), counters_(shared ? *shared : own_) {}
  std::unique_ptr<ExchangeObserver> start(const ExchangeInfo& info) override;
  const CaptureCounters& counters() const { return counters_; }

  // The clock observers read for a step that brings no time of its own (the heads, request
  // bodies): Clock::now, or in a test a fixed one, so that whether held frames are old enough
  // to push is the test's to decide, not the scheduler's. Set before the first start().
  using NowFn = Clock::time_point (*)();
  void set_clock(NowFn now) { now_ = now; }

 private:
  friend class CaptureObserver;
  NowFn now_ = &Clock::now;
  CaptureQueue& queue_;
  const Redactor redactor_;
  CaptureCounters own_;
  CaptureCounters& counters_;
};

// The request head as stored: the head as forwarded plus "X-Proxy-Path: <path?query the client
// used>" (replay sends the capture there again), credentials masked.
std::string captured_request_head(const RequestHead& head, std::string_view proxy_path,
                                  const Redactor& redactor);
std::string captured_response_head(const ResponseHead& head, const Redactor& redactor);

}  // namespace lp
