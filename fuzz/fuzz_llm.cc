// Fuzz target: LLM call recognition and derivation (reading::start_derivation, then every
// event or the body, then finish), which the log server runs on every stored exchange.
//
// Input layout (fuzz/corpus/llm/ has examples):
//   byte 0: bits 0-2 the destination host (7: the first record is the whole destination URL),
//           bit 3 response Content-Type text/event-stream, bit 4 finish(cut=true),
//           bit 5 events without arrival times, bits 6-7 both set: a GET.
//   byte 1: the path (table below, modulo its size).
//   rest:   records separated by 0x1E: [destination when host is 7,] the request body, then
//           SSE events ("type" 0x1F "data", or just "data"); without the event-stream bit the
//           records after the request body are joined back into one response body.
//
// Invariants beyond "no crash, no exception": the `llm` object and the assembled answer
// serialise; a recognised call has its provider and api; `events` counts the events fed;
// ttft_ms is never before first_event_ms (arrival times only grow).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "log-server/reading/llm.h"

namespace {

using lp::logsrv::reading::Headers;

constexpr std::string_view kHosts[] = {
    "https://api.openai.com",    "https://openrouter.ai",
    "https://api.anthropic.com", "https://generativelanguage.googleapis.com",
    "http://localhost:1234",     "http://localhost:11434",
    "http://[::1]:8000",
};

constexpr std::string_view kPaths[] = {
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/messages",
    "/api/v1/chat/completions",
    "/v1beta/models/gemini-2.5-flash:generateContent",
    "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
    "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    "/v1/files",
    "/v1/chat/completions/?x=1",
};

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t at = s.find(sep);
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const size_t host = flags & 7u;
  const bool event_stream = (flags & 8u) != 0;
  const bool cut = (flags & 16u) != 0;
  const bool untimed = (flags & 32u) != 0;
  const bool get = (flags & 0xC0u) == 0xC0u;
  const std::string_view path = kPaths[data[1] % std::size(kPaths)];
  std::vector<std::string_view> records =
      split(std::string_view(reinterpret_cast<const char*>(data + 2), size - 2), '\x1e');

  size_t next = 0;
  std::string destination;
  if (host == 7) {
    destination = std::string(records[next++]);
  } else {
    destination = std::string(kHosts[host]) + std::string(path);
  }
  std::string request_body = next < records.size() ? std::string(records[next++]) : std::string();

  const Headers request_headers = {{"Content-Type", "application/json"}};
  const Headers response_headers = {
      {"Content-Type", event_stream ? "text/event-stream" : "application/json"}};
  lp::logsrv::reading::LlmExchange exchange;
  exchange.method = get ? "GET" : "POST";
  exchange.destination = destination;
  exchange.route = "fuzz";
  exchange.request_headers = &request_headers;
  exchange.request_body = request_body;
  exchange.status = 200;
  exchange.response_headers = &response_headers;

  auto derivation = lp::logsrv::reading::start_derivation(exchange);
  if (!derivation) return 0;

  int64_t fed = 0;
  if (event_stream) {
    for (; next < records.size(); ++next) {
      lp::logsrv::reading::SseEvent event;
      std::string_view record = records[next];
      if (size_t sep = record.find('\x1f'); sep != std::string_view::npos) {
        event.type = std::string(record.substr(0, sep));
        record.remove_prefix(sep + 1);
      } else {
        event.type = "message";
      }
      event.data = std::string(record);
      std::optional<int64_t> at;
      if (!untimed) at = (fed + 1) * 1000;
      derivation->on_event(event, at);
      ++fed;
    }
  } else {
    std::string body;
    for (; next < records.size(); ++next) {
      if (!body.empty()) body += '\x1e';
      body += records[next];
    }
    derivation->on_body(body, untimed ? std::nullopt : std::optional<int64_t>(1000));
  }

  lp::logsrv::reading::LlmResult result = derivation->finish(cut);
  const auto& f = result.fields;
  FUZZ_CHECK(!f.provider.empty() && !f.api.empty());
  FUZZ_CHECK(!event_stream || f.events.value_or(0) == fed);
  FUZZ_CHECK(!f.ttft_ms || (f.first_event_ms && *f.ttft_ms >= *f.first_event_ms) || !event_stream);
  FUZZ_CHECK(result.assembled.is_null() || result.assembled.is_object() ||
             result.assembled.is_array());
  const auto replace = nlohmann::ordered_json::error_handler_t::replace;
  std::string dumped = lp::logsrv::reading::llm_fields_json(f).dump(-1, ' ', false, replace);
  FUZZ_CHECK(!dumped.empty());
  dumped = result.assembled.dump(-1, ' ', false, replace);
  FUZZ_CHECK(!dumped.empty());
  return 0;
}
