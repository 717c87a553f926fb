// Anthropic Messages (POST /v1/messages), streamed or not. The stream is rebuilt into the
// `message` the non-streaming call returns, the way @anthropic-ai/sdk's
// MessageStream.finalMessage() does it (notes/llm-trace-formats.md §4): the snapshot starts as
// message_start.message, content_block_start pushes a block, deltas apply by index, and
// message_delta updates stop fields and usage field by field (cumulative values, never added).
// Where the SDK would throw (events before message_start, tool input that is not JSON) we keep
// what we have and say so in fields.error instead: a capture is read, never rejected.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "log-server/reading/json_text.h"
#include "log-server/reading/llm_internal.h"

namespace lp::logsrv::reading::detail {
namespace {

// Blocks whose `input` is streamed as partial JSON (the SDK's tracksToolInput()).
bool tracks_tool_input(std::string_view type) {
  return type == "tool_use" || type == "server_tool_use" || type == "mcp_tool_use";
}

bool non_empty_string(const json& j, std::string_view key) {
  auto s = get_string(j, key);
  return s && !s->empty();
}

// A content_block_start that already carries something a person would see: the first
// content, for ttft_ms (a text block normally starts empty and fills through deltas).
bool block_carries_content(const json& block) {
  auto type = get_string(block, "type").value_or("");
  if (tracks_tool_input(type) || type == "redacted_thinking") return true;
  if (type == "text") return non_empty_string(block, "text");
  if (type == "thinking") return non_empty_string(block, "thinking");
  return false;
}

// "overloaded_error: Overloaded" from {"type":"error","error":{"type","message"}}.
std::optional<std::string> error_message(const json& body) {
  const json* error = get_object(body, "error");
  if (!error) return std::nullopt;
  auto type = get_string(*error, "type");
  auto message = get_string(*error, "message");
  if (type && message) return *type + ": " + *message;
  if (message) return message;
  if (type) return type;
  return std::string("error");
}

// The message's keys in the order the API sends them (parsed JSON sorts them).
ojson ordered_message(const json& message) {
  return with_key_order(message, {"id", "type", "role", "model", "content", "stop_reason",
                                  "stop_sequence", "stop_details", "usage", "container"});
}

class AnthropicMessages final : public JsonDerivation {
 public:
  AnthropicMessages(std::string provider, const json& request, bool stream)
      : JsonDerivation(std::move(provider), "messages", stream) {
    fields_.model = get_string(request, "model");
  }

 protected:
  void on_json_event(std::string_view type, const json& data) override {
    // Every Anthropic event names itself in data.type; the SSE event line is the fallback.
    std::string kind = get_string(data, "type").value_or(std::string(type));
    if (kind == "message_start") {
      on_message_start(data);
    } else if (kind == "content_block_start") {
      on_block_start(data);
    } else if (kind == "content_block_delta") {
      on_block_delta(data);
    } else if (kind == "message_delta") {
      on_message_delta(data);
    } else if (kind == "message_stop") {
      stopped_ = true;
    } else if (kind == "error") {
      set_error(error_message(data).value_or("error"));
    }
    // ping, content_block_stop and unknown types change nothing.
  }

  void on_json_body(const json& body) override {
    if (body.is_discarded()) return;
    if (auto error = error_message(body)) set_error(std::move(*error));
    body_ = body;
  }

  void finish_into(LlmResult& result, bool /*cut*/) override {
    if (!body_.is_null()) {
      // Not streamed: the body is the answer, shown as the upstream sent it.
      fill_fields(body_);
      result.assembled = ordered_message(body_);
      return;
    }
    if (!started_) return;  // nothing that looks like a message arrived
    // Said first: an unfinished tool input below is a consequence, not the cause.
    if (!stopped_ && !get_string(message_, "stop_reason")) {
      set_error("stream ended before message_stop");
    }
    parse_tool_inputs();
    fill_fields(message_);
    result.assembled = ordered_message(message_);
  }

 private:
  void on_message_start(const json& data) {
    // A second message_start is out of order (the SDK throws); the first one stands.
    if (started_) return;
    started_ = true;
    const json* message = get_object(data, "message");
    message_ = message ? *message : json::object();
    if (!get_array(message_, "content")) message_["content"] = json::array();
    // Blocks a provider put in message_start count like pushed ones.
    json_buffers_.assign(message_["content"].size(), std::string());
    kept_bytes_ += message_.dump().size();
  }

  // Events before message_start: the SDK throws; we build on an empty message so what
  // follows is not lost.
  json& snapshot() {
    if (!started_) {
      started_ = true;
      message_ = json{{"type", "message"}, {"role", "assistant"}, {"content", json::array()}};
    }
    return message_;
  }

  void on_block_start(const json& data) {
    const json* block = get_object(data, "content_block");
    if (!block) return;
    if (!keep(block->dump().size())) return;
    // Pushed, not placed at data.index: what the SDK does; deltas then address by index.
    snapshot()["content"].push_back(*block);
    json_buffers_.emplace_back();
    if (block_carries_content(*block)) mark_content();
  }

  void on_block_delta(const json& data) {
    const json* delta = get_object(data, "delta");
    auto index = get_int(data, "index");
    json& content = snapshot()["content"];
    if (!delta || !index || *index < 0 || static_cast<uint64_t>(*index) >= content.size()) {
      return;
    }
    json& block = content[static_cast<size_t>(*index)];
    if (!block.is_object()) return;
    std::string block_type = get_string(block, "type").value_or("");
    std::string delta_type = get_string(*delta, "type").value_or("");
    if (delta_type == "text_delta") {
      if (block_type == "text") append(block, "text", *delta, "text");
    } else if (delta_type == "thinking_delta") {
      if (block_type == "thinking") append(block, "thinking", *delta, "thinking");
    } else if (delta_type == "signature_delta") {
      // Set, not appended: the signature arrives whole, just before the block's stop.
      if (block_type == "thinking") copy_field(block, "signature", *delta, "signature");
    } else if (delta_type == "citations_delta") {
      if (block_type == "text") push_citation(block, *delta);
    } else if (delta_type == "input_json_delta") {
      if (tracks_tool_input(block_type)) append_json(static_cast<size_t>(*index), *delta);
    } else if (delta_type == "compaction_delta") {
      if (block_type == "compaction") copy_field(block, "content", *delta, "content");
    }
  }

  // Appends delta[from] to block[to] (both strings); a non-empty payload is content.
  void append(json& block, const char* to, const json& delta, const char* from) {
    auto piece = get_string(delta, from);
    if (!piece || piece->empty() || !keep(piece->size())) return;
    mark_content();
    json& target = block[to];
    if (target.is_string()) {
      target.get_ref<std::string&>() += *piece;
    } else {
      target = std::move(*piece);
    }
  }

  void copy_field(json& block, const char* to, const json& delta, const char* from) {
    auto it = delta.find(from);
    if (it == delta.end() || !keep(it->dump().size())) return;
    block[to] = *it;
  }

  void push_citation(json& block, const json& delta) {
    auto it = delta.find("citation");
    if (it == delta.end() || !keep(it->dump().size())) return;
    json& citations = block["citations"];
    if (!citations.is_array()) citations = json::array();
    citations.push_back(*it);
  }

  void append_json(size_t index, const json& delta) {
    auto piece = get_string(delta, "partial_json");
    if (!piece || piece->empty() || !keep(piece->size())) return;
    mark_content();
    json_buffers_[index] += *piece;
  }

  // At the end, as the SDK's final snapshot: each tool block's input is its buffer parsed.
  // An empty buffer leaves the block's own input (`{}` from content_block_start, or whatever
  // a provider sent whole there).
  void parse_tool_inputs() {
    json& content = message_["content"];
    for (size_t i = 0; i < json_buffers_.size() && i < content.size(); ++i) {
      json& block = content[i];
      if (!block.is_object()) continue;
      if (json_buffers_[i].empty()) {
        if (tracks_tool_input(get_string(block, "type").value_or("")) && !block.contains("input")) {
          block["input"] = json::object();
        }
        continue;
      }
      json input = parse_json_text(json_buffers_[i]);
      if (input.is_discarded()) {
        // The SDK would throw here; the raw text stays in the stored body.
        set_error("tool input of content block " + std::to_string(i) + " is not valid JSON (" +
                  std::to_string(json_buffers_[i].size()) + " bytes)");
        block["input"] = json::object();
      } else {
        block["input"] = std::move(input);
      }
      json_buffers_[i].clear();
    }
  }

  void on_message_delta(const json& data) {
    json& message = snapshot();
    if (const json* delta = get_object(data, "delta")) {
      // Present keys are set, null included (the SDK assigns them unconditionally).
      for (const char* key : {"stop_reason", "stop_sequence", "container"}) {
        if (auto it = delta->find(key); it != delta->end()) message[key] = *it;
      }
      if (auto it = delta->find("stop_details"); it != delta->end() && !it->is_null()) {
        message["stop_details"] = *it;
      }
    }
    if (auto it = data.find("context_management"); it != data.end()) {
      message["context_management"] = *it;
    }
    if (const json* usage = get_object(data, "usage")) merge_usage(message, *usage);
  }

  // message_delta usage is cumulative: output_tokens overwrites, every other field overwrites
  // only when non-null. Adding would double-count the cache tokens (pitfall 3); overwriting
  // with null would erase message_start's counts from providers that send nulls.
  static void merge_usage(json& message, const json& delta_usage) {
    json& usage = message["usage"];
    if (!usage.is_object()) usage = json::object();
    for (auto it = delta_usage.begin(); it != delta_usage.end(); ++it) {
      if (it.key() == "output_tokens" || !it->is_null()) usage[it.key()] = *it;
    }
  }

  // The token fields from a message (streamed snapshot or body).
  void fill_fields(const json& message) {
    fields_.response_model = get_string(message, "model");
    fields_.response_id = get_string(message, "id");
    fields_.finish_reason = get_string(message, "stop_reason");
    const json* usage = get_object(message, "usage");
    if (!usage) return;
    fields_.usage = *usage;
    auto input = get_int(*usage, "input_tokens");
    auto cache_read = get_int(*usage, "cache_read_input_tokens");
    auto cache_creation = cache_creation_tokens(*usage);
    // OpenTelemetry's input_tokens: input + cache read + cache creation, the parts present.
    if (input || cache_read || cache_creation) {
      fields_.input_tokens =
          input.value_or(0) + cache_read.value_or(0) + cache_creation.value_or(0);
    }
    fields_.cached_input_tokens = cache_read;
    fields_.cache_creation_input_tokens = cache_creation;
    fields_.output_tokens = get_int(*usage, "output_tokens");
    if (const json* details = get_object(*usage, "output_tokens_details")) {
      fields_.reasoning_tokens = get_int(*details, "thinking_tokens");
    }
    fill_total(fields_, std::nullopt);  // Anthropic reports no total
  }

  // cache_creation_input_tokens, or the sum of its cache_creation.ephemeral_* breakdown when
  // only that was sent (pitfall 6: ignoring the breakdown under-reports cache writes).
  static std::optional<int64_t> cache_creation_tokens(const json& usage) {
    if (auto total = get_int(usage, "cache_creation_input_tokens")) return total;
    const json* breakdown = get_object(usage, "cache_creation");
    if (!breakdown) return std::nullopt;
    std::optional<int64_t> sum;
    for (auto it = breakdown->begin(); it != breakdown->end(); ++it) {
      if (it.key().starts_with("ephemeral_")) {
        if (auto n = get_int(*breakdown, it.key())) sum = sum.value_or(0) + *n;
      }
    }
    return sum;
  }

  // Bounds what the assembled answer keeps; past kMaxAssembledBytes it stops growing.
  bool keep(size_t bytes) {
    if (kept_bytes_ + bytes > kMaxAssembledBytes) {
      set_error("assembled answer truncated at " + std::to_string(kMaxAssembledBytes) + " bytes");
      return false;
    }
    kept_bytes_ += bytes;
    return true;
  }

  bool started_ = false;
  bool stopped_ = false;                   // message_stop seen
  json message_;                           // the snapshot, once started_
  std::vector<std::string> json_buffers_;  // partial_json per content index
  json body_;                              // the non-streamed body, when one came
};

}  // namespace

std::unique_ptr<Derivation> make_anthropic_messages(std::string provider, const json& request,
                                                    bool stream) {
  return std::make_unique<AnthropicMessages>(std::move(provider), request, stream);
}

}  // namespace lp::logsrv::reading::detail
