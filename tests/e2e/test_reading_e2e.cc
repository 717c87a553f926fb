// The reading side end to end, on a real log-server process fed crafted capture batches:
// derived LLM fields visible within a second of the end frame, decoded bodies for every coding
// (and 422/413 for the broken ones), /assembled, exact /stats sums, HAR export accepted by the
// validator, the JSONL round trip, and `log-server reindex` rebuilding cleared fields.
#include <sqlite3.h>

#include <set>
#include <sstream>

#include "tests/e2e/log_server_fixture.h"
#include "tests/support/encoders.h"
#include "tests/support/har_validator.h"

using namespace e2e;

namespace {

using lp::test::br_encode;
using lp::test::gzip;
using lp::test::zstd_encode;

constexpr const char* kStarted = "2026-12-05T10:00:00.000000Z";

// One exchange as the proxy ships it, with the response body in timed pieces.
struct Exchange {
  std::string id;
  std::string started_at = kStarted;
  std::string route = "openai";
  std::string destination = "https://api.openai.com/v1/chat/completions";
  std::string path = "/openai/v1/chat/completions";
  std::string request_head =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: "
      "application/json\r\nX-Proxy-Path: /openai/v1/chat/completions\r\n\r\n";
  std::string request_body;
  std::string response_head;
  std::vector<std::pair<std::string, int64_t>> pieces;  // body bytes, arrival µs
  int status = 200;
  std::string outcome = "complete";
  int64_t total_us = 900000;
};

void add(Batch& b, const Exchange& x) {
  b.frame(FrameType::kBegin, {{"id", x.id},
                              {"route", x.route},
                              {"method", "POST"},
                              {"proxy_path", x.path},
                              {"destination", x.destination},
                              {"client_ip", "127.0.0.1"},
                              {"started_at", x.started_at}});
  b.frame(FrameType::kRequestHead, {{"id", x.id}}, x.request_head);
  if (!x.request_body.empty()) b.frame(FrameType::kRequestBody, {{"id", x.id}}, x.request_body);
  b.frame(FrameType::kResponseHead, {{"id", x.id}, {"t_us", 1000}}, x.response_head);
  size_t bytes = 0;
  for (const auto& [piece, t] : x.pieces) {
    b.frame(FrameType::kResponseBody, {{"id", x.id}, {"t_us", t}}, piece);
    bytes += piece.size();
  }
  b.frame(FrameType::kEnd, {{"id", x.id},
                            {"outcome", x.outcome},
                            {"status", x.status},
                            {"request_bytes", x.request_body.size()},
                            {"response_bytes", bytes},
                            {"timings",
                             {{"request_forwarded_us", 300},
                              {"upstream_headers_us", 1000},
                              {"first_byte_us", 1200},
                              {"total_us", x.total_us}}}});
}

std::string chunk(const std::string& content, const char* finish = nullptr) {
  json c = {{"id", "chatcmpl-1"},
            {"object", "chat.completion.chunk"},
            {"created", 1764928800},
            {"model", "gpt-4o-2024-08-06"},
            {"choices",
             {{{"index", 0},
               {"delta", {{"content", content}}},
               {"finish_reason", finish ? json(finish) : json(nullptr)}}}}};
  return "data: " + c.dump() + "\n\n";
}

// A streamed chat completion: a role-only chunk at 200 ms, content at 300 and 400 ms, the
// usage chunk and [DONE] at 500 ms.
Exchange chat_stream(const std::string& id, const std::string& model, int in, int out) {
  Exchange x;
  x.id = id;
  x.request_body = json{{"model", model},
                        {"stream", true},
                        {"stream_options", {{"include_usage", true}}},
                        {"messages", {{{"role", "user"}, {"content", "hi"}}}}}
                       .dump();
  x.response_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
  json role = {{"id", "chatcmpl-1"},
               {"object", "chat.completion.chunk"},
               {"created", 1764928800},
               {"model", "gpt-4o-2024-08-06"},
               {"choices",
                {{{"index", 0},
                  {"delta", {{"role", "assistant"}, {"content", ""}}},
                  {"finish_reason", nullptr}}}}};
  json usage = {
      {"id", "chatcmpl-1"},
      {"object", "chat.completion.chunk"},
      {"created", 1764928800},
      {"model", "gpt-4o-2024-08-06"},
      {"choices", json::array()},
      {"usage", {{"prompt_tokens", in}, {"completion_tokens", out}, {"total_tokens", in + out}}}};
  x.pieces = {{"data: " + role.dump() + "\n\n", 200000},
              {chunk("Hel"), 300000},
              {chunk("lo!", "stop"), 400000},
              {"data: " + usage.dump() + "\n\ndata: [DONE]\n\n", 500000}};
  return x;
}

Exchange json_answer(const std::string& id, const std::string& coding,
                     const std::string& encoded_body) {
  Exchange x;
  x.id = id;
  x.route = "files";
  x.destination = "http://127.0.0.1:9/data";
  x.path = "/files/data";
  x.request_head = "POST /data HTTP/1.1\r\nHost: 127.0.0.1:9\r\nX-Proxy-Path: /files/data\r\n\r\n";
  x.response_head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
                    (coding.empty() ? "" : "Content-Encoding: " + coding + "\r\n") + "\r\n";
  x.pieces = {{encoded_body, 2000}};
  return x;
}

void ingest(LogServer& ls, const std::vector<Exchange>& xs, uint64_t seq) {
  Batch b("reading-e2e", seq);
  for (const Exchange& x : xs) add(b, x);
  auto c = ls.client();
  auto r = post(c, b.bytes());
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == 200);
}

json await_llm(LogServer& ls, const std::string& id) {
  auto c = ls.client();
  json detail;
  bool ok = await_cond(
      [&] {
        auto r = c.Get(("/requests/" + id).c_str());
        if (!r || r->status != 200) return false;
        detail = json::parse(r->body, nullptr, false);
        return detail.is_object() && detail.value("derived", false);
      },
      5000ms);
  REQUIRE_MESSAGE(ok, "exchange " << id << " was not derived: " << detail.dump());
  return detail;
}

httplib::Result get(LogServer& ls, const std::string& path) {
  auto c = ls.client();
  auto r = c.Get(path.c_str());
  REQUIRE_MESSAGE(r, "GET " << path);
  return r;
}

}  // namespace

TEST_CASE("reading: LLM fields derived within 1 s of the end frame, listed and filtered") {
  LogServer ls;
  auto t0 = Clock::now();
  ingest(ls, {chat_stream(make_id(1), "gpt-4o", 12, 3)}, 1);
  json d = await_llm(ls, make_id(1));
  const double visible_ms = ms_since(t0);
  MESSAGE("derived fields visible " << visible_ms << " ms after the batch was acknowledged");
  CHECK(visible_ms < 1000);
  const json& llm = d["llm"];
  INFO(llm.dump());
  CHECK(llm["provider"] == "openai");
  CHECK(llm["api"] == "chat.completions");
  CHECK(llm["model"] == "gpt-4o");
  CHECK(llm["response_model"] == "gpt-4o-2024-08-06");
  CHECK(llm["stream"] == true);
  CHECK(llm["input_tokens"] == 12);
  CHECK(llm["output_tokens"] == 3);
  CHECK(llm["total_tokens"] == 15);
  CHECK_FALSE(llm.contains("cached_input_tokens"));  // not reported: absent, not 0
  CHECK(llm["events"] == 5);
  CHECK(llm["first_event_ms"] == 200.0);
  CHECK(llm["ttft_ms"] == 300.0);  // the role-only chunk carries no content
  CHECK(llm["finish_reason"] == "stop");

  ingest(ls, {chat_stream(make_id(2), "gpt-4o-mini", 1, 1)}, 2);
  await_llm(ls, make_id(2));
  auto c = ls.client();
  json list = get_json(c, "/requests?model=gpt-4o");
  REQUIRE(list["requests"].size() == 1);
  const json& item = list["requests"][0];
  CHECK(item["id"] == make_id(1));
  CHECK(item["model"] == "gpt-4o");
  CHECK(item["input_tokens"] == 12);
  CHECK(item["output_tokens"] == 3);
  CHECK(item["ttft_ms"] == 300.0);
  CHECK(get_json(c, "/requests?provider=openai")["requests"].size() == 2);
  CHECK(get_json(c, "/requests?provider=anthropic")["requests"].empty());
  json bad = get_json(c, "/requests?model=", 400);
  CHECK(bad["parameter"] == "model");

  // The assembled answer is the provider's non-streaming shape.
  auto r = get(ls, "/requests/" + make_id(1) + "/assembled");
  REQUIRE(r->status == 200);
  json a = json::parse(r->body);
  CHECK(a["object"] == "chat.completion");
  CHECK(a["choices"][0]["message"]["content"] == "Hello!");
  CHECK(a["usage"]["total_tokens"] == 15);
  CHECK(metric(c, "log_server_derived_llm_total") == 2);

  // The arrival of each stored piece, as ingested.
  json chunks = get_json(c, "/requests/" + make_id(1) + "/chunks");
  REQUIRE(chunks["chunks"].size() == 4);
  CHECK(chunks["chunks"][0]["offset"] == 0);
  CHECK(chunks["chunks"][0]["t_us"] == 200000);
  CHECK(chunks["chunks"][3]["t_us"] == 500000);
  CHECK(chunks["complete"] == true);
  int64_t bytes = 0;
  for (const json& ch : chunks["chunks"]) bytes += ch["bytes"].get<int64_t>();
  CHECK(bytes == d["response_bytes"].get<int64_t>());
}

TEST_CASE("reading: bodies decoded for every coding - raw=1 as stored - broken ones named") {
  LogServer ls("  max_decoded_bytes: 4KiB\n");
  const std::string body = R"({"answer":"decoded","n":[1,2,3]})";
  struct Row {
    std::string coding;
    std::string encoded;
    int status;
  };
  const std::vector<Row> rows = {
      {"", body, 200},
      {"gzip", gzip(body), 200},
      {"x-gzip", gzip(body), 200},
      {"br", br_encode(body), 200},
      {"zstd", zstd_encode(body), 200},
      {"gzip, br", br_encode(gzip(body)), 200},
      {"GZIP", gzip(body), 200},
      {"compress", body, 422},
      {"gzip", body, 422},                          // not gzip at all
      {"gzip", gzip(body).substr(0, 20), 422},      // cut short
      {"zstd", gzip(std::string(5000, 'x')), 422},  // wrong coding
      {"gzip", gzip(std::string(5000, 'x')), 413},  // over max_decoded_bytes
  };
  std::vector<Exchange> xs;
  for (size_t i = 0; i < rows.size(); ++i) {
    xs.push_back(json_answer(make_id(100 + static_cast<int>(i)), rows[i].coding, rows[i].encoded));
  }
  // A gzip'ed request body is decoded too.
  xs[1].request_head =
      "POST /data HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Type: "
      "application/json\r\nX-Proxy-Path: /files/data\r\n\r\n";
  xs[1].request_body = gzip(R"({"q":1})");
  ingest(ls, xs, 1);
  for (size_t i = 0; i < rows.size(); ++i) {
    CAPTURE(i);
    CAPTURE(rows[i].coding);
    const std::string id = make_id(100 + static_cast<int>(i));
    auto r = get(ls, "/requests/" + id + "/response/body");
    INFO(r->body);
    CHECK(r->status == rows[i].status);
    if (rows[i].status == 200) {
      CHECK(r->body == body);
      CHECK(r->get_header_value("Content-Type") == "application/json");
      CHECK(r->get_header_value("X-Content-Type-Options") == "nosniff");
    } else {
      json e = json::parse(r->body, nullptr, false);
      REQUIRE(e.is_object());
      CHECK(e["error"].get<std::string>().size() > 5);
      if (rows[i].status == 422) CHECK(e.contains("encoding"));
    }
    auto raw = get(ls, "/requests/" + id + "/response/body?raw=1");
    CHECK(raw->status == 200);
    CHECK(raw->body == rows[i].encoded);
  }
  auto req = get(ls, "/requests/" + make_id(101) + "/request/body");
  CHECK(req->status == 200);
  CHECK(req->body == R"({"q":1})");
  CHECK(get(ls, "/requests/" + make_id(101) + "/response/body?raw=2")->status == 400);
  CHECK(get(ls, "/requests/" + make_id(101) + "/response/body?x=1")->status == 400);
  // Not an LLM call: nothing to assemble.
  auto a = get(ls, "/requests/" + make_id(101) + "/assembled");
  CHECK(a->status == 404);
}

TEST_CASE("reading: /stats sums a known set exactly") {
  LogServer ls;
  std::vector<Exchange> xs;
  // gpt-4o: 3 calls, 10+20+30 in, 1+2+3 out, one a 500; claude-x: 2 calls (not streamed).
  for (int i = 0; i < 3; ++i) {
    Exchange x = chat_stream(make_id(200 + i), "gpt-4o", 10 * (i + 1), i + 1);
    x.total_us = 100000 * (i + 1);
    if (i == 2) {
      x.status = 500;
      x.response_head = "HTTP/1.1 500 Oops\r\nContent-Type: text/event-stream\r\n\r\n";
    }
    xs.push_back(x);
  }
  for (int i = 0; i < 2; ++i) {
    Exchange x;
    x.id = make_id(210 + i);
    x.route = "anthropic";
    x.destination = "https://api.anthropic.com/v1/messages";
    x.path = "/anthropic/v1/messages";
    x.request_body = R"({"model":"claude-x","max_tokens":10,"messages":[]})";
    x.response_head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
    json msg = {{"id", "msg_1"},
                {"type", "message"},
                {"role", "assistant"},
                {"model", "claude-x"},
                {"content", {{{"type", "text"}, {"text", "ok"}}}},
                {"stop_reason", "end_turn"},
                {"usage",
                 {{"input_tokens", 5},
                  {"cache_read_input_tokens", 100},
                  {"cache_creation_input_tokens", 7},
                  {"output_tokens", 4}}}};
    x.pieces = {{msg.dump(), 5000}};
    x.total_us = 50000;
    xs.push_back(x);
  }
  ingest(ls, xs, 1);
  for (const Exchange& x : xs) await_llm(ls, x.id);
  auto c = ls.client();
  json s = get_json(c, "/stats?group_by=model");
  INFO(s.dump());
  REQUIRE(s["groups"].size() == 2);
  const json& gpt = s["groups"][0];
  CHECK(gpt["key"] == "gpt-4o");
  CHECK(gpt["requests"] == 3);
  CHECK(gpt["errors"] == 1);
  CHECK(gpt["input_tokens"] == 60);
  CHECK(gpt["output_tokens"] == 6);
  CHECK(gpt["duration_ms"]["p50"] == 200.0);
  CHECK(gpt["duration_ms"]["p99"] == 300.0);
  CHECK(gpt["ttft_ms"]["p50"] == 300.0);
  const json& claude = s["groups"][1];
  CHECK(claude["key"] == "claude-x");
  CHECK(claude["input_tokens"] == 2 * (5 + 100 + 7));  // input + cache read + cache creation
  CHECK(claude["cached_input_tokens"] == 200);
  CHECK(claude["output_tokens"] == 8);
  CHECK(claude["ttft_ms"]["p50"].is_null());  // not streamed: no TTFT
  CHECK(s["total"]["requests"] == 5);
  CHECK(s["total"]["input_tokens"] == 60 + 224);
  json by_provider = get_json(c, "/stats?group_by=provider&route=anthropic");
  REQUIRE(by_provider["groups"].size() == 1);
  CHECK(by_provider["groups"][0]["key"] == "anthropic");
  json by_status = get_json(c, "/stats?group_by=status");
  CHECK(by_status["groups"][0]["key"] == 200);
  CHECK(by_status["groups"][0]["requests"] == 4);
  CHECK(get_json(c, "/stats?group_by=nope", 400)["parameter"] == "group_by");
  CHECK(get_json(c, "/stats?limit=3", 400)["parameter"] == "limit");
  CHECK(get_json(c, "/stats?group_by=day&group_by=day", 400)["parameter"] == "group_by");
}

TEST_CASE("reading: HAR export passes the validator - JSONL round-trips every record") {
  LogServer ls;
  std::vector<Exchange> xs;
  for (int i = 0; i < 7; ++i) xs.push_back(chat_stream(make_id(300 + i), "gpt-4o", i, 1));
  xs.push_back(json_answer(make_id(320), "gzip", gzip(R"({"z":1})")));
  xs.push_back(json_answer(make_id(321), "", std::string("\x89PNG\r\n\x1a\n\x00\xff", 10)));
  // JSON followed by a NUL byte is not JSON (a parser that stops at the NUL would hide "tail").
  const std::string nul_tailed("{\"z\":1}\0tail", 12);
  xs.push_back(json_answer(make_id(322), "", R"({"z":2})"));
  xs.back().request_body = nul_tailed;
  ingest(ls, xs, 1);
  for (const Exchange& x : xs) await_llm(ls, x.id);

  auto har_r = get(ls, "/export?format=har");
  REQUIRE(har_r->status == 200);
  CHECK(har_r->get_header_value("Content-Disposition").find("attachment") != std::string::npos);
  json har = json::parse(har_r->body, nullptr, false);
  REQUIRE(har.is_object());
  std::vector<std::string> problems = lp::test::validate_har(har);
  for (const auto& p : problems) MESSAGE(p);
  CHECK(problems.empty());
  const json& entries = har["log"]["entries"];
  REQUIRE(entries.size() == xs.size());
  std::set<std::string> ids;
  for (const json& e : entries) ids.insert(e["_id"].get<std::string>());
  CHECK(ids.size() == xs.size());
  for (const json& e : entries) {
    if (e["_id"] == make_id(320)) {
      CHECK(e["response"]["content"]["text"] == R"({"z":1})");  // decoded
    }
    if (e["_id"] == make_id(321)) CHECK(e["response"]["content"]["encoding"] == "base64");
  }
  // Paged export with filters and a limit.
  json two = json::parse(get(ls, "/export?format=har&limit=2&route=openai")->body);
  CHECK(two["log"]["entries"].size() == 2);

  auto jsonl = get(ls, "/export?format=jsonl");
  REQUIRE(jsonl->status == 200);
  std::istringstream in(jsonl->body);
  std::string line;
  size_t n = 0;
  auto c = ls.client();
  while (std::getline(in, line)) {
    json rec = json::parse(line, nullptr, false);
    REQUIRE(rec.is_object());
    const std::string id = rec["record"]["id"];
    json detail = get_json(c, "/requests/" + id);
    CHECK(rec["record"] == detail);
    if (id.rfind(make_id(300).substr(0, 8), 0) == 0 || rec["record"]["route"] == "openai") {
      CHECK(rec["request_body"]["model"] == "gpt-4o");
      CHECK(rec["assembled"]["object"] == "chat.completion");
    }
    if (id == make_id(322)) CHECK(rec["request_body"] == nul_tailed);
    ++n;
  }
  CHECK(n == xs.size());
  CHECK(get_json(c, "/export?format=csv", 400)["parameter"] == "format");
  CHECK(get_json(c, "/export?format=har&limit=100001", 400)["parameter"] == "limit");
}

TEST_CASE("reading: reindex derives again what was cleared, with a progress line") {
  TempDir keep;
  const std::string dir = keep.path();
  {
    LogServer ls("", {}, &dir);
    ingest(ls, {chat_stream(make_id(400), "gpt-4o", 4, 2), chat_stream(make_id(401), "m2", 1, 1)},
           1);
    await_llm(ls, make_id(400));
    await_llm(ls, make_id(401));
    REQUIRE(ls.process().terminate());
  }
  // As an index written before LLM fields existed: nothing derived.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir + "/data/index.sqlite").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "UPDATE exchanges SET derived_version = NULL, llm_json = NULL, model = "
                       "NULL, provider = NULL, input_tokens = NULL",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);

  ChildProcess reindex(bin_dir() + "/log-server", {"reindex", "--config", dir + "/config.yaml"});
  REQUIRE(reindex.wait_exit(30000ms));
  CHECK(reindex.exit_code() == 0);
  reindex.wait_for_line(std::regex(R"(reindex: 2/2 exchanges \(100%\), 2 LLM calls)"), 1000ms);
  reindex.wait_for_line(std::regex(R"(reindexed 2 exchanges)"), 1000ms);

  LogServer again("", {}, &dir);
  auto c = again.client();
  json d = get_json(c, "/requests/" + make_id(400));
  CHECK(d["derived"] == true);
  CHECK(d["llm"]["input_tokens"] == 4);
  CHECK(get_json(c, "/requests?model=m2")["requests"].size() == 1);

  ChildProcess bad(bin_dir() + "/log-server", {"reindex", "--config", dir + "/missing.yaml"});
  REQUIRE(bad.wait_exit(10000ms));
  CHECK(bad.exit_code() == 2);
}
