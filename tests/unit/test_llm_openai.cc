// OpenAI-shaped APIs (chat.completions, completions, embeddings, responses) from OpenAI,
// OpenRouter and compatible servers: recognition by start_derivation(), the `llm` fields and
// the assembled answer (what openai-node's finalChatCompletion() / finalResponse() return).
// Streams are hand-written from the documented formats (notes/llm-trace-formats.md §2, §3, §5,
// §7), as dispatched SSE events; every §11 pitfall that applies to these APIs is a row.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "log-server/reading/llm.h"

using lp::logsrv::reading::Derivation;
using lp::logsrv::reading::Headers;
using lp::logsrv::reading::LlmExchange;
using lp::logsrv::reading::LlmResult;
using lp::logsrv::reading::SseEvent;
using nlohmann::json;

namespace {

struct Ev {
  int64_t at_ms;     // arrival since the request started
  std::string data;  // the event's data
  std::string type = "message";
};

const Headers kSse = {{"Content-Type", "text/event-stream; charset=utf-8"}};
const Headers kJson = {{"Content-Type", "application/json"}};

std::unique_ptr<Derivation> start(const std::string& url, const std::string& request,
                                  const Headers& response_headers = kSse, int status = 200,
                                  const std::string& method = "POST") {
  LlmExchange ex;
  ex.method = method;
  ex.destination = url;
  ex.route = "r";
  ex.request_body = request;
  ex.status = status;
  ex.response_headers = &response_headers;
  return lp::logsrv::reading::start_derivation(ex);
}

LlmResult run_events(const std::string& url, const std::string& request,
                     const std::vector<Ev>& events, bool cut) {
  auto d = start(url, request);
  REQUIRE(d);
  for (const Ev& e : events) d->on_event(SseEvent{e.type, e.data, ""}, e.at_ms * 1000);
  return d->finish(cut);
}

LlmResult run_body(const std::string& url, const std::string& request, const std::string& body,
                   int status = 200) {
  auto d = start(url, request, kJson, status);
  REQUIRE(d);
  d->on_body(body, 500'000);
  return d->finish(false);
}

// The `llm` object compared whole (so an absent key must be absent), order-insensitively; the
// key order itself has its own test.
void check_fields(const LlmResult& r, const std::string& expected) {
  json got = json(lp::logsrv::reading::llm_fields_json(r.fields));
  json want = json::parse(expected);
  INFO("got:  " << got.dump());
  INFO("want: " << want.dump());
  CHECK(got == want);
}

void check_assembled(const LlmResult& r, const std::string& expected) {
  json got = json(r.assembled);
  json want = json::parse(expected);
  INFO("got:  " << got.dump());
  INFO("want: " << want.dump());
  CHECK(got == want);
}

const std::string kOpenAiChat = "https://api.openai.com/v1/chat/completions";
const std::string kChatRequest =
    R"({"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},)"
    R"("messages":[{"role":"user","content":"hi"}]})";

// A chat.completion.chunk of OpenAI's shape with the given choices and usage (JSON text).
std::string chunk(const std::string& choices, const std::string& usage = "null",
                  const std::string& id = "chatcmpl-1") {
  return R"({"id":")" + id +
         R"(","object":"chat.completion.chunk","created":1755000000,"model":"gpt-4o-mini-2024-07-18",)"
         R"("service_tier":"default","system_fingerprint":"fp_1","choices":)" +
         choices + R"(,"usage":)" + usage + R"(,"obfuscation":"xyz"})";
}

std::string delta(const std::string& d, const std::string& finish = "null", int index = 0) {
  return R"([{"index":)" + std::to_string(index) + R"(,"delta":)" + d +
         R"(,"logprobs":null,"finish_reason":)" + finish + "}]";
}

const std::string kUsage = R"({"prompt_tokens":19,"completion_tokens":2,"total_tokens":21,)"
                           R"("prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},)"
                           R"("completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,)"
                           R"("accepted_prediction_tokens":0,"rejected_prediction_tokens":0}})";

struct StreamRow {
  const char* name;
  std::string url;
  std::string request;
  std::vector<Ev> events;
  bool cut;
  std::string fields;     // the whole `llm` object
  std::string assembled;  // empty: not checked
};

std::vector<StreamRow> chat_rows() {
  std::vector<StreamRow> rows;
  // The OpenAI shape: role-only first chunk (not content), text, finish, then the trailing
  // usage-only chunk (pitfall 1: stopping at finish_reason would drop it), [DONE].
  rows.push_back({"openai: role chunk, text, finish, trailing usage chunk, [DONE]",
                  kOpenAiChat,
                  kChatRequest,
                  {{100, chunk(delta(R"({"role":"assistant","content":"","refusal":null})"))},
                   {150, chunk(delta(R"({"content":"Hel"})"))},
                   {160, chunk(delta(R"({"content":"lo"})"))},
                   {170, chunk(delta("{}", R"("stop")"))},
                   {180, chunk("[]", kUsage)},
                   {181, "[DONE]"}},
                  false,
                  R"({"provider":"openai","api":"chat.completions","model":"gpt-4o-mini",
           "response_model":"gpt-4o-mini-2024-07-18","stream":true,"response_id":"chatcmpl-1",
           "input_tokens":19,"output_tokens":2,"cached_input_tokens":0,"reasoning_tokens":0,
           "total_tokens":21,"finish_reason":"stop","first_event_ms":100,"ttft_ms":150,
           "events":6,"usage":)" +
                      kUsage + "}",
                  R"({"id":"chatcmpl-1","object":"chat.completion","created":1755000000,
           "model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1",
           "choices":[{"index":0,"message":{"role":"assistant","content":"Hello","refusal":null},
                       "finish_reason":"stop","logprobs":null}],"usage":)" +
                      kUsage + "}"});
  // Pitfall 2: one terminal chunk carries content, finish_reason and usage together.
  rows.push_back({"terminal chunk with content, finish_reason and usage",
                  kOpenAiChat,
                  kChatRequest,
                  {{10, chunk(delta(R"({"role":"assistant","content":""})"))},
                   {20, chunk(delta(R"({"content":"Hi"})", R"("stop")"),
                              R"({"prompt_tokens":5,"completion_tokens":1,"total_tokens":6})")},
                   {21, "[DONE]"}},
                  false,
                  R"({"provider":"openai","api":"chat.completions","model":"gpt-4o-mini",
           "response_model":"gpt-4o-mini-2024-07-18","stream":true,"response_id":"chatcmpl-1",
           "input_tokens":5,"output_tokens":1,"total_tokens":6,"finish_reason":"stop",
           "first_event_ms":10,"ttft_ms":20,"events":3,
           "usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}})",
                  ""});
  // No usage at all (LM Studio, or include_usage off): tokens absent, never 0; usage null.
  rows.push_back(
      {"lm studio: no usage, fingerprint is the model",
       "http://localhost:1234/v1/chat/completions",
       R"({"model":"qwen2.5-7b-instruct","stream":true,"messages":[]})",
       {{5,
         R"({"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"qwen2.5-7b-instruct",)"
         R"("system_fingerprint":"qwen2.5-7b-instruct","choices":[{"index":0,"delta":{"role":"assistant","content":"A"},"logprobs":null,"finish_reason":null}]})"},
        {6,
         R"({"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"qwen2.5-7b-instruct",)"
         R"("system_fingerprint":"qwen2.5-7b-instruct","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]})"},
        {7, "[DONE]"}},
       false,
       R"({"provider":"openai-compatible","api":"chat.completions","model":"qwen2.5-7b-instruct",
           "response_model":"qwen2.5-7b-instruct","stream":true,"response_id":"chatcmpl-x",
           "finish_reason":"stop","first_event_ms":5,"ttft_ms":5,"events":3,"usage":null})",
       R"({"id":"chatcmpl-x","object":"chat.completion","created":1,"model":"qwen2.5-7b-instruct",
           "system_fingerprint":"qwen2.5-7b-instruct",
           "choices":[{"index":0,"message":{"role":"assistant","content":"A","refusal":null},
                       "finish_reason":"stop","logprobs":null}]})"});
  // Ollama: every delta repeats the role; thinking in delta.reasoning (content for ttft,
  // assembled as `reasoning`); usage chunk with choices [] and no details objects, so the
  // cached count is absent (pitfall 4: absent is not 0).
  auto ollama = [](const std::string& d, const std::string& finish = "null") {
    return R"({"id":"chatcmpl-7","object":"chat.completion.chunk","created":2,"model":"qwen3:8b",)"
           R"("system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":)" +
           d + R"(,"finish_reason":)" + finish + "}]}";
  };
  rows.push_back(
      {"ollama: role repeated, reasoning delta, usage chunk without details",
       "http://localhost:11434/v1/chat/completions",
       R"({"model":"qwen3:8b","stream":true,"stream_options":{"include_usage":true},"messages":[]})",
       {{30, ollama(R"({"role":"assistant","content":""})")},
        {40, ollama(R"({"role":"assistant","content":"","reasoning":"Let me "})")},
        {50, ollama(R"({"role":"assistant","content":"","reasoning":"think."})")},
        {60, ollama(R"({"role":"assistant","content":"42"})")},
        {70, ollama(R"({"role":"assistant","content":""})", R"("stop")")},
        {71,
         R"({"id":"chatcmpl-7","object":"chat.completion.chunk","created":2,"model":"qwen3:8b",)"
         R"("system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}})"},
        {72, "[DONE]"}},
       false,
       R"({"provider":"openai-compatible","api":"chat.completions","model":"qwen3:8b",
           "response_model":"qwen3:8b","stream":true,"response_id":"chatcmpl-7",
           "input_tokens":11,"output_tokens":7,"total_tokens":18,"finish_reason":"stop",
           "first_event_ms":30,"ttft_ms":40,"events":7,
           "usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}})",
       R"({"id":"chatcmpl-7","object":"chat.completion","created":2,"model":"qwen3:8b",
           "system_fingerprint":"fp_ollama",
           "choices":[{"index":0,"message":{"role":"assistant","content":"42","refusal":null,
                                            "reasoning":"Let me think."},
                       "finish_reason":"stop","logprobs":null}],
           "usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}})"});
  // Ollama tool calls arrive whole, two in one chunk.
  rows.push_back({"ollama: parallel tool calls arriving whole",
                  "http://127.0.0.1:11434/v1/chat/completions",
                  R"({"model":"llama3.1","stream":true,"messages":[]})",
                  {{30, ollama(R"({"role":"assistant","content":"","tool_calls":[
            {"id":"call_a","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"call_b","index":1,"type":"function","function":{"name":"get_time","arguments":"{}"}}]})")},
                   {40, ollama(R"({"role":"assistant","content":""})", R"("tool_calls")")},
                   {41, "[DONE]"}},
                  false,
                  R"({"provider":"openai-compatible","api":"chat.completions","model":"llama3.1",
           "response_model":"qwen3:8b","stream":true,"response_id":"chatcmpl-7",
           "finish_reason":"tool_calls","first_event_ms":30,"ttft_ms":30,"events":3,"usage":null})",
                  R"({"id":"chatcmpl-7","object":"chat.completion","created":2,"model":"qwen3:8b",
           "system_fingerprint":"fp_ollama",
           "choices":[{"index":0,"finish_reason":"tool_calls","logprobs":null,
             "message":{"role":"assistant","content":"","refusal":null,"tool_calls":[
               {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
               {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]})"});
  // OpenAI parallel tool calls streamed in fragments: merged by index, id/type/name from the
  // first non-empty value (a later empty id changes nothing), arguments concatenated.
  rows.push_back(
      {"openai: parallel tool calls in fragments",
       kOpenAiChat,
       kChatRequest,
       {{100, chunk(delta(R"({"role":"assistant","content":null,"tool_calls":[
            {"index":0,"id":"call_1","type":"function","function":{"name":"a","arguments":""}}]})"))},
        {110, chunk(delta(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"x\""}}]})"))},
        {120,
         chunk(delta(
             R"({"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"b","arguments":""}}]})"))},
        {130,
         chunk(delta(R"({"tool_calls":[{"index":0,"id":"","function":{"arguments":":1}"}}]})"))},
        {140,
         chunk(delta(R"({"tool_calls":[{"index":1,"function":{"name":"","arguments":"{}"}}]})"))},
        {150, chunk(delta("{}", R"("tool_calls")"))},
        {160, chunk("[]", R"({"prompt_tokens":50,"completion_tokens":20,"total_tokens":70})")},
        {161, "[DONE]"}},
       false,
       R"({"provider":"openai","api":"chat.completions","model":"gpt-4o-mini",
           "response_model":"gpt-4o-mini-2024-07-18","stream":true,"response_id":"chatcmpl-1",
           "input_tokens":50,"output_tokens":20,"total_tokens":70,"finish_reason":"tool_calls",
           "first_event_ms":100,"ttft_ms":100,"events":8,
           "usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70}})",
       R"({"id":"chatcmpl-1","object":"chat.completion","created":1755000000,
           "model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1",
           "choices":[{"index":0,"finish_reason":"tool_calls","logprobs":null,
             "message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[
               {"id":"call_1","type":"function","function":{"name":"a","arguments":"{\"x\":1}"}},
               {"id":"call_2","type":"function","function":{"name":"b","arguments":"{}"}}]}}],
           "usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70}})"});
  // n=2: choices interleaved, grouped by index.
  rows.push_back({"two choices interleaved",
                  kOpenAiChat,
                  kChatRequest,
                  {{10, chunk(delta(R"({"role":"assistant","content":"a"})", "null", 1))},
                   {11, chunk(delta(R"({"role":"assistant","content":"x"})", "null", 0))},
                   {12, chunk(delta(R"({"content":"b"})", R"("length")", 1))},
                   {13, chunk(delta(R"({"content":"y"})", R"("stop")", 0))}},
                  false,
                  R"({"provider":"openai","api":"chat.completions","model":"gpt-4o-mini",
           "response_model":"gpt-4o-mini-2024-07-18","stream":true,"response_id":"chatcmpl-1",
           "finish_reason":"stop","first_event_ms":10,"ttft_ms":10,"events":4,"usage":null})",
                  R"({"id":"chatcmpl-1","object":"chat.completion","created":1755000000,
           "model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1",
           "choices":[
             {"index":0,"message":{"role":"assistant","content":"xy","refusal":null},"finish_reason":"stop","logprobs":null},
             {"index":1,"message":{"role":"assistant","content":"ab","refusal":null},"finish_reason":"length","logprobs":null}],
           "usage":null})"});
  // A refusal delta is content.
  rows.push_back({"refusal stream",
                  kOpenAiChat,
                  kChatRequest,
                  {{10, chunk(delta(R"({"role":"assistant","content":null,"refusal":""})"))},
                   {20, chunk(delta(R"({"refusal":"I can't"})"))},
                   {30, chunk(delta(R"({"refusal":" help."})", R"("stop")"))}},
                  false,
                  R"({"provider":"openai","api":"chat.completions","model":"gpt-4o-mini",
           "response_model":"gpt-4o-mini-2024-07-18","stream":true,"response_id":"chatcmpl-1",
           "finish_reason":"stop","first_event_ms":10,"ttft_ms":20,"events":3,"usage":null})",
                  R"({"id":"chatcmpl-1","object":"chat.completion","created":1755000000,
           "model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1",
           "choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help."},
                       "finish_reason":"stop","logprobs":null}],"usage":null})"});
  // A mid-stream error without choices (OpenAI): the error message; what arrived is kept.
  rows.push_back(
      {"openai: mid-stream error event",
       kOpenAiChat,
       kChatRequest,
       {{10, chunk(delta(R"({"role":"assistant","content":"Par"})"))},
        {20,
         R"({"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}})"}},
       false,
       R"({"provider":"openai","api":"chat.completions","model":"gpt-4o-mini",
           "response_model":"gpt-4o-mini-2024-07-18","stream":true,"response_id":"chatcmpl-1",
           "first_event_ms":10,"ttft_ms":10,"events":2,
           "error":"The server had an error while processing your request.","usage":null})",
       R"({"id":"chatcmpl-1","object":"chat.completion","created":1755000000,
           "model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_1",
           "choices":[{"index":0,"message":{"role":"assistant","content":"Par","refusal":null},
                       "finish_reason":null,"logprobs":null}],"usage":null})"});
  // A stream cut before finish_reason: no usage (never fabricated), an error saying so.
  rows.push_back({"cut stream before finish_reason",
                  kOpenAiChat,
                  kChatRequest,
                  {{10, chunk(delta(R"({"role":"assistant","content":""})"))},
                   {20, chunk(delta(R"({"content":"Once upon"})"))}},
                  true,
                  R"({"provider":"openai","api":"chat.completions","model":"gpt-4o-mini",
           "response_model":"gpt-4o-mini-2024-07-18","stream":true,"response_id":"chatcmpl-1",
           "first_event_ms":10,"ttft_ms":20,"events":2,
           "error":"stream ended before finish_reason","usage":null})",
                  ""});
  // vLLM: the usage chunk has "choices": null; reasoning in reasoning_content.
  rows.push_back(
      {"vllm: usage chunk with choices null, reasoning_content",
       "http://gpu-box:8000/v1/chat/completions",
       R"({"model":"Qwen/QwQ-32B","stream":true,"stream_options":{"include_usage":true},"messages":[]})",
       {{10,
         R"({"id":"chatcmpl-v","object":"chat.completion.chunk","created":3,"model":"Qwen/QwQ-32B","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})"},
        {20,
         R"({"id":"chatcmpl-v","object":"chat.completion.chunk","created":3,"model":"Qwen/QwQ-32B","choices":[{"index":0,"delta":{"reasoning_content":"Hmm"},"logprobs":null,"finish_reason":null}]})"},
        {30,
         R"({"id":"chatcmpl-v","object":"chat.completion.chunk","created":3,"model":"Qwen/QwQ-32B","choices":[{"index":0,"delta":{"content":"4"},"logprobs":null,"finish_reason":"stop","stop_reason":null}]})"},
        {40,
         R"({"id":"chatcmpl-v","object":"chat.completion.chunk","created":3,"model":"Qwen/QwQ-32B","choices":null,"usage":{"prompt_tokens":9,"total_tokens":19,"completion_tokens":10,"prompt_tokens_details":null}})"},
        {41, "[DONE]"}},
       false,
       R"({"provider":"openai-compatible","api":"chat.completions","model":"Qwen/QwQ-32B",
           "response_model":"Qwen/QwQ-32B","stream":true,"response_id":"chatcmpl-v",
           "input_tokens":9,"output_tokens":10,"total_tokens":19,"finish_reason":"stop",
           "first_event_ms":10,"ttft_ms":20,"events":5,
           "usage":{"prompt_tokens":9,"total_tokens":19,"completion_tokens":10,"prompt_tokens_details":null}})",
       R"({"id":"chatcmpl-v","object":"chat.completion","created":3,"model":"Qwen/QwQ-32B",
           "choices":[{"index":0,"message":{"role":"assistant","content":"4","refusal":null,"reasoning_content":"Hmm"},
                       "finish_reason":"stop","logprobs":null,"stop_reason":null}],
           "usage":{"prompt_tokens":9,"total_tokens":19,"completion_tokens":10,"prompt_tokens_details":null}})"});
  // vLLM variant: the usage chunk has no choices key at all.
  rows.push_back(
      {"vllm: usage chunk without a choices key",
       "http://gpu-box:8000/v1/chat/completions",
       R"({"model":"m","stream":true,"messages":[]})",
       {{10,
         R"({"id":"c","object":"chat.completion.chunk","created":3,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]})"},
        {40,
         R"({"id":"c","object":"chat.completion.chunk","created":3,"model":"m","usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})"}},
       false,
       R"({"provider":"openai-compatible","api":"chat.completions","model":"m",
           "response_model":"m","stream":true,"response_id":"c",
           "input_tokens":3,"output_tokens":1,"total_tokens":4,"finish_reason":"stop",
           "first_event_ms":10,"ttft_ms":10,"events":2,
           "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})",
       ""});
  // OpenRouter: provider/native_finish_reason members, the usage chunk still has a choice
  // with an empty delta, cost and cache read/write counts, reasoning tokens.
  auto orc = [](const std::string& choices, const std::string& usage) {
    return R"({"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o","object":"chat.completion.chunk","created":4,"choices":)" +
           choices + (usage.empty() ? "" : R"(,"usage":)" + usage) + "}";
  };
  const std::string or_usage =
      R"({"prompt_tokens":100,"completion_tokens":10,"total_tokens":110,"cost":0.00042,)"
      R"("prompt_tokens_details":{"cached_tokens":80,"cache_write_tokens":12,"audio_tokens":0},)"
      R"("completion_tokens_details":{"reasoning_tokens":4},"cost_details":{"upstream_inference_cost":null}})";
  rows.push_back(
      {"openrouter: cost, cache read and write, usage chunk with a choice",
       "https://openrouter.ai/api/v1/chat/completions",
       R"({"model":"openai/gpt-4o","stream":true,"usage":{"include":true},"messages":[]})",
       {{200,
         orc(R"([{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"native_finish_reason":null,"logprobs":null}])",
             "")},
        {300,
         orc(R"([{"index":0,"delta":{"role":"assistant","content":"Yes"},"finish_reason":null,"native_finish_reason":null,"logprobs":null}])",
             "")},
        {310,
         orc(R"([{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop","native_finish_reason":"stop","logprobs":null}])",
             "")},
        {320,
         orc(R"([{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"native_finish_reason":null,"logprobs":null}])",
             or_usage)},
        {321, "[DONE]"}},
       false,
       R"({"provider":"openrouter","api":"chat.completions","model":"openai/gpt-4o",
           "response_model":"openai/gpt-4o","stream":true,"response_id":"gen-1",
           "input_tokens":100,"output_tokens":10,"cached_input_tokens":80,
           "cache_creation_input_tokens":12,"reasoning_tokens":4,"total_tokens":110,
           "cost":0.00042,"finish_reason":"stop","first_event_ms":200,"ttft_ms":300,"events":5,
           "usage":)" +
           or_usage + "}",
       R"({"id":"gen-1","object":"chat.completion","created":4,"model":"openai/gpt-4o","provider":"OpenAI",
           "choices":[{"index":0,"message":{"role":"assistant","content":"Yes","refusal":null},
                       "finish_reason":"stop","native_finish_reason":null,"logprobs":null}],
           "usage":)" +
           or_usage + "}"});
  // OpenRouter: a mid-stream error as a data event with an error member and a choice whose
  // finish_reason is "error".
  rows.push_back(
      {"openrouter: mid-stream error with finish_reason error",
       "https://openrouter.ai/api/v1/chat/completions",
       R"({"model":"anthropic/claude-sonnet-4","stream":true,"messages":[]})",
       {{200,
         orc(R"([{"index":0,"delta":{"role":"assistant","content":"Par"},"finish_reason":null}])",
             "")},
        {900,
         R"({"id":"gen-1","object":"chat.completion.chunk","created":4,"model":"anthropic/claude-sonnet-4","provider":"Anthropic",)"
         R"("error":{"code":502,"message":"Provider returned error"},)"
         R"("choices":[{"index":0,"delta":{"content":""},"finish_reason":"error","native_finish_reason":"error"}]})"},
        {901, "[DONE]"}},
       false,
       R"({"provider":"openrouter","api":"chat.completions","model":"anthropic/claude-sonnet-4",
           "response_model":"anthropic/claude-sonnet-4","stream":true,"response_id":"gen-1",
           "finish_reason":"error","first_event_ms":200,"ttft_ms":200,"events":3,
           "error":"Provider returned error","usage":null})",
       ""});
  return rows;
}

TEST_CASE("llm openai: chat.completions streams") {
  for (const StreamRow& row : chat_rows()) {
    SUBCASE(row.name) {
      LlmResult r = run_events(row.url, row.request, row.events, row.cut);
      check_fields(r, row.fields);
      if (!row.assembled.empty()) check_assembled(r, row.assembled);
    }
  }
}

TEST_CASE("llm openai: role-only first chunk is the first event, not the first token") {
  LlmResult r = run_events(kOpenAiChat, kChatRequest,
                           {{100, chunk(delta(R"({"role":"assistant","content":""})"))},
                            {250, chunk(delta(R"({"content":"x"})", R"("stop")"))}},
                           false);
  REQUIRE(r.fields.first_event_ms);
  REQUIRE(r.fields.ttft_ms);
  CHECK(*r.fields.first_event_ms == doctest::Approx(100));
  CHECK(*r.fields.ttft_ms == doctest::Approx(250));
}

TEST_CASE("llm openai: non-streamed bodies and HTTP errors") {
  SUBCASE("chat.completion body is the assembled answer") {
    std::string body =
        R"({"id":"chatcmpl-9","object":"chat.completion","created":5,"model":"gpt-4o-2024-08-06",)"
        R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},)"
        R"("logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":1,)"
        R"("total_tokens":9,"prompt_tokens_details":{"cached_tokens":0}},"system_fingerprint":"fp_9"})";
    LlmResult r = run_body(kOpenAiChat, R"({"model":"gpt-4o","messages":[]})", body);
    check_fields(r, R"({"provider":"openai","api":"chat.completions","model":"gpt-4o",
        "response_model":"gpt-4o-2024-08-06","stream":false,"response_id":"chatcmpl-9",
        "input_tokens":8,"output_tokens":1,"cached_input_tokens":0,"total_tokens":9,
        "finish_reason":"stop","usage":{"prompt_tokens":8,"completion_tokens":1,"total_tokens":9,
        "prompt_tokens_details":{"cached_tokens":0}}})");
    check_assembled(r, body);
  }
  SUBCASE("401 JSON error body") {
    std::string body =
        R"({"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})";
    LlmResult r = run_body(kOpenAiChat, R"({"model":"gpt-4o","messages":[]})", body, 401);
    check_fields(r, R"({"provider":"openai","api":"chat.completions","model":"gpt-4o",
        "stream":false,"error":"Incorrect API key provided.","usage":null})");
    check_assembled(r, body);
  }
  SUBCASE("ollama answers a stream request with a JSON error body") {
    std::string body =
        R"({"error":{"message":"model \"nope\" not found, try pulling it first","type":"api_error","param":null,"code":null}})";
    auto d = start("http://localhost:11434/v1/chat/completions",
                   R"({"model":"nope","stream":true,"messages":[]})", kJson, 404);
    REQUIRE(d);
    d->on_body(body, 3000);
    LlmResult r = d->finish(false);
    check_fields(r, R"({"provider":"openai-compatible","api":"chat.completions","model":"nope",
        "stream":true,"error":"model \"nope\" not found, try pulling it first","usage":null})");
    check_assembled(r, body);
  }
  SUBCASE("a body that is not JSON: no assembled answer, nothing invented") {
    LlmResult r = run_body(kOpenAiChat, R"({"model":"gpt-4o","messages":[]})",
                           "<html>502 Bad Gateway</html>", 502);
    CHECK(r.assembled.is_null());
    check_fields(r, R"({"provider":"openai","api":"chat.completions","model":"gpt-4o",
        "stream":false,"usage":null})");
  }
  SUBCASE("embeddings") {
    std::string body =
        R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2]}],)"
        R"("model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}})";
    LlmResult r = run_body("https://api.openai.com/v1/embeddings",
                           R"({"model":"text-embedding-3-small","input":"hello"})", body);
    check_fields(r, R"({"provider":"openai","api":"embeddings","model":"text-embedding-3-small",
        "response_model":"text-embedding-3-small","stream":false,"input_tokens":8,
        "total_tokens":8,"usage":{"prompt_tokens":8,"total_tokens":8}})");
    check_assembled(r, body);
  }
  SUBCASE("completions body") {
    std::string body =
        R"({"id":"cmpl-1","object":"text_completion","created":6,"model":"gpt-3.5-turbo-instruct",)"
        R"("choices":[{"text":" world","index":0,"logprobs":null,"finish_reason":"length"}],)"
        R"("usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}})";
    LlmResult r = run_body("https://api.openai.com/v1/completions",
                           R"({"model":"gpt-3.5-turbo-instruct","prompt":"hello"})", body);
    check_fields(r, R"({"provider":"openai","api":"completions","model":"gpt-3.5-turbo-instruct",
        "response_model":"gpt-3.5-turbo-instruct","stream":false,"response_id":"cmpl-1",
        "input_tokens":2,"output_tokens":1,"total_tokens":3,"finish_reason":"length",
        "usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}})");
    check_assembled(r, body);
  }
}

TEST_CASE("llm openai: completions streams") {
  // Ollama /v1/completions with include_usage: every chunk repeats usage {0,0,0} and the real
  // values come last. Pitfall 5: take the last, never sum.
  auto c = [](const std::string& text, const std::string& finish, const std::string& usage) {
    return R"({"id":"cmpl-3","object":"text_completion","created":7,"model":"llama3.2","system_fingerprint":"fp_ollama",)"
           R"("choices":[{"text":")" +
           text + R"(","index":0,"finish_reason":)" + finish + R"(}],"usage":)" + usage + "}";
  };
  const std::string zero = R"({"prompt_tokens":0,"completion_tokens":0,"total_tokens":0})";
  const std::string real = R"({"prompt_tokens":12,"completion_tokens":3,"total_tokens":15})";
  LlmResult r = run_events(
      "http://localhost:11434/v1/completions",
      R"({"model":"llama3.2","prompt":"Say","stream":true,"stream_options":{"include_usage":true}})",
      {{10, c("", "null", zero)},
       {20, c("one", "null", zero)},
       {30, c(" two", "null", zero)},
       {40, c("", R"("stop")", zero)},
       {50,
        R"({"id":"cmpl-3","object":"text_completion","created":7,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[],"usage":)" +
            real + "}"},
       {51, "[DONE]"}},
      false);
  check_fields(r, R"({"provider":"openai-compatible","api":"completions","model":"llama3.2",
      "response_model":"llama3.2","stream":true,"response_id":"cmpl-3","input_tokens":12,
      "output_tokens":3,"total_tokens":15,"finish_reason":"stop","first_event_ms":10,
      "ttft_ms":20,"events":6,"usage":)" +
                      real + "}");
  check_assembled(r, R"({"id":"cmpl-3","object":"text_completion","created":7,"model":"llama3.2",
      "system_fingerprint":"fp_ollama","choices":[{"text":"one two","index":0,"logprobs":null,
      "finish_reason":"stop"}],"usage":)" +
                         real + "}");
}

// ---- Responses -----------------------------------------------------------------------------

const std::string kResponsesUrl = "https://api.openai.com/v1/responses";
const std::string kResponsesRequest = R"({"model":"gpt-5","input":"hi","stream":true})";

std::string response_obj(const std::string& status, const std::string& output,
                         const std::string& usage, const std::string& extra = "") {
  return R"({"id":"resp_1","object":"response","created_at":1755000000,"status":")" + status +
         R"(","model":"gpt-5-2025-08-07","output":)" + output + R"(,"error":null,)" +
         R"("incomplete_details":null,"usage":)" + usage + extra + "}";
}

Ev rev(int64_t at, const std::string& type, const std::string& body) {
  return {at, R"({"type":")" + type + R"(",)" + body + "}", type};
}

const std::string kMessageItem =
    R"({"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"text":"Hello"}]})";
const std::string kRespUsage =
    R"({"input_tokens":30,"input_tokens_details":{"cached_tokens":5},"output_tokens":12,"output_tokens_details":{"reasoning_tokens":8},"total_tokens":42})";

std::vector<Ev> responses_prefix() {
  return {
      rev(100, "response.created",
          R"("sequence_number":0,"response":)" + response_obj("in_progress", "[]", "null")),
      rev(101, "response.in_progress",
          R"("sequence_number":1,"response":)" + response_obj("in_progress", "[]", "null")),
      rev(200, "response.output_item.added",
          R"("sequence_number":2,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]})"),
      rev(210, "response.reasoning_summary_part.added",
          R"("sequence_number":3,"item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""})"),
      rev(220, "response.reasoning_summary_text.delta",
          R"("sequence_number":4,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Thinking")"),
      rev(230, "response.output_item.done",
          R"("sequence_number":5,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"Thinking"}]})"),
      rev(240, "response.output_item.added",
          R"("sequence_number":6,"output_index":1,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]})"),
      rev(250, "response.content_part.added",
          R"("sequence_number":7,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"text":""})"),
      rev(260, "response.output_text.delta",
          R"("sequence_number":8,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Hel","logprobs":[])"),
      rev(270, "response.output_text.delta",
          R"("sequence_number":9,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"lo","logprobs":[])"),
  };
}

TEST_CASE("llm openai: responses stream completed: the final response is the answer") {
  std::vector<Ev> events = responses_prefix();
  std::string output =
      R"([{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"Thinking"}]},)" +
      kMessageItem + "]";
  events.push_back(rev(
      280, "response.output_text.done",
      R"("sequence_number":10,"item_id":"msg_1","output_index":1,"content_index":0,"text":"Hello")"));
  events.push_back(rev(290, "response.output_item.done",
                       R"("sequence_number":11,"output_index":1,"item":)" + kMessageItem));
  std::string final_response = response_obj("completed", output, kRespUsage);
  events.push_back(
      rev(300, "response.completed", R"("sequence_number":12,"response":)" + final_response));
  LlmResult r = run_events(kResponsesUrl, kResponsesRequest, events, false);
  check_fields(r, R"({"provider":"openai","api":"responses","model":"gpt-5",
      "response_model":"gpt-5-2025-08-07","stream":true,"response_id":"resp_1",
      "input_tokens":30,"output_tokens":12,"cached_input_tokens":5,"reasoning_tokens":8,
      "total_tokens":42,"finish_reason":"completed","first_event_ms":100,"ttft_ms":220,
      "events":13,"usage":)" +
                      kRespUsage + "}");
  check_assembled(r, final_response);
}

TEST_CASE("llm openai: responses stream cut before response.completed is rebuilt") {
  LlmResult r = run_events(kResponsesUrl, kResponsesRequest, responses_prefix(), true);
  check_fields(r, R"({"provider":"openai","api":"responses","model":"gpt-5",
      "response_model":"gpt-5-2025-08-07","stream":true,"response_id":"resp_1",
      "first_event_ms":100,"ttft_ms":220,"events":10,
      "error":"stream ended before response.completed","usage":null})");
  check_assembled(
      r,
      response_obj(
          "in_progress",
          R"([{"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"Thinking"}]},
                                      {"id":"msg_1","type":"message","status":"in_progress","role":"assistant",
                                       "content":[{"type":"output_text","annotations":[],"text":"Hello"}]}])",
          "null"));
}

TEST_CASE("llm openai: responses stream rows") {
  const std::string created =
      R"("sequence_number":0,"response":)" + response_obj("in_progress", "[]", "null");
  SUBCASE("function call arguments are content and are assembled") {
    LlmResult r = run_events(
        kResponsesUrl, kResponsesRequest,
        {rev(10, "response.created", created),
         rev(20, "response.output_item.added",
             R"("output_index":0,"item":{"id":"fc_1","type":"function_call","status":"in_progress","arguments":"","call_id":"call_1","name":"f"})"),
         rev(30, "response.function_call_arguments.delta",
             R"("item_id":"fc_1","output_index":0,"delta":"")"),
         rev(40, "response.function_call_arguments.delta",
             R"("item_id":"fc_1","output_index":0,"delta":"{\"a\":")"),
         rev(50, "response.function_call_arguments.delta",
             R"("item_id":"fc_1","output_index":0,"delta":"1}")")},
        true);
    CHECK(r.fields.ttft_ms == doctest::Approx(40));
    CHECK(r.fields.error == "stream ended before response.completed");
    check_assembled(
        r,
        response_obj(
            "in_progress",
            R"([{"id":"fc_1","type":"function_call","status":"in_progress","arguments":"{\"a\":1}","call_id":"call_1","name":"f"}])",
            "null"));
  }
  SUBCASE("error event") {
    LlmResult r = run_events(
        kResponsesUrl, kResponsesRequest,
        {rev(10, "response.created", created),
         rev(20, "error",
             R"("code":"server_error","message":"Something went wrong","param":null,"sequence_number":1)")},
        false);
    CHECK(r.fields.error == "Something went wrong");
    CHECK(!r.fields.ttft_ms);
  }
  SUBCASE("response.failed carries the error") {
    LlmResult r = run_events(
        kResponsesUrl, kResponsesRequest,
        {rev(10, "response.created", created),
         rev(20, "response.failed",
             R"("response":{"id":"resp_1","object":"response","status":"failed","model":"gpt-5","output":[],"error":{"code":"server_error","message":"The model failed"},"incomplete_details":null,"usage":null})")},
        false);
    CHECK(r.fields.error == "The model failed");
    CHECK(r.fields.finish_reason == "failed");
    CHECK(r.fields.usage.is_null());
    CHECK(!r.fields.input_tokens);
  }
  SUBCASE("response.incomplete: the reason is the finish_reason") {
    LlmResult r = run_events(
        kResponsesUrl, kResponsesRequest,
        {rev(10, "response.created", created),
         rev(20, "response.incomplete",
             R"("response":{"id":"resp_1","object":"response","status":"incomplete","model":"gpt-5","output":[],"error":null,"incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":3,"output_tokens":16,"total_tokens":19}})")},
        false);
    CHECK(!r.fields.error);
    CHECK(r.fields.finish_reason == "max_output_tokens");
    CHECK(r.fields.input_tokens == 3);
    CHECK(!r.fields.cached_input_tokens);  // no details sent: absent, not 0
    CHECK(r.fields.total_tokens == 19);
  }
  SUBCASE("non-streamed response body (error: null is not an error)") {
    std::string body = response_obj("completed", "[" + kMessageItem + "]", kRespUsage);
    auto d = start(kResponsesUrl, R"({"model":"gpt-5","input":"hi"})", kJson);
    REQUIRE(d);
    d->on_body(body, 9000);
    LlmResult r = d->finish(false);
    check_fields(r, R"({"provider":"openai","api":"responses","model":"gpt-5",
        "response_model":"gpt-5-2025-08-07","stream":false,"response_id":"resp_1",
        "input_tokens":30,"output_tokens":12,"cached_input_tokens":5,"reasoning_tokens":8,
        "total_tokens":42,"finish_reason":"completed","usage":)" +
                        kRespUsage + "}");
    check_assembled(r, body);
  }
}

TEST_CASE("llm openai: llm_fields_json key order and omission") {
  lp::logsrv::reading::LlmFields f;
  f.provider = "openai";
  f.api = "chat.completions";
  f.model = "m";
  f.input_tokens = 0;  // reported 0 stays
  f.cost = 0.5;
  f.events = 3;
  nlohmann::ordered_json j = lp::logsrv::reading::llm_fields_json(f);
  CHECK(j.dump() == R"({"provider":"openai","api":"chat.completions","model":"m","stream":false,)"
                    R"("input_tokens":0,"cost":0.5,"events":3,"usage":null})");
  f.response_model = "r";
  f.response_id = "id";
  f.output_tokens = 1;
  f.cached_input_tokens = 2;
  f.cache_creation_input_tokens = 3;
  f.reasoning_tokens = 4;
  f.total_tokens = 5;
  f.finish_reason = "stop";
  f.first_event_ms = 1.5;
  f.ttft_ms = 2.5;
  f.error = "e";
  f.usage = {{"a", 1}};
  j = lp::logsrv::reading::llm_fields_json(f);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  CHECK(keys == std::vector<std::string>{
                    "provider", "api", "model", "response_model", "stream", "response_id",
                    "input_tokens", "output_tokens", "cached_input_tokens",
                    "cache_creation_input_tokens", "reasoning_tokens", "total_tokens", "cost",
                    "finish_reason", "first_event_ms", "ttft_ms", "events", "error", "usage"});
}

// ---- recognition ---------------------------------------------------------------------------

struct DetectRow {
  const char* name;
  std::string method;
  std::string url;
  std::string body;
  Headers response_headers;
  const char* provider;  // nullptr: not an LLM call
  const char* api;
  bool stream;
  const char* model;  // nullptr: absent
};

TEST_CASE("llm openai: start_derivation recognises OpenAI-shaped calls") {
  const std::string chat = R"({"model":"gpt-4o","messages":[]})";
  const DetectRow rows[] = {
      {"openai chat", "POST", "https://api.openai.com/v1/chat/completions", chat, kJson, "openai",
       "chat.completions", false, "gpt-4o"},
      {"host with port and query", "POST", "https://API.OpenAI.com:443/v1/chat/completions?x=1",
       chat, kJson, "openai", "chat.completions", false, "gpt-4o"},
      {"stream from the request body", "POST", "https://api.openai.com/v1/chat/completions",
       R"({"model":"gpt-4o","stream":true})", kJson, "openai", "chat.completions", true, "gpt-4o"},
      {"stream from the response content type", "POST",
       "https://api.openai.com/v1/chat/completions", chat, kSse, "openai", "chat.completions", true,
       "gpt-4o"},
      {"stream must be boolean true", "POST", "https://api.openai.com/v1/chat/completions",
       R"({"model":"gpt-4o","stream":"yes"})", kJson, "openai", "chat.completions", false,
       "gpt-4o"},
      {"openrouter", "POST", "https://openrouter.ai/api/v1/chat/completions", chat, kJson,
       "openrouter", "chat.completions", false, "gpt-4o"},
      {"lm studio", "POST", "http://localhost:1234/v1/chat/completions", chat, kJson,
       "openai-compatible", "chat.completions", false, "gpt-4o"},
      {"ollama completions", "POST", "http://localhost:11434/v1/completions",
       R"({"model":"llama3","prompt":"x"})", kJson, "openai-compatible", "completions", false,
       "llama3"},
      {"vllm ipv6 host", "POST", "http://[::1]:8000/v1/embeddings", R"({"model":"e5","input":"x"})",
       kJson, "openai-compatible", "embeddings", false, "e5"},
      {"responses", "POST", "https://api.openai.com/v1/responses/",
       R"({"model":"gpt-5","input":"x","stream":true})", kSse, "openai", "responses", true,
       "gpt-5"},
      {"no model in the body", "POST", "https://api.openai.com/v1/chat/completions",
       R"({"messages":[]})", kJson, "openai", "chat.completions", false, nullptr},
      {"model not a string", "POST", "https://api.openai.com/v1/chat/completions",
       R"({"model":42})", kJson, "openai", "chat.completions", false, nullptr},
      {"GET", "GET", "https://api.openai.com/v1/chat/completions", chat, kJson, nullptr, nullptr,
       false, nullptr},
      {"GET a stored response", "GET", "https://api.openai.com/v1/responses/resp_1", "", kJson,
       nullptr, nullptr, false, nullptr},
      {"unknown path", "POST", "https://api.openai.com/v1/files", chat, kJson, nullptr, nullptr,
       false, nullptr},
      {"ollama native api", "POST", "http://localhost:11434/api/chat", chat, kJson, nullptr,
       nullptr, false, nullptr},
      {"non-JSON body", "POST", "https://api.openai.com/v1/chat/completions", "model=gpt-4o", kJson,
       nullptr, nullptr, false, nullptr},
      {"JSON body not an object", "POST", "https://api.openai.com/v1/chat/completions", "[1,2]",
       kJson, nullptr, nullptr, false, nullptr},
      {"empty body", "POST", "https://api.openai.com/v1/chat/completions", "", kJson, nullptr,
       nullptr, false, nullptr},
      {"assistants thread messages are not Anthropic", "POST",
       "https://api.openai.com/v1/threads/thread_1/messages", R"({"role":"user","content":"x"})",
       kJson, nullptr, nullptr, false, nullptr},
      {"empty destination", "POST", "", chat, kJson, nullptr, nullptr, false, nullptr},
  };
  for (const DetectRow& row : rows) {
    SUBCASE(row.name) {
      auto d = start(row.url, row.body, row.response_headers, 200, row.method);
      if (row.provider == nullptr) {
        CHECK(d == nullptr);
        continue;
      }
      REQUIRE(d);
      // The log server skips reading request bodies this says no to: never for a real call.
      CHECK(lp::logsrv::reading::may_be_llm_call(row.method, row.url));
      LlmResult r = d->finish(false);
      CHECK(r.fields.provider == row.provider);
      CHECK(r.fields.api == row.api);
      CHECK(r.fields.stream == row.stream);
      if (row.model) {
        CHECK(r.fields.model == std::string(row.model));
      } else {
        CHECK(!r.fields.model);
      }
    }
  }
}

TEST_CASE("llm openai: start_derivation dispatches Anthropic and Gemini calls") {
  const std::string claude = R"({"model":"claude-sonnet-4-5","max_tokens":100,"messages":[]})";
  const std::string gemini = R"({"contents":[{"role":"user","parts":[{"text":"hi"}]}]})";
  const DetectRow rows[] = {
      {"anthropic", "POST", "https://api.anthropic.com/v1/messages", claude, kJson, "anthropic",
       "messages", false, "claude-sonnet-4-5"},
      {"anthropic stream", "POST", "https://api.anthropic.com/v1/messages",
       R"({"model":"claude-x","max_tokens":1,"stream":true,"messages":[]})", kSse, "anthropic",
       "messages", true, "claude-x"},
      {"anthropic count_tokens is not a call", "POST",
       "https://api.anthropic.com/v1/messages/count_tokens", claude, kJson, nullptr, nullptr, false,
       nullptr},
      {"anthropic-compatible on another host", "POST", "http://localhost:1234/v1/messages", claude,
       kJson, "anthropic", "messages", false, "claude-sonnet-4-5"},
      {"gemini-compatible on another host", "POST",
       "http://127.0.0.1:8000/v1beta/models/gemma-3:generateContent", gemini, kJson, "gemini",
       "generateContent", false, "gemma-3"},
      {"openrouter anthropic shape", "POST", "https://openrouter.ai/api/v1/messages", claude, kJson,
       "openrouter", "messages", false, "claude-sonnet-4-5"},
      {"gemini generateContent", "POST",
       "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
       gemini, kJson, "gemini", "generateContent", false, "gemini-2.5-flash"},
      {"gemini stream alt=sse", "POST",
       "https://generativelanguage.googleapis.com/v1beta/models/"
       "gemini-2.5-pro:streamGenerateContent?alt=sse",
       gemini, kSse, "gemini", "generateContent", true, "gemini-2.5-pro"},
      {"gemini stream as a JSON array", "POST",
       "https://generativelanguage.googleapis.com/v1beta/models/"
       "gemini-2.5-pro:streamGenerateContent",
       gemini, kJson, "gemini", "generateContent", true, "gemini-2.5-pro"},
      {"gemini countTokens is not a call", "POST",
       "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:countTokens", gemini,
       kJson, nullptr, nullptr, false, nullptr},
  };
  for (const DetectRow& row : rows) {
    SUBCASE(row.name) {
      auto d = start(row.url, row.body, row.response_headers, 200, row.method);
      if (row.provider == nullptr) {
        CHECK(d == nullptr);
        continue;
      }
      REQUIRE(d);
      // The log server skips reading request bodies this says no to: never for a real call.
      CHECK(lp::logsrv::reading::may_be_llm_call(row.method, row.url));
      LlmResult r = d->finish(false);
      CHECK(r.fields.provider == row.provider);
      CHECK(r.fields.api == row.api);
      CHECK(r.fields.stream == row.stream);
      if (row.model) {
        CHECK(r.fields.model == std::string(row.model));
      } else {
        CHECK(!r.fields.model);
      }
    }
  }
}

TEST_CASE("llm: a body that is not a JSON object or array is no answer, for every API") {
  using namespace std::string_literals;
  const std::string chat = R"({"model":"m","messages":[]})";
  const std::string claude = R"({"model":"c","max_tokens":1,"messages":[]})";
  const std::string gemini = R"({"contents":[]})";
  const std::string gemini_url = "https://generativelanguage.googleapis.com/v1beta/models/g:";
  const std::pair<std::string, std::string> calls[] = {
      {"https://api.openai.com/v1/chat/completions", chat},
      {"https://api.openai.com/v1/completions", R"({"model":"m","prompt":"p"})"},
      {"https://api.openai.com/v1/embeddings", R"({"model":"m","input":"x"})"},
      {"https://api.openai.com/v1/responses", R"({"model":"m","input":"x"})"},
      {"https://api.anthropic.com/v1/messages", claude},
      {gemini_url + "generateContent", gemini},
      {gemini_url + "streamGenerateContent", gemini},
  };
  // nlohmann's parser stops at a NUL byte: without the guard "9\0..." would read as 9 and
  // "{...}\0..." as the object, hiding what follows.
  const std::string bodies[] = {
      "9",
      R"("text")",
      "true",
      "null",
      "9\0{\"candidates\":[]}"s,
      "{\"id\":\"x\"}\0tail"s,
      "[{\"candidates\":[]}]\0tail"s,
  };
  for (const auto& [url, request] : calls) {
    for (const std::string& body : bodies) {
      CAPTURE(url);
      CAPTURE(body);
      LlmResult r = run_body(url, request, body);
      CHECK(r.assembled.is_null());
    }
    // A request body holding a NUL byte is not JSON, so no call is recognised.
    CHECK(start(url, request + "\0"s, kJson) == nullptr);
  }
}

TEST_CASE("llm openai: may_be_llm_call rules out what no API here uses") {
  const struct {
    const char* method;
    const char* url;
    bool may;
  } rows[] = {
      {"POST", "https://api.openai.com/v1/chat/completions", true},
      {"POST", "https://api.anthropic.com/v1/messages", true},
      {"POST", "http://h/v1beta/models/g:streamGenerateContent?alt=sse", true},
      {"GET", "https://api.openai.com/v1/chat/completions", false},
      {"PUT", "https://api.openai.com/v1/responses", false},
      {"POST", "http://127.0.0.1:9/upload", false},
      {"POST", "https://api.openai.com/v1/files", false},
      {"POST", "http://localhost:11434/api/chat", false},
      {"POST", "https://api.openai.com/v1/chat/completions/x", false},
      {"POST", "", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.url);
    CHECK(lp::logsrv::reading::may_be_llm_call(row.method, row.url) == row.may);
  }
}

TEST_CASE("llm openai: hostile events never throw") {
  const char* datas[] = {
      "",
      "null",
      "[]",
      "42",
      R"({"choices":"x"})",
      R"({"choices":[null,1,{"index":-1},{"index":1e30},{"index":"0"}]})",
      R"({"choices":[{"index":0,"delta":{"content":5,"tool_calls":[{"index":99999999}],"role":7}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"function":"x"},{"id":"a"},{}]}}]})",
      R"({"usage":"many","error":null,"id":5})",
      R"({"error":{"message":7}})"};
  for (const std::string& url : {kOpenAiChat, std::string("http://h/v1/completions"), kResponsesUrl,
                                 std::string("http://h/v1/embeddings")}) {
    auto d = start(url, R"({"model":"m","stream":true})");
    REQUIRE(d);
    for (const char* data : datas) d->on_event(SseEvent{"message", data, ""}, std::nullopt);
    for (const char* type : {"response.output_text.delta", "response.output_item.added",
                             "response.completed", "error", "response.content_part.added"}) {
      for (const char* data : datas) d->on_event(SseEvent{type, data, ""}, 5);
      d->on_event(
          SseEvent{
              type,
              std::string(R"({"type":")") + type +
                  R"(","output_index":0,"content_index":0,"delta":"x","item":5,"part":{},"response":[]})",
              ""},
          5);
    }
    LlmResult r = d->finish(true);
    CHECK_NOTHROW(r.assembled.dump());
    CHECK_NOTHROW(lp::logsrv::reading::llm_fields_json(r.fields).dump());
  }
}

}  // namespace
