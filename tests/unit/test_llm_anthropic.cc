// Anthropic Messages: streams rebuilt as @anthropic-ai/sdk's MessageStream.finalMessage()
// would, and the token fields (notes/llm-trace-formats.md §4 and the §11 pitfalls). The
// streams are hand-written from the documented event formats, as dispatched SSE events.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "log-server/reading/llm_internal.h"

using lp::logsrv::reading::LlmResult;
using lp::logsrv::reading::SseEvent;
using lp::logsrv::reading::detail::make_anthropic_messages;
using nlohmann::json;

namespace {

struct Ev {
  std::string type;  // SSE event type
  std::string data;
  std::optional<int64_t> at_us;
};

LlmResult run_stream(const std::vector<Ev>& events, bool cut = false,
                     const json& request = {{"model", "claude-sonnet-4-5"}, {"stream", true}}) {
  auto d = make_anthropic_messages("anthropic", request, true);
  for (const Ev& e : events) d->on_event(SseEvent{e.type, e.data, ""}, e.at_us);
  return d->finish(cut);
}

LlmResult run_body(const std::string& body, const json& request = {{"model", "claude-x"}}) {
  auto d = make_anthropic_messages("anthropic", request, false);
  d->on_body(body, 1000);
  return d->finish(false);
}

// message_start with the given usage object (JSON text).
Ev start(const std::string& usage, int64_t at_us = 100'000) {
  return {"message_start",
          R"({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant",)"
          R"("model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,)"
          R"("stop_sequence":null,"usage":)" +
              usage + "}}",
          at_us};
}

Ev block_start(int index, const std::string& block, int64_t at_us = 0) {
  return {"content_block_start",
          R"({"type":"content_block_start","index":)" + std::to_string(index) +
              R"(,"content_block":)" + block + "}",
          at_us};
}

Ev delta(int index, const std::string& d, int64_t at_us = 0) {
  return {"content_block_delta",
          R"({"type":"content_block_delta","index":)" + std::to_string(index) + R"(,"delta":)" + d +
              "}",
          at_us};
}

Ev text(int index, const std::string& t, int64_t at_us = 0) {
  return delta(index, R"({"type":"text_delta","text":)" + json(t).dump() + "}", at_us);
}

Ev input_json(int index, const std::string& partial) {
  return delta(index, R"({"type":"input_json_delta","partial_json":)" + json(partial).dump() + "}");
}

Ev block_stop(int index) {
  return {"content_block_stop",
          R"({"type":"content_block_stop","index":)" + std::to_string(index) + "}", 0};
}

Ev message_delta(const std::string& stop_reason, const std::string& usage) {
  return {"message_delta",
          R"({"type":"message_delta","delta":{"stop_reason":")" + stop_reason +
              R"(","stop_sequence":null},"usage":)" + usage + "}",
          0};
}

Ev stop() {
  return {"message_stop", R"({"type":"message_stop"})", 0};
}
Ev ping() {
  return {"ping", R"({"type": "ping"})", 0};
}

// The assembled answer as a plain json (key order aside, for comparisons).
json assembled(const LlmResult& r) {
  return json(r.assembled);
}

json content(const LlmResult& r, size_t i) {
  json c = assembled(r)["content"];
  return i < c.size() ? c[i] : json();
}

}  // namespace

TEST_CASE("llm anthropic: text stream assembles the message and its fields") {
  LlmResult r = run_stream({start(R"({"input_tokens":25,"output_tokens":1})", 120'000),
                            block_start(0, R"({"type":"text","text":""})", 130'000), ping(),
                            text(0, "Hello", 250'000), text(0, ", world", 260'000), block_stop(0),
                            message_delta("end_turn", R"({"output_tokens":15})"), stop()});
  const auto& f = r.fields;
  CHECK(f.provider == "anthropic");
  CHECK(f.api == "messages");
  CHECK(f.stream);
  CHECK(f.model == "claude-sonnet-4-5");
  CHECK(f.response_model == "claude-sonnet-4-5-20250929");
  CHECK(f.response_id == "msg_01");
  CHECK(f.finish_reason == "end_turn");
  CHECK(f.input_tokens == 25);
  CHECK(f.output_tokens == 15);
  CHECK(f.total_tokens == 40);
  CHECK_FALSE(f.cached_input_tokens);
  CHECK_FALSE(f.cache_creation_input_tokens);
  CHECK_FALSE(f.reasoning_tokens);
  CHECK_FALSE(f.error);
  CHECK(f.events == 8);
  // first_event_ms is message_start; ttft_ms the first non-empty text, not the empty block.
  CHECK(f.first_event_ms == doctest::Approx(120.0));
  CHECK(f.ttft_ms == doctest::Approx(250.0));
  CHECK(f.usage == json{{"input_tokens", 25}, {"output_tokens", 15}});

  const auto& a = r.assembled;
  CHECK(a["type"] == "message");
  CHECK(a["role"] == "assistant");
  CHECK(a["stop_reason"] == "end_turn");
  CHECK(a["stop_sequence"].is_null());
  CHECK(a["content"].size() == 1);
  CHECK(content(r, 0) == json{{"type", "text"}, {"text", "Hello, world"}});
  CHECK(a["usage"]["output_tokens"] == 15);
  // The message's keys in the API's order.
  CHECK(a.begin().key() == "id");
}

TEST_CASE("llm anthropic: thinking with signature, then text") {
  LlmResult r = run_stream(
      {start(R"({"input_tokens":10,"output_tokens":1})", 1'000),
       block_start(0, R"({"type":"thinking","thinking":"","signature":""})"),
       delta(0, R"({"type":"thinking_delta","thinking":"Let me think"})", 5'000),
       delta(0, R"({"type":"thinking_delta","thinking":" about it."})"),
       delta(0, R"({"type":"signature_delta","signature":"EqQBCgIYAhIM1"})"),
       // A second signature replaces the first: set, not appended.
       delta(0, R"({"type":"signature_delta","signature":"EqQBCgIYAhIM2"})"), block_stop(0),
       block_start(1, R"({"type":"text","text":""})"), text(1, "42", 9'000), block_stop(1),
       message_delta("end_turn",
                     R"({"output_tokens":80,"output_tokens_details":{"thinking_tokens":60}})"),
       stop()});
  CHECK(content(r, 0) == json{{"type", "thinking"},
                              {"thinking", "Let me think about it."},
                              {"signature", "EqQBCgIYAhIM2"}});
  CHECK(content(r, 1) == json{{"type", "text"}, {"text", "42"}});
  CHECK(r.fields.ttft_ms == doctest::Approx(5.0));  // a thinking delta is content
  CHECK(r.fields.output_tokens == 80);
  CHECK(r.fields.reasoning_tokens == 60);
}

TEST_CASE("llm anthropic: tool_use input_json_delta split in odd places") {
  // The same input, cut at every byte boundary pattern that matters: inside a key, inside a
  // string escape, between digits, and as empty pieces.
  const std::vector<std::vector<std::string>> splits = {
      {R"({"city": "Paris", "n": 12, "q": "a\"b"})"},
      {"", R"({"ci)", R"(ty": "Par)", R"(is", "n": 1)", R"(2, "q": "a\)", R"("b"})"},
      {"{", "\"", "city\":", " \"Paris\"", ", \"n\": 12, \"q\": \"a\\\"b\"", "}", ""},
  };
  for (const auto& pieces : splits) {
    CAPTURE(pieces.size());
    std::vector<Ev> events = {
        start(R"({"input_tokens":50,"output_tokens":1})"),
        block_start(0, R"({"type":"tool_use","id":"toolu_01","name":"weather","input":{}})", 7'000),
    };
    for (const auto& p : pieces) events.push_back(input_json(0, p));
    events.push_back(block_stop(0));
    events.push_back(message_delta("tool_use", R"({"output_tokens":30})"));
    events.push_back(stop());
    LlmResult r = run_stream(events);
    CHECK(content(r, 0) == json{{"type", "tool_use"},
                                {"id", "toolu_01"},
                                {"name", "weather"},
                                {"input", {{"city", "Paris"}, {"n", 12}, {"q", "a\"b"}}}});
    CHECK(r.fields.finish_reason == "tool_use");
    CHECK(r.fields.ttft_ms == doctest::Approx(7.0));  // the tool_use block start is content
    CHECK_FALSE(r.fields.error);
  }
}

TEST_CASE("llm anthropic: tool input edge cases") {
  struct Row {
    const char* name;
    std::string block;
    std::vector<std::string> pieces;
    json input;
    bool error;
  };
  const Row rows[] = {
      {"no deltas: {} from the block start",
       R"({"type":"tool_use","id":"t","name":"f","input":{}})",
       {},
       json::object(),
       false},
      {"no deltas, no input key: {}",
       R"({"type":"tool_use","id":"t","name":"f"})",
       {},
       json::object(),
       false},
      {"input sent whole in the block start is kept",
       R"({"type":"tool_use","id":"t","name":"f","input":{"a":1}})",
       {},
       json{{"a", 1}},
       false},
      {"server_tool_use",
       R"({"type":"server_tool_use","id":"t","name":"web_search","input":{}})",
       {R"({"query":)", R"("x"})"},
       json{{"query", "x"}},
       false},
      {"unparseable: {} and an error",
       R"({"type":"tool_use","id":"t","name":"f","input":{}})",
       {R"({"a": tru)", "e,,}"},
       json::object(),
       true},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    std::vector<Ev> events = {start(R"({"input_tokens":1,"output_tokens":1})"),
                              block_start(0, row.block)};
    for (const auto& p : row.pieces) events.push_back(input_json(0, p));
    events.push_back(block_stop(0));
    events.push_back(message_delta("tool_use", R"({"output_tokens":3})"));
    LlmResult r = run_stream(events);
    CHECK(content(r, 0)["input"] == row.input);
    CHECK(r.fields.error.has_value() == row.error);
    if (row.error) CHECK(r.fields.error->find("content block 0") != std::string::npos);
  }
}

TEST_CASE("llm anthropic: parallel blocks interleaved by index") {
  LlmResult r = run_stream({start(R"({"input_tokens":5,"output_tokens":1})"),
                            block_start(0, R"({"type":"text","text":""})"),
                            block_start(1, R"({"type":"tool_use","id":"a","name":"f","input":{}})"),
                            block_start(2, R"({"type":"tool_use","id":"b","name":"g","input":{}})"),
                            input_json(2, R"({"y")"), text(0, "I'll call "),
                            input_json(1, R"({"x":)"), input_json(2, ":2}"), text(0, "two tools."),
                            input_json(1, "1}"), block_stop(2), block_stop(0), block_stop(1),
                            message_delta("tool_use", R"({"output_tokens":9})"), stop()});
  REQUIRE(r.assembled["content"].size() == 3);
  CHECK(content(r, 0)["text"] == "I'll call two tools.");
  CHECK(content(r, 1)["input"] == json{{"x", 1}});
  CHECK(content(r, 2)["input"] == json{{"y", 2}});
  CHECK(content(r, 1)["id"] == "a");
}

TEST_CASE("llm anthropic: citations_delta pushes citations to the text block") {
  const std::string c1 =
      R"({"type":"char_location","cited_text":"The sky is blue.","document_index":0,)"
      R"("start_char_index":0,"end_char_index":16})";
  const std::string c2 =
      R"({"type":"web_search_result_location","cited_text":"x","url":"https://e.x/",)"
      R"("title":"E","encrypted_index":"Eo8B"})";
  LlmResult r = run_stream({start(R"({"input_tokens":5,"output_tokens":1})"),
                            block_start(0, R"({"type":"text","text":"","citations":[]})"),
                            delta(0, R"({"type":"citations_delta","citation":)" + c1 + "}"),
                            text(0, "the sky is blue"),
                            delta(0, R"({"type":"citations_delta","citation":)" + c2 + "}"),
                            block_stop(0), message_delta("end_turn", R"({"output_tokens":4})")});
  CHECK(content(r, 0)["text"] == "the sky is blue");
  CHECK(content(r, 0)["citations"] == json::array({json::parse(c1), json::parse(c2)}));
}

TEST_CASE("llm anthropic: ping and unknown events anywhere change nothing") {
  const std::vector<Ev> base = {start(R"({"input_tokens":3,"output_tokens":1})"),
                                block_start(0, R"({"type":"text","text":""})"),
                                text(0, "a"),
                                text(0, "b"),
                                block_stop(0),
                                message_delta("end_turn", R"({"output_tokens":2})"),
                                stop()};
  LlmResult plain = run_stream(base);
  for (size_t at = 0; at <= base.size(); ++at) {
    CAPTURE(at);
    for (const Ev& extra : {ping(), Ev{"future_event", R"({"type":"future_event","x":[1]})", 0},
                            Ev{"message", "not json at all", 0}}) {
      std::vector<Ev> events = base;
      events.insert(events.begin() + static_cast<std::ptrdiff_t>(at), extra);
      LlmResult r = run_stream(events);
      CHECK(r.assembled == plain.assembled);
      CHECK(r.fields.events == plain.fields.events.value() + 1);
      CHECK(r.fields.output_tokens == 2);
      CHECK_FALSE(r.fields.error);
    }
  }
}

TEST_CASE("llm anthropic: error event mid-stream") {
  LlmResult r = run_stream(
      {start(R"({"input_tokens":3,"output_tokens":1})"),
       block_start(0, R"({"type":"text","text":""})"),
       text(0, "partial"),
       {"error", R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
        0}},
      /*cut=*/true);
  CHECK(r.fields.error == "overloaded_error: Overloaded");
  CHECK(content(r, 0)["text"] == "partial");
  CHECK(r.fields.input_tokens == 3);
  CHECK(r.fields.output_tokens == 1);  // message_start's, as the SDK snapshot has it
  CHECK_FALSE(r.fields.finish_reason);

  // An error before anything else: no message to show.
  LlmResult only = run_stream(
      {{"error", R"({"type":"error","error":{"type":"api_error","message":"Internal"}})", 0}});
  CHECK(only.fields.error == "api_error: Internal");
  CHECK(only.assembled.is_null());
  CHECK_FALSE(only.fields.input_tokens);
}

TEST_CASE("llm anthropic: cut stream keeps what arrived") {
  LlmResult r = run_stream(
      {start(R"({"input_tokens":12,"output_tokens":1})"),
       block_start(0, R"({"type":"text","text":""})"), text(0, "Once upon"), block_stop(0),
       block_start(1, R"({"type":"tool_use","id":"t","name":"f","input":{}})"),
       input_json(1, R"({"a": "unfinish)")},
      /*cut=*/true);
  CHECK(content(r, 0)["text"] == "Once upon");
  CHECK(content(r, 1)["input"] == json::object());
  // The cause is reported, not its consequence (the unfinished tool input).
  CHECK(r.fields.error == "stream ended before message_stop");
  CHECK(r.assembled["stop_reason"].is_null());
  CHECK_FALSE(r.fields.finish_reason);
  CHECK(r.fields.input_tokens == 12);
  CHECK(r.fields.output_tokens == 1);

  // A provider that sends the stop_reason but no message_stop ended properly enough.
  LlmResult no_stop = run_stream({start(R"({"input_tokens":1,"output_tokens":1})"),
                                  message_delta("end_turn", R"({"output_tokens":2})")});
  CHECK_FALSE(no_stop.fields.error);

  // Nothing at all arrived.
  LlmResult empty = run_stream({}, /*cut=*/true);
  CHECK(empty.assembled.is_null());
  CHECK_FALSE(empty.fields.events);
  CHECK_FALSE(empty.fields.first_event_ms);
  CHECK(empty.fields.usage.is_null());
}

TEST_CASE("llm anthropic: usage from message_start updated by message_delta, never added") {
  struct Row {
    const char* name;
    std::string start_usage;
    std::vector<std::string> delta_usages;
    std::optional<int64_t> input, cached, creation, output, total;
    json usage;
  };
  const Row rows[] = {
      {"two cumulative message_delta: output overwritten",
       R"({"input_tokens":10,"output_tokens":1})",
       {R"({"output_tokens":20})", R"({"output_tokens":35})"},
       10,
       std::nullopt,
       std::nullopt,
       35,
       45,
       json{{"input_tokens", 10}, {"output_tokens", 35}}},
      {"cache counts in message_start only (Anthropic)",
       R"({"input_tokens":4,"cache_read_input_tokens":1000,"cache_creation_input_tokens":200,"output_tokens":1})",
       {R"({"output_tokens":7})"},
       1204,
       1000,
       200,
       7,
       1211,
       json{{"input_tokens", 4},
            {"cache_read_input_tokens", 1000},
            {"cache_creation_input_tokens", 200},
            {"output_tokens", 7}}},
      {"cache counts repeated in message_delta are not doubled (pitfall 3)",
       R"({"input_tokens":4,"cache_read_input_tokens":1000,"cache_creation_input_tokens":200,"output_tokens":1})",
       {R"({"input_tokens":4,"cache_read_input_tokens":1000,"cache_creation_input_tokens":200,"output_tokens":7})"},
       1204,
       1000,
       200,
       7,
       1211,
       json{{"input_tokens", 4},
            {"cache_read_input_tokens", 1000},
            {"cache_creation_input_tokens", 200},
            {"output_tokens", 7}}},
      {"cache counts only in message_delta (Kimi, DashScope)",
       R"({"input_tokens":0,"output_tokens":0})",
       {R"({"input_tokens":30,"cache_read_input_tokens":500,"output_tokens":9})"},
       530,
       500,
       std::nullopt,
       9,
       539,
       json{{"input_tokens", 30}, {"cache_read_input_tokens", 500}, {"output_tokens", 9}}},
      {"nulls in message_delta keep message_start's values",
       R"({"input_tokens":8,"cache_read_input_tokens":16,"output_tokens":1})",
       {R"({"input_tokens":null,"cache_read_input_tokens":null,"cache_creation_input_tokens":null,"server_tool_use":null,"output_tokens":5})"},
       24,
       16,
       std::nullopt,
       5,
       29,
       json{{"input_tokens", 8}, {"cache_read_input_tokens", 16}, {"output_tokens", 5}}},
      {"cache_creation breakdown without the total (pitfall 6)",
       R"({"input_tokens":3,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":50},"output_tokens":1})",
       {R"({"output_tokens":2})"},
       153,
       std::nullopt,
       150,
       2,
       155,
       json{{"input_tokens", 3},
            {"cache_creation",
             {{"ephemeral_5m_input_tokens", 100}, {"ephemeral_1h_input_tokens", 50}}},
            {"output_tokens", 2}}},
      {"total and breakdown: the total wins",
       R"({"input_tokens":3,"cache_creation_input_tokens":150,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":50},"output_tokens":1})",
       {},
       153,
       std::nullopt,
       150,
       1,
       154,
       json()},
      {"zero is reported, absent is not",
       R"({"input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0})",
       {R"({"output_tokens":0})"},
       0,
       0,
       std::nullopt,
       0,
       0,
       json{{"input_tokens", 0}, {"cache_read_input_tokens", 0}, {"output_tokens", 0}}},
      {"no input_tokens and no cache fields: input absent, no total",
       R"({"output_tokens":1})",
       {R"({"output_tokens":6})"},
       std::nullopt,
       std::nullopt,
       std::nullopt,
       6,
       std::nullopt,
       json{{"output_tokens", 6}}},
      {"no input_tokens but a cache read: the parts present",
       R"({"output_tokens":1})",
       {R"({"cache_read_input_tokens":70,"output_tokens":6})"},
       70,
       70,
       std::nullopt,
       6,
       76,
       json{{"cache_read_input_tokens", 70}, {"output_tokens", 6}}},
      {"hostile types are ignored, not thrown on",
       R"({"input_tokens":"12","cache_read_input_tokens":1.5,"output_tokens":[1]})",
       {R"({"output_tokens":{"x":1}})"},
       std::nullopt,
       std::nullopt,
       std::nullopt,
       std::nullopt,
       std::nullopt,
       json()},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    std::vector<Ev> events = {start(row.start_usage), block_start(0, R"({"type":"text"})"),
                              text(0, "x"), block_stop(0)};
    for (const auto& u : row.delta_usages) events.push_back(message_delta("end_turn", u));
    events.push_back(stop());
    LlmResult r = run_stream(events);
    CHECK(r.fields.input_tokens == row.input);
    CHECK(r.fields.cached_input_tokens == row.cached);
    CHECK(r.fields.cache_creation_input_tokens == row.creation);
    CHECK(r.fields.output_tokens == row.output);
    CHECK(r.fields.total_tokens == row.total);
    if (!row.usage.is_null()) CHECK(r.fields.usage == row.usage);
    CHECK(assembled(r)["usage"] == r.fields.usage);
  }
}

TEST_CASE("llm anthropic: message_delta stop fields as the SDK sets them") {
  LlmResult r = run_stream(
      {start(R"({"input_tokens":1,"output_tokens":1})"),
       {"message_delta",
        R"({"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END",)"
        R"("container":{"id":"c1","expires_at":"2026-01-01T00:00:00Z"}},"usage":{"output_tokens":2}})",
        0},
       {"message_delta",
        R"({"type":"message_delta","delta":{"stop_reason":"refusal","stop_sequence":null,)"
        R"("stop_details":{"type":"refusal"}},"usage":{"output_tokens":3}})",
        0}});
  CHECK(r.fields.finish_reason == "refusal");
  CHECK(r.assembled["stop_sequence"].is_null());
  CHECK(assembled(r)["stop_details"] == json{{"type", "refusal"}});
  CHECK(assembled(r)["container"] == json{{"id", "c1"}, {"expires_at", "2026-01-01T00:00:00Z"}});
  CHECK(r.fields.output_tokens == 3);
}

TEST_CASE("llm anthropic: ttft is the first content, first_event_ms the first event") {
  struct Row {
    const char* name;
    std::vector<Ev> events;
    std::optional<double> first_event_ms, ttft_ms;
  };
  const Row rows[] = {
      {"empty text block start and empty delta are not content",
       {start(R"({"input_tokens":1,"output_tokens":1})", 10'000),
        block_start(0, R"({"type":"text","text":""})", 20'000), text(0, "", 30'000),
        text(0, "hi", 40'000)},
       10.0,
       40.0},
      {"a block start carrying text is content",
       {start(R"({"input_tokens":1,"output_tokens":1})", 10'000),
        block_start(0, R"({"type":"text","text":"Hi"})", 25'000), text(0, "!", 40'000)},
       10.0,
       25.0},
      {"a ping first is the first event, not content",
       {{"ping", R"({"type":"ping"})", 5'000},
        start(R"({"input_tokens":1,"output_tokens":1})", 10'000),
        block_start(0, R"({"type":"thinking","thinking":""})", 20'000),
        delta(0, R"({"type":"signature_delta","signature":"s"})", 30'000),
        delta(0, R"({"type":"thinking_delta","thinking":"hm"})", 35'000)},
       5.0,
       35.0},
      {"no content at all",
       {start(R"({"input_tokens":1,"output_tokens":1})", 10'000),
        message_delta("end_turn", R"({"output_tokens":1})")},
       10.0,
       std::nullopt},
      {"no arrival times",
       {Ev{"message_start", start(R"({"input_tokens":1})").data, std::nullopt},
        Ev{"x", text(0, "a").data, std::nullopt}},
       std::nullopt,
       std::nullopt},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    LlmResult r = run_stream(row.events);
    CHECK(r.fields.first_event_ms == row.first_event_ms);
    CHECK(r.fields.ttft_ms == row.ttft_ms);
  }
}

TEST_CASE("llm anthropic: non-streamed bodies") {
  SUBCASE("a message with cache usage and thinking tokens") {
    const std::string body =
        R"({"id":"msg_9","type":"message","role":"assistant","model":"claude-opus-4-1",)"
        R"("content":[{"type":"text","text":"Hi"}],"stop_reason":"max_tokens","stop_sequence":null,)"
        R"("usage":{"input_tokens":7,"cache_creation_input_tokens":0,"cache_read_input_tokens":90,)"
        R"("output_tokens":100,"output_tokens_details":{"thinking_tokens":64},"service_tier":"standard"}})";
    LlmResult r = run_body(body);
    CHECK_FALSE(r.fields.stream);
    CHECK(r.fields.model == "claude-x");
    CHECK(r.fields.response_model == "claude-opus-4-1");
    CHECK(r.fields.response_id == "msg_9");
    CHECK(r.fields.finish_reason == "max_tokens");
    CHECK(r.fields.input_tokens == 97);
    CHECK(r.fields.cached_input_tokens == 90);
    CHECK(r.fields.cache_creation_input_tokens == 0);
    CHECK(r.fields.output_tokens == 100);
    CHECK(r.fields.reasoning_tokens == 64);
    CHECK(r.fields.total_tokens == 197);
    CHECK(assembled(r) == json::parse(body));
    CHECK_FALSE(r.fields.events);
    CHECK_FALSE(r.fields.ttft_ms);  // not a stream: no time to first token
    CHECK_FALSE(r.fields.error);
  }
  SUBCASE("an HTTP error body") {
    LlmResult r = run_body(
        R"({"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"},"request_id":"req_1"})");
    CHECK(r.fields.error == "rate_limit_error: Number of requests has exceeded your rate limit");
    CHECK(r.assembled["error"]["type"] == "rate_limit_error");
    CHECK_FALSE(r.fields.input_tokens);
    CHECK(r.fields.usage.is_null());
  }
  SUBCASE("an error answer to a stream request arrives as a body") {
    auto d = make_anthropic_messages("anthropic", {{"model", "m"}, {"stream", true}}, true);
    d->on_body(R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
               std::nullopt);
    LlmResult r = d->finish(false);
    CHECK(r.fields.stream);
    CHECK(r.fields.error == "overloaded_error: Overloaded");
  }
  SUBCASE("not JSON, or hostile shapes") {
    for (const char* body : {"", "<html>502</html>", "[1,2]", "null", R"({"usage":7})",
                             R"({"usage":{"input_tokens":-1,"output_tokens":1e400}})",
                             R"({"error":{"type":3,"message":null}})"}) {
      CAPTURE(body);
      LlmResult r = run_body(body);
      CHECK_FALSE(r.fields.output_tokens);
    }
  }
}

TEST_CASE("llm anthropic: hostile events do not throw") {
  const std::vector<std::string> datas = {
      R"({"type":"message_start"})",
      R"({"type":"message_start","message":[]})",
      R"({"type":"message_start","message":{"content":"x","usage":[]}})",
      R"({"type":"content_block_start","index":0})",
      R"({"type":"content_block_start","index":"0","content_block":{"type":7}})",
      R"({"type":"content_block_delta","index":99,"delta":{"type":"text_delta","text":"x"}})",
      R"({"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"x"}})",
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":7}})",
      R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta"}})",
      R"({"type":"content_block_delta","index":18446744073709551615,"delta":{}})",
      R"({"type":"message_delta","delta":[],"usage":null})",
      R"({"type":"message_delta","usage":{"output_tokens":null}})",
      R"({"type":"error","error":"string"})",
      R"({"type":123})",
      R"([])",
      R"("message_start")",
  };
  // Each alone, and all in a row after a valid start.
  for (const auto& data : datas) {
    CAPTURE(data);
    CHECK_NOTHROW(run_stream({{"message", data, 1}}, true));
  }
  std::vector<Ev> all = {start(R"({"input_tokens":1,"output_tokens":1})"),
                         block_start(0, R"({"type":"text","text":""})")};
  for (const auto& data : datas) all.push_back({"message", data, 1});
  CHECK_NOTHROW(run_stream(all, true));
}

// Parses 64 MiB of events: seconds in a Debug build, so skipped by default (run it with
// --no-skip after touching the bound).
TEST_CASE("llm anthropic: the assembled answer stops growing at kMaxAssembledBytes" *
          doctest::skip()) {
  using lp::logsrv::reading::kMaxAssembledBytes;
  const std::string piece(1 << 20, 'a');
  const Ev one = text(0, piece);
  auto d = make_anthropic_messages("anthropic", {{"model", "m"}}, true);
  d->on_event(SseEvent{"message_start", start(R"({"input_tokens":1,"output_tokens":1})").data, ""},
              1);
  d->on_event(SseEvent{"content_block_start", block_start(0, R"({"type":"text"})").data, ""}, 1);
  const size_t n = kMaxAssembledBytes / piece.size() + 2;
  for (size_t i = 0; i < n; ++i) d->on_event(SseEvent{"content_block_delta", one.data, ""}, 2);
  d->on_event(
      SseEvent{"message_delta", message_delta("end_turn", R"({"output_tokens":9})").data, ""}, 3);
  LlmResult r = d->finish(false);
  REQUIRE(r.fields.error);
  CHECK(r.fields.error->find("truncated") != std::string::npos);
  const auto& t = r.assembled["content"][0]["text"].get_ref<const std::string&>();
  CHECK(t.size() < kMaxAssembledBytes);
  CHECK(t.size() > kMaxAssembledBytes - 2 * piece.size());
  CHECK(r.fields.output_tokens == 9);  // the fields still come through
}
