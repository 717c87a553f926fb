#include "log-server/reading/llm_internal.h"

#include "log-server/reading/json_text.h"

namespace lp::logsrv::reading::detail {

JsonDerivation::JsonDerivation(std::string provider, std::string api, bool stream) {
  fields_.provider = std::move(provider);
  fields_.api = std::move(api);
  fields_.stream = stream;
}

void JsonDerivation::on_event(const SseEvent& event, std::optional<int64_t> arrival_us) {
  current_arrival_us_ = arrival_us;
  fields_.events = fields_.events.value_or(0) + 1;
  if (!fields_.first_event_ms && arrival_us) {
    fields_.first_event_ms = static_cast<double>(*arrival_us) / 1000.0;
  }
  json data = parse_json_text(event.data);
  if (data.is_discarded()) {
    on_other_event(event);
  } else {
    on_json_event(event.type, data);
  }
}

void JsonDerivation::on_body(std::string_view body, std::optional<int64_t> arrival_us) {
  current_arrival_us_ = arrival_us;
  json data = parse_json_text(body);
  // No API read here answers with a bare string, number or literal: such a body is no answer.
  if (!data.is_object() && !data.is_array()) data = json(json::value_t::discarded);
  on_json_body(data);
}

LlmResult JsonDerivation::finish(bool cut) {
  LlmResult result;
  finish_into(result, cut);
  result.fields = std::move(fields_);
  return result;
}

void JsonDerivation::mark_content() {
  if (!fields_.ttft_ms && current_arrival_us_) {
    fields_.ttft_ms = static_cast<double>(*current_arrival_us_) / 1000.0;
  }
}

void JsonDerivation::set_error(std::string message) {
  if (!fields_.error) fields_.error = std::move(message);
}

std::optional<std::string> get_string(const json& j, std::string_view key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<int64_t> get_int(const json& j, std::string_view key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(v);
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  return std::nullopt;
}

std::optional<double> get_number(const json& j, std::string_view key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

const json* get_object(const json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? &*it : nullptr;
}

const json* get_array(const json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? &*it : nullptr;
}

ojson with_key_order(const json& object, std::initializer_list<std::string_view> order) {
  if (!object.is_object()) return ojson(object);
  ojson out = ojson::object();
  for (std::string_view key : order) {
    auto it = object.find(key);
    if (it != object.end()) out[std::string(key)] = ojson(*it);
  }
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (!out.contains(it.key())) out[it.key()] = ojson(it.value());
  }
  return out;
}

void fill_total(LlmFields& f, std::optional<int64_t> reported_total) {
  if (reported_total) {
    f.total_tokens = reported_total;
  } else if (f.input_tokens && f.output_tokens) {
    f.total_tokens = *f.input_tokens + *f.output_tokens;
  }
}

}  // namespace lp::logsrv::reading::detail
