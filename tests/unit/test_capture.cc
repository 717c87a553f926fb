// Redaction, the capture queue's bound, and the frames the capture tee emits.
#include <doctest/doctest.h>

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
  CHECK(q.push("again"));
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

ExchangeInfo sample_info() {
  ExchangeInfo info;
  info.id = "0123abcd-0000-4000-8000-000000000000";
  info.route = "mock";
  info.method = "POST";
  info.proxy_path = "/mock/echo";
  info.destination = "http://127.0.0.1:1/echo";
  info.client_ip = "127.0.0.1";
  info.started_at = std::chrono::system_clock::now();
  info.started = Clock::now();
  return info;
}

TEST_CASE("the tee emits begin, heads, bodies and end in order") {
  CaptureQueue q(1 << 20);
  CaptureTee tee(q, Redactor(true, {"Authorization"}));
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
  obs->on_response_body("data: 1\n\n", Clock::now());
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

TEST_CASE("a full queue truncates the exchange but still delivers its end frame") {
  CaptureQueue q(600);  // room for the begin and head frames, not for the big body
  CaptureTee tee(q, Redactor(true, {}));
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
