#include "log-server/reading_api.h"

#include <openssl/evp.h>

#include <algorithm>

#include "log-server/deriver.h"
#include "log-server/exchange_json.h"
#include "log-server/reading/json_text.h"

namespace lp::logsrv {

namespace {

using ojson = nlohmann::ordered_json;

DecodedBody load_body(const BlobStore& store, const std::optional<std::string>& file,
                      const std::optional<StoredHead>& head, int64_t head_size, int64_t file_size,
                      uint64_t max_body) {
  DecodedBody body;
  if (!file || !head || file_size <= head_size) return body;
  BodyReadResult r = read_stored_body(store, *file, head_size, file_size, content_codings(*head),
                                      max_body, [&](std::string_view piece) {
                                        body.bytes.append(piece);
                                        return true;
                                      });
  if (r.status != reading::DecodeStatus::kOk) {
    body.bytes.clear();
    body.problem = r.error.empty() ? "the body could not be decoded" : r.error;
  }
  return body;
}

ojson har_headers(const std::optional<StoredHead>& head) {
  ojson list = ojson::array();
  if (!head) return list;
  for (const auto& [name, value] : head->headers) {
    list.push_back({{"name", name}, {"value", value}});
  }
  return list;
}

// "HTTP/1.1" from "POST /x HTTP/1.1" (request) or "HTTP/1.1 200 OK" (response).
std::string http_version(const std::optional<StoredHead>& head, bool request) {
  if (!head) return "HTTP/1.1";
  const std::string& line = head->start_line;
  if (request) {
    size_t sp = line.rfind(' ');
    return sp == std::string::npos ? "HTTP/1.1" : line.substr(sp + 1);
  }
  return line.substr(0, line.find(' '));
}

std::string status_text(const std::optional<StoredHead>& head) {
  if (!head) return "";
  const std::string& line = head->start_line;
  size_t first = line.find(' ');
  if (first == std::string::npos) return "";
  size_t second = line.find(' ', first + 1);
  return second == std::string::npos ? "" : line.substr(second + 1);
}

ojson query_string(const std::string& url) {
  ojson list = ojson::array();
  size_t q = url.find('?');
  if (q == std::string::npos) return list;
  std::string_view rest(url);
  rest.remove_prefix(q + 1);
  rest = rest.substr(0, rest.find('#'));
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view part = rest.substr(0, amp);
    rest.remove_prefix(amp == std::string_view::npos ? rest.size() : amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    list.push_back(
        {{"name", std::string(part.substr(0, eq))},
         {"value", eq == std::string_view::npos ? "" : std::string(part.substr(eq + 1))}});
  }
  return list;
}

// Timings in ms from the proxy's µs figures; a missing figure counts as 0 so the sum stays
// the exchange's duration.
struct HarTimings {
  double connect = -1, send = 0, wait = 0, receive = 0;
};

std::optional<int64_t> timing(const ExchangeRow& row, const char* key) {
  if (!row.timings_json) return std::nullopt;
  auto t = nlohmann::json::parse(*row.timings_json, nullptr, false);
  if (!t.is_object()) return std::nullopt;
  auto it = t.find(key);
  if (it == t.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

HarTimings har_timings(const ExchangeRow& row) {
  auto ms = [](int64_t us) { return static_cast<double>(std::max<int64_t>(us, 0)) / 1000.0; };
  HarTimings t;
  const int64_t connect = timing(row, "upstream_connect_us").value_or(-1);
  const int64_t forwarded = row.request_forwarded_us.value_or(0);
  const int64_t headers = row.upstream_headers_us.value_or(forwarded);
  const int64_t total = row.total_us.value_or(headers);
  if (connect >= 0) t.connect = ms(std::min(connect, forwarded));
  t.send = ms(forwarded - std::max<int64_t>(connect, 0));
  t.wait = ms(headers - forwarded);
  t.receive = ms(total - headers);
  return t;
}

// A started_at with µs ("...09.123456Z") cut to ms, which every HAR reader parses.
std::string har_time(const std::string& started_at) {
  size_t dot = started_at.find('.');
  if (dot == std::string::npos || started_at.size() < dot + 4) return started_at;
  return started_at.substr(0, dot + 4) + "Z";
}

ojson body_value(const DecodedBody& body) {
  if (body.problem) return ojson{{"error", *body.problem}};
  if (body.bytes.empty()) return nullptr;
  auto parsed = reading::parse_json_text(body.bytes);
  if (!parsed.is_discarded()) return parsed;
  if (is_valid_utf8(body.bytes)) return body.bytes;
  return ojson{{"base64", base64(body.bytes)}};
}

}  // namespace

LoadedExchange load_exchange(const ExchangeRow& row, const BlobStore& store, uint64_t max_body) {
  LoadedExchange x;
  x.request_head = read_stored_head(store, row.request_file, row.request_head_size);
  x.response_head = read_stored_head(store, row.response_file, row.response_head_size);
  x.request_body = load_body(store, row.request_file, x.request_head, row.request_head_size,
                             row.request_file_size, max_body);
  x.response_body = load_body(store, row.response_file, x.response_head, row.response_head_size,
                              row.response_file_size, max_body);
  return x;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // the sequence runs past the end
    for (size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::string base64(std::string_view bytes) {
  std::string out;
  out.resize(4 * ((bytes.size() + 2) / 3) + 1);
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string har_prefix(std::string_view version) {
  ojson creator{{"name", "logging-proxy log-server"}, {"version", std::string(version)}};
  return R"({"log":{"version":"1.2","creator":)" + dump_json(creator) + R"(,"entries":[)";
}

std::string har_suffix() {
  return "]}}";
}

ojson har_entry(const ExchangeRow& row, const LoadedExchange& x) {
  const HarTimings t = har_timings(row);
  ojson request{{"method", row.method},
                {"url", row.destination},
                {"httpVersion", http_version(x.request_head, true)},
                {"cookies", ojson::array()},
                {"headers", har_headers(x.request_head)},
                {"queryString", query_string(row.destination)},
                {"headersSize", row.request_head_size},
                {"bodySize", row.request_bytes}};
  if (row.request_bytes > 0) {
    std::string mime = row.request_content_type.value_or("application/octet-stream");
    ojson post{{"mimeType", mime}};
    if (x.request_body.problem) {
      post["text"] = "";
      post["comment"] = "body not included: " + *x.request_body.problem;
    } else if (is_valid_utf8(x.request_body.bytes)) {
      post["text"] = x.request_body.bytes;
    } else {
      post["text"] = base64(x.request_body.bytes);
      post["_encoding"] = "base64";
    }
    request["postData"] = std::move(post);
  }
  ojson content{{"size", static_cast<int64_t>(x.response_body.bytes.size())},
                {"mimeType", row.response_content_type.value_or("")}};
  if (x.response_body.problem) {
    content["size"] = row.response_bytes;
    content["comment"] = "body not included: " + *x.response_body.problem;
  } else {
    content["compression"] =
        static_cast<int64_t>(x.response_body.bytes.size()) - row.response_bytes;
    if (is_valid_utf8(x.response_body.bytes)) {
      content["text"] = x.response_body.bytes;
    } else {
      content["text"] = base64(x.response_body.bytes);
      content["encoding"] = "base64";
    }
  }
  std::string location;
  if (x.response_head) location = header_value(x.response_head->headers, "Location").value_or("");
  ojson response{{"status", row.status.value_or(0)},
                 {"statusText", status_text(x.response_head)},
                 {"httpVersion", http_version(x.response_head, false)},
                 {"cookies", ojson::array()},
                 {"headers", har_headers(x.response_head)},
                 {"content", std::move(content)},
                 {"redirectURL", location},
                 {"headersSize", x.response_head ? row.response_head_size : -1},
                 {"bodySize", x.response_head ? row.response_bytes : -1}};
  ojson timings{{"blocked", -1},  {"dns", -1},      {"connect", t.connect}, {"ssl", -1},
                {"send", t.send}, {"wait", t.wait}, {"receive", t.receive}};
  const double time = std::max(t.connect, 0.0) + t.send + t.wait + t.receive;
  return ojson{{"startedDateTime", har_time(row.started_at)},
               {"time", time},
               {"request", std::move(request)},
               {"response", std::move(response)},
               {"cache", ojson::object()},
               {"timings", std::move(timings)},
               {"_id", row.id},
               {"_route", row.route},
               {"_outcome", row.outcome}};
}

ojson jsonl_record(const ExchangeRow& row, const LoadedExchange& x, const ojson& assembled) {
  return ojson{{"record", detail_json(row, x.request_head, x.response_head)},
               {"request_body", body_value(x.request_body)},
               {"assembled", assembled}};
}

}  // namespace lp::logsrv
