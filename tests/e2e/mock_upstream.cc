// mock_upstream: the upstream the end-to-end tests put behind logging-proxy.
//
//   mock_upstream [--tls-cert CERT --tls-key KEY] [--threads N] [--ignore-stdin]
//
// Listens on 127.0.0.1, port 0, for plain HTTP and (with a certificate) HTTPS, prints ONE line
// `mock_upstream http=PORT https=PORT` (https=0 without TLS) and serves until SIGTERM/SIGINT or
// until stdin reaches EOF (so it dies with the test process that holds the other end of its stdin
// pipe; pass --ignore-stdin to run it in the background by hand). --threads N pre-starts N
// connection threads for the plain listener (default 32; it grows to 4096 on demand).
//
// Endpoints (the same on both listeners; exact paths):
//   /echo, /echo/...       any method: JSON {method, path, query, headers, body_length,
//                          body_sha256, body_complete, tls}; the body is streamed through
//                          SHA-256, never buffered. `headers` is in httplib's order (sorted by
//                          name, repeats in arrival order) minus httplib's REMOTE_*/LOCAL_*, and
//                          httplib 0.11.4 percent-decodes values: test with plain values.
//   /sse?n=N&ms=D&first_ms=F[&hold=1][&ndjson=1]   N events `data: {"i":K,"t_us":SEND_TIME}`
//                          D ms apart, the first after F ms; a client that goes away is recorded
//                          in /stats. With ndjson=1, lines `{"i":K,"t_us":SEND_TIME}` as
//                          application/x-ndjson (Ollama's streams) instead.
//                          With hold=1 the events after the first wait for /release (then
//                          come D ms apart from it), so a test can hold many streams open.
//   /release               lets every held /sse stream go on (once; later streams are not held).
//   /gzip                  a fixed JSON body pre-compressed with gzip, Content-Encoding: gzip,
//                          Content-Length, X-Body-Sha256 (of the compressed bytes) and
//                          X-Plain-Sha256 (of the JSON).
//   /slow?ms=D             answers "slow done" after D ms; a client that goes away first ends the
//                          wait and is recorded in /stats.
//   /large?bytes=N[&chunked=1]  N bytes, byte i = (i*31+7)&0xff, with Content-Length or chunked.
//   /status?code=C         status C, body "status C"; 204 and 304 have neither body nor
//                          Content-Length (as RFC 9110 servers such as nginx send them).
//   /headers               repeated response headers and a Connection-named hop-by-hop header.
//   /stats                 JSON counters (see Stats::to_json); /stats and /release are not
//                          counted.
//   POST /v1/chat/completions  OpenAI shape: a chat.completion, or with "stream": true an SSE
//                          stream of chat.completion.chunk events ending with `data: [DONE]`
//                          (a usage chunk first with stream_options.include_usage). Needs
//                          `Authorization: Bearer ...`, else 401.
//   POST /v1/messages      Anthropic shape: a message, or with "stream": true the real event
//                          sequence (message_start, content_block_start, ping,
//                          content_block_delta per piece, content_block_stop, message_delta,
//                          message_stop). Needs x-api-key (or a bearer token) and
//                          anthropic-version, else 401 / 400.
//   POST /v1/responses     OpenAI Responses shape: a response with an output_text message and a
//                          function_call, or with "stream": true the real event sequence
//                          (response.created ... response.completed). Needs a bearer token.
//   GET /v1/models         a models list both SDKs accept.
//                          The reply text is "Hello from mock! You said: " + the last user
//                          message; ids and timestamps are fixed, so the same request body gives
//                          the same bytes. X-Body-Sha256 is the SHA-256 of the body sent; request
//                          header X-Mock-Chunk-Ms=D pauses D ms before each event after the first.
//                          Models "mock-tools" and "mock-text" get realistic answers instead
//                          (tool calls, thinking, cache and reasoning token counts): see
//                          "Realistic LLM answers" below. Request header X-Mock-Encoding: gzip,
//                          br, zstd or a comma-separated list codes a JSON answer (not a stream)
//                          with Content-Encoding, and adds X-Plain-Sha256 (of the JSON).
// All times are CLOCK_MONOTONIC microseconds, comparable with std::chrono::steady_clock in
// another process on the same machine.

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <brotli/encode.h>

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;

int64_t mono_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

void sleep_us(int64_t us) {
  if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

std::string to_hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 0xf]);
  }
  return out;
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const char* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    return to_hex(md, len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string sha256_hex(const std::string& s) {
  Sha256 h;
  h.update(s.data(), s.size());
  return h.hex();
}

std::string gzip_compress(const std::string& in) {
  z_stream zs{};
  // windowBits 15 + 16: zlib writes a gzip wrapper.
  if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    std::abort();
  }
  std::string out(deflateBound(&zs, in.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// One thread serves one connection for its whole life. This pool starts `min` threads up front
// (creating threads one by one on httplib's accept thread is what limits a burst of new
// connections), grows on demand up to `max`, and lets idle threads above `min` go after 30 s.
class ElasticPool : public httplib::TaskQueue {
 public:
  ElasticPool(size_t min, size_t max) : st_(std::make_shared<State>()) {
    std::unique_lock<std::mutex> lk(st_->mu);
    st_->min = min;
    st_->max = std::max(min, max);
    for (size_t i = 0; i < min; ++i) {
      ++st_->threads;
      std::thread([st = st_] { worker(st); }).detach();
    }
    // Return only once every thread waits for work: a burst must not find a pool still warming
    // up (and spawn more threads because none is idle yet).
    st_->done_cv.wait_for(lk, std::chrono::seconds(30), [&] { return st_->idle >= min; });
  }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lk(st_->mu);
    st_->jobs.push_back(std::move(fn));
    if (st_->idle < st_->jobs.size() && st_->threads < st_->max) {
      ++st_->threads;
      std::thread([st = st_] { worker(st); }).detach();
    }
    st_->cv.notify_one();
  }

  void shutdown() override {
    std::unique_lock<std::mutex> lk(st_->mu);
    st_->shutdown = true;
    st_->cv.notify_all();
    st_->done_cv.wait_for(lk, std::chrono::seconds(5), [&] { return st_->threads == 0; });
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv, done_cv;
    std::deque<std::function<void()>> jobs;
    size_t min = 0, max = 0, threads = 0, idle = 0;
    bool shutdown = false;
  };

  static void worker(std::shared_ptr<State> st) {
    std::unique_lock<std::mutex> lk(st->mu);
    for (;;) {
      ++st->idle;
      if (st->idle <= st->min) st->done_cv.notify_all();
      bool woke = st->cv.wait_for(lk, std::chrono::seconds(30),
                                  [&] { return !st->jobs.empty() || st->shutdown; });
      --st->idle;
      if (st->jobs.empty()) {
        if (st->shutdown || (!woke && st->threads > st->min)) break;
        continue;
      }
      auto fn = std::move(st->jobs.front());
      st->jobs.pop_front();
      lk.unlock();
      fn();
      lk.lock();
    }
    --st->threads;
    st->done_cv.notify_all();
  }

  std::shared_ptr<State> st_;
};

// Exposes the listening socket so that it can be re-listened with a useful backlog (the .so's
// built-in backlog is 5).
template <class Base>
class Listener : public Base {
 public:
  using Base::Base;
  int listen_fd() const { return this->svr_sock_; }
};

struct Stats {
  std::mutex mu;
  json sse_disconnects = json::array();
  json slow_disconnects = json::array();
  uint64_t requests = 0;
  std::set<std::pair<std::string, int>> connections;  // (remote addr, remote port)
  int sse_active = 0;
  int sse_max_active = 0;
  uint64_t sse_completed = 0;

  json to_json() {
    std::lock_guard<std::mutex> lk(mu);
    return json{{"sse_disconnects", sse_disconnects},
                {"slow_disconnects", slow_disconnects},
                {"requests", requests},
                {"connections_seen", connections.size()},
                {"sse_active", sse_active},
                {"sse_max_active", sse_max_active},
                {"sse_completed", sse_completed}};
  }
};

Stats g_stats;
std::atomic<int64_t> g_released_us{0};  // when /release was called (mono_us), 0 = not yet
// Held streams sleep here until /release: thousands of them polling on timers would keep the
// machine's run queue full and starve every other process a test runs beside them.
std::mutex g_release_mu;
std::condition_variable g_release_cv;

// Waits until /release or `timeout`; true once released.
bool wait_release(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(g_release_mu);
  return g_release_cv.wait_for(lk, timeout, [] { return g_released_us.load() != 0; });
}
std::string g_gzip_plain;
std::string g_gzip_body;
std::string g_pattern;  // 64 KiB + 256 bytes of the /large pattern, starting at byte 0

constexpr size_t kPiece = 64 * 1024;

std::string target_path_of(const std::string& target) {
  auto q = target.find('?');
  return q == std::string::npos ? target : target.substr(0, q);
}

std::string target_path(const httplib::Request& req) {
  return target_path_of(req.target);
}

std::string target_query(const httplib::Request& req) {
  auto q = req.target.find('?');
  return q == std::string::npos ? std::string() : req.target.substr(q + 1);
}

long long param_ll(const httplib::Request& req, const char* name, long long dflt) {
  if (!req.has_param(name)) return dflt;
  try {
    return std::stoll(req.get_param_value(name));
  } catch (...) {
    return dflt;
  }
}

bool is_internal_header(const std::string& name) {
  // httplib injects these into req.headers itself.
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
         name == "LOCAL_PORT";
}

void set_json(httplib::Response& res, const json& j) {
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// The socket of this request's connection: httplib 0.11.4 gives handlers no socket, so find the
// fd whose peer and local ports are the request's. -1 when not found.
int find_connection_fd(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    sockaddr_in peer{}, local{};
    socklen_t plen = sizeof(peer), llen = sizeof(local);
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &plen) != 0) continue;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &llen) != 0)
      continue;
    if (peer.sin_family != AF_INET || local.sin_family != AF_INET) continue;
    if (ntohs(peer.sin_port) == req.remote_port && ntohs(local.sin_port) == req.local_port) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

// Waits up to `ms`; returns the monotonic time the client went away, or 0 if it stayed.
int64_t wait_watching_client(const httplib::Request& req, int64_t ms) {
  const int64_t deadline = mono_us() + ms * 1000;
  const int fd = find_connection_fd(req);
  for (;;) {
    int64_t left = deadline - mono_us();
    if (left <= 0) return 0;
    if (fd < 0) {
      sleep_us(std::min<int64_t>(left, 2000));
      continue;
    }
    pollfd p{fd, POLLRDHUP, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left / 1000 + 1, 50)));
    if (r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) return mono_us();
    if (r > 0 && (p.revents & POLLIN)) {
      // Data (e.g. a pipelined request) but no FIN: check for EOF without spinning on it.
      char c;
      if (::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) return mono_us();
      sleep_us(std::min<int64_t>(left, 2000));
    }
  }
}

void handle_echo(const httplib::Request& req, httplib::Response& res,
                 const httplib::ContentReader* reader, bool tls) {
  json headers = json::array();
  for (const auto& [name, value] : req.headers) {
    if (!is_internal_header(name)) headers.push_back(json::array({name, value}));
  }
  Sha256 sha;
  uint64_t length = 0;
  // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3); do
  // not let httplib read until the timeout.
  const bool has_body = req.has_header("Content-Length") || req.has_header("Transfer-Encoding");
  bool body_ok = true;
  if (reader && has_body) {
    body_ok = (*reader)([&](const char* data, size_t n) {
      sha.update(data, n);
      length += n;
      return true;
    });
  }
  set_json(res, json{{"method", req.method},
                     {"path", target_path(req)},
                     {"query", target_query(req)},
                     {"headers", headers},
                     {"body_length", length},
                     {"body_sha256", sha.hex()},
                     {"body_complete", body_ok},
                     {"tls", tls}});
}

struct SseState {
  std::string target;
  long long n = 0;
  int64_t start_us = 0, first_us = 0, gap_us = 0;
  long long sent = 0;
  bool hold = false;
  bool ndjson = false;
  bool started = false;
  bool complete = false;
  int64_t gone_us = 0;
};

void handle_sse(const httplib::Request& req, httplib::Response& res) {
  auto st = std::make_shared<SseState>();
  st->target = req.target;
  st->n = std::max(0LL, param_ll(req, "n", 5));
  st->gap_us = std::max(0LL, param_ll(req, "ms", 100)) * 1000;
  st->first_us = std::max(0LL, param_ll(req, "first_ms", 0)) * 1000;
  st->hold = param_ll(req, "hold", 0) != 0;
  st->ndjson = param_ll(req, "ndjson", 0) != 0;
  st->start_us = mono_us();
  {
    std::lock_guard<std::mutex> lk(g_stats.mu);
    g_stats.sse_active++;
    g_stats.sse_max_active = std::max(g_stats.sse_max_active, g_stats.sse_active);
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      st->ndjson ? "application/x-ndjson" : "text/event-stream",
      [st](size_t, httplib::DataSink& sink) {
        st->started = true;
        if (st->sent >= st->n) {
          st->complete = true;
          sink.done();
          return true;
        }
        for (;;) {
          const int64_t now = mono_us();
          const int64_t released = g_released_us.load();
          const bool held = st->hold && st->sent >= 1 && released == 0;
          const int64_t due = st->hold && st->sent >= 1
                                  ? released + (st->sent - 1) * st->gap_us
                                  : st->start_us + st->first_us + st->sent * st->gap_us;
          if (!held && now >= due) break;
          if (!sink.is_writable()) {
            st->gone_us = mono_us();
            return false;
          }
          if (held) {  // a client that goes meanwhile is seen within the wait
            wait_release(std::chrono::milliseconds(250));
            continue;
          }
          // Each check costs two syscalls and a wake-up: all streams together check at most
          // some 4,000 times a second (2,000 streams each every 0.5 s), or they would keep the
          // run queue full and starve every process beside them. Events still go out on time.
          int active;
          {
            std::lock_guard<std::mutex> lk(g_stats.mu);
            active = g_stats.sse_active;
          }
          const int64_t interval_us = std::clamp<int64_t>(int64_t{active} * 250, 2000, 500000);
          sleep_us(std::min(due - now, interval_us));
        }
        const int64_t t = mono_us();
        const std::string line =
            "{\"i\":" + std::to_string(st->sent) + ",\"t_us\":" + std::to_string(t) + "}\n";
        const std::string event = st->ndjson ? line : "data: " + line + "\n";
        if (!sink.write(event.data(), event.size())) {
          st->gone_us = mono_us();
          return false;
        }
        st->sent++;
        return true;
      },
      [st](bool) {
        std::lock_guard<std::mutex> lk(g_stats.mu);
        g_stats.sse_active--;
        if (st->complete) {
          g_stats.sse_completed++;
        } else if (st->started) {
          g_stats.sse_disconnects.push_back(json{{"path", target_path_of(st->target)},
                                                 {"target", st->target},
                                                 {"at_us", st->gone_us ? st->gone_us : mono_us()},
                                                 {"events_sent", st->sent}});
        }
      });
}

void handle_slow(const httplib::Request& req, httplib::Response& res) {
  const int64_t start = mono_us();
  const long long ms = std::max(0LL, param_ll(req, "ms", 1000));
  if (int64_t gone = wait_watching_client(req, ms)) {
    std::lock_guard<std::mutex> lk(g_stats.mu);
    g_stats.slow_disconnects.push_back(json{{"path", target_path(req)},
                                            {"target", req.target},
                                            {"at_us", gone},
                                            {"waited_ms", (gone - start) / 1000}});
    res.status = 499;
    return;
  }
  res.set_content("slow done", "text/plain");
}

void handle_large(const httplib::Request& req, httplib::Response& res) {
  const size_t total = static_cast<size_t>(std::max(0LL, param_ll(req, "bytes", 0)));
  const bool chunked = param_ll(req, "chunked", 0) != 0;
  if (total == 0) {
    res.set_content("", "application/octet-stream");
    return;
  }
  if (chunked) {
    res.set_chunked_content_provider("application/octet-stream",
                                     [total](size_t offset, httplib::DataSink& sink) {
                                       if (offset >= total) {
                                         sink.done();
                                         return true;
                                       }
                                       size_t n = std::min(kPiece, total - offset);
                                       return sink.write(g_pattern.data() + offset % 256, n);
                                     });
  } else {
    // In CL mode httplib's DataSink::done is empty: never call it here.
    res.set_content_provider(total, "application/octet-stream",
                             [](size_t offset, size_t length, httplib::DataSink& sink) {
                               size_t n = std::min(kPiece, length);
                               return sink.write(g_pattern.data() + offset % 256, n);
                             });
  }
}

void handle_status(const httplib::Request& req, httplib::Response& res) {
  const int code = static_cast<int>(param_ll(req, "code", 200));
  res.status = code;
  if (code == 204 || code == 304 || (code >= 100 && code < 200)) {
    if (code == 304) res.set_header("ETag", "\"mock-etag\"");
    return;  // the post-routing handler removes httplib's Content-Length: 0
  }
  res.set_content("status " + std::to_string(code), "text/plain");
}

void handle_headers(const httplib::Request&, httplib::Response& res) {
  res.set_header("Set-Cookie", "a=1; Path=/");
  res.set_header("Set-Cookie", "b=2; Path=/");
  res.set_header("X-Dup", "1");
  res.set_header("X-Dup", "2");
  res.set_header("Connection", "X-Hop");
  res.set_header("X-Hop", "secret");
  res.set_content("headers", "text/plain");
}

void handle_gzip(const httplib::Request&, httplib::Response& res) {
  res.set_header("Content-Encoding", "gzip");
  res.set_header("X-Body-Sha256", sha256_hex(g_gzip_body));
  res.set_header("X-Plain-Sha256", sha256_hex(g_gzip_plain));
  // A length provider is never auto-compressed by httplib, so these are the bytes on the wire.
  res.set_content_provider(g_gzip_body.size(), "application/json",
                           [](size_t offset, size_t length, httplib::DataSink& sink) {
                             return sink.write(g_gzip_body.data() + offset, length);
                           });
}

// --- LLM API shapes: OpenAI chat completions, Anthropic messages, a models list ----------------
// Replies are a pure function of the request body (fixed ids and timestamps): sending the same
// body straight to the mock gives the same bytes again. Each reply carries X-Body-Sha256, the
// SHA-256 of the body bytes it sends (for a stream, of all its events).

using ojson = nlohmann::ordered_json;

constexpr int64_t kMockCreated = 1700000000;  // "created" of every completion and model
constexpr size_t kMaxLlmRequest = 1 << 20;

std::string dump(const ojson& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void llm_error(httplib::Response& res, int status, bool anthropic, const std::string& type,
               const std::string& message) {
  ojson body;
  if (anthropic) {
    body = ojson{{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
  } else {
    body = ojson{
        {"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
  }
  res.status = status;
  res.set_content(dump(body), "application/json");
}

// The text of a message's content: a string, or the "text" parts of an array of parts.
std::string content_text(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const auto& part : content) {
      if (part.is_object() && part.value("type", "") == "text" && part.contains("text") &&
          part["text"].is_string()) {
        out += part["text"].get<std::string>();
      }
    }
  }
  return out;
}

// What the mock "generates": a greeting that quotes the last user message, cut into pieces the
// way tokens are (each piece but the first starts with its space).
std::vector<std::string> reply_pieces(const json& request) {
  std::string said;
  if (request.contains("messages") && request["messages"].is_array()) {
    const auto& messages = request["messages"];
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
      if (it->is_object() && it->value("role", "") == "user" && it->contains("content")) {
        said = content_text((*it)["content"]);
        break;
      }
    }
  }
  const std::string text = said.empty() ? "Hello from mock!" : "Hello from mock! You said: " + said;
  std::vector<std::string> pieces;
  size_t start = 0;
  for (size_t i = 1; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == ' ') {
      pieces.push_back(text.substr(start, i - start));
      start = i;
    }
  }
  return pieces;
}

std::string join(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

// A rough, deterministic token count: the number of space-separated words in the messages.
int prompt_tokens(const json& request) {
  int n = 0;
  if (request.contains("messages") && request["messages"].is_array()) {
    for (const auto& m : request["messages"]) {
      if (!m.is_object() || !m.contains("content")) continue;
      bool in_word = false;
      for (char c : content_text(m["content"])) {
        if (c == ' ' || c == '\n') {
          in_word = false;
        } else if (!in_word) {
          in_word = true;
          ++n;
        }
      }
    }
  }
  return n;
}

std::vector<std::string> openai_events(const std::string& model,
                                       const std::vector<std::string>& pieces, bool usage,
                                       int prompt) {
  auto chunk = [&](ojson delta, ojson finish) {
    return ojson{{"id", "chatcmpl-mock"},
                 {"object", "chat.completion.chunk"},
                 {"created", kMockCreated},
                 {"model", model},
                 {"system_fingerprint", nullptr},
                 {"choices", ojson::array({ojson{{"index", 0},
                                                 {"delta", std::move(delta)},
                                                 {"logprobs", nullptr},
                                                 {"finish_reason", std::move(finish)}}})}};
  };
  std::vector<std::string> events;
  auto add = [&](const ojson& j) { events.push_back("data: " + dump(j) + "\n\n"); };
  add(chunk(ojson{{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}, nullptr));
  for (const auto& p : pieces) add(chunk(ojson{{"content", p}}, nullptr));
  add(chunk(ojson::object(), "stop"));
  if (usage) {
    ojson last = chunk(ojson::object(), nullptr);
    last["choices"] = ojson::array();
    last["usage"] = ojson{{"prompt_tokens", prompt},
                          {"completion_tokens", pieces.size()},
                          {"total_tokens", prompt + static_cast<int>(pieces.size())}};
    add(last);
  }
  events.push_back("data: [DONE]\n\n");
  return events;
}

ojson openai_completion(const std::string& model, const std::vector<std::string>& pieces,
                        int prompt) {
  return ojson{
      {"id", "chatcmpl-mock"},
      {"object", "chat.completion"},
      {"created", kMockCreated},
      {"model", model},
      {"system_fingerprint", nullptr},
      {"choices",
       ojson::array({ojson{
           {"index", 0},
           {"message", {{"role", "assistant"}, {"content", join(pieces)}, {"refusal", nullptr}}},
           {"logprobs", nullptr},
           {"finish_reason", "stop"}}})},
      {"usage",
       {{"prompt_tokens", prompt},
        {"completion_tokens", pieces.size()},
        {"total_tokens", prompt + static_cast<int>(pieces.size())}}}};
}

ojson anthropic_usage(int input, int output) {
  return ojson{{"input_tokens", input},
               {"cache_creation_input_tokens", 0},
               {"cache_read_input_tokens", 0},
               {"output_tokens", output}};
}

// The event sequence of the real Messages API stream, ping included.
std::vector<std::string> anthropic_events(const std::string& model,
                                          const std::vector<std::string>& pieces, int prompt) {
  std::vector<std::string> events;
  auto add = [&](const char* name, const ojson& j) {
    events.push_back(std::string("event: ") + name + "\ndata: " + dump(j) + "\n\n");
  };
  add("message_start", ojson{{"type", "message_start"},
                             {"message",
                              {{"id", "msg_mock"},
                               {"type", "message"},
                               {"role", "assistant"},
                               {"model", model},
                               {"content", ojson::array()},
                               {"stop_reason", nullptr},
                               {"stop_sequence", nullptr},
                               {"usage", anthropic_usage(prompt, 1)}}}});
  add("content_block_start", ojson{{"type", "content_block_start"},
                                   {"index", 0},
                                   {"content_block", {{"type", "text"}, {"text", ""}}}});
  add("ping", ojson{{"type", "ping"}});
  for (const auto& p : pieces) {
    add("content_block_delta", ojson{{"type", "content_block_delta"},
                                     {"index", 0},
                                     {"delta", {{"type", "text_delta"}, {"text", p}}}});
  }
  add("content_block_stop", ojson{{"type", "content_block_stop"}, {"index", 0}});
  add("message_delta", ojson{{"type", "message_delta"},
                             {"delta", {{"stop_reason", "end_turn"}, {"stop_sequence", nullptr}}},
                             {"usage", {{"output_tokens", pieces.size()}}}});
  add("message_stop", ojson{{"type", "message_stop"}});
  return events;
}

ojson anthropic_message(const std::string& model, const std::vector<std::string>& pieces,
                        int prompt) {
  return ojson{{"id", "msg_mock"},
               {"type", "message"},
               {"role", "assistant"},
               {"model", model},
               {"content", ojson::array({ojson{{"type", "text"}, {"text", join(pieces)}}})},
               {"stop_reason", "end_turn"},
               {"stop_sequence", nullptr},
               {"usage", anthropic_usage(prompt, static_cast<int>(pieces.size()))}};
}

// --- Realistic LLM answers ------------------------------------------------------------------
// Selected by the request's model, so that every other model keeps the greeting above:
//   POST /v1/chat/completions  "mock-tools": text, then TWO parallel tool calls whose arguments
//                              arrive in fragments, finish_reason "tool_calls"; "mock-text": text
//                              only, split mid-word, finish_reason "stop". Chunks carry
//                              service_tier and system_fingerprint, and with
//                              stream_options.include_usage every chunk has "usage": null and a
//                              last chunk with "choices": [] has the full usage (cached and
//                              reasoning token details).
//   POST /v1/messages          "mock-tools": message_start (input, cache read and cache creation
//                              tokens), ping, a thinking block (2 thinking_delta +
//                              signature_delta), a text block, a tool_use block (input_json_delta
//                              in odd fragments, the first empty), message_delta (stop_reason
//                              "tool_use", cumulative usage), message_stop.
//   POST /v1/responses         (any model) the Responses API: a message with output_text and a
//                              function_call; streamed as the real event sequence ending with
//                              response.completed, else the final response object.
// The answering model is the requested one plus kDatedSuffix (as real APIs name a snapshot).
// Streams of these variants also send X-Mock-Events, the number of SSE events in the body
// (`data: [DONE]` included).

constexpr const char* kDatedSuffix = "-2025-06-01";

bool is_realistic_chat_model(const std::string& model) {
  return model == "mock-tools" || model == "mock-text";
}

std::string sse_data(const ojson& j) {
  return "data: " + dump(j) + "\n\n";
}

std::string sse_named(const std::string& name, const ojson& j) {
  return "event: " + name + "\ndata: " + dump(j) + "\n\n";
}

struct MockToolCall {
  std::string id, name;
  std::vector<std::string> fragments;  // of function.arguments
};

struct ChatScript {
  std::string id;
  std::vector<std::string> content;  // the content deltas
  std::vector<MockToolCall> tool_calls;
  std::string finish_reason;
  ojson usage;
};

ojson openai_usage(int prompt, int completion, int cached, int reasoning) {
  return ojson{{"prompt_tokens", prompt},
               {"completion_tokens", completion},
               {"total_tokens", prompt + completion},
               {"prompt_tokens_details", {{"cached_tokens", cached}, {"audio_tokens", 0}}},
               {"completion_tokens_details",
                {{"reasoning_tokens", reasoning},
                 {"audio_tokens", 0},
                 {"accepted_prediction_tokens", 0},
                 {"rejected_prediction_tokens", 0}}}};
}

ChatScript chat_script(const std::string& model) {
  if (model == "mock-tools") {
    return ChatScript{"chatcmpl-mocktools01",
                      {"Let me chec", "k the weat", "her in both ci", "ties."},
                      {MockToolCall{"call_mock_paris",
                                    "get_weather",
                                    {"{\"ci", "ty\": \"Par", "is\", \"unit\": \"cel", "sius\"}"}},
                       MockToolCall{"call_mock_tokyo",
                                    "get_local_time",
                                    {"{\"city\"", ": \"Tok", "yo\", \"format\": \"24h\"}"}}},
                      "tool_calls",
                      openai_usage(112, 58, 64, 12)};
  }
  return ChatScript{
      "chatcmpl-mocktext01",
      {"The weat", "her in Paris is sun", "ny and 22 \xc2\xb0", "C, with a light bree", "ze."},
      {},
      "stop",
      openai_usage(21, 14, 0, 0)};
}

std::vector<std::string> realistic_chat_events(const std::string& model, bool usage) {
  const ChatScript s = chat_script(model);
  const std::string answered = model + kDatedSuffix;
  auto chunk = [&](ojson delta, ojson finish) {
    ojson c{{"id", s.id},
            {"object", "chat.completion.chunk"},
            {"created", kMockCreated},
            {"model", answered},
            {"service_tier", "default"},
            {"system_fingerprint", "fp_mock0001"},
            {"choices", ojson::array({ojson{{"index", 0},
                                            {"delta", std::move(delta)},
                                            {"logprobs", nullptr},
                                            {"finish_reason", std::move(finish)}}})}};
    if (usage) c["usage"] = nullptr;
    return c;
  };
  std::vector<std::string> events;
  events.push_back(sse_data(
      chunk(ojson{{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}, nullptr)));
  for (const auto& p : s.content) events.push_back(sse_data(chunk(ojson{{"content", p}}, nullptr)));
  for (size_t i = 0; i < s.tool_calls.size(); ++i) {
    const auto& call = s.tool_calls[i];
    // The first fragment names the call; the others carry only index and arguments.
    events.push_back(sse_data(chunk(
        ojson{{"tool_calls",
               ojson::array({ojson{{"index", i},
                                   {"id", call.id},
                                   {"type", "function"},
                                   {"function", {{"name", call.name}, {"arguments", ""}}}}})}},
        nullptr)));
    for (const auto& f : call.fragments) {
      events.push_back(sse_data(
          chunk(ojson{{"tool_calls",
                       ojson::array({ojson{{"index", i}, {"function", {{"arguments", f}}}}})}},
                nullptr)));
    }
  }
  events.push_back(sse_data(chunk(ojson::object(), s.finish_reason)));
  if (usage) {
    ojson last = chunk(ojson::object(), nullptr);
    last["choices"] = ojson::array();
    last["usage"] = s.usage;
    events.push_back(sse_data(last));
  }
  events.push_back("data: [DONE]\n\n");
  return events;
}

ojson realistic_chat_completion(const std::string& model) {
  const ChatScript s = chat_script(model);
  ojson message{{"role", "assistant"}, {"content", join(s.content)}, {"refusal", nullptr}};
  if (!s.tool_calls.empty()) {
    ojson calls = ojson::array();
    for (const auto& call : s.tool_calls) {
      calls.push_back(
          ojson{{"id", call.id},
                {"type", "function"},
                {"function", {{"name", call.name}, {"arguments", join(call.fragments)}}}});
    }
    message["tool_calls"] = std::move(calls);
  }
  return ojson{{"id", s.id},
               {"object", "chat.completion"},
               {"created", kMockCreated},
               {"model", model + kDatedSuffix},
               {"service_tier", "default"},
               {"system_fingerprint", "fp_mock0001"},
               {"choices", ojson::array({ojson{{"index", 0},
                                               {"message", std::move(message)},
                                               {"logprobs", nullptr},
                                               {"finish_reason", s.finish_reason}}})},
               {"usage", s.usage}};
}

// Responses API.
const std::vector<std::string> kResponseText = {"Checking the wea", "ther in Par", "is for y",
                                                "ou now."};
const std::vector<std::string> kResponseArgs = {"{\"city\":", "\"Paris\",\"un",
                                                "it\":\"celsius\"}"};

ojson response_object(const std::string& model, bool completed) {
  ojson output = ojson::array();
  ojson usage = nullptr;
  if (completed) {
    output.push_back(ojson{{"id", "msg_mock0001"},
                           {"type", "message"},
                           {"status", "completed"},
                           {"content", ojson::array({ojson{{"type", "output_text"},
                                                           {"annotations", ojson::array()},
                                                           {"logprobs", ojson::array()},
                                                           {"text", join(kResponseText)}}})},
                           {"role", "assistant"}});
    output.push_back(ojson{{"id", "fc_mock0001"},
                           {"type", "function_call"},
                           {"status", "completed"},
                           {"arguments", join(kResponseArgs)},
                           {"call_id", "call_mock0001"},
                           {"name", "get_weather"}});
    usage = ojson{{"input_tokens", 328},
                  {"input_tokens_details", {{"cached_tokens", 256}}},
                  {"output_tokens", 47},
                  {"output_tokens_details", {{"reasoning_tokens", 8}}},
                  {"total_tokens", 375}};
  }
  return ojson{{"id", "resp_mock0001"},
               {"object", "response"},
               {"created_at", kMockCreated},
               {"status", completed ? "completed" : "in_progress"},
               {"background", false},
               {"completed_at", completed ? ojson(kMockCreated + 2) : ojson(nullptr)},
               {"error", nullptr},
               {"incomplete_details", nullptr},
               {"instructions", nullptr},
               {"max_output_tokens", nullptr},
               {"model", model + kDatedSuffix},
               {"output", std::move(output)},
               {"parallel_tool_calls", true},
               {"previous_response_id", nullptr},
               {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
               {"service_tier", "default"},
               {"store", true},
               {"temperature", 1},
               {"text", {{"format", {{"type", "text"}}}}},
               {"tool_choice", "auto"},
               {"tools", ojson::array()},
               {"top_p", 1},
               {"truncation", "disabled"},
               {"usage", std::move(usage)},
               {"user", nullptr},
               {"metadata", ojson::object()}};
}

std::vector<std::string> responses_events(const std::string& model) {
  std::vector<std::string> events;
  int seq = 0;
  auto add = [&](const std::string& type, const ojson& fields) {
    ojson j{{"type", type}, {"sequence_number", seq++}};
    for (const auto& [k, v] : fields.items()) j[k] = v;
    events.push_back(sse_named(type, j));
  };
  const ojson final_response = response_object(model, true);
  const ojson& message = final_response["output"][0];
  const ojson& call = final_response["output"][1];
  add("response.created", ojson{{"response", response_object(model, false)}});
  add("response.in_progress", ojson{{"response", response_object(model, false)}});
  add("response.output_item.added", ojson{{"output_index", 0},
                                          {"item",
                                           {{"id", "msg_mock0001"},
                                            {"type", "message"},
                                            {"status", "in_progress"},
                                            {"content", ojson::array()},
                                            {"role", "assistant"}}}});
  add("response.content_part.added", ojson{{"item_id", "msg_mock0001"},
                                           {"output_index", 0},
                                           {"content_index", 0},
                                           {"part",
                                            {{"type", "output_text"},
                                             {"annotations", ojson::array()},
                                             {"logprobs", ojson::array()},
                                             {"text", ""}}}});
  for (const auto& d : kResponseText) {
    add("response.output_text.delta", ojson{{"item_id", "msg_mock0001"},
                                            {"output_index", 0},
                                            {"content_index", 0},
                                            {"delta", d},
                                            {"logprobs", ojson::array()}});
  }
  add("response.output_text.done", ojson{{"item_id", "msg_mock0001"},
                                         {"output_index", 0},
                                         {"content_index", 0},
                                         {"text", join(kResponseText)},
                                         {"logprobs", ojson::array()}});
  add("response.content_part.done", ojson{{"item_id", "msg_mock0001"},
                                          {"output_index", 0},
                                          {"content_index", 0},
                                          {"part", message["content"][0]}});
  add("response.output_item.done", ojson{{"output_index", 0}, {"item", message}});
  add("response.output_item.added", ojson{{"output_index", 1},
                                          {"item",
                                           {{"id", "fc_mock0001"},
                                            {"type", "function_call"},
                                            {"status", "in_progress"},
                                            {"arguments", ""},
                                            {"call_id", "call_mock0001"},
                                            {"name", "get_weather"}}}});
  for (const auto& d : kResponseArgs) {
    add("response.function_call_arguments.delta",
        ojson{{"item_id", "fc_mock0001"}, {"output_index", 1}, {"delta", d}});
  }
  add("response.function_call_arguments.done", ojson{{"item_id", "fc_mock0001"},
                                                     {"output_index", 1},
                                                     {"name", "get_weather"},
                                                     {"arguments", join(kResponseArgs)}});
  add("response.output_item.done", ojson{{"output_index", 1}, {"item", call}});
  add("response.completed", ojson{{"response", final_response}});
  return events;
}

// Anthropic "mock-tools": thinking, text and tool_use blocks.
const std::vector<std::string> kThinking = {"The user asks about the weat",
                                            "her in Paris; I should call get_weather."};
const char* const kSignature = "EqQBCkgIBxABGAIiQG1vY2stc2lnbmF0dXJlLWZvci10ZXN0cw==";
const std::vector<std::string> kAnthropicText = {"I'll check the cur", "rent weather in Paris."};
const std::vector<std::string> kToolJson = {"", "{\"city\": \"Pa", "ris\", \"un",
                                            "it\": \"celsius\"}"};

ojson anthropic_tools_usage(int output, bool with_breakdown) {
  ojson u{{"input_tokens", 25},
          {"cache_creation_input_tokens", 120},
          {"cache_read_input_tokens", 2048}};
  if (with_breakdown) {
    u["cache_creation"] =
        ojson{{"ephemeral_5m_input_tokens", 120}, {"ephemeral_1h_input_tokens", 0}};
  }
  u["output_tokens"] = output;
  if (with_breakdown) u["service_tier"] = "standard";
  return u;
}

std::vector<std::string> anthropic_tools_events(const std::string& model) {
  std::vector<std::string> events;
  auto add = [&](const std::string& name, const ojson& fields) {
    ojson j{{"type", name}};
    for (const auto& [k, v] : fields.items()) j[k] = v;
    events.push_back(sse_named(name, j));
  };
  auto delta = [&](int index, ojson d) {
    add("content_block_delta", ojson{{"index", index}, {"delta", std::move(d)}});
  };
  add("message_start", ojson{{"message",
                              {{"id", "msg_mock_tools01"},
                               {"type", "message"},
                               {"role", "assistant"},
                               {"model", model + kDatedSuffix},
                               {"content", ojson::array()},
                               {"stop_reason", nullptr},
                               {"stop_sequence", nullptr},
                               {"usage", anthropic_tools_usage(1, true)}}}});
  add("ping", ojson::object());
  add("content_block_start",
      ojson{{"index", 0},
            {"content_block", {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}}}});
  for (const auto& t : kThinking) delta(0, ojson{{"type", "thinking_delta"}, {"thinking", t}});
  delta(0, ojson{{"type", "signature_delta"}, {"signature", kSignature}});
  add("content_block_stop", ojson{{"index", 0}});
  add("content_block_start",
      ojson{{"index", 1}, {"content_block", {{"type", "text"}, {"text", ""}}}});
  for (const auto& t : kAnthropicText) delta(1, ojson{{"type", "text_delta"}, {"text", t}});
  add("content_block_stop", ojson{{"index", 1}});
  add("content_block_start", ojson{{"index", 2},
                                   {"content_block",
                                    {{"type", "tool_use"},
                                     {"id", "toolu_mock01"},
                                     {"name", "get_weather"},
                                     {"input", ojson::object()}}}});
  for (const auto& p : kToolJson)
    delta(2, ojson{{"type", "input_json_delta"}, {"partial_json", p}});
  add("content_block_stop", ojson{{"index", 2}});
  add("message_delta", ojson{{"delta", {{"stop_reason", "tool_use"}, {"stop_sequence", nullptr}}},
                             {"usage", anthropic_tools_usage(97, false)}});
  add("message_stop", ojson::object());
  return events;
}

ojson anthropic_tools_message(const std::string& model) {
  return ojson{
      {"id", "msg_mock_tools01"},
      {"type", "message"},
      {"role", "assistant"},
      {"model", model + kDatedSuffix},
      {"content",
       ojson::array(
           {ojson{{"type", "thinking"}, {"thinking", join(kThinking)}, {"signature", kSignature}},
            ojson{{"type", "text"}, {"text", join(kAnthropicText)}},
            ojson{{"type", "tool_use"},
                  {"id", "toolu_mock01"},
                  {"name", "get_weather"},
                  {"input", ojson::parse(join(kToolJson))}}})},
      {"stop_reason", "tool_use"},
      {"stop_sequence", nullptr},
      {"usage", anthropic_tools_usage(97, true)}};
}

// --- Content codings for JSON answers ---------------------------------------------------------
// Request header X-Mock-Encoding: a comma-separated list of gzip, br, zstd, applied in the order
// listed (so Content-Encoding names them in that order, as RFC 9110 stacks codings).

std::string brotli_compress(const std::string& in) {
  size_t size = BrotliEncoderMaxCompressedSize(in.size());
  if (size == 0) size = in.size() + 1024;
  std::string out(size, '\0');
  if (!BrotliEncoderCompress(BROTLI_DEFAULT_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT,
                             in.size(), reinterpret_cast<const uint8_t*>(in.data()), &size,
                             reinterpret_cast<uint8_t*>(out.data()))) {
    std::abort();
  }
  out.resize(size);
  return out;
}

std::string zstd_compress(const std::string& in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
  if (ZSTD_isError(n)) std::abort();
  out.resize(n);
  return out;
}

// The codings asked for, trimmed; an unknown one gives nullopt.
std::optional<std::vector<std::string>> requested_codings(const httplib::Request& req) {
  std::vector<std::string> out;
  std::string h = req.get_header_value("X-Mock-Encoding");
  size_t start = 0;
  while (start <= h.size() && !h.empty()) {
    size_t comma = std::min(h.find(',', start), h.size());
    std::string c = h.substr(start, comma - start);
    c.erase(0, c.find_first_not_of(" \t"));
    c.erase(c.find_last_not_of(" \t") + 1);
    if (c != "gzip" && c != "br" && c != "zstd") return std::nullopt;
    out.push_back(c);
    start = comma + 1;
  }
  return out;
}

std::string apply_coding(const std::string& coding, const std::string& in) {
  if (coding == "gzip") return gzip_compress(in);
  if (coding == "br") return brotli_compress(in);
  return zstd_compress(in);
}

// Sends `events` as one SSE stream, each event its own chunk, `gap_us` apart. With
// `count_header`, X-Mock-Events tells how many events the body holds.
void send_events(httplib::Response& res, std::vector<std::string> events, int64_t gap_us,
                 bool count_header = false) {
  res.set_header("X-Body-Sha256",
                 sha256_hex(std::accumulate(events.begin(), events.end(), std::string())));
  res.set_header("Cache-Control", "no-cache");
  if (count_header) res.set_header("X-Mock-Events", std::to_string(events.size()));
  auto shared = std::make_shared<std::vector<std::string>>(std::move(events));
  auto next = std::make_shared<size_t>(0);
  res.set_chunked_content_provider("text/event-stream",
                                   [shared, next, gap_us](size_t, httplib::DataSink& sink) {
                                     if (*next >= shared->size()) {
                                       sink.done();
                                       return true;
                                     }
                                     if (*next > 0) sleep_us(gap_us);
                                     const std::string& event = (*shared)[(*next)++];
                                     return sink.write(event.data(), event.size());
                                   });
}

// A JSON answer, with the codings of X-Mock-Encoding applied (see requested_codings): then
// Content-Encoding names them, X-Body-Sha256 is of the coded bytes and X-Plain-Sha256 of the JSON.
void send_llm_json(httplib::Response& res, const ojson& body,
                   const std::vector<std::string>& codings = {}) {
  std::string text = dump(body);
  if (codings.empty()) {
    res.set_header("X-Body-Sha256", sha256_hex(text));
    res.set_content(text, "application/json");
    return;
  }
  res.set_header("X-Plain-Sha256", sha256_hex(text));
  std::string coded = text;
  std::string names;
  for (const auto& c : codings) {
    coded = apply_coding(c, coded);
    names += (names.empty() ? "" : ", ") + c;
  }
  res.set_header("Content-Encoding", names);
  res.set_header("X-Body-Sha256", sha256_hex(coded));
  // A length provider is never auto-compressed by httplib, so these are the bytes on the wire.
  auto shared = std::make_shared<std::string>(std::move(coded));
  res.set_content_provider(shared->size(), "application/json",
                           [shared](size_t offset, size_t length, httplib::DataSink& sink) {
                             return sink.write(shared->data() + offset, length);
                           });
}

// X-Mock-Chunk-Ms: a pause before each event after the first, to watch a stream arrive.
int64_t chunk_gap_us(const httplib::Request& req) {
  long long gap_ms = 0;
  try {
    std::string h = req.get_header_value("X-Mock-Chunk-Ms");
    if (!h.empty()) gap_ms = std::clamp(std::stoll(h), 0LL, 5000LL);
  } catch (...) {
  }
  return gap_ms * 1000;
}

enum class LlmApi { kChat, kMessages, kResponses };

// POST /v1/chat/completions (OpenAI), POST /v1/messages (Anthropic) and POST /v1/responses
// (OpenAI Responses). Like the real APIs they want credentials (and Anthropic its version
// header); the values are not checked.
void handle_llm(const httplib::Request& req, httplib::Response& res,
                const httplib::ContentReader* reader, LlmApi api) {
  const bool anthropic = api == LlmApi::kMessages;
  std::string raw;
  bool too_large = false;
  if (reader && (req.has_header("Content-Length") || req.has_header("Transfer-Encoding"))) {
    (*reader)([&](const char* data, size_t n) {
      if (raw.size() + n > kMaxLlmRequest) too_large = true;
      if (!too_large) raw.append(data, n);
      return true;  // keep reading, so that keep-alive stays in sync
    });
  }
  if (req.method != "POST") {
    res.set_header("Allow", "POST");
    return llm_error(res, 405, anthropic, "invalid_request_error", "use POST");
  }
  const std::string auth = req.get_header_value("Authorization");
  const bool has_bearer = auth.rfind("Bearer ", 0) == 0 && auth.size() > 7;
  if (anthropic ? (req.get_header_value("x-api-key").empty() && !has_bearer) : !has_bearer) {
    return llm_error(
        res, 401, anthropic, "authentication_error",
        anthropic ? "x-api-key header is required" : "Missing bearer authentication in header");
  }
  if (anthropic && req.get_header_value("anthropic-version").empty()) {
    return llm_error(res, 400, anthropic, "invalid_request_error",
                     "anthropic-version: header is required");
  }
  if (too_large) return llm_error(res, 413, anthropic, "request_too_large", "request too large");
  json request = json::parse(raw, nullptr, false);
  if (api == LlmApi::kResponses) {
    if (!request.is_object() || !request.contains("input") ||
        !(request["input"].is_string() || request["input"].is_array())) {
      return llm_error(res, 400, false, "invalid_request_error",
                       "the body must be a JSON object with an input string or array");
    }
  } else if (!request.is_object() || !request.contains("messages") ||
             !request["messages"].is_array()) {
    return llm_error(res, 400, anthropic, "invalid_request_error",
                     "the body must be a JSON object with a messages array");
  }
  const auto codings = requested_codings(req);
  if (!codings) {
    return llm_error(res, 400, anthropic, "invalid_request_error",
                     "X-Mock-Encoding: a list of gzip, br, zstd");
  }
  const std::string model = request.contains("model") && request["model"].is_string()
                                ? request["model"].get<std::string>()
                                : std::string("mock-model");
  const bool stream = request.contains("stream") && request["stream"] == true;
  const int64_t gap_us = chunk_gap_us(req);

  if (api == LlmApi::kResponses) {
    if (!stream) return send_llm_json(res, response_object(model, true), *codings);
    return send_events(res, responses_events(model), gap_us, true);
  }
  if (anthropic && model == "mock-tools") {
    if (!stream) return send_llm_json(res, anthropic_tools_message(model), *codings);
    return send_events(res, anthropic_tools_events(model), gap_us, true);
  }
  bool usage = false;
  if (!anthropic && request.contains("stream_options") && request["stream_options"].is_object()) {
    usage = request["stream_options"].value("include_usage", false);
  }
  if (!anthropic && is_realistic_chat_model(model)) {
    if (!stream) return send_llm_json(res, realistic_chat_completion(model), *codings);
    return send_events(res, realistic_chat_events(model, usage), gap_us, true);
  }
  const auto pieces = reply_pieces(request);
  const int prompt = prompt_tokens(request);
  if (!stream) {
    return send_llm_json(res,
                         anthropic ? anthropic_message(model, pieces, prompt)
                                   : openai_completion(model, pieces, prompt),
                         *codings);
  }
  send_events(res,
              anthropic ? anthropic_events(model, pieces, prompt)
                        : openai_events(model, pieces, usage, prompt),
              gap_us);
}

// GET /v1/models: one list that both SDKs accept (OpenAI's and Anthropic's fields together).
void handle_models(const httplib::Request&, httplib::Response& res) {
  ojson data = ojson::array();
  for (const char* id : {"mock-gpt", "mock-claude"}) {
    data.push_back(ojson{{"id", id},
                         {"object", "model"},
                         {"created", kMockCreated},
                         {"owned_by", "mock"},
                         {"type", "model"},
                         {"display_name", id},
                         {"created_at", "2023-11-14T22:13:20Z"}});
  }
  send_llm_json(res, ojson{{"object", "list"},
                           {"data", data},
                           {"has_more", false},
                           {"first_id", "mock-gpt"},
                           {"last_id", "mock-claude"}});
}

void dispatch(const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader* reader, bool tls) {
  const std::string path = target_path(req);
  if (path == "/echo" || path.rfind("/echo/", 0) == 0) {
    handle_echo(req, res, reader, tls);
  } else if (path == "/v1/chat/completions") {
    handle_llm(req, res, reader, LlmApi::kChat);
  } else if (path == "/v1/messages") {
    handle_llm(req, res, reader, LlmApi::kMessages);
  } else if (path == "/v1/responses") {
    handle_llm(req, res, reader, LlmApi::kResponses);
  } else {
    // Other endpoints take no body; drain one that was sent anyway so keep-alive stays in sync.
    if (reader && (req.has_header("Content-Length") || req.has_header("Transfer-Encoding"))) {
      (*reader)([](const char*, size_t) { return true; });
    }
    if (path == "/sse") {
      handle_sse(req, res);
    } else if (path == "/gzip") {
      handle_gzip(req, res);
    } else if (path == "/slow") {
      handle_slow(req, res);
    } else if (path == "/large") {
      handle_large(req, res);
    } else if (path == "/status") {
      handle_status(req, res);
    } else if (path == "/headers") {
      handle_headers(req, res);
    } else if (path == "/v1/models") {
      handle_models(req, res);
    } else if (path == "/stats") {
      set_json(res, g_stats.to_json());
    } else if (path == "/release") {
      {
        std::lock_guard<std::mutex> lk(g_release_mu);
        int64_t expected = 0;
        g_released_us.compare_exchange_strong(expected, mono_us());
      }
      g_release_cv.notify_all();
      res.set_content("released", "text/plain");
    } else {
      res.status = 404;
      res.set_content("mock_upstream: no endpoint " + path, "text/plain");
    }
  }
  // httplib would gzip/brotli text and JSON responses itself when asked to: the mock sends its
  // bytes as they are.
  const_cast<httplib::Request&>(req).headers.erase("Accept-Encoding");
}

void setup(httplib::Server& svr, bool tls, size_t min_threads) {
  // httplib calls new_task_queue once per listen and owns the result.
  auto* pool = new ElasticPool(min_threads, 4096);
  svr.new_task_queue = [pool] { return pool; };
  svr.set_tcp_nodelay(true);
  svr.set_keep_alive_max_count(1000000);
  svr.set_keep_alive_timeout(30);
  svr.set_read_timeout(30);
  svr.set_write_timeout(30);
  svr.set_payload_max_length(static_cast<size_t>(-1));

  svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    if (target_path(req) != "/stats" && target_path(req) != "/release") {
      std::lock_guard<std::mutex> lk(g_stats.mu);
      g_stats.requests++;
      g_stats.connections.emplace(req.remote_addr, req.remote_port);
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 204 || res.status == 304 || (res.status >= 100 && res.status < 200)) {
      res.headers.erase("Content-Length");
      res.headers.erase("Content-Type");
    }
  });
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content("mock_upstream: exception", "text/plain");
      });

  auto plain = [tls](const httplib::Request& req, httplib::Response& res) {
    dispatch(req, res, nullptr, tls);
  };
  auto with_body = [tls](const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& reader) {
    dispatch(req, res, &reader, tls);
  };
  svr.Get(".*", plain);  // GET and HEAD
  svr.Options(".*", plain);
  svr.Post(".*", with_body);
  svr.Put(".*", with_body);
  svr.Patch(".*", with_body);
  svr.Delete(".*", with_body);
}

// Binds 127.0.0.1:0, re-listens with backlog 4096 and serves on a detached thread (the process
// ends with _Exit, never by joining). Returns the port, or -1.
template <class Server>
int start(Server& svr) {
  int port = svr.bind_to_any_port("127.0.0.1");
  if (port <= 0) return -1;
  ::listen(svr.listen_fd(), 4096);
  std::thread([&svr] { svr.listen_after_bind(); }).detach();
  return port;
}

void usage() {
  std::fprintf(stderr,
               "usage: mock_upstream [--tls-cert CERT --tls-key KEY] [--threads N] "
               "[--ignore-stdin]\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string cert, key;
  bool watch_stdin = true;
  size_t min_threads = 32;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tls-cert" && i + 1 < argc) {
      cert = argv[++i];
    } else if (a == "--tls-key" && i + 1 < argc) {
      key = argv[++i];
    } else if (a == "--threads" && i + 1 < argc) {
      min_threads = static_cast<size_t>(std::max(1L, std::strtol(argv[++i], nullptr, 10)));
    } else if (a == "--ignore-stdin") {
      watch_stdin = false;
    } else {
      usage();
      return 2;
    }
  }
  if (cert.empty() != key.empty()) {
    usage();
    return 2;
  }

  // Signals are taken by sigwait in main; every thread started below inherits the mask.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  g_pattern.resize(kPiece + 256);
  for (size_t i = 0; i < g_pattern.size(); ++i) {
    g_pattern[i] = static_cast<char>((i * 31 + 7) & 0xff);
  }
  g_gzip_plain = "{\"object\":\"mock.gzip\",\"items\":[";
  for (int i = 0; i < 200; ++i) {
    if (i) g_gzip_plain += ",";
    g_gzip_plain += "{\"i\":" + std::to_string(i) + ",\"text\":\"compressible text " +
                    std::to_string(i % 7) + "\"}";
  }
  g_gzip_plain += "]}";
  g_gzip_body = gzip_compress(g_gzip_plain);

  Listener<httplib::Server> http;
  setup(http, false, min_threads);
  int http_port = start(http);
  if (http_port <= 0) {
    std::fprintf(stderr, "mock_upstream: cannot listen on 127.0.0.1\n");
    return 1;
  }
  std::unique_ptr<Listener<httplib::SSLServer>> https;
  int https_port = 0;
  if (!cert.empty()) {
    https = std::make_unique<Listener<httplib::SSLServer>>(cert.c_str(), key.c_str());
    if (!https->is_valid()) {
      std::fprintf(stderr, "mock_upstream: cannot load %s / %s\n", cert.c_str(), key.c_str());
      std::_Exit(1);  // the plain listener is already serving
    }
    setup(*https, true, 4);
    https_port = start(*https);
    if (https_port <= 0) {
      std::fprintf(stderr, "mock_upstream: cannot listen (TLS) on 127.0.0.1\n");
      std::_Exit(1);  // the plain listener is already serving
    }
  }

  std::printf("mock_upstream http=%d https=%d\n", http_port, https_port);
  std::fflush(stdout);

  if (watch_stdin) {
    std::thread([] {
      char buf[256];
      while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
      }
      ::kill(::getpid(), SIGTERM);
    }).detach();
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  // Streams may be in flight; the tests only need the process gone, promptly.
  std::fflush(stdout);
  std::_Exit(0);
}
