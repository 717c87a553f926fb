// OpenAI-shaped APIs (chat.completions, completions, embeddings, responses), as served by
// OpenAI, OpenRouter and compatible servers (vLLM, Ollama, LM Studio). Streams are rebuilt into
// the non-streaming answer the way the official SDKs do it (openai-node ChatCompletionStream,
// ResponseStream); see /work/shared/notes/llm-trace-formats.md §2, §3, §5, §7.
#include <map>

#include "log-server/reading/llm_internal.h"

namespace lp::logsrv::reading::detail {
namespace {

// Choice and tool-call indices come from the wire: bound them so that a hostile stream cannot
// make us keep a million empty entries.
constexpr int64_t kMaxIndex = 1024;

// The message of an `error` payload: {"error":{"message":...}}, {"error":"..."}, or the
// Responses `error` event {type:"error", message} / {type:"error", error:{message}}.
std::optional<std::string> error_message_of(const json& error) {
  if (error.is_string()) return error.get<std::string>();
  if (!error.is_object()) return std::nullopt;
  if (auto m = get_string(error, "message")) return m;
  if (auto t = get_string(error, "type")) return t;
  if (auto c = get_string(error, "code")) return c;
  return std::string("upstream error");
}

// A top-level non-null "error" member (success bodies of the Responses API carry "error":null).
std::optional<std::string> top_level_error(const json& j) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find("error");
  if (it == j.end() || it->is_null()) return std::nullopt;
  return error_message_of(*it);
}

bool non_empty_string(const json& j) {
  return j.is_string() && !j.get_ref<const std::string&>().empty();
}

std::optional<int64_t> get_index(const json& j) {
  auto i = get_int(j, "index");
  if (i && (*i < 0 || *i >= kMaxIndex)) return std::nullopt;
  return i;
}

// Chat and completions usage: prompt_tokens includes cached tokens already (§2).
void apply_chat_usage(LlmFields& f, const json& usage) {
  if (!usage.is_object()) return;
  f.usage = usage;
  f.input_tokens = get_int(usage, "prompt_tokens");
  f.output_tokens = get_int(usage, "completion_tokens");
  if (const json* d = get_object(usage, "prompt_tokens_details")) {
    f.cached_input_tokens = get_int(*d, "cached_tokens");
    f.cache_creation_input_tokens = get_int(*d, "cache_write_tokens");
  }
  if (const json* d = get_object(usage, "completion_tokens_details")) {
    f.reasoning_tokens = get_int(*d, "reasoning_tokens");
  }
  f.cost = get_number(usage, "cost");  // OpenRouter
  fill_total(f, get_int(usage, "total_tokens"));
}

// Responses usage: input_tokens includes cached tokens (§3).
void apply_responses_usage(LlmFields& f, const json& usage) {
  if (!usage.is_object()) return;
  f.usage = usage;
  f.input_tokens = get_int(usage, "input_tokens");
  f.output_tokens = get_int(usage, "output_tokens");
  if (const json* d = get_object(usage, "input_tokens_details")) {
    f.cached_input_tokens = get_int(*d, "cached_tokens");
    f.cache_creation_input_tokens = get_int(*d, "cache_write_tokens");
  }
  if (const json* d = get_object(usage, "output_tokens_details")) {
    f.reasoning_tokens = get_int(*d, "reasoning_tokens");
  }
  f.cost = get_number(usage, "cost");
  fill_total(f, get_int(usage, "total_tokens"));
}

// The common part of the four APIs: request model, bounded text keeping, error bodies.
class OpenAiDerivation : public JsonDerivation {
 public:
  OpenAiDerivation(std::string provider, std::string api, const json& request, bool stream)
      : JsonDerivation(std::move(provider), std::move(api), stream) {
    fields_.model = get_string(request, "model");
  }

 protected:
  // Reserves room for `n` more assembled bytes; false (and an error, once) past the bound.
  bool keep(size_t n) {
    if (truncated_) return false;
    if (n > kMaxAssembledBytes - kept_bytes_) {
      truncated_ = true;
      set_error("assembled answer truncated at " + std::to_string(kMaxAssembledBytes) + " bytes");
      return false;
    }
    kept_bytes_ += n;
    return true;
  }

  void append(std::string& to, const std::string& delta) {
    if (keep(delta.size())) to += delta;
  }

  // For JSON values we accumulate (logprobs entries, output items): their serialised size.
  bool keep_json(const json& value) {
    return keep(value.dump(-1, ' ', false, json::error_handler_t::replace).size());
  }

  // A non-streamed answer (or a JSON error body answering a stream request, as Ollama does):
  // the body is the assembled answer. Returns false when there is no usable body.
  bool take_body(const json& body) {
    body_seen_ = true;
    if (!body.is_object() && !body.is_array()) return false;
    if (auto e = top_level_error(body)) set_error(*e);
    // Not counted against kMaxAssembledBytes: the caller already bounds decoded bodies
    // (max_decoded_bytes) and this is the body itself, not something we grow.
    body_ = body;
    return true;
  }

  // Fills response id/model/usage from a non-streamed body in the chat/completions shape.
  void fields_from_chat_body(const json& body) {
    fields_.response_id = get_string(body, "id");
    fields_.response_model = get_string(body, "model");
    if (const json* choices = get_array(body, "choices"); choices && !choices->empty()) {
      fields_.finish_reason = get_string(choices->front(), "finish_reason");
    }
    if (const json* usage = get_object(body, "usage")) apply_chat_usage(fields_, *usage);
  }

  // The assembled answer when a body came instead of a stream (the body itself); returns
  // whether it did, so a subclass assembles from its events only otherwise.
  bool assembled_from_body(LlmResult& result) const {
    if (!body_seen_) return false;
    if (!body_.is_null()) result.assembled = ojson(body_);
    return true;
  }

  bool truncated_ = false;
  bool body_seen_ = false;
  json body_;  // the non-streamed body, when one came
};

// chat.completions and completions share the non-streamed shape.
class ChatShapedDerivation : public OpenAiDerivation {
 public:
  using OpenAiDerivation::OpenAiDerivation;

 protected:
  void on_json_body(const json& body) override {
    if (take_body(body)) fields_from_chat_body(body);
  }
};

// ---- chat.completions -------------------------------------------------------------------

struct ToolCallSnapshot {
  std::optional<std::string> id;
  std::optional<std::string> type;
  bool has_function = false;
  std::optional<std::string> name;
  std::string arguments;
  json extra = json::object();  // other members, last value wins (as the SDK's Object.assign)
};

struct ChoiceSnapshot {
  std::optional<std::string> finish_reason;
  json logprobs;                // null until a chunk carries some
  json extra = json::object();  // other choice members (OpenRouter native_finish_reason...)
  std::optional<std::string> role;
  std::optional<std::string> content;  // null when no content delta arrived
  std::optional<std::string> refusal;
  // Thinking text of compatible servers (Ollama `reasoning`, vLLM/DeepSeek
  // `reasoning_content`), concatenated under the name the server used.
  std::map<std::string, std::string> reasoning;
  json message_extra = json::object();  // other delta members, last value wins
  bool has_function_call = false;       // legacy function_call
  std::optional<std::string> function_name;
  std::string function_arguments;
  std::map<int64_t, ToolCallSnapshot> tool_calls;
};

bool is_reasoning_key(const std::string& key) {
  return key == "reasoning" || key == "reasoning_content";
}

class ChatDerivation : public ChatShapedDerivation {
 public:
  using ChatShapedDerivation::ChatShapedDerivation;

 protected:
  void on_json_event(std::string_view, const json& chunk) override {
    if (!chunk.is_object()) return;
    // A mid-stream error (OpenRouter, OpenAI): {"error":{...}} and usually no choices.
    if (auto e = top_level_error(chunk)) {
      set_error(*e);
      // An error-only chunk is not part of the answer (it has no id and no choices).
      if (!chunk.contains("choices")) return;
    }
    merge_top_level(chunk);
    if (const json* choices = get_array(chunk, "choices")) {
      for (const json& choice : *choices) merge_choice(choice);
    }
  }

  void finish_into(LlmResult& result, bool) override {
    if (assembled_from_body(result) || !started_) return;
    result.assembled = assemble();
    fields_.response_id = get_string(top_, "id");
    fields_.response_model = get_string(top_, "model");
    if (!choices_.empty()) fields_.finish_reason = choices_.begin()->second.finish_reason;
    if (last_usage_.is_object()) apply_chat_usage(fields_, last_usage_);
    bool any_finish = false;
    for (const auto& [index, choice] : choices_) any_finish |= choice.finish_reason.has_value();
    if (fields_.finish_reason == "error") set_error("finish_reason: error");
    if (!any_finish) set_error("stream ended before finish_reason");
  }

 private:
  // Chunk members other than choices: the last value wins, as the SDK's Object.assign.
  void merge_top_level(const json& chunk) {
    bool first = !started_;
    started_ = true;
    for (auto it = chunk.begin(); it != chunk.end(); ++it) {
      const std::string& key = it.key();
      if (key == "choices" || key == "obfuscation" || key == "error") continue;
      if (key == "usage") {
        // A trailing usage-only chunk (or vLLM's with choices null) carries the real usage;
        // other chunks say null. Never summed, never erased by a later null.
        if (it->is_object()) last_usage_ = *it;
        has_usage_key_ = true;
        continue;
      }
      auto id = get_string(chunk, "id");
      if (first || (id && !id->empty())) top_[key] = *it;
    }
  }

  void merge_choice(const json& choice) {
    auto index = get_index(choice);
    if (!index) return;
    auto [it, inserted] = choices_.try_emplace(*index);
    ChoiceSnapshot& c = it->second;
    if (auto fr = get_string(choice, "finish_reason"); fr && !fr->empty()) c.finish_reason = fr;
    merge_logprobs(c, choice);
    for (auto m = choice.begin(); m != choice.end(); ++m) {
      const std::string& key = m.key();
      if (key == "delta" || key == "finish_reason" || key == "index" || key == "logprobs") continue;
      c.extra[key] = *m;
    }
    if (const json* delta = get_object(choice, "delta")) merge_delta(c, *delta);
  }

  void merge_logprobs(ChoiceSnapshot& c, const json& choice) {
    const json* lp = get_object(choice, "logprobs");
    if (lp == nullptr) return;
    if (!c.logprobs.is_object()) {
      c.logprobs = *lp;
      return;
    }
    for (auto m = lp->begin(); m != lp->end(); ++m) {
      json& into = c.logprobs[m.key()];
      if (m->is_array() && into.is_array()) {
        for (const json& entry : *m) {
          if (keep_json(entry)) into.push_back(entry);
        }
      } else if (!m->is_null()) {
        into = *m;
      }
    }
  }

  void merge_delta(ChoiceSnapshot& c, const json& delta) {
    bool content = false;
    for (auto m = delta.begin(); m != delta.end(); ++m) {
      const std::string& key = m.key();
      if (key == "content") {
        // The SDK concatenates any non-null content, so a role-only "" chunk gives "".
        if (m->is_string()) {
          append_opt(c.content, m->get_ref<const std::string&>());
          content |= non_empty_string(*m);
        }
      } else if (key == "refusal") {
        if (non_empty_string(*m)) {
          append_opt(c.refusal, m->get_ref<const std::string&>());
          content = true;
        }
      } else if (key == "role") {
        if (non_empty_string(*m)) c.role = m->get<std::string>();
      } else if (is_reasoning_key(key) && m->is_string()) {
        append(c.reasoning[key], m->get_ref<const std::string&>());
        content |= non_empty_string(*m);
      } else if (key == "tool_calls") {
        if (m->is_array()) content |= merge_tool_calls(c, *m);
      } else if (key == "function_call") {
        content |= merge_function_call(c, *m);
      } else {
        c.message_extra[key] = *m;
      }
    }
    if (content) mark_content();
  }

  void append_opt(std::optional<std::string>& to, const std::string& delta) {
    if (!to) to.emplace();
    append(*to, delta);
  }

  bool merge_function_call(ChoiceSnapshot& c, const json& fc) {
    if (!fc.is_object()) return false;
    c.has_function_call = true;
    auto name = get_string(fc, "name");
    if (name && !name->empty() && !c.function_name) c.function_name = name;
    auto args = get_string(fc, "arguments");
    if (args) append(c.function_arguments, *args);
    return (name && !name->empty()) || (args && !args->empty());
  }

  // Merged by each entry's index; id, type and name from their first non-empty value,
  // arguments concatenated. Ollama sends each call whole: the same code handles it.
  bool merge_tool_calls(ChoiceSnapshot& c, const json& calls) {
    bool content = false;
    for (const json& call : calls) {
      if (!call.is_object()) continue;
      std::optional<int64_t> index = get_index(call);
      if (!index && !call.contains("index")) {
        // No index at all (some compatible servers): a new call when it has an id,
        // else a continuation of the last one.
        index = c.tool_calls.empty() || get_string(call, "id")
                    ? static_cast<int64_t>(c.tool_calls.size())
                    : c.tool_calls.rbegin()->first;
        if (*index >= kMaxIndex) index.reset();
      }
      if (!index) continue;
      ToolCallSnapshot& t = c.tool_calls[*index];
      content = true;
      for (auto m = call.begin(); m != call.end(); ++m) {
        const std::string& key = m.key();
        if (key == "index") continue;
        if (key == "id" || key == "type") {
          auto& slot = key == "id" ? t.id : t.type;
          if (non_empty_string(*m) && !slot) slot = m->get<std::string>();
        } else if (key == "function") {
          if (!m->is_object()) continue;
          t.has_function = true;
          auto name = get_string(*m, "name");
          if (name && !name->empty() && !t.name) t.name = name;
          if (auto args = get_string(*m, "arguments")) append(t.arguments, *args);
        } else {
          t.extra[key] = *m;
        }
      }
    }
    return content;
  }

  ojson assemble_tool_call(const ToolCallSnapshot& t) const {
    ojson out = ojson::object();
    for (auto m = t.extra.begin(); m != t.extra.end(); ++m) out[m.key()] = ojson(*m);
    if (t.id) out["id"] = *t.id;
    if (t.type) out["type"] = *t.type;
    if (t.has_function)
      out["function"] = {{"name", t.name.value_or("")}, {"arguments", t.arguments}};
    return out;
  }

  ojson assemble_message(const ChoiceSnapshot& c) const {
    ojson m = ojson::object();
    m["role"] = c.role.value_or("assistant");
    m["content"] = c.content ? ojson(*c.content) : ojson(nullptr);
    m["refusal"] = c.refusal ? ojson(*c.refusal) : ojson(nullptr);
    for (const auto& [key, text] : c.reasoning) m[key] = text;
    for (auto e = c.message_extra.begin(); e != c.message_extra.end(); ++e) {
      if (!m.contains(e.key())) m[e.key()] = ojson(*e);
    }
    if (c.has_function_call) {
      m["function_call"] = {{"name", c.function_name.value_or("")},
                            {"arguments", c.function_arguments}};
    }
    if (!c.tool_calls.empty()) {
      ojson calls = ojson::array();
      for (const auto& [index, t] : c.tool_calls) calls.push_back(assemble_tool_call(t));
      m["tool_calls"] = std::move(calls);
    }
    return m;
  }

  // The chat.completion the SDK's finalChatCompletion() returns (§2).
  ojson assemble() const {
    ojson out = ojson::object();
    auto put_top = [&](const char* key) {
      if (auto it = top_.find(key); it != top_.end()) out[key] = ojson(*it);
    };
    put_top("id");
    out["object"] = "chat.completion";
    put_top("created");
    put_top("model");
    ojson choices = ojson::array();
    for (const auto& [index, c] : choices_) {
      ojson choice = ojson::object();
      choice["index"] = index;
      choice["message"] = assemble_message(c);
      choice["finish_reason"] = c.finish_reason ? ojson(*c.finish_reason) : ojson(nullptr);
      choice["logprobs"] = ojson(c.logprobs);
      for (auto e = c.extra.begin(); e != c.extra.end(); ++e) choice[e.key()] = ojson(*e);
      choices.push_back(std::move(choice));
    }
    out["choices"] = std::move(choices);
    if (has_usage_key_) out["usage"] = ojson(last_usage_);
    if (auto fp = top_.find("system_fingerprint"); fp != top_.end() && non_empty_string(*fp)) {
      out["system_fingerprint"] = ojson(*fp);
    }
    for (auto it = top_.begin(); it != top_.end(); ++it) {
      const std::string& key = it.key();
      if (out.contains(key) || key == "system_fingerprint") continue;
      out[key] = ojson(*it);
    }
    return out;
  }

  bool started_ = false;
  bool has_usage_key_ = false;
  json top_ = json::object();
  json last_usage_;  // null until a chunk carries a usage object
  std::map<int64_t, ChoiceSnapshot> choices_;
};

// ---- completions (legacy text completions) ------------------------------------------------

struct TextChoice {
  std::string text;
  std::optional<std::string> finish_reason;
  json logprobs;
};

class CompletionsDerivation : public ChatShapedDerivation {
 public:
  using ChatShapedDerivation::ChatShapedDerivation;

 protected:
  void on_json_event(std::string_view, const json& chunk) override {
    if (!chunk.is_object()) return;
    if (auto e = top_level_error(chunk)) set_error(*e);
    started_ = true;
    for (const char* key : {"id", "created", "model", "system_fingerprint"}) {
      if (auto it = chunk.find(key); it != chunk.end() && !it->is_null()) top_[key] = *it;
    }
    // Ollama repeats usage {0,0,0} on every chunk and sends the real one last: the last wins.
    if (const json* usage = get_object(chunk, "usage")) last_usage_ = *usage;
    if (const json* choices = get_array(chunk, "choices")) {
      for (const json& choice : *choices) merge_choice(choice);
    }
  }

  void finish_into(LlmResult& result, bool) override {
    if (assembled_from_body(result) || !started_) return;
    ojson out = ojson::object();
    if (top_.contains("id")) out["id"] = ojson(top_["id"]);
    out["object"] = "text_completion";
    if (top_.contains("created")) out["created"] = ojson(top_["created"]);
    if (top_.contains("model")) out["model"] = ojson(top_["model"]);
    ojson choices = ojson::array();
    for (const auto& [index, c] : choices_) {
      choices.push_back({{"text", c.text},
                         {"index", index},
                         {"logprobs", ojson(c.logprobs)},
                         {"finish_reason", c.finish_reason ? ojson(*c.finish_reason) : ojson()}});
    }
    out["choices"] = std::move(choices);
    if (last_usage_.is_object()) out["usage"] = ojson(last_usage_);
    if (top_.contains("system_fingerprint")) {
      out["system_fingerprint"] = ojson(top_["system_fingerprint"]);
    }
    result.assembled = std::move(out);
    fields_.response_id = get_string(top_, "id");
    fields_.response_model = get_string(top_, "model");
    if (!choices_.empty()) fields_.finish_reason = choices_.begin()->second.finish_reason;
    apply_chat_usage(fields_, last_usage_);
    bool any_finish = false;
    for (const auto& [index, c] : choices_) any_finish |= c.finish_reason.has_value();
    if (!any_finish) set_error("stream ended before finish_reason");
  }

 private:
  void merge_choice(const json& choice) {
    auto index = get_index(choice);
    if (!index) return;
    TextChoice& c = choices_[*index];
    if (auto text = get_string(choice, "text")) {
      append(c.text, *text);
      if (!text->empty()) mark_content();
    }
    if (auto fr = get_string(choice, "finish_reason"); fr && !fr->empty()) c.finish_reason = fr;
    // Legacy logprobs are parallel arrays (tokens, token_logprobs, top_logprobs, text_offset).
    if (const json* lp = get_object(choice, "logprobs")) {
      if (!c.logprobs.is_object()) c.logprobs = json::object();
      for (auto m = lp->begin(); m != lp->end(); ++m) {
        json& into = c.logprobs[m.key()];
        if (m->is_array() && into.is_array()) {
          for (const json& entry : *m) {
            if (keep_json(entry)) into.push_back(entry);
          }
        } else {
          into = *m;
        }
      }
    }
  }

  bool started_ = false;
  json top_ = json::object();
  json last_usage_;
  std::map<int64_t, TextChoice> choices_;
};

// ---- embeddings (never streamed) --------------------------------------------------------

class EmbeddingsDerivation : public OpenAiDerivation {
 public:
  using OpenAiDerivation::OpenAiDerivation;

 protected:
  void on_json_event(std::string_view, const json& data) override {
    if (auto e = top_level_error(data)) set_error(*e);
  }

  void on_json_body(const json& body) override {
    if (!take_body(body)) return;
    fields_.response_model = get_string(body, "model");
    if (const json* usage = get_object(body, "usage")) apply_chat_usage(fields_, *usage);
  }

  void finish_into(LlmResult& result, bool) override {
    if (!body_.is_null()) result.assembled = ojson(body_);
  }
};

// ---- responses ------------------------------------------------------------------------

bool is_terminal(std::string_view type) {
  return type == "response.completed" || type == "response.incomplete" || type == "response.failed";
}

bool is_lifecycle(std::string_view type) {
  return is_terminal(type) || type == "response.created" || type == "response.in_progress" ||
         type == "response.queued";
}

// Delta events whose non-empty delta is content for ttft_ms.
bool is_content_delta(std::string_view type) {
  return type == "response.output_text.delta" || type == "response.refusal.delta" ||
         type == "response.function_call_arguments.delta" ||
         type == "response.custom_tool_call_input.delta" ||
         type == "response.reasoning_summary_text.delta" || type == "response.reasoning_text.delta";
}

// Element `index` of the array `obj[key]`, or nullptr.
ojson* element(ojson* obj, const char* key, std::optional<int64_t> index) {
  if (obj == nullptr || !obj->is_object() || !index || *index < 0) return nullptr;
  auto it = obj->find(key);
  if (it == obj->end() || !it->is_array() || static_cast<size_t>(*index) >= it->size()) {
    return nullptr;
  }
  return &(*it)[static_cast<size_t>(*index)];
}

class ResponsesDerivation : public OpenAiDerivation {
 public:
  using OpenAiDerivation::OpenAiDerivation;

 protected:
  void on_json_event(std::string_view sse_type, const json& data) override {
    if (!data.is_object()) return;
    std::string type = get_string(data, "type").value_or(std::string(sse_type));
    if (type == "error") {
      const json* nested = get_object(data, "error");
      set_error(error_message_of(nested ? *nested : data).value_or("upstream error"));
      return;
    }
    if (auto e = top_level_error(data)) set_error(*e);
    if (is_lifecycle(type)) {
      // The SDK replaces its snapshot with each lifecycle event's response; the terminal one
      // is finalResponse().
      if (const json* response = get_object(data, "response")) snapshot_ = ojson(*response);
      if (is_terminal(type)) terminal_ = true;
      return;
    }
    if (is_content_delta(type)) {
      auto delta = get_string(data, "delta");
      if (delta && !delta->empty()) mark_content();
    }
    if (!terminal_) apply(type, data);
  }

  void on_json_body(const json& body) override {
    if (!take_body(body)) return;
    fields_from_response(body);
  }

  void finish_into(LlmResult& result, bool) override {
    if (assembled_from_body(result)) return;
    if (snapshot_.is_null()) {
      if (fields_.events) set_error("stream ended before response.completed");
      return;
    }
    fields_from_response(json(snapshot_));
    if (!terminal_) {
      // The last status seen ("in_progress") is not how the answer finished.
      fields_.finish_reason.reset();
      set_error("stream ended before response.completed");
    }
    result.assembled = std::move(snapshot_);
  }

 private:
  void fields_from_response(const json& r) {
    fields_.response_id = get_string(r, "id");
    fields_.response_model = get_string(r, "model");
    // Responses has no finish_reason: the status, or why it is incomplete.
    fields_.finish_reason = get_string(r, "status");
    if (const json* details = get_object(r, "incomplete_details")) {
      if (auto reason = get_string(*details, "reason")) fields_.finish_reason = reason;
    }
    if (auto e = top_level_error(r)) set_error(*e);
    if (const json* usage = get_object(r, "usage")) apply_responses_usage(fields_, *usage);
  }

  // Without response.created (a cut or odd stream) items still need somewhere to go.
  ojson& snapshot() {
    if (!snapshot_.is_object()) {
      snapshot_ = {{"object", "response"}, {"status", "in_progress"}, {"output", ojson::array()}};
    }
    if (!snapshot_.contains("output") || !snapshot_["output"].is_array()) {
      snapshot_["output"] = ojson::array();
    }
    return snapshot_;
  }

  ojson* output(const json& data) {
    return element(&snapshot(), "output", get_int(data, "output_index"));
  }

  // Puts `value` at obj[key][index]: replaces an existing element, else appends.
  void put(ojson* obj, const char* key, std::optional<int64_t> index, const json& value) {
    if (obj == nullptr || !obj->is_object() || !index || *index < 0 || *index >= kMaxIndex) return;
    if (!keep_json(value)) return;
    ojson& array = (*obj)[key];
    if (!array.is_array()) array = ojson::array();
    if (static_cast<size_t>(*index) < array.size()) {
      array[static_cast<size_t>(*index)] = ojson(value);
    } else {
      array.push_back(ojson(value));
    }
  }

  // Appends `delta` to the string obj[key] (creating it), bounded.
  void append_to(ojson* obj, const char* key, const json& data) {
    auto delta = get_string(data, "delta");
    if (obj == nullptr || !obj->is_object() || !delta || !keep(delta->size())) return;
    ojson& s = (*obj)[key];
    if (!s.is_string()) s = "";
    s.get_ref<std::string&>() += *delta;
  }

  void set_to(ojson* obj, const char* key, const json& data, const char* from) {
    auto value = get_string(data, from);
    if (obj != nullptr && obj->is_object() && value) (*obj)[key] = *value;
  }

  // The SDK's accumulator (openai-node internal/responses/response-accumulator.ts), for the
  // events that carry the answer; tool-progress events only change statuses and are skipped.
  void apply(const std::string& type, const json& data) {
    auto content_index = get_int(data, "content_index");
    auto summary_index = get_int(data, "summary_index");
    if (type == "response.output_item.added" || type == "response.output_item.done") {
      if (const json* item = get_object(data, "item")) {
        put(&snapshot(), "output", get_int(data, "output_index"), *item);
      }
    } else if (type == "response.content_part.added" || type == "response.content_part.done") {
      if (const json* part = get_object(data, "part"))
        put(output(data), "content", content_index, *part);
    } else if (type == "response.output_text.delta" || type == "response.reasoning_text.delta") {
      append_to(element(output(data), "content", content_index), "text", data);
    } else if (type == "response.output_text.done" || type == "response.reasoning_text.done") {
      set_to(element(output(data), "content", content_index), "text", data, "text");
    } else if (type == "response.refusal.delta") {
      append_to(element(output(data), "content", content_index), "refusal", data);
    } else if (type == "response.refusal.done") {
      set_to(element(output(data), "content", content_index), "refusal", data, "refusal");
    } else if (type == "response.function_call_arguments.delta") {
      append_to(output(data), "arguments", data);
    } else if (type == "response.function_call_arguments.done") {
      set_to(output(data), "arguments", data, "arguments");
    } else if (type == "response.custom_tool_call_input.delta") {
      append_to(output(data), "input", data);
    } else if (type == "response.custom_tool_call_input.done") {
      set_to(output(data), "input", data, "input");
    } else if (type == "response.reasoning_summary_part.added" ||
               type == "response.reasoning_summary_part.done") {
      if (const json* part = get_object(data, "part"))
        put(output(data), "summary", summary_index, *part);
    } else if (type == "response.reasoning_summary_text.delta") {
      append_to(element(output(data), "summary", summary_index), "text", data);
    } else if (type == "response.reasoning_summary_text.done") {
      set_to(element(output(data), "summary", summary_index), "text", data, "text");
    }
  }

  ojson snapshot_;  // null until response.created (or the first item)
  bool terminal_ = false;
};

}  // namespace

std::unique_ptr<Derivation> make_openai_chat(std::string provider, const json& request,
                                             bool stream) {
  return std::make_unique<ChatDerivation>(std::move(provider), "chat.completions", request, stream);
}

std::unique_ptr<Derivation> make_openai_completions(std::string provider, const json& request,
                                                    bool stream) {
  return std::make_unique<CompletionsDerivation>(std::move(provider), "completions", request,
                                                 stream);
}

std::unique_ptr<Derivation> make_openai_embeddings(std::string provider, const json& request) {
  return std::make_unique<EmbeddingsDerivation>(std::move(provider), "embeddings", request, false);
}

std::unique_ptr<Derivation> make_openai_responses(std::string provider, const json& request,
                                                  bool stream) {
  return std::make_unique<ResponsesDerivation>(std::move(provider), "responses", request, stream);
}

}  // namespace lp::logsrv::reading::detail
