// GET /live end to end, on a real log-server process fed crafted capture batches and read by
// raw-socket SSE clients: begin/end/derived events within 1 s, filters, keep-alive comments
// (LP_TEST_LIVE_KEEPALIVE_MS test hook), no compression whatever Accept-Encoding says, auth, a
// stalled subscriber dropped without slowing ingest or another subscriber, and 100 open feeds
// (the cap) fanned out to while /ingest and /requests still answer promptly.
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "tests/e2e/log_server_fixture.h"

using namespace e2e;

namespace {

constexpr const char* kStarted = "2026-12-05T10:00:00.000000Z";

// One SSE item: an event (fields) or a comment (":..." line).
struct SseItem {
  bool comment = false;
  std::string text;  // the comment without ':'
  std::string id;
  std::string event;
  std::string data;
  json json_data() const { return json::parse(data, nullptr, false); }
};

// A GET /live stream read incrementally over a raw socket. The constructor (main thread)
// connects and reads the response head; next() may run on another thread (no assertions).
class LiveStream {
 public:
  LiveStream(int port, const std::string& target,
             const std::vector<std::pair<std::string, std::string>>& headers = {})
      : conn_(port) {
    REQUIRE(conn_.send_all(make_request("GET", target, port, headers)));
    auto head = conn_.read_head(5000ms);
    REQUIRE_MESSAGE(head, "no response head for GET " << target);
    head_ = *head;
    dec_ = BodyDecoder(head_, "GET");
  }
  const ResponseHead& head() const { return head_; }
  RawConn& conn() { return conn_; }
  bool ended() const { return ended_; }

  // The next item within `timeout`; nullopt on timeout or when the stream ended.
  std::optional<SseItem> next(Ms timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto item = parse_one()) return item;
      if (ended_) return std::nullopt;
      auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now());
      if (left <= 0ms) return std::nullopt;
      bool got = false;
      bool complete = conn_.read_body(dec_, left, [&](std::string_view d) {
        text_.append(d);
        got = true;
        return false;
      });
      if (complete) ended_ = true;
      if (!got && !complete) return parse_one();  // timeout (or an error)
    }
  }
  // The next event (comments skipped) within `timeout`.
  std::optional<SseItem> next_event(Ms timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now());
      auto item = next(std::max(left, 0ms));
      if (!item || !item->comment) return item;
    }
  }

 private:
  std::optional<SseItem> parse_one() {
    size_t end = text_.find("\n\n");
    if (end == std::string::npos) return std::nullopt;
    std::string block = text_.substr(0, end);
    text_.erase(0, end + 2);
    SseItem item;
    std::istringstream lines(block);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty() && line[0] == ':') {
        item.comment = true;
        item.text = line.substr(1);
      } else if (line.rfind("id: ", 0) == 0) {
        item.id = line.substr(4);
      } else if (line.rfind("event: ", 0) == 0) {
        item.event = line.substr(7);
      } else if (line.rfind("data: ", 0) == 0) {
        item.data += line.substr(6);
      }
    }
    return item;
  }

  RawConn conn_;
  ResponseHead head_;
  BodyDecoder dec_;
  std::string text_;
  bool ended_ = false;
};

Batch begin_only(uint64_t seq, const std::string& id, const std::string& route) {
  Batch b("live-proxy", seq);
  b.begin(id, kStarted, route, "/" + route + "/v1/chat/completions");
  b.frame(FrameType::kRequestHead, {{"id", id}}, kHead);
  return b;
}

void post_ok(httplib::Client& c, const Batch& b) {
  auto r = post(c, b.bytes());
  REQUIRE(r);
  REQUIRE_MESSAGE(r->status == 200, r->body);
}

long status_kb(pid_t pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key)));
  }
  return 0;
}

}  // namespace

TEST_CASE("live: begin, end and derived events within 1 s - filters - keep-alive - no gzip") {
  ChildOptions opts;
  opts.env = {{"LP_TEST_LIVE_KEEPALIVE_MS", "300"}};
  LogServer server("", opts);
  auto c = server.client();
  // A client that accepts compressed answers: the feed must still arrive uncompressed and
  // event by event (a compressed stream would be buffered until it ends).
  LiveStream all(server.port(), "/live", {{"Accept-Encoding", "gzip, br"}});
  LiveStream only_b(server.port(), "/live?route=b");
  REQUIRE(all.head().status == 200);
  CHECK(all.head().get("Content-Type") == "text/event-stream");
  CHECK_FALSE(all.head().has("Content-Encoding"));
  CHECK(all.head().get("Transfer-Encoding") == "chunked");
  REQUIRE(only_b.head().status == 200);

  const std::string x = make_id(1);
  auto t0 = Clock::now();
  post_ok(c, begin_only(1, x, "a"));
  auto begun = all.next_event(1000ms);
  const double begin_ms = ms_since(t0);
  REQUIRE_MESSAGE(begun, "no begin event within 1 s");
  CHECK(begun->event == "exchange");
  json j = begun->json_data();
  CHECK(j["id"] == x);
  CHECK(j["outcome"] == "in_progress");
  CHECK(j["route"] == "a");
  // Exactly the /requests list item.
  json listed = get_json(c, "/requests?route=a");
  REQUIRE(listed["requests"].size() == 1);
  CHECK(j == listed["requests"][0]);

  // The end, with a recognisable chat completion so the deriver announces its LLM fields too.
  Batch end("live-proxy", 2);
  end.frame(FrameType::kRequestBody, {{"id", x}},
            R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})");
  end.frame(FrameType::kResponseHead, {{"id", x}, {"t_us", 1000}},
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n");
  end.frame(FrameType::kResponseBody, {{"id", x}, {"t_us", 2000}},
            R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":"hello"},)"
            R"("finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,)"
            R"("total_tokens":7}})");
  end.end(x, 200);
  t0 = Clock::now();
  post_ok(c, end);
  auto ended = all.next_event(1000ms);
  const double end_ms = ms_since(t0);
  REQUIRE_MESSAGE(ended, "no end event within 1 s");
  json e = ended->json_data();
  CHECK(e["id"] == x);
  CHECK(e["outcome"] == "complete");
  CHECK(e["status"] == 200);
  CHECK(e["durations"]["total_ms"] == 45.5);
  CHECK(std::stoull(ended->id) > std::stoull(begun->id));
  auto derived = all.next_event(3000ms);
  REQUIRE_MESSAGE(derived, "no event after the deriver stored the LLM fields");
  json d = derived->json_data();
  CHECK(d["id"] == x);
  CHECK(d["model"] == "gpt-4o");
  CHECK(d["input_tokens"] == 5);
  CHECK(d["output_tokens"] == 2);
  MESSAGE("begin event after " << begin_ms << " ms, end event after " << end_ms << " ms");

  // The route filter: only_b saw none of that, and sees route b's exchange.
  Batch b3("live-proxy", 3);
  b3.exchange(make_id(2), kStarted, 200, "b", "/b/v1/x");
  post_ok(c, b3);
  auto b_event = only_b.next_event(1000ms);
  REQUIRE(b_event);
  CHECK(b_event->json_data()["id"] == make_id(2));
  CHECK(b_event->json_data()["route"] == "b");
  auto b_in_all = all.next_event(1000ms);
  REQUIRE(b_in_all);
  CHECK(b_in_all->json_data()["id"] == make_id(2));

  // Keep-alive comments (every 300 ms with the test hook).
  std::optional<SseItem> item;
  for (int i = 0; i < 10; ++i) {
    item = only_b.next(2000ms);
    if (!item || item->comment) break;
  }
  REQUIRE_MESSAGE(item, "no keep-alive comment within 2 s");
  CHECK(item->comment);
  CHECK(item->text == " keepalive");

  // Bad filters are a 400 naming the parameter, as for /requests.
  json bad = get_json(c, "/live?limit=5", 400);
  CHECK(bad["parameter"] == "limit");
}

TEST_CASE("live: with auth_token, /live needs the bearer token") {
  LogServer server("  auth_token: \"live-secret-token-1234\"\n");
  LiveStream anonymous(server.port(), "/live");
  CHECK(anonymous.head().status == 401);
  LiveStream authorised(server.port(), "/live",
                        {{"Authorization", "Bearer live-secret-token-1234"}});
  CHECK(authorised.head().status == 200);
  CHECK(authorised.head().get("Content-Type") == "text/event-stream");
}

TEST_CASE("live: a stalled subscriber is dropped - ingest and another subscriber keep going") {
  LogServer server;
  auto c = server.client();
  // Large events (a 6 KB proxy path in each summary) so the stalled socket fills quickly.
  const std::string long_path = "/mock/v1/" + std::string(6000, 'p');
  constexpr int kPerBatch = 20;
  constexpr int kBatchesBefore = 25;  // only the reading subscriber
  constexpr int kBatchesDuring = 75;  // with the stalled one too
  const std::string body(16 * 1024, 'b');
  auto batch = [&](int k) {
    Batch b("stall-proxy", static_cast<uint64_t>(k + 1));
    for (int i = 0; i < kPerBatch; ++i) {
      b.exchange(make_id(1000 + k * kPerBatch + i), kStarted, 200, "mock", long_path, body);
    }
    return b;
  };

  LiveStream reader(server.port(), "/live");
  REQUIRE(reader.head().status == 200);
  // Distinct exchanges the reader saw ended (one event each: begun and ended in one batch).
  std::atomic<int> seen{0};
  std::atomic<bool> stop{false};
  const int total = (kBatchesBefore + kBatchesDuring) * kPerBatch;
  std::thread reading([&] {
    std::set<std::string> ids;
    const auto deadline = Clock::now() + 60s;
    while (!stop && Clock::now() < deadline && seen < total) {
      auto item = reader.next_event(200ms);
      if (item && item->event == "exchange") {
        json j = item->json_data();
        if (j.is_object() && j["outcome"] == "complete") ids.insert(j["id"].get<std::string>());
        seen = static_cast<int>(ids.size());
      }
      if (reader.ended()) break;
    }
  });

  auto t0 = Clock::now();
  for (int k = 0; k < kBatchesBefore; ++k) post_ok(c, batch(k));
  const double before_ms = ms_since(t0);

  LiveStream stalled(server.port(), "/live");
  REQUIRE(stalled.head().status == 200);
  int small = 4096;
  ::setsockopt(stalled.conn().fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  t0 = Clock::now();
  for (int k = kBatchesBefore; k < kBatchesBefore + kBatchesDuring; ++k) post_ok(c, batch(k));
  const double during_ms = ms_since(t0);

  bool all_seen = await_cond([&] { return seen >= total; }, 20000ms);
  stop = true;
  reading.join();
  CHECK_MESSAGE(all_seen,
                "the reading subscriber got " << seen.load() << " of " << total << " events");
  CHECK(metric(c, "log_server_live_dropped_total") == 1);
  const double per_batch_before = before_ms / kBatchesBefore;
  const double per_batch_during = during_ms / kBatchesDuring;
  MESSAGE("ingest " << per_batch_before << " ms/batch before the stalled subscriber, "
                    << per_batch_during << " ms/batch with it (" << kPerBatch
                    << " exchanges of 16 KiB per batch); reader got " << seen.load()
                    << " exchanges");
  CHECK(per_batch_during < 3 * per_batch_before + 50);
}

TEST_CASE("live: 100 subscribers get every event - at the cap /ingest and /requests answer") {
  raise_fd_limit();
  LogServer server;
  auto c = server.client();
  const pid_t pid = server.process().pid();
  const long rss_before = status_kb(pid, "VmRSS:");

  constexpr int kCap = 100;
  std::vector<std::unique_ptr<LiveStream>> subs;
  for (int i = 0; i < kCap; ++i) {
    subs.push_back(std::make_unique<LiveStream>(server.port(), "/live"));
    REQUIRE(subs.back()->head().status == 200);
  }
  CHECK(metric(c, "log_server_live_subscribers") == kCap);
  const long rss_open = status_kb(pid, "VmRSS:");
  const long threads = status_kb(pid, "Threads:");

  // Beyond the cap: a JSON 503 naming the limit.
  auto over = http_get(server.port(), "/live");
  CHECK(over.status() == 503);
  json over_json = over.body_json();
  CHECK(over_json["limit"] == kCap);
  CHECK(over_json["error"].get<std::string>().find("100") != std::string::npos);

  // With every feed open, ingest and the list still answer promptly.
  auto t0 = Clock::now();
  Batch b("fanout-proxy", 1);
  b.exchange(make_id(1), kStarted, 200);
  post_ok(c, b);
  const double ingest_ms = ms_since(t0);
  // Every subscriber gets the event; they are read one after another, so the last arrival
  // bounds the fan-out time.
  int got = 0;
  for (auto& sub : subs) {
    auto event = sub->next_event(2000ms);
    if (event && event->json_data()["id"] == make_id(1)) ++got;
  }
  const double fanout_ms = ms_since(t0);
  CHECK(got == kCap);
  auto t1 = Clock::now();
  json listed = get_json(c, "/requests");
  const double list_ms = ms_since(t1);
  CHECK(listed["requests"].size() == 1);
  CHECK(ingest_ms < 2000);
  CHECK(list_ms < 2000);
  const long rss_after = status_kb(pid, "VmRSS:");
  MESSAGE("100 subscribers: fan-out of one event to all "
          << fanout_ms << " ms (ingest answered in " << ingest_ms << " ms, /requests in " << list_ms
          << " ms); log-server RSS " << rss_before << " kB before, " << rss_open
          << " kB with 100 feeds open, " << rss_after << " kB after the event; " << threads
          << " threads");

  // Closed feeds give their workers back (within the 1 s idle tick).
  subs.clear();
  CHECK(await_cond([&] { return metric(c, "log_server_live_subscribers") == 0; }, 5000ms));
  LiveStream again(server.port(), "/live");
  CHECK(again.head().status == 200);
}
