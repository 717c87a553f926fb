#include "log-server/live_feed.h"

#include <algorithm>

#include "common/time_format.h"
#include "log-server/exchange_json.h"

namespace lp::logsrv {

namespace {

void frame(LiveEvent* event, const std::string& data) {
  event->text.reserve(data.size() + 48);
  event->text += "id: ";
  event->text += std::to_string(event->seq);
  event->text += "\nevent: exchange\ndata: ";
  event->text += data;
  event->text += "\n\n";
}

void format(LiveEvent* event) {
  frame(event, dump_json(summary_json(event->row)));
}

// An unformatted event counts as its row's strings plus the summary's fixed part (its keys
// and numbers, ~600 bytes), so the ring's byte bound holds before anything is formatted.
size_t ring_cost(const LiveEvent& event) {
  if (!event.text.empty()) return event.text.size();
  const ExchangeRow& r = event.row;
  size_t n = 640 + r.id.size() + r.short_id.size() + r.started_at.size() + r.route.size() +
             r.method.size() + r.proxy_path.size() + r.destination.size() + r.client_ip.size() +
             r.outcome.size() + r.request_file.size() + r.proxy_id.size() + r.ingested_at.size();
  for (const auto* o : {&r.replay_of, &r.error, &r.request_content_type, &r.response_content_type,
                        &r.response_content_encoding, &r.response_file, &r.provider, &r.model}) {
    if (*o) n += (*o)->size();
  }
  return n;
}

}  // namespace

bool matches(const ListQuery& q, const ExchangeRow& row) {
  if (q.route && row.route != *q.route) return false;
  if (q.method && row.method != *q.method) return false;
  if (q.status && (!row.status || *row.status != *q.status)) return false;
  if (q.outcome && row.outcome != *q.outcome) return false;
  if (q.since_us && row.started_us < *q.since_us) return false;
  if (q.until_us && row.started_us >= *q.until_us) return false;
  if (q.q && row.proxy_path.find(*q.q) == std::string::npos) return false;
  if (q.replay_of && row.replay_of != q.replay_of) return false;
  if (q.model && row.model != q.model) return false;
  if (q.provider && row.provider != q.provider) return false;
  return true;
}

LiveSubscription::~LiveSubscription() {
  if (registered_) feed_.unsubscribe(this);
}

LiveSubscription::Wait LiveSubscription::next(std::string* out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(feed_.mu_);
  cv_.wait_for(lock, timeout, [&] { return dropped_ || feed_.closed_ || !queue_.empty(); });
  if (dropped_) return Wait::kDropped;
  // Events already queued go out before a close ends the stream.
  if (queue_.empty()) return feed_.closed_ ? Wait::kClosed : Wait::kTimeout;
  for (const auto& event : queue_) out->append(event->text);
  queue_.clear();
  queued_bytes_ = 0;
  return Wait::kEvents;
}

LiveFeed::LiveFeed(Metrics& metrics, Options options)
    : metrics_(metrics),
      options_(options),
      next_seq_(static_cast<uint64_t>(std::max<int64_t>(now_us(), 1))) {}

std::unique_ptr<LiveSubscription> LiveFeed::subscribe(const ListQuery& filter,
                                                      std::optional<uint64_t> last_event_id) {
  std::lock_guard lock(mu_);
  if (closed_ || subs_.size() >= options_.max_subscribers) return nullptr;
  std::unique_ptr<LiveSubscription> sub(new LiveSubscription(*this, filter));
  if (last_event_id) {
    // Resumable when the event right after it is still in the ring (or nothing came since),
    // and the events to replay fit a fresh queue.
    const uint64_t oldest = ring_.empty() ? next_seq_ : ring_.front()->seq;
    sub->resumed_ = *last_event_id + 1 >= oldest && *last_event_id < next_seq_;
    std::vector<std::shared_ptr<const LiveEvent>> replay;
    size_t bytes = 0;
    for (auto it = ring_.begin(); sub->resumed_ && it != ring_.end(); ++it) {
      if ((*it)->seq <= *last_event_id || !matches(filter, (*it)->row)) continue;
      if ((*it)->text.empty()) {
        // Formatted now, once: the ring keeps the formatted event.
        auto event = std::make_shared<LiveEvent>(**it);
        format(event.get());
        ring_bytes_ = ring_bytes_ - ring_cost(**it) + event->text.size();
        *it = std::move(event);
      }
      bytes += (*it)->text.size();
      sub->resumed_ = bytes <= options_.buffer_bytes;
      replay.push_back(*it);
    }
    if (sub->resumed_) {
      for (const auto& event : replay) deliver(sub.get(), event);
    }
  }
  subs_.push_back(sub.get());
  sub->registered_ = true;
  subscribed_.store(subs_.size(), std::memory_order_relaxed);
  metrics_.live_subscribers.store(static_cast<int64_t>(subs_.size()), std::memory_order_relaxed);
  return sub;
}

void LiveFeed::unsubscribe(LiveSubscription* sub) {
  std::lock_guard lock(mu_);
  auto it = std::find(subs_.begin(), subs_.end(), sub);
  if (it == subs_.end()) return;
  subs_.erase(it);
  subscribed_.store(subs_.size(), std::memory_order_relaxed);
  metrics_.live_subscribers.store(static_cast<int64_t>(subs_.size()), std::memory_order_relaxed);
}

std::shared_ptr<LiveEvent> LiveFeed::make_event(const ExchangeRow& row, std::string data) {
  auto event = std::make_shared<LiveEvent>();
  event->row = row;
  // Not part of the summary, and the largest columns: the ring need not keep them.
  event->row.llm_json.reset();
  event->row.timings_json.reset();
  event->seq = next_seq_++;
  if (!data.empty()) frame(event.get(), data);
  return event;
}

// Called with mu_ held. Never waits: a full queue drops the subscriber instead.
void LiveFeed::deliver(LiveSubscription* sub, const std::shared_ptr<const LiveEvent>& event) {
  if (sub->dropped_) return;
  if (sub->queued_bytes_ + event->text.size() > options_.buffer_bytes) {
    sub->dropped_ = true;
    sub->queue_.clear();
    sub->queued_bytes_ = 0;
    metrics_.live_dropped.fetch_add(1, std::memory_order_relaxed);
  } else {
    sub->queue_.push_back(event);
    sub->queued_bytes_ += event->text.size();
  }
  sub->cv_.notify_one();
}

void LiveFeed::remember(std::shared_ptr<const LiveEvent> event) {
  ring_bytes_ += ring_cost(*event);
  ring_.push_back(std::move(event));
  while (!ring_.empty() &&
         (ring_.size() > options_.ring_events || ring_bytes_ > options_.buffer_bytes)) {
    ring_bytes_ -= ring_cost(*ring_.front());
    ring_.pop_front();
  }
}

void LiveFeed::publish(const std::vector<ExchangeRow>& rows) {
  // Serialised before taking the mutex, so writers swapping their queues never wait on it, and
  // only when someone listens: with no subscriber a row is formatted only if a resume replays
  // it (most leave the ring unread). A subscriber that arrives meanwhile gets its events
  // formatted under the mutex. (dump_json never emits a raw newline: one SSE data line.)
  std::vector<std::string> data(rows.size());
  if (subscribed_.load(std::memory_order_relaxed) > 0) {
    for (size_t i = 0; i < rows.size(); ++i) data[i] = dump_json(summary_json(rows[i]));
  }
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::shared_ptr<LiveEvent> event = make_event(rows[i], std::move(data[i]));
    for (LiveSubscription* sub : subs_) {
      if (!matches(sub->filter_, event->row)) continue;
      if (event->text.empty()) format(event.get());
      deliver(sub, event);
    }
    remember(std::move(event));
  }
}

void LiveFeed::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (LiveSubscription* sub : subs_) sub->cv_.notify_one();
}

size_t LiveFeed::subscribers() const {
  std::lock_guard lock(mu_);
  return subs_.size();
}

}  // namespace lp::logsrv
