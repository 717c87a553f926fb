// Recognising an LLM call (provider by destination host, API by path, stream by request body or
// response Content-Type) and the `llm` object of the API. The per-API work is in llm_openai.cc,
// llm_anthropic.cc and llm_gemini.cc.
#include "log-server/reading/llm.h"

#include <algorithm>
#include <cctype>

#include "common/ascii.h"
#include "log-server/reading/json_text.h"
#include "log-server/reading/llm_internal.h"

namespace lp::logsrv::reading {
namespace {

using detail::json;

struct Target {
  std::string host;  // lower case, no port, no brackets
  std::string_view path;
  std::string_view query;
};

// The destination is the absolute URL the proxy forwarded to; a bare path (no scheme) is
// accepted with an empty host so that only the path decides.
Target parse_destination(std::string_view url) {
  Target t;
  std::string_view rest = url;
  if (auto scheme = url.find("://"); scheme != std::string_view::npos) {
    rest = url.substr(scheme + 3);
    size_t auth_end = std::min(rest.find_first_of("/?#"), rest.size());
    std::string_view authority = rest.substr(0, auth_end);
    rest = rest.substr(auth_end);
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
      authority = authority.substr(at + 1);
    }
    std::string_view host = authority;
    if (!host.empty() && host.front() == '[') {
      host = host.substr(1, std::min(host.find(']'), host.size()) - 1);
    } else {
      host = host.substr(0, std::min(host.find(':'), host.size()));
    }
    while (!host.empty() && host.back() == '.') host.remove_suffix(1);
    t.host = ascii_lowered(host);
  }
  rest = rest.substr(0, std::min(rest.find('#'), rest.size()));
  size_t q = std::min(rest.find('?'), rest.size());
  t.path = rest.substr(0, q);
  t.query = q < rest.size() ? rest.substr(q + 1) : std::string_view();
  while (t.path.size() > 1 && t.path.back() == '/') t.path.remove_suffix(1);
  return t;
}

bool host_is(const std::string& host, std::string_view domain) {
  if (host == domain) return true;
  return host.size() > domain.size() && host.ends_with(domain) &&
         host[host.size() - domain.size() - 1] == '.';
}

// Known hosts name their provider; anything else that speaks one of these APIs is a
// compatible server (LM Studio, Ollama, vLLM, a corporate gateway...).
std::string provider_for(const std::string& host) {
  if (host == "api.openai.com") return "openai";
  if (host_is(host, "openrouter.ai")) return "openrouter";
  if (host == "api.anthropic.com") return "anthropic";
  if (host == "generativelanguage.googleapis.com" || host_is(host, "aiplatform.googleapis.com")) {
    return "gemini";
  }
  return "openai-compatible";
}

// An unknown host speaking the Anthropic or Gemini API (a gateway, Kimi, DashScope, a local
// mock) is counted under the API it speaks: "openai-compatible" would name the wrong one.
std::string provider_speaking(const std::string& host, const char* api_provider) {
  std::string known = provider_for(host);
  return known == "openai-compatible" ? api_provider : known;
}

bool query_has(std::string_view query, std::string_view key, std::string_view value) {
  while (!query.empty()) {
    size_t amp = std::min(query.find('&'), query.size());
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == key && pair.substr(eq + 1) == value) {
      return true;
    }
    query = amp < query.size() ? query.substr(amp + 1) : std::string_view();
  }
  return false;
}

bool response_is_event_stream(const Headers* headers) {
  if (headers == nullptr) return false;
  for (const auto& [name, value] : *headers) {
    if (!iequals(name, "content-type")) continue;
    std::string v = ascii_lowered(value);
    size_t start = v.find_first_not_of(" \t");
    if (start != std::string::npos && v.compare(start, 17, "text/event-stream") == 0) return true;
  }
  return false;
}

// Anthropic's shape, for /messages paths on hosts that are not Anthropic's: "messages" plus
// "max_tokens" (required by Anthropic, optional in OpenAI-style APIs) or a Claude model.
bool looks_like_anthropic(const json& body) {
  if (!body.is_object() || !body.contains("messages")) return false;
  if (body.contains("max_tokens")) return true;
  auto model = detail::get_string(body, "model");
  return model && model->starts_with("claude");
}

// Gemini: .../models/{model}:generateContent or :streamGenerateContent.
struct GeminiCall {
  std::string model;
  bool stream = false;
};

std::optional<GeminiCall> gemini_call(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view segment = path.substr(slash + 1);
  size_t colon = segment.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view method = segment.substr(colon + 1);
  std::string_view parent = path.substr(0, slash);
  if (!parent.ends_with("/models") && !parent.ends_with("/tunedModels")) return std::nullopt;
  if (method == "generateContent") return GeminiCall{std::string(segment.substr(0, colon)), false};
  if (method == "streamGenerateContent") {
    return GeminiCall{std::string(segment.substr(0, colon)), true};
  }
  return std::nullopt;
}

std::unique_ptr<Derivation> start_openai_family(std::string_view path, const Target& target,
                                                const json& body, bool stream) {
  std::string provider = provider_for(target.host);
  if (path.ends_with("/chat/completions")) {
    return detail::make_openai_chat(std::move(provider), body, stream);
  }
  if (path.ends_with("/completions")) {
    return detail::make_openai_completions(std::move(provider), body, stream);
  }
  if (path.ends_with("/embeddings")) {
    return detail::make_openai_embeddings(std::move(provider), body);
  }
  if (path.ends_with("/responses")) {
    return detail::make_openai_responses(std::move(provider), body, stream);
  }
  if (path.ends_with("/messages") &&
      (provider == "anthropic" || path.ends_with("/v1/messages") || looks_like_anthropic(body))) {
    return detail::make_anthropic_messages(provider_speaking(target.host, "anthropic"), body,
                                           stream);
  }
  return nullptr;
}

}  // namespace

bool may_be_llm_call(std::string_view method, std::string_view destination) {
  if (method != "POST") return false;
  const std::string_view path = parse_destination(destination).path;
  // The suffixes start_openai_family() dispatches on ("/completions" covers chat too).
  return gemini_call(path).has_value() || path.ends_with("/completions") ||
         path.ends_with("/embeddings") || path.ends_with("/responses") ||
         path.ends_with("/messages");
}

std::unique_ptr<Derivation> start_derivation(const LlmExchange& exchange) {
  if (exchange.method != "POST") return nullptr;
  Target target = parse_destination(exchange.destination);
  json body = parse_json_text(exchange.request_body);
  // Every API recognised here takes a JSON object; anything else is not an LLM call we can read.
  if (!body.is_object()) return nullptr;
  bool event_stream = response_is_event_stream(exchange.response_headers);

  if (auto gemini = gemini_call(target.path)) {
    bool sse = event_stream || (gemini->stream && query_has(target.query, "alt", "sse"));
    bool array_stream = gemini->stream && !sse;
    return detail::make_gemini(provider_speaking(target.host, "gemini"), std::move(gemini->model),
                               sse, array_stream);
  }
  auto stream_flag = body.find("stream");
  bool stream = event_stream || (stream_flag != body.end() && stream_flag->is_boolean() &&
                                 stream_flag->get<bool>());
  return start_openai_family(target.path, target, body, stream);
}

nlohmann::ordered_json llm_fields_json(const LlmFields& f) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  auto put = [&j](const char* key, const auto& value) {
    if (value) j[key] = *value;
  };
  j["provider"] = f.provider;
  j["api"] = f.api;
  put("model", f.model);
  put("response_model", f.response_model);
  j["stream"] = f.stream;
  put("response_id", f.response_id);
  put("input_tokens", f.input_tokens);
  put("output_tokens", f.output_tokens);
  put("cached_input_tokens", f.cached_input_tokens);
  put("cache_creation_input_tokens", f.cache_creation_input_tokens);
  put("reasoning_tokens", f.reasoning_tokens);
  put("total_tokens", f.total_tokens);
  put("cost", f.cost);
  put("finish_reason", f.finish_reason);
  put("first_event_ms", f.first_event_ms);
  put("ttft_ms", f.ttft_ms);
  put("events", f.events);
  put("error", f.error);
  j["usage"] =
      f.usage.is_null() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(f.usage);
  return j;
}

}  // namespace lp::logsrv::reading
