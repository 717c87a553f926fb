// Google Gemini generateContent and streamGenerateContent (notes/llm-trace-formats.md §6).
// A stream is a sequence of GenerateContentResponse chunks, as SSE `data:` events (alt=sse, no
// [DONE]) or as one JSON array body (no alt=sse). They are merged into the one
// GenerateContentResponse a non-streaming call returns: candidates by index, their parts
// concatenated (consecutive text parts of the same kind joined), the last finishReason, the
// last usageMetadata (it is cumulative and may repeat on several chunks: never summed).
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "log-server/reading/llm_internal.h"

namespace lp::logsrv::reading::detail {
namespace {

// "RESOURCE_EXHAUSTED: Resource has been exhausted" from {"error":{code,message,status}}.
std::optional<std::string> error_message(const json& body) {
  const json* error = get_object(body, "error");
  if (!error) return std::nullopt;
  auto status = get_string(*error, "status");
  auto message = get_string(*error, "message");
  if (status && message) return *status + ": " + *message;
  if (message) return message;
  if (status) return status;
  if (auto code = get_int(*error, "code")) return "error " + std::to_string(*code);
  return std::string("error");
}

bool is_thought(const json& part) {
  auto it = part.find("thought");
  return it != part.end() && it->is_boolean() && it->get<bool>();
}

// A part that is only text (with its thought flag and signature): such parts are joined.
bool is_plain_text(const json& part) {
  if (!part.is_object() || !get_string(part, "text")) return false;
  for (auto it = part.begin(); it != part.end(); ++it) {
    if (it.key() != "text" && it.key() != "thought" && it.key() != "thoughtSignature") {
      return false;
    }
  }
  return true;
}

bool carries_content(const json& part) {
  auto text = get_string(part, "text");
  return (text && !text->empty()) || get_object(part, "functionCall") != nullptr;
}

// The response's keys in the order the API sends them (parsed JSON sorts them).
ojson ordered_response(const json& object) {
  return with_key_order(
      object, {"candidates", "promptFeedback", "usageMetadata", "modelVersion", "responseId"});
}

class Gemini final : public JsonDerivation {
 public:
  Gemini(std::string provider, std::optional<std::string> model, bool sse, bool array_stream)
      : JsonDerivation(std::move(provider), "generateContent", sse || array_stream),
        array_stream_(array_stream) {
    fields_.model = std::move(model);
  }

 protected:
  void on_json_event(std::string_view /*type*/, const json& data) override { on_chunk(data); }

  void on_json_body(const json& body) override {
    if (body.is_discarded()) return;
    if (array_stream_ && body.is_array()) {
      // Each element is one chunk. There is a single arrival time for the whole body, so
      // ttft_ms, if stamped, is the body's.
      for (const json& chunk : body) on_chunk(chunk);
      return;
    }
    if (auto error = error_message(body)) set_error(std::move(*error));
    body_ = body;
  }

  void finish_into(LlmResult& result, bool /*cut*/) override {
    if (!body_.is_null()) {
      // Not streamed: the body is the answer, shown as the upstream sent it.
      fill_fields(body_);
      result.assembled = ordered_response(body_);
      return;
    }
    if (!seen_chunk_) return;
    json response = assemble();
    fill_fields(response);
    // No [DONE] and no terminal event: the last chunk's finishReason is how a stream ends
    // (or a blocked prompt, which has no candidate at all).
    const json* feedback = get_object(response, "promptFeedback");
    if (!fields_.finish_reason && !(feedback && get_string(*feedback, "blockReason"))) {
      set_error("stream ended before finishReason");
    }
    result.assembled = ordered_response(response);
  }

 private:
  void on_chunk(const json& chunk) {
    if (!chunk.is_object()) return;
    if (auto error = error_message(chunk)) {
      set_error(std::move(*error));
      return;
    }
    seen_chunk_ = true;
    if (const json* candidates = get_array(chunk, "candidates")) {
      for (size_t i = 0; i < candidates->size(); ++i) merge_candidate((*candidates)[i], i);
    }
    // Response-level keys: the last value wins (usageMetadata is cumulative, modelVersion
    // and responseId repeat).
    for (auto it = chunk.begin(); it != chunk.end(); ++it) {
      if (it.key() == "candidates" || it->is_null()) continue;
      set_kept(top_, it.key(), *it);
    }
  }

  void merge_candidate(const json& candidate, size_t position) {
    if (!candidate.is_object()) return;
    // proto3 JSON omits index 0: the position in the chunk stands in.
    int64_t index = get_int(candidate, "index").value_or(static_cast<int64_t>(position));
    json& merged = candidates_[index];
    if (!merged.is_object()) merged = json::object();
    for (auto it = candidate.begin(); it != candidate.end(); ++it) {
      if (it.key() == "content") {
        merge_content(merged, *it);
      } else if (it.key() == "finishReason") {
        // The last non-empty one: a chunk after the final one can carry an empty value.
        if (it->is_string() && !it->get_ref<const std::string&>().empty()) merged[it.key()] = *it;
      } else if (!it->is_null()) {
        set_kept(merged, it.key(), *it);  // safetyRatings, citationMetadata...: the last value
      }
    }
  }

  void merge_content(json& merged, const json& content) {
    if (!content.is_object()) return;
    json& target = merged["content"];
    if (!target.is_object()) target = json{{"parts", json::array()}, {"role", "model"}};
    if (auto role = get_string(content, "role")) target["role"] = *role;
    const json* parts = get_array(content, "parts");
    if (!parts) return;
    json& out = target["parts"];
    if (!out.is_array()) out = json::array();
    for (const json& part : *parts) {
      if (!part.is_object()) continue;
      if (carries_content(part)) mark_content();
      append_part(out, part);
    }
  }

  // Consecutive text parts with the same thought flag become one part, so the answer reads as
  // one text and the thoughts as another; everything else (functionCall, inlineData...) stays
  // a whole part in order. A part that already holds a thoughtSignature ends its run: each
  // signature stays on a part of its own, as it must be sent back.
  void append_part(json& out, const json& part) {
    if (!keep(part.dump().size())) return;
    if (is_plain_text(part) && !out.empty()) {
      json& last = out.back();
      if (is_plain_text(last) && is_thought(last) == is_thought(part) &&
          !last.contains("thoughtSignature")) {
        last["text"].get_ref<std::string&>() += part["text"].get_ref<const std::string&>();
        if (auto it = part.find("thoughtSignature"); it != part.end()) {
          last["thoughtSignature"] = *it;
        }
        return;
      }
    }
    out.push_back(part);
  }

  json assemble() const {
    json response = top_.is_object() ? top_ : json::object();
    json candidates = json::array();
    for (const auto& [index, candidate] : candidates_) {
      json c = candidate;
      if (!c.contains("index")) c["index"] = index;
      candidates.push_back(std::move(c));
    }
    if (!candidates.empty()) response["candidates"] = std::move(candidates);
    return response;
  }

  void fill_fields(const json& response) {
    fields_.response_model = get_string(response, "modelVersion");
    fields_.response_id = get_string(response, "responseId");
    if (const json* candidates = get_array(response, "candidates");
        candidates && !candidates->empty()) {
      fields_.finish_reason = get_string(candidates->front(), "finishReason");
    }
    const json* usage = get_object(response, "usageMetadata");
    if (!usage) return;
    fields_.usage = *usage;
    fields_.input_tokens = get_int(*usage, "promptTokenCount");  // includes cached content
    fields_.cached_input_tokens = get_int(*usage, "cachedContentTokenCount");
    // thoughtsTokenCount is NOT inside candidatesTokenCount (unlike OpenAI's reasoning tokens,
    // which are inside completion_tokens): output_tokens stays candidatesTokenCount as
    // reported and the thinking is reasoning_tokens beside it (README "Token semantics").
    fields_.output_tokens = get_int(*usage, "candidatesTokenCount");
    fields_.reasoning_tokens = get_int(*usage, "thoughtsTokenCount");
    fill_total(fields_, get_int(*usage, "totalTokenCount"));
  }

  // object[key] = value. Only a new key is counted against the bound: a replaced value
  // frees the old one, and one value is bounded by the event size.
  void set_kept(json& object, const std::string& key, const json& value) {
    if (!object.contains(key) && !keep(value.dump().size())) return;
    object[key] = value;
  }

  bool keep(size_t bytes) {
    if (kept_bytes_ + bytes > kMaxAssembledBytes) {
      set_error("assembled answer truncated at " + std::to_string(kMaxAssembledBytes) + " bytes");
      return false;
    }
    kept_bytes_ += bytes;
    return true;
  }

  bool array_stream_;
  bool seen_chunk_ = false;
  std::map<int64_t, json> candidates_;  // merged, by candidate index
  json top_ = json::object();           // response-level keys, last value each
  json body_;                           // the non-streamed body, when one came
};

}  // namespace

std::unique_ptr<Derivation> make_gemini(std::string provider, std::optional<std::string> model,
                                        bool sse, bool array_stream) {
  return std::make_unique<Gemini>(std::move(provider), std::move(model), sse, array_stream);
}

}  // namespace lp::logsrv::reading::detail
