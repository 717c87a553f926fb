// Shared by the per-API derivations (llm_openai.cc, llm_anthropic.cc, llm_gemini.cc) and the
// dispatcher (llm.cc). Not for other callers: use llm.h.
#pragma once

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "log-server/reading/llm.h"

namespace lp::logsrv::reading::detail {

using json = nlohmann::ordered_json;  // keeps the provider's key order in assembled answers
using ojson = nlohmann::ordered_json;

// The bookkeeping every API shares: counts dispatched events, stamps first_event_ms on the
// first and ttft_ms when a subclass calls mark_content(), parses each event's data and the
// body as JSON (never throwing), and calls the subclass with the parsed value.
class JsonDerivation : public Derivation {
 public:
  JsonDerivation(std::string provider, std::string api, bool stream);

  void on_event(const SseEvent& event, std::optional<int64_t> arrival_us) final;
  void on_body(std::string_view body, std::optional<int64_t> arrival_us) final;
  LlmResult finish(bool cut) final;

 protected:
  // One event whose data parsed as JSON. `type` is the SSE event type ("message" if none).
  virtual void on_json_event(std::string_view type, const json& data) = 0;
  // One event whose data is not JSON ("[DONE]", garbage): ignored unless overridden.
  virtual void on_other_event(const SseEvent&) {}
  // The whole non-streamed body, parsed (is_discarded() when it is not a JSON object or array).
  virtual void on_json_body(const json& body) = 0;
  // Fill result.assembled and the remaining fields; `cut` as passed to finish().
  virtual void finish_into(LlmResult& result, bool cut) = 0;

  // The current event (or body) carries content: stamps ttft_ms once.
  void mark_content();
  // Records an error message (the first one wins; later ones are ignored).
  void set_error(std::string message);

  LlmFields fields_;
  size_t kept_bytes_ = 0;  // for kMaxAssembledBytes accounting by subclasses

 private:
  std::optional<int64_t> current_arrival_us_;
};

// Helpers for reading untrusted JSON without exceptions.
std::optional<std::string> get_string(const json& j, std::string_view key);
std::optional<int64_t> get_int(const json& j, std::string_view key);  // integers only
std::optional<double> get_number(const json& j, std::string_view key);
const json* get_object(const json& j, std::string_view key);  // nullptr unless an object
const json* get_array(const json& j, std::string_view key);   // nullptr unless an array
// `object`'s keys in `order` first, then the others as parsed (a parsed `json` sorts its keys;
// an assembled answer reads best in the provider's order). Non-objects are returned as is.
ojson with_key_order(const json& object, std::initializer_list<std::string_view> order);
// total_tokens rule: as reported, else input + output when both are known.
void fill_total(LlmFields& f, std::optional<int64_t> reported_total);

// Factories, one per API. `request` is the parsed request body (may be discarded/non-object).
std::unique_ptr<Derivation> make_openai_chat(std::string provider, const json& request,
                                             bool stream);
std::unique_ptr<Derivation> make_openai_completions(std::string provider, const json& request,
                                                    bool stream);
std::unique_ptr<Derivation> make_openai_embeddings(std::string provider, const json& request);
std::unique_ptr<Derivation> make_openai_responses(std::string provider, const json& request,
                                                  bool stream);
std::unique_ptr<Derivation> make_anthropic_messages(std::string provider, const json& request,
                                                    bool stream);
// `model` from the path ("gemini-2.5-flash" of /v1beta/models/gemini-2.5-flash:...);
// `sse` when the response is an event stream, `array_stream` for streamGenerateContent
// without alt=sse (one JSON array of responses as the body).
std::unique_ptr<Derivation> make_gemini(std::string provider, std::optional<std::string> model,
                                        bool sse, bool array_stream);

}  // namespace lp::logsrv::reading::detail
