#include "log-server/exchange_json.h"

#include "log-server/cursor.h"

namespace lp::logsrv {

namespace {

using json = nlohmann::ordered_json;

template <class T>
json or_null(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json ms(const std::optional<int64_t>& us) {
  return us ? json(static_cast<double>(*us) / 1000.0) : json(nullptr);
}

json headers_json(const std::optional<StoredHead>& head) {
  json list = json::array();
  if (head) {
    for (const auto& [n, v] : head->headers) list.push_back(json::array({n, v}));
  }
  return list;
}

}  // namespace

json summary_json(const ExchangeRow& r) {
  return json{
      {"id", r.id},
      {"short_id", r.short_id},
      {"started_at", r.started_at},
      {"route", r.route},
      {"method", r.method},
      {"proxy_path", r.proxy_path},
      {"destination", r.destination},
      {"status", or_null(r.status)},
      {"outcome", r.outcome},
      {"error", or_null(r.error)},
      {"request_bytes", r.request_bytes},
      {"response_bytes", r.response_bytes},
      {"durations",
       {{"total_ms", ms(r.total_us)},
        {"upstream_headers_ms", ms(r.upstream_headers_us)},
        {"first_byte_ms", ms(r.first_byte_us)},
        {"request_forwarded_ms", ms(r.request_forwarded_us)}}},
      {"request_content_type", or_null(r.request_content_type)},
      {"response_content_type", or_null(r.response_content_type)},
      {"response_content_encoding", or_null(r.response_content_encoding)},
      {"replay_of", or_null(r.replay_of)},
      {"model", or_null(r.model)},
      {"provider", or_null(r.provider)},
      {"input_tokens", or_null(r.input_tokens)},
      {"output_tokens", or_null(r.output_tokens)},
      {"cost", or_null(r.cost)},
      {"ttft_ms", ms(r.ttft_us)},
      // Pages on after this item (as `cursor=`), e.g. for a client that dropped older rows.
      {"cursor", encode_cursor(Cursor{r.started_us, r.id})},
  };
}

json detail_json(const ExchangeRow& r, const std::optional<StoredHead>& request_head,
                 const std::optional<StoredHead>& response_head) {
  json j = summary_json(r);
  j["client_ip"] = r.client_ip;
  j["proxy_id"] = r.proxy_id;
  j["ingested_at"] = r.ingested_at;
  j["timings"] = {{"total_us", or_null(r.total_us)},
                  {"request_forwarded_us", or_null(r.request_forwarded_us)},
                  {"upstream_headers_us", or_null(r.upstream_headers_us)},
                  {"first_byte_us", or_null(r.first_byte_us)}};
  // The rest of what the proxy reported (its overhead, connect time, chunk delays), as sent.
  if (r.timings_json) {
    json extra = json::parse(*r.timings_json, nullptr, /*allow_exceptions=*/false);
    if (extra.is_object()) {
      for (auto it = extra.begin(); it != extra.end(); ++it) {
        if (!j["timings"].contains(it.key())) j["timings"][it.key()] = it.value();
      }
    }
  }
  j["files"] = {{"request", r.request_file},
                {"request_size", r.request_file_size},
                {"response", or_null(r.response_file)},
                {"response_size", r.response_file_size}};
  j["request_line"] = request_head ? json(request_head->start_line) : json(nullptr);
  j["request_headers"] = headers_json(request_head);
  j["status_line"] = response_head ? json(response_head->start_line) : json(nullptr);
  j["response_headers"] = headers_json(response_head);
  // Derived from the files after the exchange ended (null until then, and for calls that are
  // not recognised LLM calls); "derived" says which of the two a null means.
  json llm = nullptr;
  if (r.llm_json) {
    llm = json::parse(*r.llm_json, nullptr, /*allow_exceptions=*/false);
    if (llm.is_discarded()) llm = nullptr;
  }
  j["derived"] = r.derived_version.has_value();
  j["llm"] = std::move(llm);
  return j;
}

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace lp::logsrv
