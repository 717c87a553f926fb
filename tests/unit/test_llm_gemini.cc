// Gemini generateContent / streamGenerateContent: chunks merged into one
// GenerateContentResponse, and the token fields (notes/llm-trace-formats.md §6). The streams
// are hand-written from the documented formats, as dispatched SSE events or one JSON array.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "log-server/reading/llm_internal.h"

using lp::logsrv::reading::LlmResult;
using lp::logsrv::reading::SseEvent;
using lp::logsrv::reading::detail::make_gemini;
using nlohmann::json;

namespace {

struct Chunk {
  std::string data;
  std::optional<int64_t> at_us;
};

LlmResult run_sse(const std::vector<Chunk>& chunks, bool cut = false) {
  auto d = make_gemini("gemini", "gemini-2.5-flash", /*sse=*/true, /*array_stream=*/false);
  for (const Chunk& c : chunks) d->on_event(SseEvent{"message", c.data, ""}, c.at_us);
  return d->finish(cut);
}

LlmResult run_body(const std::string& body, bool array_stream = false,
                   std::optional<int64_t> at_us = 1000) {
  auto d = make_gemini("gemini", "gemini-2.5-pro", /*sse=*/false, array_stream);
  d->on_body(body, at_us);
  return d->finish(false);
}

json assembled(const LlmResult& r) {
  return json(r.assembled);
}

json parts(const LlmResult& r, size_t candidate = 0) {
  json a = assembled(r);
  if (!a.contains("candidates") || candidate >= a["candidates"].size()) return json();
  return a["candidates"][candidate]["content"]["parts"];
}

// One chunk with candidate 0's parts (JSON text) and optional extra top-level JSON members.
std::string chunk(const std::string& parts_json, const std::string& extra = "",
                  const std::string& candidate_extra = "") {
  return R"({"candidates":[{"content":{"role":"model","parts":)" + parts_json + "}" +
         candidate_extra + R"(,"index":0}])" + extra +
         R"(,"modelVersion":"gemini-2.5-flash-001","responseId":"resp-1"})";
}

const char* kUsage =
    R"(,"usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":12,"totalTokenCount":80,)"
    R"("thoughtsTokenCount":28,"cachedContentTokenCount":32})";

}  // namespace

TEST_CASE("llm gemini: text stream assembles one GenerateContentResponse") {
  LlmResult r = run_sse(
      {{chunk(R"([{"text":"Hel"}])",
              R"(,"usageMetadata":{"promptTokenCount":40,"totalTokenCount":40})"),
        200'000},
       {chunk(
            R"([{"text":"lo"}])",
            R"(,"usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":5,"totalTokenCount":45})"),
        300'000},
       {chunk(R"([{"text":" world"}])", kUsage, R"(,"finishReason":"STOP")"), 400'000}});
  const auto& f = r.fields;
  CHECK(f.provider == "gemini");
  CHECK(f.api == "generateContent");
  CHECK(f.stream);
  CHECK(f.model == "gemini-2.5-flash");
  CHECK(f.response_model == "gemini-2.5-flash-001");
  CHECK(f.response_id == "resp-1");
  CHECK(f.finish_reason == "STOP");
  CHECK(f.events == 3);
  CHECK(f.first_event_ms == doctest::Approx(200.0));
  CHECK(f.ttft_ms == doctest::Approx(200.0));
  // usageMetadata: the last one, never summed.
  CHECK(f.input_tokens == 40);
  CHECK(f.cached_input_tokens == 32);
  CHECK(f.output_tokens == 12);     // candidatesTokenCount as reported
  CHECK(f.reasoning_tokens == 28);  // thoughtsTokenCount, beside it (not inside)
  CHECK(f.total_tokens == 80);      // as reported
  CHECK_FALSE(f.cache_creation_input_tokens);
  CHECK_FALSE(f.error);
  CHECK(f.usage == json::parse(std::string("{") + (kUsage + 1) + "}")["usageMetadata"]);

  json a = assembled(r);
  CHECK(parts(r) == json::parse(R"([{"text":"Hello world"}])"));
  CHECK(a["candidates"][0]["content"]["role"] == "model");
  CHECK(a["candidates"][0]["index"] == 0);
  CHECK(a["candidates"][0]["finishReason"] == "STOP");
  CHECK(a["modelVersion"] == "gemini-2.5-flash-001");
  CHECK(r.assembled.begin().key() == "candidates");
}

TEST_CASE("llm gemini: usageMetadata repeated on every chunk is taken from the last") {
  std::vector<Chunk> chunks;
  for (int i = 1; i <= 5; ++i) {
    chunks.push_back({chunk(R"([{"text":"x"}])",
                            R"(,"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":)" +
                                std::to_string(i * 10) + R"(,"totalTokenCount":)" +
                                std::to_string(100 + i * 10) + "}"),
                      i * 1000});
  }
  LlmResult r = run_sse(chunks);
  CHECK(r.fields.input_tokens == 100);
  CHECK(r.fields.output_tokens == 50);
  CHECK(r.fields.total_tokens == 150);
  CHECK(parts(r) == json::parse(R"([{"text":"xxxxx"}])"));
}

TEST_CASE("llm gemini: parts merging") {
  struct Row {
    const char* name;
    std::vector<std::string> chunk_parts;
    std::string expected;
  };
  const Row rows[] = {
      {"thought parts kept apart from the answer",
       {R"([{"text":"Thinking ","thought":true}])", R"([{"text":"hard.","thought":true}])",
        R"([{"text":"The answer"}])", R"([{"text":" is 4."}])"},
       R"([{"text":"Thinking hard.","thought":true},{"text":"The answer is 4."}])"},
      {"thought:false is the answer",
       {R"([{"text":"a","thought":false}])", R"([{"text":"b"}])"},
       R"([{"text":"ab","thought":false}])"},
      {"thoughtSignature on the last text part of a run is kept",
       {R"([{"text":"Hi"}])", R"([{"text":" there","thoughtSignature":"c2ln"}])"},
       R"([{"text":"Hi there","thoughtSignature":"c2ln"}])"},
      {"signature in a trailing empty text part",
       {R"([{"text":"Done."}])", R"([{"text":"","thoughtSignature":"c2ln"}])"},
       R"([{"text":"Done.","thoughtSignature":"c2ln"}])"},
      {"a part with a signature ends its run",
       {R"([{"text":"one","thoughtSignature":"s1"}])", R"([{"text":"two"}])"},
       R"([{"text":"one","thoughtSignature":"s1"},{"text":"two"}])"},
      {"functionCall parts whole and in order, text around them",
       {R"([{"text":"Let me check."}])",
        R"([{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"s"}])",
        R"([{"functionCall":{"name":"get_time","args":{}}}])", R"([{"text":"ok"}])"},
       R"([{"text":"Let me check."},)"
       R"({"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"s"},)"
       R"({"functionCall":{"name":"get_time","args":{}}},{"text":"ok"}])"},
      {"several parts in one chunk merge too",
       {R"([{"text":"a"},{"text":"b"},{"inlineData":{"mimeType":"image/png","data":"AA=="}},{"text":"c"}])"},
       R"([{"text":"ab"},{"inlineData":{"mimeType":"image/png","data":"AA=="}},{"text":"c"}])"},
      {"a text part with other keys stays whole",
       {R"([{"text":"a"}])", R"([{"text":"b","videoMetadata":{}}])"},
       R"([{"text":"a"},{"text":"b","videoMetadata":{}}])"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    std::vector<Chunk> chunks;
    for (const auto& p : row.chunk_parts) chunks.push_back({chunk(p), 1});
    LlmResult r = run_sse(chunks);
    CHECK(parts(r) == json::parse(row.expected));
  }
}

TEST_CASE("llm gemini: ttft is the first text or functionCall, first_event_ms any chunk") {
  struct Row {
    const char* name;
    std::vector<Chunk> chunks;
    std::optional<double> ttft_ms;
  };
  const Row rows[] = {
      {"empty text first",
       {{chunk(R"([{"text":""}])"), 10'000}, {chunk(R"([{"text":"a"}])"), 20'000}},
       20.0},
      {"a thought is content",
       {{R"({"usageMetadata":{"promptTokenCount":3}})", 10'000},
        {chunk(R"([{"text":"hm","thought":true}])"), 15'000}},
       15.0},
      {"functionCall is content",
       {{chunk(R"([{"thoughtSignature":"x"}])"), 10'000},
        {chunk(R"([{"functionCall":{"name":"f"}}])"), 30'000}},
       30.0},
      {"nothing", {{R"({"usageMetadata":{"promptTokenCount":3}})", 10'000}}, std::nullopt},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    LlmResult r = run_sse(row.chunks);
    CHECK(r.fields.first_event_ms == doctest::Approx(10.0));
    CHECK(r.fields.ttft_ms == row.ttft_ms);
  }
}

TEST_CASE("llm gemini: candidates by index, finishReason the last non-empty") {
  LlmResult r = run_sse({
      {R"({"candidates":[{"content":{"parts":[{"text":"A1"}],"role":"model"},"index":0},)"
       R"({"content":{"parts":[{"text":"B1"}],"role":"model"},"index":1}]})",
       1},
      {R"({"candidates":[{"content":{"parts":[{"text":"B2"}],"role":"model"},"index":1,)"
       R"("finishReason":"MAX_TOKENS"}]})",
       2},
      {R"({"candidates":[{"content":{"parts":[{"text":"A2"}],"role":"model"},"index":0,)"
       R"("finishReason":"STOP","safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"NEGLIGIBLE"}]}]})",
       3},
      // A late chunk with an empty finishReason does not erase it.
      {R"({"candidates":[{"content":{"parts":[],"role":"model"},"index":0,"finishReason":""}]})",
       4},
  });
  CHECK(parts(r, 0) == json::parse(R"([{"text":"A1A2"}])"));
  CHECK(parts(r, 1) == json::parse(R"([{"text":"B1B2"}])"));
  json a = assembled(r);
  CHECK(a["candidates"][0]["finishReason"] == "STOP");
  CHECK(a["candidates"][1]["finishReason"] == "MAX_TOKENS");
  CHECK(a["candidates"][0]["safetyRatings"].size() == 1);
  CHECK(r.fields.finish_reason == "STOP");  // candidate 0
  CHECK(r.fields.usage.is_null());
  CHECK_FALSE(r.fields.input_tokens);
  CHECK_FALSE(r.fields.total_tokens);
}

TEST_CASE("llm gemini: candidate without index (proto3 omits 0)") {
  LlmResult r =
      run_sse({{R"({"candidates":[{"content":{"parts":[{"text":"a"}]}}]})", 1},
               {R"({"candidates":[{"content":{"parts":[{"text":"b"}]},"index":0}]})", 2}});
  CHECK(parts(r) == json::parse(R"([{"text":"ab"}])"));
  CHECK(assembled(r)["candidates"][0]["content"]["role"] == "model");
  CHECK(assembled(r)["candidates"].size() == 1);
}

TEST_CASE("llm gemini: array stream (no alt=sse) is one JSON array body") {
  const std::string body = "[" + chunk(R"([{"text":"Hi","thought":true}])") + ",\r\n" +
                           chunk(R"([{"text":"Yo"}])") + "," +
                           chunk(R"([{"text":"!"}])", kUsage, R"(,"finishReason":"STOP")") + "]";
  LlmResult r = run_body(body, /*array_stream=*/true, 50'000);
  CHECK(r.fields.stream);
  CHECK(r.fields.model == "gemini-2.5-pro");
  CHECK(parts(r) == json::parse(R"([{"text":"Hi","thought":true},{"text":"Yo!"}])"));
  CHECK(r.fields.finish_reason == "STOP");
  CHECK(r.fields.output_tokens == 12);
  CHECK(r.fields.total_tokens == 80);
  CHECK_FALSE(r.fields.events);                      // not SSE: no events dispatched
  CHECK(r.fields.ttft_ms == doctest::Approx(50.0));  // the one arrival time there is

  SUBCASE("an error element") {
    LlmResult e = run_body(
        "[" + chunk(R"([{"text":"a"}])") +
            R"(,{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}])",
        true);
    CHECK(e.fields.error == "UNAVAILABLE: The model is overloaded.");
    CHECK(parts(e) == json::parse(R"([{"text":"a"}])"));
  }
  SUBCASE("an error object instead of the array") {
    LlmResult e =
        run_body(R"({"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}})", true);
    CHECK(e.fields.error == "INVALID_ARGUMENT: bad");
  }
  SUBCASE("a cut array does not parse: nothing assembled") {
    LlmResult e = run_body("[" + chunk(R"([{"text":"a"}])") + ",{\"cand", true);
    CHECK(e.assembled.is_null());
    CHECK_FALSE(e.fields.error);
  }
}

TEST_CASE("llm gemini: non-streamed body is the answer as sent") {
  const std::string body =
      R"({"candidates":[{"content":{"parts":[{"text":"thinking...","thought":true},{"text":"4"}],)"
      R"("role":"model"},"finishReason":"STOP","index":0}],)"
      R"("usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":1,"totalTokenCount":30,)"
      R"("thoughtsTokenCount":20,"promptTokensDetails":[{"modality":"TEXT","tokenCount":9}]},)"
      R"("modelVersion":"gemini-2.5-pro","responseId":"abc"})";
  LlmResult r = run_body(body);
  CHECK_FALSE(r.fields.stream);
  CHECK(assembled(r) == json::parse(body));
  CHECK(r.fields.input_tokens == 9);
  CHECK(r.fields.output_tokens == 1);
  CHECK(r.fields.reasoning_tokens == 20);
  CHECK(r.fields.total_tokens == 30);
  CHECK_FALSE(r.fields.cached_input_tokens);  // absent is not 0
  CHECK(r.fields.finish_reason == "STOP");
  CHECK(r.fields.response_id == "abc");
  CHECK_FALSE(r.fields.ttft_ms);
  CHECK_FALSE(r.fields.error);
}

TEST_CASE("llm gemini: totals and absent counts") {
  struct Row {
    const char* name;
    std::string usage;
    std::optional<int64_t> input, output, reasoning, total;
  };
  const Row rows[] = {
      {"no total reported: input + output", R"({"promptTokenCount":5,"candidatesTokenCount":7})", 5,
       7, std::nullopt, 12},
      {"zeros are reported",
       R"({"promptTokenCount":0,"candidatesTokenCount":0,"totalTokenCount":0})", 0, 0, std::nullopt,
       0},
      {"prompt only (candidates omitted by proto3)",
       R"({"promptTokenCount":5,"totalTokenCount":5})", 5, std::nullopt, std::nullopt, 5},
      {"hostile types",
       R"({"promptTokenCount":"5","candidatesTokenCount":1.5,"totalTokenCount":null})",
       std::nullopt, std::nullopt, std::nullopt, std::nullopt},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    LlmResult r = run_body(R"({"usageMetadata":)" + row.usage + "}");
    CHECK(r.fields.input_tokens == row.input);
    CHECK(r.fields.output_tokens == row.output);
    CHECK(r.fields.reasoning_tokens == row.reasoning);
    CHECK(r.fields.total_tokens == row.total);
  }
}

TEST_CASE("llm gemini: errors") {
  SUBCASE("HTTP error body") {
    LlmResult r = run_body(
        R"({"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}})");
    CHECK(r.fields.error == "RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota).");
    CHECK(assembled(r)["error"]["code"] == 429);
  }
  SUBCASE("error as an SSE event mid-stream") {
    LlmResult r =
        run_sse({{chunk(R"([{"text":"par"}])"), 1},
                 {R"({"error":{"code":500,"message":"Internal error","status":"INTERNAL"}})", 2}},
                /*cut=*/true);
    CHECK(r.fields.error == "INTERNAL: Internal error");
    CHECK(parts(r) == json::parse(R"([{"text":"par"}])"));
    CHECK(r.fields.events == 2);
  }
  SUBCASE("error with a code only") {
    LlmResult r = run_body(R"({"error":{"code":500}})");
    CHECK(r.fields.error == "error 500");
  }
  SUBCASE("an error answer to a stream request arrives as a body") {
    auto d = make_gemini("gemini", "m", /*sse=*/true, false);
    d->on_body(R"({"error":{"code":404,"message":"not found","status":"NOT_FOUND"}})", 1);
    CHECK(d->finish(false).fields.error == "NOT_FOUND: not found");
  }
}

TEST_CASE("llm gemini: cut stream keeps what arrived - nothing arrived is null") {
  LlmResult r = run_sse({{chunk(R"([{"text":"Once"}])"), 1}, {"not json {", 2}}, true);
  CHECK(parts(r) == json::parse(R"([{"text":"Once"}])"));
  CHECK_FALSE(r.fields.finish_reason);
  CHECK(r.fields.events == 2);
  CHECK(r.fields.error == "stream ended before finishReason");

  // A blocked prompt ends with promptFeedback and no candidate: not a cut.
  LlmResult blocked = run_sse(
      {{R"({"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":8}})",
        1}});
  CHECK_FALSE(blocked.fields.error);
  CHECK(blocked.fields.input_tokens == 8);
  CHECK(assembled(blocked)["promptFeedback"]["blockReason"] == "SAFETY");

  LlmResult empty = run_sse({}, true);
  CHECK(empty.assembled.is_null());
  CHECK(empty.fields.usage.is_null());
}

TEST_CASE("llm gemini: hostile chunks do not throw") {
  const std::vector<std::string> datas = {
      "[]",
      "null",
      "7",
      R"({"candidates":{}})",
      R"({"candidates":[7,null,[]]})",
      R"({"candidates":[{"content":[]}]})",
      R"({"candidates":[{"content":{"parts":{}}}]})",
      R"({"candidates":[{"content":{"parts":[7,{"text":7},{"thought":"yes","text":"a"}]}}]})",
      R"({"candidates":[{"index":-5,"content":{"role":3,"parts":[{"text":"x"}]}}]})",
      R"({"candidates":[{"index":"1","finishReason":3}]})",
      R"({"usageMetadata":[],"modelVersion":5,"responseId":null})",
      R"({"error":"x"})",
      R"({"error":{"code":"x","message":[]}})",
  };
  std::vector<Chunk> all;
  for (const auto& data : datas) {
    CAPTURE(data);
    CHECK_NOTHROW(run_sse({{data, 1}}, true));
    CHECK_NOTHROW(run_body(data, true));
    CHECK_NOTHROW(run_body(data, false));
    all.push_back({data, 1});
  }
  CHECK_NOTHROW(run_sse(all, true));
}
