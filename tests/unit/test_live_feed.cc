// The live feed (GET /live) without HTTP: the filter matcher against the /requests filter
// semantics, fan-out to several subscribers, the bounded buffer dropping a slow subscriber
// while the others continue, unsubscribing, the subscriber cap, resume from the ring, close.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "log-server/exchange_json.h"
#include "log-server/list_query.h"
#include "log-server/live_feed.h"
#include "log-server/metrics.h"

using namespace lp::logsrv;
using namespace std::chrono_literals;

namespace {

ExchangeRow row(const std::string& id, const std::string& route = "openai") {
  ExchangeRow r;
  r.id = id;
  r.short_id = id.substr(0, 8);
  r.started_us = 1'000'000;
  r.started_at = "1970-01-01T00:00:01.000000Z";
  r.route = route;
  r.method = "POST";
  r.proxy_path = "/" + route + "/v1/chat/completions?x=1";
  r.outcome = "complete";
  r.status = 200;
  return r;
}

ListQuery query(const std::vector<std::pair<std::string, std::string>>& params) {
  ListQuery q;
  ParamError err;
  REQUIRE_MESSAGE(
      parse_list_query(params, &q, &err, QueryShape{.limit = false, .cursor = false, .own = {}}),
      err.parameter << ": " << err.message);
  return q;
}

// The ids of the events in `text` ("id: N" lines are ignored; data lines carry the JSON).
std::vector<std::string> exchange_ids(const std::string& text) {
  std::vector<std::string> ids;
  const std::string key = "\"id\":\"";
  for (size_t pos = text.find("data: "); pos != std::string::npos;
       pos = text.find("data: ", pos + 1)) {
    size_t at = text.find(key, pos);
    REQUIRE(at != std::string::npos);
    at += key.size();
    ids.push_back(text.substr(at, text.find('"', at) - at));
  }
  return ids;
}

// Drains whatever is queued for `sub` without waiting.
std::string drain(LiveSubscription& sub) {
  std::string out;
  for (int i = 0; i < 100 && sub.next(&out, 0ms) == LiveSubscription::Wait::kEvents; ++i) {
  }
  return out;
}

}  // namespace

TEST_CASE("live: matcher applies each /requests filter like the SQL does") {
  ExchangeRow r = row("a");
  r.model = "gpt-4o";
  r.provider = "openai";
  r.replay_of = "0a000001-0000-4000-8000-000000000001";
  struct Case {
    std::vector<std::pair<std::string, std::string>> params;
    bool want;
  };
  const Case cases[] = {
      {{}, true},
      {{{"route", "openai"}}, true},
      {{{"route", "anthropic"}}, false},
      {{{"route", "open"}}, false},  // exact, not a prefix
      {{{"method", "post"}}, true},  // upper-cased by the parser
      {{{"method", "GET"}}, false},
      {{{"status", "200"}}, true},
      {{{"status", "404"}}, false},
      {{{"outcome", "complete"}}, true},
      {{{"outcome", "in_progress"}}, false},
      {{{"since", "1970-01-01T00:00:01Z"}}, true},  // inclusive
      {{{"since", "1970-01-01T00:00:01.000001Z"}}, false},
      {{{"until", "1970-01-01T00:00:01Z"}}, false},  // exclusive
      {{{"until", "1970-01-01T00:00:01.000001Z"}}, true},
      {{{"q", "chat/comp"}}, true},
      {{{"q", "CHAT"}}, false},  // case-sensitive, as instr()
      {{{"q", "x=1"}}, true},    // the query string is part of proxy_path
      {{{"model", "gpt-4o"}}, true},
      {{{"model", "gpt-4"}}, false},
      {{{"provider", "openai"}}, true},
      {{{"provider", "anthropic"}}, false},
      {{{"replay_of", "0A000001-0000-4000-8000-000000000001"}}, true},
      {{{"replay_of", "0a000001-0000-4000-8000-000000000002"}}, false},
      {{{"route", "openai"}, {"status", "200"}, {"q", "v1"}}, true},
      {{{"route", "openai"}, {"status", "500"}}, false},
  };
  for (const Case& c : cases) {
    std::string label;
    for (const auto& [n, v] : c.params) label += n + "=" + v + " ";
    INFO(label);
    CHECK(matches(query(c.params), r) == c.want);
  }
  SUBCASE("a column that is NULL matches no filter on it") {
    ExchangeRow begun = row("b");
    begun.status.reset();
    begun.outcome = "in_progress";
    CHECK_FALSE(matches(query({{"status", "200"}}), begun));
    CHECK_FALSE(matches(query({{"model", "gpt-4o"}}), begun));
    CHECK_FALSE(matches(query({{"provider", "openai"}}), begun));
    CHECK_FALSE(matches(query({{"replay_of", "0a000001-0000-4000-8000-000000000001"}}), begun));
    CHECK(matches(query({{"outcome", "in_progress"}}), begun));
  }
}

TEST_CASE("live: publish reaches every matching subscriber, formatted as SSE") {
  Metrics metrics;
  LiveFeed feed(metrics);
  auto all1 = feed.subscribe({});
  auto all2 = feed.subscribe({});
  auto anthropic = feed.subscribe(query({{"route", "anthropic"}}));
  REQUIRE(all1);
  REQUIRE(all2);
  REQUIRE(anthropic);
  CHECK(metrics.live_subscribers == 3);

  feed.publish({row("e1"), row("e2", "anthropic")});
  std::string text;
  REQUIRE(all1->next(&text, 1000ms) == LiveSubscription::Wait::kEvents);
  CHECK(exchange_ids(text) == std::vector<std::string>{"e1", "e2"});
  // One event: "id: N", "event: exchange", one data line, a blank line.
  CHECK(text.rfind("id: ", 0) == 0);
  CHECK(text.find("\nevent: exchange\ndata: {\"id\":\"e1\"") != std::string::npos);
  CHECK(text.substr(text.size() - 2) == "\n\n");
  CHECK(exchange_ids(drain(*all2)) == std::vector<std::string>{"e1", "e2"});
  CHECK(exchange_ids(drain(*anthropic)) == std::vector<std::string>{"e2"});

  SUBCASE("event ids increase") {
    feed.publish({row("e3")});
    std::string more = drain(*all1);
    auto first_id = std::stoull(text.substr(4));
    auto next_id = std::stoull(more.substr(4));
    CHECK(next_id > first_id);
  }
  SUBCASE("nothing queued: next() times out") {
    std::string none;
    CHECK(all1->next(&none, 10ms) == LiveSubscription::Wait::kTimeout);
    CHECK(none.empty());
  }
}

TEST_CASE("live: a subscriber whose buffer is full is dropped, the others continue") {
  Metrics metrics;
  LiveFeed::Options options;
  options.buffer_bytes = 8 * 1024;
  LiveFeed feed(metrics, options);
  auto slow = feed.subscribe({});
  auto fast = feed.subscribe({});
  REQUIRE(slow);
  REQUIRE(fast);

  // Each event is several hundred bytes: 100 of them overflow 8 KiB many times over. The fast
  // subscriber drains after every publish; the slow one never does.
  size_t fast_events = 0;
  for (int i = 0; i < 100; ++i) {
    feed.publish({row("e" + std::to_string(i))});
    fast_events += exchange_ids(drain(*fast)).size();
  }
  CHECK(fast_events == 100);
  CHECK(metrics.live_dropped == 1);
  std::string out;
  CHECK(slow->next(&out, 0ms) == LiveSubscription::Wait::kDropped);
  CHECK(out.empty());  // its queue was freed, not delivered late
  // Dropped, but still open (its worker has not let go yet): it still counts for the cap.
  CHECK(feed.subscribers() == 2);
  slow.reset();
  CHECK(feed.subscribers() == 1);
  CHECK(metrics.live_subscribers == 1);
  feed.publish({row("after")});
  CHECK(exchange_ids(drain(*fast)) == std::vector<std::string>{"after"});
}

TEST_CASE("live: publish never waits for a subscriber's writer") {
  Metrics metrics;
  LiveFeed feed(metrics);
  auto sub = feed.subscribe({});
  REQUIRE(sub);
  std::string got;
  std::thread writer([&] {
    // The writer waits; publish on another thread wakes it.
    for (int i = 0; i < 50 && got.empty(); ++i) sub->next(&got, 100ms);
  });
  feed.publish({row("wake")});
  writer.join();
  CHECK(exchange_ids(got) == std::vector<std::string>{"wake"});
}

TEST_CASE("live: unsubscribe, the subscriber cap, and close") {
  Metrics metrics;
  LiveFeed::Options options;
  options.max_subscribers = 2;
  LiveFeed feed(metrics, options);
  auto a = feed.subscribe({});
  auto b = feed.subscribe({});
  REQUIRE(a);
  REQUIRE(b);
  CHECK(feed.subscribe({}) == nullptr);  // at the cap
  a.reset();                             // unsubscribes
  CHECK(metrics.live_subscribers == 1);
  feed.publish({row("x")});  // nobody dangling: only b gets it
  CHECK(exchange_ids(drain(*b)) == std::vector<std::string>{"x"});
  auto c = feed.subscribe({});
  CHECK(c);

  feed.publish({row("last")});
  feed.close();
  // Queued events still go out, then the stream ends.
  std::string out;
  CHECK(b->next(&out, 0ms) == LiveSubscription::Wait::kEvents);
  CHECK(exchange_ids(out) == std::vector<std::string>{"last"});
  CHECK(b->next(&out, 1000ms) == LiveSubscription::Wait::kClosed);
  CHECK(feed.subscribe({}) == nullptr);
}

TEST_CASE("live: Last-Event-ID resumes from the ring, else starts live") {
  Metrics metrics;
  LiveFeed::Options options;
  options.ring_events = 4;
  LiveFeed feed(metrics, options);
  auto first = feed.subscribe({});
  REQUIRE(first);
  feed.publish({row("r1"), row("r2", "anthropic")});
  std::string text = drain(*first);
  const uint64_t id1 = std::stoull(text.substr(4));
  first.reset();  // the client disconnects after r1 and r2

  feed.publish({row("r3"), row("r4", "anthropic")});
  auto resumed = feed.subscribe({}, id1);
  REQUIRE(resumed);
  CHECK(resumed->resumed());
  CHECK(exchange_ids(drain(*resumed)) == std::vector<std::string>{"r2", "r3", "r4"});
  auto filtered = feed.subscribe(query({{"route", "anthropic"}}), id1);
  REQUIRE(filtered);
  CHECK(exchange_ids(drain(*filtered)) == std::vector<std::string>{"r2", "r4"});

  feed.publish({row("r5"), row("r6")});  // r1, r2 leave the 4-event ring
  auto too_old = feed.subscribe({}, id1);
  REQUIRE(too_old);
  CHECK_FALSE(too_old->resumed());
  CHECK(drain(*too_old).empty());
  auto from_the_future = feed.subscribe({}, id1 + 1000);
  REQUIRE(from_the_future);
  CHECK_FALSE(from_the_future->resumed());
  auto fresh = feed.subscribe({});
  REQUIRE(fresh);
  CHECK(fresh->resumed());
  CHECK(drain(*fresh).empty());  // no Last-Event-ID: live only
}

TEST_CASE(
    "live: rows published while nobody listens are replayed exactly as a listener gets them") {
  Metrics metrics;
  LiveFeed feed(metrics);
  auto first = feed.subscribe({});
  REQUIRE(first);
  feed.publish({row("r1")});
  const uint64_t id1 = std::stoull(drain(*first).substr(4));
  first.reset();  // nobody listens: r2 and r3 wait in the ring unformatted
  std::vector<ExchangeRow> rows = {row("r2", "anthropic"), row("r3")};
  // The ring drops these two columns; a summary that used them would now differ.
  rows[0].llm_json = R"({"model":"claude"})";
  rows[0].timings_json = R"({"total_us":1200})";
  feed.publish(rows);
  auto resumed = feed.subscribe({}, id1);
  REQUIRE(resumed);
  CHECK(resumed->resumed());
  std::string want;
  for (size_t i = 0; i < rows.size(); ++i) {
    want += "id: " + std::to_string(id1 + 1 + i) +
            "\nevent: exchange\ndata: " + dump_json(summary_json(rows[i])) + "\n\n";
  }
  CHECK(drain(*resumed) == want);
  // A second resume gets the same text (the ring kept the formatted events), and a listener
  // present at publish time gets the same format.
  auto again = feed.subscribe({}, id1);
  REQUIRE(again);
  CHECK(drain(*again) == want);
  feed.publish({row("r4")});
  const std::string live = drain(*again);
  CHECK(live == "id: " + std::to_string(id1 + 3) +
                    "\nevent: exchange\ndata: " + dump_json(summary_json(row("r4"))) + "\n\n");
}

TEST_CASE("live: the ring's byte bound holds for rows nobody has formatted yet") {
  Metrics metrics;
  LiveFeed::Options options;
  options.ring_events = 1000;
  options.buffer_bytes = 4 * 1024;  // a handful of ~700-byte events
  LiveFeed feed(metrics, options);
  auto first = feed.subscribe({});
  REQUIRE(first);
  feed.publish({row("r0")});
  const uint64_t id0 = std::stoull(drain(*first).substr(4));
  first.reset();
  std::vector<ExchangeRow> rows;
  for (int i = 1; i <= 50; ++i) rows.push_back(row("r" + std::to_string(i)));
  feed.publish(rows);
  auto too_old = feed.subscribe({}, id0);  // r1 left the ring long ago
  REQUIRE(too_old);
  CHECK_FALSE(too_old->resumed());
  auto recent = feed.subscribe({}, id0 + 48);  // r49 and r50 are still there
  REQUIRE(recent);
  CHECK(recent->resumed());
  CHECK(exchange_ids(drain(*recent)) == std::vector<std::string>{"r49", "r50"});
}
