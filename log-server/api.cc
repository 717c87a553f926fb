#include "log-server/api.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string_view>

#include <httplib.h>
#include <sqlite3.h>

#include "common/capture_wire.h"
#include "common/http_message.h"
#include "log-server/byte_range.h"
#include "log-server/deriver.h"
#include "log-server/exchange_json.h"
#include "log-server/list_query.h"
#include "log-server/reading_api.h"
#include "log-server/stats.h"
#include "log-server/stats_rollup.h"
#include "log-server/ui_assets.h"

namespace lp::logsrv {

namespace {

using json = nlohmann::ordered_json;

constexpr size_t kMaxHeadRead = 1024 * 1024;  // heads larger than this are shown cut
constexpr int kMaxCandidates = 10;            // listed in a 409 for an ambiguous prefix
constexpr size_t kReadChunk = 64 * 1024;
constexpr const char* kEndpoints =
    "the API serves GET /requests, /requests/{id}, /requests/{id}/request, "
    "/requests/{id}/response, /requests/{id}/request/body, /requests/{id}/response/body, "
    "/requests/{id}/assembled, /requests/{id}/chunks, /stats, /export, /live, /healthz, "
    "/metrics and POST /ingest";
constexpr int kExportPage = 100;  // rows read per index query while exporting
// How often an idle /live stream checks that its client is still there.
constexpr std::chrono::milliseconds kLiveTick{1000};

// Exposes the listening socket: its real port, and a deeper backlog than the library's 5.
class Server : public httplib::Server {
 public:
  int fd() const { return svr_sock_; }
};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& parameter = {}) {
  json body{{"error", message}};
  if (!parameter.empty()) body["parameter"] = parameter;
  send_json(res, status, body);
}

// A 400 for a bad request parameter: "parameter" is always present (even when its name is
// empty), so a client can tell which one to fix.
void send_param_error(httplib::Response& res, const std::string& parameter,
                      const std::string& message) {
  send_json(res, 400, {{"error", message}, {"parameter", parameter}});
}

void log_line(const std::string& line) {
  std::fprintf(stderr, "log-server: %s\n", line.c_str());
}

std::string status_text(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 404:
      return "not found";
    case 405:
      return "method not allowed";
    case 413:
      return "request body too large";
    case 414:
      return "request target too long";
    case 416:
      return "range not satisfiable";
    default:
      return "HTTP status " + std::to_string(status);
  }
}

bool has_body(const httplib::Request& req) {
  return req.has_header("Transfer-Encoding") ||
         (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
}

// The query parameters as sent: in order, repeats kept, percent- and '+'-decoded. Not
// req.params, which silently drops a repeated identical pair and mis-splits "=value".
std::vector<std::pair<std::string, std::string>> params_of(const httplib::Request& req) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t question = req.target.find('?');
  if (question == std::string::npos) return out;
  std::string_view query(req.target);
  query.remove_prefix(question + 1);
  for (size_t pos = 0; pos <= query.size();) {
    size_t amp = std::min(query.find('&', pos), query.size());
    std::string_view part = query.substr(pos, amp - pos);
    if (!part.empty()) {
      size_t eq = part.find('=');
      std::string_view name = part.substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? "" : part.substr(eq + 1);
      out.emplace_back(httplib::detail::decode_url(std::string(name), true),
                       httplib::detail::decode_url(std::string(value), true));
    }
    pos = amp + 1;
  }
  return out;
}

// Endpoints that take no query parameters refuse any: a misspelt filter must not be mistaken
// for one that was applied. Answers 400 itself and returns false.
bool no_params(const httplib::Request& req, httplib::Response& res) {
  auto params = params_of(req);
  if (params.empty()) return true;
  send_param_error(res, params.front().first,
                   "unknown parameter (this endpoint takes no query parameters)");
  return false;
}

// Captured bytes are served as data, never as a page of this origin: no sniffing, and a
// sandbox that runs no script even if a browser is pointed at them.
void mark_untrusted(httplib::Response& res) {
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Content-Security-Policy", "default-src 'none'; sandbox");
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Reads the first `size` bytes of a stored file (bounded), for its head.
std::optional<StoredHead> read_head(const BlobStore& store, const std::optional<std::string>& file,
                                    int64_t size) {
  if (!file || size <= 0) return std::nullopt;
  int fd = store.open_read(*file);
  if (fd < 0) return std::nullopt;
  std::string buf(std::min<size_t>(static_cast<size_t>(size), kMaxHeadRead), '\0');
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + got, buf.size() - got, static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  buf.resize(got);
  return parse_stored_head(buf);
}

}  // namespace

struct ApiServer::Impl {
  ApiDeps deps;
  BearerAuth auth;
  Server server;

  Impl(ApiDeps d, int api_threads) : deps(std::move(d)), auth(deps.auth_token) {
    const size_t threads = static_cast<size_t>(api_threads) + deps.live.options().max_subscribers;
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(100000);
    server.set_keep_alive_timeout(30);
    server.set_read_timeout(60);
    server.set_write_timeout(60);
    // /ingest enforces the batch limit itself (Content-Length up front, chunked bodies as they
    // arrive); this bounds what the library buffers for any other POST.
    server.set_payload_max_length(wire::kMaxBatchBytes);
    routes();
  }

  // A request id from the path: lower-cased, [0-9a-f-], 8 to 36 characters. Resolves it to
  // one row or answers 400/404/409 itself (returns nullopt then).
  std::optional<ExchangeRow> resolve(const std::string& raw, httplib::Response& res) {
    std::string id;
    for (char c : raw) {
      if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) {
        send_param_error(res, "id",
                         "an exchange id is 36 characters of [0-9a-f-], or its first 8 or more");
        return std::nullopt;
      }
      id += c;
    }
    if (id.size() < 8 || id.size() > 36) {
      send_param_error(res, "id",
                       "an exchange id is 36 characters of [0-9a-f-], or its first 8 or more");
      return std::nullopt;
    }
    std::vector<ExchangeRow> rows = deps.readers.with_reader([&](IndexReader& r) {
      std::vector<ExchangeRow> out;
      if (id.size() == 36) {
        if (auto row = r.get(id)) out.push_back(std::move(*row));
      } else {
        out = r.by_prefix(id, kMaxCandidates + 1);
      }
      return out;
    });
    if (rows.empty()) {
      send_error(res, 404, "no exchange with id " + id);
      return std::nullopt;
    }
    if (rows.size() > 1) {
      json candidates = json::array();
      for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(kMaxCandidates); ++i) {
        candidates.push_back({{"id", rows[i].id},
                              {"started_at", rows[i].started_at},
                              {"method", rows[i].method},
                              {"proxy_path", rows[i].proxy_path}});
      }
      send_json(
          res, 409,
          {{"error", "id prefix " + id + " matches more than one exchange; use more characters"},
           {"parameter", "id"},
           {"candidates", candidates},
           {"more", rows.size() > static_cast<size_t>(kMaxCandidates)}});
      return std::nullopt;
    }
    return std::move(rows.front());
  }

  void list(const httplib::Request& req, httplib::Response& res) {
    ListQuery q;
    ParamError err;
    if (!parse_list_query(params_of(req), &q, &err)) {
      return send_param_error(res, err.parameter, err.message);
    }
    ListPage page = deps.readers.with_reader([&](IndexReader& r) { return r.list(q); });
    json items = json::array();
    for (const ExchangeRow& row : page.rows) items.push_back(summary_json(row));
    send_json(res, 200,
              {{"requests", std::move(items)},
               {"next_cursor", page.next ? json(encode_cursor(*page.next)) : json(nullptr)}});
  }

  void detail(const httplib::Request& req, httplib::Response& res) {
    if (!no_params(req, res)) return;
    auto row = resolve(req.matches[1], res);
    if (!row) return;
    auto request_head = read_head(deps.store, row->request_file, row->request_head_size);
    auto response_head = read_head(deps.store, row->response_file, row->response_head_size);
    send_json(res, 200, detail_json(*row, request_head, response_head));
  }

  void raw(const httplib::Request& req, httplib::Response& res) {
    if (!no_params(req, res)) return;
    auto row = resolve(req.matches[1], res);
    if (!row) return;
    bool request = req.matches[2] == "request";
    std::optional<std::string> file =
        request ? std::optional(row->request_file) : row->response_file;
    // Only acknowledged bytes are served: a batch being applied may have appended more.
    const int64_t total = request ? row->request_file_size : row->response_file_size;
    int64_t size = total;
    if (!file) return send_error(res, 404, "exchange " + row->id + " has no response (yet)");
    int fd = deps.store.open_read(*file);
    if (fd < 0) {
      log_line("cannot open " + *file + ": " + std::strerror(errno));
      return send_error(res, 404, "the stored file of exchange " + row->id + " is missing");
    }
    res.set_header("X-Exchange-Id", row->id);
    mark_untrusted(res);
    ByteRange range = parse_byte_range(req.get_header_value("Range"), size);
    if (range.kind == ByteRange::Kind::kRejected) {
      ::close(fd);
      res.set_header("Content-Range", "bytes */" + std::to_string(size));
      return send_error(res, 416, range.problem);
    }
    int64_t first = 0;
    if (range.kind == ByteRange::Kind::kPart) {
      first = range.first;
      size = range.length;
      res.status = 206;
      res.set_header("Content-Range", "bytes " + std::to_string(first) + "-" +
                                          std::to_string(first + size - 1) + "/" +
                                          std::to_string(total));
    }
    if (size == 0) {
      ::close(fd);
      res.set_content("", "application/octet-stream");
      return;
    }
    auto shared_fd = std::shared_ptr<int>(new int(fd), [](int* p) {
      ::close(*p);
      delete p;
    });
    res.set_content_provider(
        static_cast<size_t>(size), "application/octet-stream",
        [shared_fd, first](size_t offset, size_t length, httplib::DataSink& sink) {
          std::string buf(std::min(length, kReadChunk), '\0');
          ssize_t n = ::pread(*shared_fd, buf.data(), buf.size(),
                              static_cast<off_t>(first) + static_cast<off_t>(offset));
          if (n <= 0) return false;  // the file is shorter than acknowledged: abort
          return sink.write(buf.data(), static_cast<size_t>(n));
        });
  }

  // GET /requests/{id}/(request|response)/body[?raw=1]: the body alone, de-chunked and
  // decoded (or as stored with raw=1), streamed. Decoded once to validate and measure (so a
  // corrupt coding is a 422, not a cut connection), then again while sending.
  void body(const httplib::Request& req, httplib::Response& res) {
    bool raw_body = false;
    for (const auto& [name, value] : params_of(req)) {
      if (name != "raw") return send_param_error(res, name, "unknown parameter (expected raw)");
      if (value != "1" && value != "0") return send_param_error(res, "raw", "expected 1 or 0");
      raw_body = value == "1";
    }
    auto row = resolve(req.matches[1], res);
    if (!row) return;
    const bool request = req.matches[2] == "request";
    std::optional<std::string> file =
        request ? std::optional(row->request_file) : row->response_file;
    const int64_t head_size = request ? row->request_head_size : row->response_head_size;
    const int64_t file_size = request ? row->request_file_size : row->response_file_size;
    if (!file) return send_error(res, 404, "exchange " + row->id + " has no response (yet)");
    std::optional<StoredHead> head = read_stored_head(deps.store, file, head_size);
    if (!head)
      return send_error(res, 404, "the stored file of exchange " + row->id + " is missing");
    std::vector<std::string> codings = content_codings(*head);
    if (raw_body) codings.clear();
    uint64_t size = 0;
    BodyReadResult check = read_stored_body(deps.store, *file, head_size, file_size, codings,
                                            deps.max_decoded_bytes, [&](std::string_view piece) {
                                              size += piece.size();
                                              return true;
                                            });
    switch (check.status) {
      case reading::DecodeStatus::kOk:
      case reading::DecodeStatus::kSinkStopped:
        break;
      case reading::DecodeStatus::kTooLarge:
        return send_error(res, 413,
                          "the decoded body is larger than log_server.max_decoded_bytes (" +
                              std::to_string(deps.max_decoded_bytes) +
                              "); ?raw=1 serves it as stored");
      case reading::DecodeStatus::kUnknownCoding:
      case reading::DecodeStatus::kCorrupt:
        return send_json(res, 422, {{"error", check.error}, {"encoding", joined(codings)}});
    }
    mark_untrusted(res);
    res.set_header("X-Exchange-Id", row->id);
    if (raw_body && !content_codings(*head).empty()) {
      res.set_header("X-Content-Encoding", joined(content_codings(*head)));
    }
    std::string type =
        header_value(head->headers, "Content-Type").value_or("application/octet-stream");
    if (size == 0) return res.set_content("", type);
    const BlobStore& store = deps.store;
    const uint64_t max = deps.max_decoded_bytes;
    std::string path = *file;
    res.set_content_provider(
        size, type,
        [&store, max, path, head_size, file_size, codings](size_t offset, size_t,
                                                           httplib::DataSink& sink) {
          if (offset != 0) return false;  // everything is written by the first call
          BodyReadResult r = read_stored_body(
              store, path, head_size, file_size, codings, max,
              [&](std::string_view piece) { return sink.write(piece.data(), piece.size()); });
          return r.status == reading::DecodeStatus::kOk;
        });
  }

  // GET /requests/{id}/assembled: the answer as the provider returns it without streaming,
  // rebuilt from the stored stream on every call (nothing assembled is stored).
  void assembled(const httplib::Request& req, httplib::Response& res) {
    if (!no_params(req, res)) return;
    auto row = resolve(req.matches[1], res);
    if (!row) return;
    if (row->outcome == kInProgress) {
      return send_error(res, 409, "exchange " + row->id + " is still in progress");
    }
    std::string chunk_times = deps.readers.with_reader(
        [&](IndexReader& r) { return read_chunk_times(r.db(), row->id).value_or(""); });
    DeriveOutcome d = derive_exchange(*row, deps.store, chunk_times, deps.max_decoded_bytes);
    if (!d.ok)
      return send_error(res, 404, "the stored files of exchange " + row->id + " are missing");
    if (!d.llm)
      return send_error(res, 404, "exchange " + row->id + " is not a recognised LLM call");
    if (d.llm->assembled.is_null()) {
      return send_error(res, 404, "exchange " + row->id + " has no answer to assemble");
    }
    res.set_header("X-Exchange-Id", row->id);
    send_json(res, 200, d.llm->assembled);
  }

  // GET /requests/{id}/chunks: when each stored response body piece arrived (µs since the
  // exchange started) and its size, for the arrival chart.
  void chunks(const httplib::Request& req, httplib::Response& res) {
    if (!no_params(req, res)) return;
    auto row = resolve(req.matches[1], res);
    if (!row) return;
    std::string text = deps.readers.with_reader(
        [&](IndexReader& r) { return read_chunk_times(r.db(), row->id).value_or(""); });
    std::vector<ChunkTime> times = parse_chunk_times(text);
    json list = json::array();
    for (size_t i = 0; i < times.size(); ++i) {
      int64_t end = i + 1 < times.size() ? times[i + 1].offset : row->response_bytes;
      list.push_back({{"offset", times[i].offset},
                      {"bytes", std::max<int64_t>(end - times[i].offset, 0)},
                      {"t_us", times[i].t_us}});
    }
    // The stored times stop at a cap (1 MiB of entries): say whether the list is whole.
    send_json(res, 200,
              {{"chunks", std::move(list)}, {"complete", text.size() < kMaxChunkTimesBytes}});
  }

  void stats(const httplib::Request& req, httplib::Response& res) {
    ListQuery q;
    ParamError err;
    auto params = params_of(req);
    if (!parse_list_query(params, &q, &err,
                          QueryShape{.limit = false, .cursor = false, .own = {"group_by"}})) {
      return send_param_error(res, err.parameter, err.message);
    }
    std::optional<GroupBy> by = GroupBy::kModel;
    std::string by_name = "model";
    for (const auto& [name, value] : params) {
      if (name != "group_by") continue;
      by = parse_group_by(value);
      by_name = value;
      if (!by) {
        return send_param_error(res, "group_by",
                                "expected one of model, route, provider, status, hour, day");
      }
    }
    StatsAccumulator acc(*by);
    deps.readers.with_reader([&](IndexReader& r) {
      read_stats(r, q, acc);  // rollups where they apply; the same answer as the rows
      return 0;
    });
    json out = acc.result();
    out["group_by"] = by_name;
    send_json(res, 200, out);
  }

  // GET /export?format=har|jsonl: streamed a page of rows and one exchange at a time, so its
  // memory does not grow with the number of exchanges.
  void export_(const httplib::Request& req, httplib::Response& res) {
    ListQuery q;
    ParamError err;
    auto params = params_of(req);
    if (!parse_list_query(params, &q, &err,
                          QueryShape{.limit = true,
                                     .default_limit = 1000,
                                     .max_limit = 100000,
                                     .cursor = false,
                                     .own = {"format"}})) {
      return send_param_error(res, err.parameter, err.message);
    }
    std::string format;
    for (const auto& [name, value] : params) {
      if (name == "format") format = value;
    }
    if (format != "har" && format != "jsonl") {
      return send_param_error(res, "format", "expected har or jsonl");
    }
    const bool har = format == "har";
    res.set_header("Content-Disposition", std::string("attachment; filename=\"captures.") +
                                              (har ? "har" : "jsonl") + "\"");
    res.set_header("X-Content-Type-Options", "nosniff");
    ReaderPool& readers = deps.readers;
    const BlobStore& store = deps.store;
    const uint64_t max_body = std::min<uint64_t>(deps.max_decoded_bytes, kMaxExportBody);
    const std::string version = deps.version;
    res.set_chunked_content_provider(
        har ? "application/json" : "application/x-ndjson",
        [&readers, &store, q, har, max_body, version](size_t, httplib::DataSink& sink) mutable {
          auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          if (har && !write(har_prefix(version))) return false;
          int left = q.limit;
          bool first = true;
          while (left > 0) {
            ListQuery page_query = q;
            page_query.limit = std::min(left, kExportPage);
            ListPage page = readers.with_reader([&](IndexReader& r) { return r.list(page_query); });
            for (const ExchangeRow& row : page.rows) {
              LoadedExchange x = load_exchange(row, store, max_body);
              std::string line;
              if (har) {
                line = (first ? "" : ",") + dump_json(har_entry(row, x));
              } else {
                json assembled = nullptr;
                if (row.llm_json && row.outcome != kInProgress) {
                  std::string times = readers.with_reader([&](IndexReader& r) {
                    return read_chunk_times(r.db(), row.id).value_or("");
                  });
                  DeriveOutcome d = derive_exchange(row, store, times, max_body);
                  if (d.llm) assembled = std::move(d.llm->assembled);
                }
                line = dump_json(jsonl_record(row, x, assembled)) + "\n";
              }
              first = false;
              if (!write(line)) return false;
            }
            left -= static_cast<int>(page.rows.size());
            if (!page.next) break;
            q.cursor = page.next;
          }
          if (har && !write(har_suffix())) return false;
          sink.done();
          return true;
        });
  }

  // GET /live: Server-Sent Events, one "exchange" event per published row that passes the
  // /requests filters (live_feed.h). The worker serving it stays in the content provider for
  // the stream's life, waiting on the subscription with a tick so it can send keep-alives,
  // notice a client that went away (sink.is_writable) and end when dropped or closed.
  void live(const httplib::Request& req, httplib::Response& res) {
    ListQuery q;
    ParamError err;
    if (!parse_list_query(params_of(req), &q, &err,
                          QueryShape{.limit = false, .cursor = false, .own = {}})) {
      return send_param_error(res, err.parameter, err.message);
    }
    std::optional<uint64_t> last_id;
    if (req.has_header("Last-Event-ID")) {
      const std::string v = req.get_header_value("Last-Event-ID");
      if (!v.empty() && v.size() <= 19 && v.find_first_not_of("0123456789") == std::string::npos) {
        last_id = std::stoull(v);
      }  // an id this server never sent: the stream just starts live
    }
    std::shared_ptr<LiveSubscription> sub = deps.live.subscribe(q, last_id);
    if (!sub) {
      const size_t limit = deps.live.options().max_subscribers;
      res.set_header("Retry-After", "5");
      return send_json(res, 503,
                       {{"error", "too many live subscribers: at most " + std::to_string(limit) +
                                      " GET /live streams may be open at once"},
                        {"limit", limit}});
    }
    // The library compresses text/* answers for a client that accepts gzip or br, buffering
    // the whole stream (Z_NO_FLUSH). Exactly "text/event-stream" is exempt; dropping the
    // header as well keeps it so whatever the type. The Request is the library's own,
    // non-const object, so this is defined behaviour.
    const_cast<httplib::Request&>(req).headers.erase("Accept-Encoding");
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    const auto keepalive = deps.live.options().keepalive;
    // The web UI reads "missed events" in this first line as its cue to page /requests back
    // over the gap (ui/api.js, follow()).
    std::string first =
        sub->resumed() ? ": live\n\n" : ": live; missed events, re-list /requests\n\n";
    res.set_chunked_content_provider(
        "text/event-stream",
        [sub, keepalive, first = std::move(first)](size_t offset, httplib::DataSink& sink) mutable {
          // The first write confirms the subscription to the client (it is registered already).
          if (offset == 0 && !sink.write(first.data(), first.size())) return false;
          auto quiet_until = std::chrono::steady_clock::now() + keepalive;
          std::string out;
          for (;;) {
            auto now = std::chrono::steady_clock::now();
            if (now >= quiet_until) {
              static constexpr std::string_view kKeepalive = ": keepalive\n\n";
              return sink.write(kKeepalive.data(), kKeepalive.size());
            }
            auto wait =
                std::min(std::chrono::duration_cast<std::chrono::milliseconds>(quiet_until - now),
                         kLiveTick);
            switch (sub->next(&out, wait + std::chrono::milliseconds(1))) {
              case LiveSubscription::Wait::kEvents:
                return sink.write(out.data(), out.size());
              case LiveSubscription::Wait::kTimeout:
                // An idle stream notices a client that left within a tick, not a keep-alive.
                if (!sink.is_writable()) return false;
                break;
              case LiveSubscription::Wait::kDropped:
              case LiveSubscription::Wait::kClosed:
                sink.done();
                return true;
            }
          }
        });
  }

  void ingest(const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader& reader) {
    // Every answer, refusals included: this server applies batches in the order named.
    res.set_header(std::string(wire::kOrderedHeader), "1");
    auto too_large = [&] {
      deps.metrics.count_error(IngestErrorKind::kTooLarge);
      res.set_header("Connection", "close");  // the rest of the body is not read
      send_error(res, 413, "batch larger than " + std::to_string(wire::kMaxBatchBytes) + " bytes");
    };
    auto refuse = [&](int status, const std::string& message) {
      deps.metrics.count_error(IngestErrorKind::kMalformed);
      res.set_header("Connection", "close");  // the body is not read
      send_error(res, status, message);
    };
    // Only batches are accepted. A multipart or form body would also make the HTTP library
    // parse it its own way, so anything else is refused before a byte of the body is read.
    if (req.has_header("Content-Type")) {
      std::string type = req.get_header_value("Content-Type");
      type = type.substr(0, type.find(';'));
      while (!type.empty() && type.back() == ' ') type.pop_back();
      for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (type != "application/octet-stream") {
        return refuse(415, "Content-Type must be application/octet-stream (a capture batch)");
      }
    }
    std::string body;
    if (req.has_header("Content-Length")) {
      // The library reads "abc" as 0 and "-1" as huge: only plain digits are a length.
      const std::string value = req.get_header_value("Content-Length");
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) {
        return refuse(400, "Content-Length is not a decimal number of bytes");
      }
      if (value.size() > 18) return too_large();
      uint64_t length = std::stoull(value);
      if (length > wire::kMaxBatchBytes) return too_large();
      body.reserve(length);
    }
    // Chunked bodies have no length up front: they are counted as they arrive.
    bool over = false;
    bool complete = reader([&](const char* data, size_t n) {
      if (body.size() + n > wire::kMaxBatchBytes) {
        over = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (over) return too_large();
    if (!complete) {
      res.set_header("Connection", "close");
      return send_error(res, 400, "the batch body could not be read completely");
    }
    std::string error;
    auto batch = wire::decode_batch_views(body, &error);
    if (!batch) {
      deps.metrics.count_error(IngestErrorKind::kMalformed);
      return send_error(res, 400, "malformed batch: " + error);
    }
    std::optional<uint64_t> after;
    if (req.has_header(std::string(wire::kAfterHeader).c_str())) {
      const std::string value = req.get_header_value(std::string(wire::kAfterHeader).c_str());
      if (value.empty() || value.size() > 19 ||
          value.find_first_not_of("0123456789") != std::string::npos) {
        deps.metrics.count_error(IngestErrorKind::kMalformed);
        return send_error(res, 400,
                          std::string(wire::kAfterHeader) + " is not a batch sequence number");
      }
      after = std::stoull(value);
    }
    IngestResult r = deps.ingestor.apply(*batch, after);
    switch (r.status) {
      case IngestResult::Status::kApplied:
        return send_json(res, 200,
                         {{"applied", true}, {"frames", r.frames}, {"skipped", r.skipped}});
      case IngestResult::Status::kDuplicate:
        return send_json(res, 200, {{"duplicate", true}});
      case IngestResult::Status::kOutOfOrder:
        return send_error(res, 409, r.error + "; nothing applied, send it again after that one");
      case IngestResult::Status::kDiskFull:
        log_line("ingest of batch " + batch->proxy_id + "/" + std::to_string(batch->seq) +
                 " failed, rolled back: " + r.error);
        return send_error(res, 507, "log server storage is full; batch not applied");
      case IngestResult::Status::kUnavailable:
        log_line("ingest of batch " + batch->proxy_id + "/" + std::to_string(batch->seq) +
                 " failed, rolled back: " + r.error);
        res.set_header("Retry-After", "5");
        return send_error(res, 503, "log server storage error; batch not applied");
    }
  }

  void routes() {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      // cpp-httplib 0.11.4 applies a Range header to every answer, JSON errors included, and
      // miscomputes ranges past the end; raw() serves ranges itself (byte_range.h). The
      // library's Request is a non-const object it owns, so dropping its parsed ranges is safe.
      const_cast<httplib::Request&>(req).ranges.clear();
      // The library's brotli runs at quality 11: ~300 ms for one 70 KB page of /requests, and a
      // browser always offers br. gzip costs ~1 ms for a few percent more bytes.
      if (auto it = req.headers.find("Accept-Encoding"); it != req.headers.end()) {
        std::string value = without_coding(it->second, "br");
        auto& headers = const_cast<httplib::Request&>(req).headers;
        headers.erase("Accept-Encoding");
        if (!value.empty()) headers.emplace("Accept-Encoding", std::move(value));
      }
      // The web UI's own files hold no data: the page asks for the token itself.
      const bool ui_file = req.path == "/" || req.path.rfind("/ui/", 0) == 0;
      if (req.path == "/healthz" || ui_file || auth.allows(req.get_header_value("Authorization"))) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      res.set_header("WWW-Authenticate", "Bearer");
      // The body was not read; the connection cannot carry another request.
      if (has_body(req)) res.set_header("Connection", "close");
      send_error(res, 401, "missing or wrong bearer token (Authorization: Bearer TOKEN)");
      return httplib::Server::HandlerResponse::Handled;
    });
    server.set_error_handler(
        httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          std::string message = status_text(res.status);
          // No route matched: say what exists rather than echo the (hostile) path back.
          if (res.status == 404) message = "no such endpoint; " + std::string(kEndpoints);
          // The library refuses a Range it cannot parse before any handler runs.
          if (res.status == 416) {
            message = "Range header: expected bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX";
          }
          send_error(res, res.status, message);
          return httplib::Server::HandlerResponse::Handled;
        }));
    server.set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          log_line(req.method + " " + req.path + ": " + what);
          bool busy = false;
          try {
            std::rethrow_exception(ep);
          } catch (const SqliteError& e) {
            busy = e.code() == SQLITE_BUSY || e.code() == SQLITE_LOCKED;
          } catch (...) {
          }
          send_error(res, busy ? 503 : 500, busy ? "index busy, try again" : "internal error");
        });

    // The web UI (log-server/ui/, compiled in): GET / is its page, GET /ui/FILE its files.
    auto ui = [](const std::string& name, const httplib::Request& req, httplib::Response& res) {
      const UiAsset* asset = find_ui_asset(name);
      if (!asset) return send_error(res, 404, "no such UI file");
      res.set_header("Content-Security-Policy", std::string(kUiContentSecurityPolicy));
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Referrer-Policy", "no-referrer");
      res.set_header("Cache-Control", "no-cache");
      res.set_header("ETag", std::string(asset->etag));
      if (req.get_header_value("If-None-Match") == asset->etag) {
        res.status = 304;
        return;
      }
      res.set_content(asset->body.data(), asset->body.size(), std::string(asset->content_type));
    };
    server.Get("/", [ui](const httplib::Request& req, httplib::Response& res) {
      ui("index.html", req, res);
    });
    server.Get(R"(/ui/([A-Za-z0-9._-]+))",
               [ui](const httplib::Request& req, httplib::Response& res) {
                 ui(req.matches[1], req, res);
               });
    server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"status", "ok"}});
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(deps.metrics.render(), "text/plain; version=0.0.4");
    });
    server.Get("/requests",
               [this](const httplib::Request& req, httplib::Response& res) { list(req, res); });
    server.Get(R"(/requests/([^/]*))",
               [this](const httplib::Request& req, httplib::Response& res) { detail(req, res); });
    server.Get(R"(/requests/([^/]*)/(request|response))",
               [this](const httplib::Request& req, httplib::Response& res) { raw(req, res); });
    server.Get(R"(/requests/([^/]*)/(request|response)/body)",
               [this](const httplib::Request& req, httplib::Response& res) { body(req, res); });
    server.Get(
        R"(/requests/([^/]*)/assembled)",
        [this](const httplib::Request& req, httplib::Response& res) { assembled(req, res); });
    server.Get(R"(/requests/([^/]*)/chunks)",
               [this](const httplib::Request& req, httplib::Response& res) { chunks(req, res); });
    server.Get("/stats",
               [this](const httplib::Request& req, httplib::Response& res) { stats(req, res); });
    server.Get("/export",
               [this](const httplib::Request& req, httplib::Response& res) { export_(req, res); });
    server.Get("/live",
               [this](const httplib::Request& req, httplib::Response& res) { live(req, res); });
    server.Post("/ingest",
                [this](const httplib::Request& req, httplib::Response& res,
                       const httplib::ContentReader& reader) { ingest(req, res, reader); });
  }
};

ApiServer::ApiServer(ApiDeps deps, int api_threads)
    : impl_(std::make_unique<Impl>(std::move(deps), api_threads)) {}

ApiServer::~ApiServer() = default;

void ApiServer::bind(const std::string& host, int port) {
  std::string bind_host = host;
  // "localhost" means IPv4 loopback here, as for the proxy: clients most often dial 127.0.0.1.
  if (host == "localhost") bind_host = "127.0.0.1";
  if (bind_host.size() > 2 && bind_host.front() == '[' && bind_host.back() == ']') {
    bind_host = bind_host.substr(1, bind_host.size() - 2);
  }
  // cpp-httplib's default sets SO_REUSEPORT, which lets a second server bind the same port and
  // silently take half the connections; SO_REUSEADDR alone still allows a quick restart.
  impl_->server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  bool ok = port == 0 ? impl_->server.bind_to_any_port(bind_host) > 0
                      : impl_->server.bind_to_port(bind_host, port);
  if (!ok) {
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                             std::strerror(errno));
  }
  ::listen(impl_->server.fd(), 1024);
}

int ApiServer::port() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(impl_->server.fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

bool ApiServer::run() {
  return impl_->server.listen_after_bind();
}

void ApiServer::stop() {
  // Open feeds would otherwise hold their workers (and so the stop) until a keep-alive tick.
  impl_->deps.live.close();
  impl_->server.stop();
}

}  // namespace lp::logsrv
