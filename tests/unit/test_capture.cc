// Redaction, the capture queue's bound, and the frames the capture tee emits.
#include <doctest/doctest.h>

#include <ctime>
#include <thread>

#include "common/capture_wire.h"
#include "proxy/capture_queue.h"
#include "proxy/capture_tee.h"
#include "proxy/redaction.h"

namespace lp {
namespace {

TEST_CASE("redact_value keeps the scheme and the last 4 characters of long secrets") {
  struct Row {
    const char* in;
    const char* out;
  };
  const Row rows[] = {
      {"Bearer sk-1234567890abcdefwxyz", "Bearer ****wxyz"},
      {"Basic dXNlcjpwYXNzd29yZA==", "Basic ****ZA=="},
      {"bearer   sk-abcdefghijklmnop", "bearer ****mnop"},
      {"sk-ant-api03-abcdefghijkl", "****ijkl"},   // X-Api-Key: no scheme
      {"session=abcdef; theme=dark", "****dark"},  // Cookie: no scheme, long
      {"short", "****"},
      {"Bearer short", "Bearer ****"},
      {"Bearer 12345678901", "Bearer ****"},  // 11 chars: below the tail threshold
      {"Bearer 123456789012", "Bearer ****9012"},
      {"", "****"},
      {"Bearer", "****"},   // a lone word is the secret, not a scheme
      {"a=b c=d", "****"},  // "a=b" is not a scheme
      {"Token abc def ghi jkl mno", "Token **** mno"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.in);
    CHECK(redact_value(r.in) == r.out);
  }
}

TEST_CASE("Redactor masks only the listed headers, case-insensitively, and can be off") {
  HeaderList in = {{"authorization", "Bearer sk-1234567890abcdefwxyz"},
                   {"X-Other", "Bearer sk-1234567890abcdefwxyz"},
                   {"Cookie", "a=1234567890123456"},
                   {"Set-Cookie", "id=abcdefghijklmnop; Path=/"},
                   {"Set-Cookie", "x=1"}};
  Redactor on(true, {"Authorization", "COOKIE", "set-cookie"});
  HeaderList out = on.apply(in);
  REQUIRE(out.size() == in.size());
  CHECK(out[0].name == "authorization");
  CHECK(out[0].value == "Bearer ****wxyz");
  CHECK(out[1].value == in[1].value);
  CHECK(out[2].value == "****3456");
  CHECK(out[3].value == "****th=/");
  CHECK(out[4].value == "****");
  Redactor off(false, {"Authorization"});
  CHECK(off.apply(in)[0].value == in[0].value);
  CHECK_FALSE(off.applies_to("Authorization"));
}

TEST_CASE("captured heads carry X-Proxy-Path and masked credentials") {
  RequestHead head;
  head.method = "POST";
  head.target = "/v1/chat/completions";
  head.headers = {{"Host", "api.example"}, {"Authorization", "Bearer sk-1234567890abcdefwxyz"}};
  Redactor r(true, {"Authorization"});
  CHECK(captured_request_head(head, "/openai/v1/chat/completions?x=1", r) ==
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer "
        "****wxyz\r\nX-Proxy-Path: /openai/v1/chat/completions?x=1\r\n\r\n");
  ResponseHead resp;
  resp.status = 200;
  resp.reason = "OK";
  resp.headers = {{"Set-Cookie", "s=abcdefghijklmnopqrst"}, {"Content-Type", "text/event-stream"}};
  CHECK(captured_response_head(resp, Redactor(true, {"Set-Cookie"})) ==
        "HTTP/1.1 200 OK\r\nSet-Cookie: ****qrst\r\nContent-Type: text/event-stream\r\n\r\n");
}

TEST_CASE("redact_query masks credential parameters and keeps everything else") {
  struct Row {
    const char* in;
    const char* out;
  };
  const Row rows[] = {
      {"/v1/models", "/v1/models"},
      {"/v1/models?", "/v1/models?"},
      {"/v1/x?key=sk-1234567890abcdefwxyz", "/v1/x?key=****wxyz"},
      {"/v1/x?model=a&key=sk-1234567890abcdefwxyz&n=1", "/v1/x?model=a&key=****wxyz&n=1"},
      {"/x?API_KEY=short&Token=abcdefghijklmnop", "/x?API_KEY=****&Token=****mnop"},
      {"/x?api-key=1&apikey=2&x-api-key=3&access_token=4&refresh_token=5&id_token=6",
       "/x?api-key=****&apikey=****&x-api-key=****&access_token=****&refresh_token=****&id_"
       "token=****"},
      {"/x?auth=1&sig=2&signature=3&password=4&secret=5&client_secret=6",
       "/x?auth=****&sig=****&signature=****&password=****&secret=****&client_secret=****"},
      {"/x?key=", "/x?key=****"},                                      // empty value: still marked
      {"/x?key", "/x?key"},                                            // no value to mask
      {"/x?monkey=1&keys=2&key_id=3", "/x?monkey=1&keys=2&key_id=3"},  // whole names only
      {"/x?a=1&&key=abcdefghijklmnop&", "/x?a=1&&key=****mnop&"},
      {"/x?key=abcdefghijklmnop#key=frag", "/x?key=****mnop#key=frag"},
      {"/x?q=key%3Dabc&token=a%20b", "/x?q=key%3Dabc&token=****"},
      {"/x?key=a=b=cdefghijklmnop", "/x?key=****mnop"},
      {"*", "*"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.in);
    CHECK(redact_query(r.in) == r.out);
  }
  CHECK(is_secret_query_param("KEY"));
  CHECK_FALSE(is_secret_query_param("model"));
}

TEST_CASE("captured heads mask credentials in the request target and X-Proxy-Path") {
  RequestHead head;
  head.method = "GET";
  head.target = "/v1beta/models?key=AIzaSy0123456789abcdEFGH&alt=sse";
  head.headers = {{"Host", "api.example"}};
  CHECK(captured_request_head(head, "/gemini/v1beta/models?alt=sse&key=AIzaSy0123456789abcdEFGH",
                              Redactor(true, {})) ==
        "GET /v1beta/models?key=****EFGH&alt=sse HTTP/1.1\r\nHost: api.example\r\nX-Proxy-Path: "
        "/gemini/v1beta/models?alt=sse&key=****EFGH\r\n\r\n");
  // logging.redact: false keeps captures verbatim.
  CHECK(captured_request_head(head, "/p?key=abc", Redactor(false, {})) ==
        "GET /v1beta/models?key=AIzaSy0123456789abcdEFGH&alt=sse HTTP/1.1\r\nHost: "
        "api.example\r\nX-Proxy-Path: /p?key=abc\r\n\r\n");
}

TEST_CASE("CaptureQueue refuses frames beyond its bound except forced ones") {
  CaptureQueue q(10);
  CHECK(q.push("12345"));
  CHECK(q.push("67890"));
  CHECK_FALSE(q.push("x"));
  CHECK(q.bytes() == 10);
  CHECK(q.push("end", /*force=*/true));
  std::string out;
  auto now = std::chrono::steady_clock::now();
  CHECK(q.pop_batch(&out, 1 << 20, now, std::chrono::milliseconds(0)) == 3);
  CHECK(out == "1234567890end");
  CHECK(q.bytes() == 0);
  q.set_outside(0);  // the shipper let go of the batch
  CHECK(q.push("again"));
}

TEST_CASE("CaptureQueue's bound counts what the shipper holds outside it until it lets go") {
  CaptureQueue q(100);
  CHECK(q.push(std::string(40, 'a')));
  CHECK(q.push(std::string(40, 'b')));
  const size_t queued = q.bytes();
  std::string out;
  auto now = std::chrono::steady_clock::now();
  CHECK(q.pop_batch(&out, 1 << 20, now, std::chrono::milliseconds(0)) == 2);
  // Popped, the frames are in a batch the shipper holds: still counted, never in neither.
  CHECK(q.bytes() == 0);
  CHECK(q.outside() == queued);
  CHECK_FALSE(q.push(std::string(40, 'c')));
  CHECK(q.push(std::string(15, 'd')));  // what is left of the bound
  // The shipper reports a batch it still sends, then that it let go.
  q.set_outside(out.capacity());
  CHECK_FALSE(q.push(std::string(40, 'e')));
  q.set_outside(0);
  CHECK(q.push(std::string(40, 'e')));
  CHECK(q.outside() == 0);
  // An end frame may still use the reserve while the shipper holds the whole bound.
  q.set_outside(100);
  CHECK_FALSE(q.push("x"));
  CHECK(q.push("end", /*force=*/true));
}

TEST_CASE("CaptureQueue admits forced frames into a bounded reserve only") {
  // 8 MiB: the reserve is as large (8 MiB).
  const size_t max = size_t{8} << 20;
  CaptureQueue q(max);
  const std::string piece(1024, 'x');  // capacity > size is counted: use what push() costs
  size_t admitted = 0;
  while (q.push(std::string(piece))) ++admitted;
  const size_t full = q.bytes();
  CHECK(full <= max);
  CHECK(full + 2 * piece.capacity() > max);
  size_t forced = 0;
  while (q.push(std::string(piece), /*force=*/true)) ++forced;
  CHECK(forced > 0);
  CHECK(q.bytes() > max);
  CHECK(q.bytes() <= 2 * max);
  CHECK(q.bytes() + 2 * piece.capacity() > 2 * max);
  CHECK_FALSE(q.push(std::string(piece), /*force=*/true));
  // A small queue still has 4 MiB of reserve.
  CaptureQueue small(10);
  CHECK(small.push(std::string((size_t{4} << 20) - 64 * 1024, 'e'), /*force=*/true));
  CHECK_FALSE(small.push(std::string(128 * 1024, 'e'), /*force=*/true));
}

TEST_CASE("CaptureQueue counts the memory a frame holds, not only its length") {
  CaptureQueue q(1000);
  std::string roomy = "0123456789abcdefghij";  // 20 bytes in a heap buffer of 2000
  roomy.reserve(2000);
  REQUIRE(roomy.capacity() >= 2000);
  CHECK_FALSE(q.push(std::move(roomy)));
  CHECK(q.bytes() == 0);
  std::string exact(600, 'x');
  const size_t cost = exact.capacity();
  CHECK(q.push(std::move(exact)));
  CHECK(q.bytes() == cost);
  std::string out;
  CHECK(q.pop_batch(&out, 1 << 20, std::chrono::steady_clock::now(),
                    std::chrono::milliseconds(0)) == 1);
  CHECK(q.bytes() == 0);
}

TEST_CASE("CaptureQueue batches respect max_bytes but always take one frame") {
  CaptureQueue q(1 << 20);
  q.push(std::string(100, 'a'));
  q.push(std::string(100, 'b'));
  q.push(std::string(300, 'c'));
  auto now = std::chrono::steady_clock::now();
  std::string out;
  CHECK(q.pop_batch(&out, 150, now, std::chrono::milliseconds(0)) == 1);
  CHECK(out == std::string(100, 'a'));
  out.clear();
  CHECK(q.pop_batch(&out, 150, now, std::chrono::milliseconds(0)) == 1);
  out.clear();
  CHECK(q.pop_batch(&out, 150, now, std::chrono::milliseconds(0)) == 1);  // oversize: alone
  CHECK(out.size() == 300);
  out.clear();
  CHECK(q.pop_batch(&out, 150, now, std::chrono::milliseconds(0)) == 0);
  q.close();
}

TEST_CASE("CaptureQueue: a batch gathers until it is full or old, woken once when full") {
  using namespace std::chrono_literals;
  CaptureQueue q(1 << 20);
  std::thread producer([&] {
    q.push(std::string(60, 'a'));
    q.push(std::string(10, 'b'));  // the batch has room: no reason to end it
    std::this_thread::sleep_for(50ms);
    q.push(std::string(60, 'c'));  // fills it: the waiting pop ends at once
  });
  std::string out;
  auto t0 = std::chrono::steady_clock::now();
  size_t n = q.pop_batch(&out, 100, t0 + 5s, 10s);
  auto waited = std::chrono::steady_clock::now() - t0;
  producer.join();
  CHECK(n == 2);  // "c" does not fit: it starts the next batch
  CHECK(out == std::string(60, 'a') + std::string(10, 'b'));
  CHECK(waited < 5s);  // woken by the filling push, not by the 10 s batch age
  CHECK(waited >= 40ms);
  out.clear();
  t0 = std::chrono::steady_clock::now();
  CHECK(q.pop_batch(&out, 100, t0 + 5s, 100ms) == 1);  // alone, it waits out its age
  CHECK(std::chrono::steady_clock::now() - t0 >= 90ms);
  q.close();
}

TEST_CASE("CaptureQueue: wait() ends at high water, on wake, on close, or at its deadline") {
  using namespace std::chrono_literals;
  // Pushes of 100-byte frames before wait(), the bytes the shipper holds outside the queue,
  // whether it watches high water, and a wake or close sent before it: wait() must return at
  // once, or at its deadline, and say whether the capture memory has reached high_water with
  // something to cut for the spool queued (at least a quarter of high_water, 125 bytes here);
  // `past`: the capture memory alone has reached high water.
  struct Case {
    const char* name;
    int pushes;
    size_t outside;
    bool for_high_water;
    bool wake;
    bool close;
    bool returns_at_once;
    bool above;
    bool past;
  };
  const Case cases[] = {
      {"below high water: waits out the deadline", 2, 0, true, false, false, false, false, false},
      {"at high water: at once", 5, 0, true, false, false, true, true, true},
      {"at high water with what the shipper holds: at once", 2, 300, true, false, false, true, true,
       true},
      {"the shipper alone holds high water, nothing queued: waits (no spin)", 0, 600, true, false,
       false, false, false, true},
      {"the shipper alone holds high water, a quarter of it queued: at once", 2, 600, true, false,
       false, true, true, true},
      {"below with what the shipper holds: waits", 1, 300, true, false, false, false, false, false},
      {"past high water but not watching: waits", 5, 0, false, false, false, false, true, true},
      {"a wake sent earlier is not lost", 0, 0, true, true, false, true, false, false},
      {"closed: at once", 0, 0, true, false, true, true, false, false},
  };
  for (const Case& c : cases) {
    const std::string name = c.name;  // shown as text, not as a pointer
    CAPTURE(name);
    CaptureQueue q(1000, 500);
    for (int i = 0; i < c.pushes; ++i) REQUIRE(q.push(std::string(100, 'x')));
    q.set_outside(c.outside);
    if (c.wake) q.wake();
    if (c.close) q.close();
    // "At once" leaves room for a loaded machine to deschedule this thread (tens of ms).
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(q.wait(t0 + 500ms, c.for_high_water) == c.above);
    CHECK(q.past_high_water() == c.past);
    const auto waited = std::chrono::steady_clock::now() - t0;
    if (c.returns_at_once) {
      CHECK(waited < 400ms);
    } else {
      CHECK(waited >= 490ms);
    }
  }
}

TEST_CASE("CaptureQueue: a push reaching high water wakes a waiting shipper - wake ends a pop") {
  using namespace std::chrono_literals;
  CaptureQueue q(1000, 300);
  std::thread producer([&] {
    std::this_thread::sleep_for(20ms);
    for (int i = 0; i < 3; ++i) q.push(std::string(100, 'x'));
  });
  auto t0 = std::chrono::steady_clock::now();
  CHECK(q.wait(t0 + 10s, true));
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  producer.join();

  // A wake (the sender finished) ends a pop that waits for its batch to fill or age.
  std::string out;
  std::thread waker([&] {
    std::this_thread::sleep_for(50ms);
    q.wake();
  });
  t0 = std::chrono::steady_clock::now();
  CHECK(q.pop_batch(&out, 1000, t0 + 10s, 10s) == 3);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  waker.join();
  CHECK(q.bytes() == 0);
  // Nothing queued: a wake ends the wait for a first frame with nothing taken.
  q.wake();
  out.clear();
  t0 = std::chrono::steady_clock::now();
  CHECK(q.pop_batch(&out, 1000, t0 + 10s, 10s) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  q.close();
}

// Decodes what the tee queued for one exchange.
std::vector<wire::Frame> drain(CaptureQueue& q) {
  std::string frames;
  q.pop_batch(&frames, 1 << 30, std::chrono::steady_clock::now(), std::chrono::milliseconds(0));
  std::string batch;
  wire::begin_batch(&batch, "test-proxy", 1);
  batch += frames;
  std::string error;
  auto decoded = wire::decode_batch(batch, &error);
  INFO(error);
  REQUIRE(decoded.has_value());
  return decoded->frames;
}

// The tees' clock in these tests: a step's frames are never "old" because the test thread was
// descheduled between two calls (a test that wants them old says so with a later time).
Clock::time_point frozen_now() {
  static const Clock::time_point t = Clock::now();
  return t;
}

ExchangeInfo sample_info() {
  ExchangeInfo info;
  info.id = "0123abcd-0000-4000-8000-000000000000";
  info.route = "mock";
  info.method = "POST";
  info.proxy_path = "/mock/echo";
  info.destination = "http://127.0.0.1:1/echo";
  info.client_ip = "127.0.0.1";
  info.started_at = std::chrono::system_clock::now();
  info.started = frozen_now();
  return info;
}

TEST_CASE("the tee emits begin, heads, bodies and end in order") {
  CaptureQueue q(1 << 20);
  CaptureTee tee(q, Redactor(true, {"Authorization"}));
  tee.set_clock(&frozen_now);
  auto obs = tee.start(sample_info());
  RequestHead head;
  head.method = "POST";
  head.target = "/echo";
  head.headers = {{"Host", "x"}};
  obs->on_request_head(head);
  obs->on_request_body(std::string("he\0llo", 6));
  ResponseHead resp;
  resp.status = 200;
  resp.reason = "OK";
  obs->on_response_head(resp);
  obs->on_response_body("data: 1\n\n", frozen_now());
  ExchangeSummary s;
  s.status = 200;
  s.request_body_bytes = 6;
  s.response_body_bytes = 9;
  s.timings.start = Clock::now();
  s.timings.end = s.timings.start;
  obs->on_end(s);
  auto frames = drain(q);
  REQUIRE(frames.size() == 6);
  CHECK(frames[0].type == wire::FrameType::kBegin);
  CHECK(frames[0].meta["route"] == "mock");
  CHECK(frames[0].meta["method"] == "POST");
  CHECK(frames[1].type == wire::FrameType::kRequestHead);
  CHECK(frames[1].data.find("X-Proxy-Path: /mock/echo\r\n") != std::string::npos);
  CHECK(frames[2].data == std::string("he\0llo", 6));
  CHECK(frames[3].type == wire::FrameType::kResponseHead);
  CHECK(frames[4].data == "data: 1\n\n");
  CHECK(frames[5].type == wire::FrameType::kEnd);
  CHECK(frames[5].meta["outcome"] == "complete");
  CHECK(frames[5].meta["response_bytes"] == 9);
  CHECK(tee.counters().truncated == 0);
}

TEST_CASE("hostile paths and errors never make a meta the wire refuses") {
  // Control bytes escape to six characters each: unclipped, these metas would be ~1.2 MB.
  for (bool redact : {true, false}) {
    CAPTURE(redact);
    CaptureQueue q(64 << 20);
    CaptureTee tee(q, Redactor(redact, {"Authorization"}));
    tee.set_clock(&frozen_now);
    ExchangeInfo info = sample_info();
    info.proxy_path = "/mock/" + std::string(200 * 1024, '\x01') + "?key=sk-0123456789abcdef";
    info.destination = "http://127.0.0.1:1/" + std::string(200 * 1024, '\x01');
    auto obs = tee.start(info);
    ExchangeSummary s;
    s.outcome = Outcome::kUpstreamError;
    s.error = "upstream said " + std::string(200 * 1024, '\x02');
    s.timings.start = s.timings.end = Clock::now();
    obs->on_end(s);
    auto frames = drain(q);  // decodes with the wire's limits
    REQUIRE(frames.size() == 2);
    const std::string path = frames[0].meta["proxy_path"];
    CHECK(path.size() == 4096);
    CHECK(path.starts_with("/mock/\x01"));
    CHECK(frames[0].meta["destination"].get<std::string>().size() == 4096);
    CHECK(frames[1].meta["error"].get<std::string>().size() == 4096);
    CHECK(frames[1].meta["outcome"] == "upstream_error");
  }
}

// Every meta the tee wrote is byte for byte what nlohmann would write for it: re-encoding the
// decoded frames with the nlohmann-based append_frame gives the same bytes.
void check_same_as_nlohmann(const std::string& frames) {
  std::string batch;
  wire::begin_batch(&batch, "test-proxy", 1);
  size_t preamble = batch.size();
  batch += frames;
  std::string error;
  auto decoded = wire::decode_batch(batch, &error);
  INFO(error);
  REQUIRE(decoded.has_value());
  std::string again;
  for (const auto& f : decoded->frames) wire::append_frame(&again, f.type, f.meta, f.data);
  CHECK(again == batch.substr(preamble));
}

TEST_CASE("a short exchange is one push, its metas equal nlohmann's, with masked paths") {
  CaptureQueue q(1 << 20);
  CaptureTee tee(q, Redactor(true, {"Authorization"}));
  tee.set_clock(&frozen_now);
  ExchangeInfo info = sample_info();
  info.proxy_path = "/mock/echo?key=sk-1234567890abcdefwxyz&q=\"\\\x01\xff";
  info.destination = "http://127.0.0.1:1/echo?key=sk-1234567890abcdefwxyz&q=1";
  info.replay_of = "ffffffff-0000-4000-8000-000000000001";
  info.client_ip = "::1";
  auto obs = tee.start(info);
  RequestHead head;
  head.method = "POST";
  head.target = "/echo?key=sk-1234567890abcdefwxyz";
  head.headers = {{"Host", "x"}, {"Authorization", "Bearer sk-1234567890abcdefwxyz"}};
  obs->on_request_head(head);
  obs->on_request_body(std::string(1024, 'b'));
  ResponseHead resp;
  resp.status = 200;
  resp.reason = "OK";
  resp.headers = {{"Content-Length", "1024"}};
  obs->on_response_head(resp);
  obs->on_response_body(std::string(1024, 'r'), frozen_now());
  ExchangeSummary s;
  s.status = 200;
  s.outcome = Outcome::kUpstreamError;
  s.error = "odd \"error\"\n\xc3";
  s.request_body_bytes = 1024;
  s.response_body_bytes = 1024;
  s.timings.start = info.started;
  s.timings.request_forwarded = info.started + std::chrono::microseconds(300);
  s.timings.new_upstream_connection = true;
  s.timings.upstream_connect = std::chrono::microseconds(200);
  s.timings.upstream_headers = info.started + std::chrono::microseconds(900);
  s.timings.first_body_byte = info.started + std::chrono::microseconds(950);
  s.timings.response_chunks = 3;
  s.timings.chunk_delay_max = std::chrono::microseconds(40);
  s.timings.chunk_delay_total = std::chrono::microseconds(70);
  s.timings.end = info.started + std::chrono::microseconds(1000);
  obs->on_end(s);

  std::string frames;
  CHECK(q.pop_batch(&frames, 1 << 30, std::chrono::steady_clock::now(),
                    std::chrono::milliseconds(0)) == 1);  // one push for the whole exchange
  check_same_as_nlohmann(frames);
  std::string batch;
  wire::begin_batch(&batch, "test-proxy", 1);
  auto decoded = wire::decode_batch(batch + frames, nullptr);
  REQUIRE(decoded.has_value());
  const auto& f = decoded->frames;
  REQUIRE(f.size() == 6);
  CHECK(f[0].meta["proxy_path"] == "/mock/echo?key=****wxyz&q=\"\\\x01\xef\xbf\xbd");
  CHECK(f[0].meta["destination"] == "http://127.0.0.1:1/echo?key=****wxyz&q=1");
  CHECK(f[0].meta["replay_of"] == info.replay_of);
  CHECK(f[1].data.find("POST /echo?key=****wxyz HTTP/1.1\r\n") == 0);
  CHECK(f[1].data.find("Authorization: Bearer ****wxyz\r\n") != std::string::npos);
  CHECK(f[1].data.find("sk-1234567890") == std::string::npos);
  const auto& t = f[5].meta["timings"];
  CHECK(t["request_forwarded_us"] == 300);
  CHECK(t["proxy_overhead_us"] == 100);  // 300 minus the 200 spent connecting
  CHECK(t["upstream_connect_us"] == 200);
  CHECK(t["upstream_headers_us"] == 900);
  CHECK(t["first_byte_us"] == 950);
  CHECK(t["total_us"] == 1000);
  CHECK(t["response_chunks"] == 3);
  CHECK(t["response_chunk_delay_max_us"] == 40);
  CHECK(t["response_chunk_delay_total_us"] == 70);
  CHECK(f[5].meta["outcome"] == "upstream_error");
}

TEST_CASE("a pooled connection has no upstream_connect_us and no chunks means no delays") {
  CaptureQueue q(1 << 20);
  CaptureTee tee(q, Redactor(true, {}));
  tee.set_clock(&frozen_now);
  ExchangeInfo info = sample_info();
  auto obs = tee.start(info);
  ExchangeSummary s;
  s.timings.start = info.started;
  s.timings.request_forwarded = info.started + std::chrono::microseconds(30);
  s.timings.end = info.started + std::chrono::microseconds(100);
  obs->on_end(s);
  auto frames = drain(q);
  REQUIRE(frames.size() == 2);
  const auto& t = frames[1].meta["timings"];
  CHECK(t["proxy_overhead_us"] == 30);
  CHECK_FALSE(t.contains("upstream_connect_us"));
  CHECK_FALSE(t.contains("response_chunk_delay_max_us"));
  CHECK(t["response_chunks"] == 0);
}

TEST_CASE("frames are pushed early when big or old, and in order") {
  CaptureQueue q(1 << 20);
  CaptureTee tee(q, Redactor(true, {}));
  tee.set_clock(&frozen_now);
  ExchangeInfo info = sample_info();
  auto obs = tee.start(info);
  std::string all;
  auto pop = [&] {
    std::string out;
    size_t n =
        q.pop_batch(&out, 1 << 30, std::chrono::steady_clock::now(), std::chrono::milliseconds(0));
    all += out;
    return n;
  };
  RequestHead head;
  head.method = "POST";
  head.target = "/echo";
  obs->on_request_head(head);
  CHECK(q.bytes() == 0);  // small and young: held
  obs->on_request_body(std::string(20000, 'x'));
  CHECK(q.bytes() > 20000);  // big: pushed, with what was held before it
  CHECK(pop() == 1);
  ResponseHead resp;
  resp.status = 200;
  resp.reason = "OK";
  resp.headers = {{"Content-Length", "18"}};  // its length known: not a stream
  obs->on_response_head(resp);
  obs->on_response_body("data: 1\n\n", frozen_now());
  CHECK(q.bytes() == 0);
  // The next piece arrives when the oldest held frame is over 10 ms old: both go.
  obs->on_response_body("data: 2\n\n", frozen_now() + std::chrono::milliseconds(20));
  CHECK(q.bytes() > 0);
  CHECK(pop() == 1);
  ExchangeSummary s;
  obs->on_end(s);
  CHECK(pop() == 1);
  check_same_as_nlohmann(all);
  std::string batch;
  wire::begin_batch(&batch, "test-proxy", 1);
  auto decoded = wire::decode_batch(batch + all, nullptr);
  REQUIRE(decoded.has_value());
  std::vector<wire::FrameType> types;
  for (const auto& f : decoded->frames) types.push_back(f.type);
  using T = wire::FrameType;
  CHECK(types == std::vector<T>{T::kBegin, T::kRequestHead, T::kRequestBody, T::kResponseHead,
                                T::kResponseBody, T::kResponseBody, T::kEnd});
  CHECK(decoded->frames[2].data == std::string(20000, 'x'));
  CHECK(decoded->frames[5].data == "data: 2\n\n");
}

TEST_CASE("a response that may be a stream has its start pushed at its head") {
  const struct {
    const char* name;
    HeaderList headers;
    bool pushed;
  } rows[] = {
      {"an event stream", {{"Content-Type", "text/event-stream; charset=utf-8"}}, true},
      {"NDJSON, chunked",
       {{"Content-Type", "application/x-ndjson"}, {"Transfer-Encoding", "chunked"}},
       true},
      {"JSON, chunked",
       {{"Content-Type", "application/json"}, {"Transfer-Encoding", "chunked"}},
       true},
      {"until the connection closes", {{"Content-Type", "application/json"}}, true},
      {"an event stream with a length",
       {{"Content-Type", "text/event-stream"}, {"Content-Length", "9"}},
       true},
      {"JSON with its length",
       {{"Content-Type", "application/json"}, {"content-length", "20"}},
       false},
  };
  for (const auto& row : rows) {
    const std::string name = row.name;
    CAPTURE(name);
    CaptureQueue q(1 << 20);
    CaptureTee tee(q, Redactor(true, {}));
    tee.set_clock(&frozen_now);
    auto obs = tee.start(sample_info());
    RequestHead head;
    head.method = "POST";
    head.target = "/v1/chat/completions";
    obs->on_request_head(head);
    ResponseHead resp;
    resp.status = 200;
    resp.reason = "OK";
    resp.headers = row.headers;
    obs->on_response_head(resp);
    CHECK((q.bytes() > 0) == row.pushed);
    obs->on_end(ExchangeSummary{});
    const std::vector<wire::Frame> frames = drain(q);
    REQUIRE(frames.size() == 4);  // begin, both heads and the end, in order either way
    CHECK(frames[2].type == wire::FrameType::kResponseHead);
  }
}

TEST_CASE(
    "a refused push keeps the heads if they fit, and a begin that never fit goes with the end") {
  {
    CaptureQueue q(100);  // not even the begin frame fits
    CaptureTee tee(q, Redactor(true, {}));
    tee.set_clock(&frozen_now);
    auto obs = tee.start(sample_info());
    obs->on_request_body(std::string(10000, 'x'));
    ExchangeSummary s;
    s.status = 200;
    obs->on_end(s);
    auto frames = drain(q);
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].type == wire::FrameType::kBegin);
    CHECK(frames[1].type == wire::FrameType::kEnd);
    CHECK(frames[1].meta["outcome"] == "truncated");
    CHECK(tee.counters().truncated == 1);
  }
  {
    CaptureQueue q(1 << 20);
    q.push(std::string((1 << 20) - 10, 'f'));  // full: the short exchange's one push is refused
    CaptureTee tee(q, Redactor(true, {}));
    tee.set_clock(&frozen_now);
    auto obs = tee.start(sample_info());
    ExchangeSummary s;
    s.status = 200;
    s.error = "x";
    obs->on_end(s);
    std::string out;
    q.pop_batch(&out, 1 << 30, std::chrono::steady_clock::now(), std::chrono::milliseconds(0));
    std::string batch;
    wire::begin_batch(&batch, "test-proxy", 1);
    auto decoded = wire::decode_batch(batch + out.substr((1 << 20) - 10), nullptr);
    REQUIRE(decoded.has_value());
    REQUIRE(decoded->frames.size() == 2);
    CHECK(decoded->frames[1].meta["outcome"] == "truncated");
    CHECK(decoded->frames[1].meta["error"] == "capture queue full: frames dropped; x");
  }
}

TEST_CASE("a full queue truncates the exchange but still delivers its end frame") {
  CaptureQueue q(600);  // room for the begin and head frames, not for the big body
  CaptureTee tee(q, Redactor(true, {}));
  tee.set_clock(&frozen_now);
  auto obs = tee.start(sample_info());
  RequestHead head;
  head.method = "POST";
  head.target = "/echo";
  obs->on_request_head(head);
  obs->on_request_body(std::string(4096, 'x'));
  obs->on_request_body("small");  // dropped too: once truncated, always truncated
  ExchangeSummary s;
  s.status = 200;
  obs->on_end(s);
  auto frames = drain(q);
  REQUIRE(frames.size() == 3);
  CHECK(frames[0].type == wire::FrameType::kBegin);
  CHECK(frames[1].type == wire::FrameType::kRequestHead);
  CHECK(frames[2].type == wire::FrameType::kEnd);
  CHECK(frames[2].meta["outcome"] == "truncated");
  CHECK(frames[2].meta["error"].get<std::string>().find("capture queue full") == 0);
  CHECK(tee.counters().truncated == 1);
}

}  // namespace
}  // namespace lp
