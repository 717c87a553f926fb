// LLM calls recognised in a captured exchange: the fields the index keeps and the API shows
// (`llm` in /requests/{id}, DESIGN.md §7) and the answer assembled as the provider returns it
// without streaming. Pure code: the caller (the deriver) reads and decodes the stored files and
// feeds this; nothing here does I/O. One Derivation per exchange, one thread at a time.
//
// Token semantics (README "Token semantics"): numbers exactly as the upstream reported them,
// never counted locally; a number the upstream did not send stays unset (absent is not 0);
// cumulative usage repeated on several events is taken from the last one, never summed;
// input_tokens includes cached and cache-creation tokens (Anthropic: input + cache read +
// cache creation); total_tokens as reported, else input + output when both are known.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/http_message.h"
#include "log-server/reading/sse.h"

namespace lp::logsrv::reading {

using Headers = lp::HeaderList;  // as stored, in order, repeats kept

// What is known of the exchange before its response body is read. Views and pointers must
// outlive the start() call only (the Derivation copies what it keeps).
struct LlmExchange {
  std::string_view method;  // "POST"
  std::string_view
      destination;  // upstream URL as forwarded: "https://api.openai.com/v1/chat/completions?x=1"
  std::string_view route;  // the proxy route name
  const Headers* request_headers = nullptr;
  std::string_view request_body;              // decoded (Content-Encoding undone); empty when none
  std::optional<int> status;                  // response status, if a response head arrived
  const Headers* response_headers = nullptr;  // nullptr when no response head
};

struct LlmFields {
  std::string provider;  // openai | anthropic | openrouter | gemini | openai-compatible
  std::string
      api;  // chat.completions | responses | completions | embeddings | messages | generateContent
  std::optional<std::string> model;           // asked for (request body, or Gemini's path)
  std::optional<std::string> response_model;  // named by the response
  bool stream = false;
  std::optional<std::string> response_id;
  std::optional<int64_t> input_tokens;
  std::optional<int64_t> output_tokens;
  std::optional<int64_t> cached_input_tokens;
  std::optional<int64_t> cache_creation_input_tokens;
  std::optional<int64_t> reasoning_tokens;
  std::optional<int64_t> total_tokens;
  std::optional<double> cost;  // as the upstream reported it (OpenRouter credits)
  std::optional<std::string> finish_reason;
  std::optional<double> first_event_ms;  // request start -> first dispatched event
  std::optional<double> ttft_ms;         // request start -> first event carrying content
  std::optional<int64_t> events;         // SSE events dispatched (streams only)
  std::optional<std::string> error;      // the provider's error message, mid-stream included
  nlohmann::json usage;                  // the provider's final usage object; null if none
};

// The `llm` object of the API, keys in DESIGN.md §7 order; unset numbers are omitted.
nlohmann::ordered_json llm_fields_json(const LlmFields& f);

struct LlmResult {
  LlmFields fields;
  // The non-streaming answer in the provider's own shape (chat.completion, response,
  // message, GenerateContentResponse; for a non-streamed call the decoded body as JSON);
  // null when there is nothing to show (no response, an unparseable body).
  nlohmann::ordered_json assembled;
};

class Derivation {
 public:
  virtual ~Derivation() = default;
  // A streamed response (text/event-stream): every dispatched event in order, with its
  // arrival in µs since the exchange started (nullopt when the capture has no times).
  virtual void on_event(const SseEvent& event, std::optional<int64_t> arrival_us) = 0;
  // A non-streamed response: the decoded body, whole, once. For Gemini's
  // streamGenerateContent without alt=sse this is the JSON array of responses.
  virtual void on_body(std::string_view body, std::optional<int64_t> arrival_us) = 0;
  // The response ended (`cut`: it did not end properly: truncated, aborted, upstream error).
  virtual LlmResult finish(bool cut) = 0;
};

// Recognises an LLM call by destination host and path, and the request body's shape;
// nullptr when it is not one. Never throws on hostile input.
std::unique_ptr<Derivation> start_derivation(const LlmExchange& exchange);

// False when start_derivation() returns nullptr whatever the body: not a POST, or a path no
// API recognised here uses. Lets a caller skip reading (and holding) the request body.
bool may_be_llm_call(std::string_view method, std::string_view destination);

// Upper bound on what a Derivation keeps (assembled text, tool arguments): past it the
// assembled answer stops growing and fields.error says so.
inline constexpr size_t kMaxAssembledBytes = 64 * 1024 * 1024;

}  // namespace lp::logsrv::reading
