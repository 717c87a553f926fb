// bench_load: the benchmark's load client. One thread, one epoll loop, non-blocking keep-alive
// connections; prints one JSON object on stdout.
//
//   --mode http   N connections (-c) each sending requests back to back (keep-alive) for
//                 --duration seconds (after --warmup seconds that are not counted) or until
//                 --requests responses were counted. Latency = first byte of the request
//                 written -> last byte of the response read. Reports req/s and percentiles.
//                 --method, --path, --body-bytes N (a JSON body padded to N bytes, streamed
//                 from a static buffer, so 200 MB uploads cost no memory).
//                 Response bodies are counted, not kept: MB/s in both directions.
//                 --interval-ms N: each connection waits N ms after a response before its
//                 next request (a light probe beside another load, e.g. S6's GET).
//   --mode sse    N connections each reading SSE streams (GET --path, e.g. /sse?n=100&ms=20)
//                 one after the other until --requests streams were started (default: one
//                 each). Per stream: time to first byte, time to first event; per event:
//                 delay = arrival (CLOCK_MONOTONIC when the read returned) - the event's
//                 "t_us" stamp (the mock's CLOCK_MONOTONIC just before its write), plus
//                 dropped (gaps in "seq"), reordered (seq going back) and incomplete streams.
//
// --watch LABEL=PID[,PID...] (repeatable): over the measured window, CPU seconds
// (utime+stime from /proc/PID/stat, all threads), peak RSS (VmHWM after resetting it with
// /proc/PID/clear_refs "5" at the window's start), RSS sampled every 100 ms (max), threads.
// --raw PREFIX writes the raw samples (float64 µs, native order): PREFIX.lat (http),
// PREFIX.ev and PREFIX.ttfb (sse), so runs can be merged exactly.
// --tag KEY=VALUE (repeatable) is copied into the JSON.
// Everything is bounded: --duration/--requests and --timeout (default 120 s) stop the run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_load: %s\n", msg.c_str());
  std::exit(2);
}

// ---------------------------------------------------------------- options

struct Options {
  std::string mode = "http";
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string method = "GET";
  std::string path = "/";
  uint64_t body_bytes = 0;
  int connections = 1;
  double duration = 0;  // seconds; 0 = until --requests
  double warmup = 0;
  int64_t requests = 0;         // counted responses (http) / streams started (sse)
  int64_t warmup_requests = 0;  // http: responses not counted, before the window
  double timeout = 120;
  double late_ms = 5;      // sse: an event later than this is "late"
  double interval_ms = 0;  // http: pause between a response and the connection's next request
  std::string raw;
  std::vector<std::pair<std::string, std::vector<int>>> watch;
  std::vector<std::pair<std::string, std::string>> tags;
};

void parse_url(const std::string& url, Options* o) {
  std::string_view s = url;
  if (!s.starts_with("http://")) die("--url must be http://127.0.0.1:PORT");
  s.remove_prefix(7);
  size_t slash = s.find('/');
  std::string_view hostport = s.substr(0, slash);
  size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos) die("--url needs a port");
  o->host = std::string(hostport.substr(0, colon));
  if (o->host == "localhost") o->host = "127.0.0.1";
  o->port = static_cast<uint16_t>(std::atoi(std::string(hostport.substr(colon + 1)).c_str()));
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--mode") {
      o.mode = next();
    } else if (a == "--url") {
      parse_url(next(), &o);
    } else if (a == "--method") {
      o.method = next();
    } else if (a == "--path") {
      o.path = next();
    } else if (a == "--body-bytes") {
      o.body_bytes = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "-c" || a == "--connections") {
      o.connections = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--duration") {
      o.duration = std::atof(next().c_str());
    } else if (a == "--warmup") {
      o.warmup = std::atof(next().c_str());
    } else if (a == "--requests") {
      o.requests = std::atoll(next().c_str());
    } else if (a == "--warmup-requests") {
      o.warmup_requests = std::atoll(next().c_str());
    } else if (a == "--timeout") {
      o.timeout = std::atof(next().c_str());
    } else if (a == "--late-ms") {
      o.late_ms = std::atof(next().c_str());
    } else if (a == "--interval-ms") {
      o.interval_ms = std::atof(next().c_str());
    } else if (a == "--raw") {
      o.raw = next();
    } else if (a == "--watch") {
      std::string v = next();
      size_t eq = v.find('=');
      if (eq == std::string::npos) die("--watch LABEL=PID[,PID...]");
      std::vector<int> pids;
      std::stringstream ss(v.substr(eq + 1));
      std::string p;
      while (std::getline(ss, p, ',')) {
        if (!p.empty()) pids.push_back(std::atoi(p.c_str()));
      }
      o.watch.push_back({v.substr(0, eq), pids});
    } else if (a == "--tag") {
      std::string v = next();
      size_t eq = v.find('=');
      if (eq == std::string::npos) die("--tag KEY=VALUE");
      o.tags.push_back({v.substr(0, eq), v.substr(eq + 1)});
    } else {
      die("unknown argument " + a);
    }
  }
  if (o.port == 0) die("--url is required");
  if (o.mode != "http" && o.mode != "sse") die("--mode is http or sse");
  if (o.mode == "http" && o.duration <= 0 && o.requests <= 0) die("--duration or --requests");
  return o;
}

// ---------------------------------------------------------------- /proc watching

struct ProcSample {
  double cpu_s = 0;
  int64_t rss_kb = 0;
  int64_t threads = 0;
};

int64_t status_field_kb(int pid, const char* field) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/status", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char line[256];
  int64_t v = 0;
  size_t flen = std::strlen(field);
  while (std::fgets(line, sizeof(line), f)) {
    if (std::strncmp(line, field, flen) == 0) {
      v = std::atoll(line + flen);
      break;
    }
  }
  std::fclose(f);
  return v;
}

ProcSample sample_pid(int pid) {
  ProcSample s;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return s;
  char buf[2048];
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  if (!p) return s;
  // Fields after the comm: state(3) ... utime(14) stime(15) ... num_threads(20) ... rss(24)
  std::vector<long long> fields;
  std::stringstream ss(p + 2);
  std::string tok;
  while (ss >> tok) fields.push_back(std::atoll(tok.c_str()));
  static const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  static const int64_t page_kb = sysconf(_SC_PAGESIZE) / 1024;
  if (fields.size() > 21) {
    s.cpu_s = static_cast<double>(fields[11] + fields[12]) / tick;
    s.threads = fields[17];
    s.rss_kb = fields[21] * page_kb;
  }
  return s;
}

struct Watch {
  std::string label;
  std::vector<int> pids;
  double cpu_start = 0;
  int64_t rss_start_kb = 0;
  ProcSample end;
  int64_t rss_max_kb = 0;
  int64_t threads_max = 0;
  int64_t hwm_kb = 0;

  ProcSample sum() const {
    ProcSample t;
    for (int pid : pids) {
      ProcSample s = sample_pid(pid);
      t.cpu_s += s.cpu_s;
      t.rss_kb += s.rss_kb;
      t.threads += s.threads;
    }
    return t;
  }
  void start() {
    for (int pid : pids) {
      char path[64];
      std::snprintf(path, sizeof(path), "/proc/%d/clear_refs", pid);
      int fd = ::open(path, O_WRONLY);
      if (fd >= 0) {
        [[maybe_unused]] ssize_t w = ::write(fd, "5", 1);  // resets VmHWM to the current RSS
        ::close(fd);
      }
    }
    ProcSample s = sum();
    cpu_start = s.cpu_s;
    rss_start_kb = s.rss_kb;
    rss_max_kb = s.rss_kb;
    threads_max = s.threads;
  }
  void tick() {
    ProcSample s = sum();
    rss_max_kb = std::max(rss_max_kb, s.rss_kb);
    threads_max = std::max(threads_max, s.threads);
  }
  void stop() {
    end = sum();
    rss_max_kb = std::max(rss_max_kb, end.rss_kb);
    threads_max = std::max(threads_max, end.threads);
    hwm_kb = 0;
    for (int pid : pids) hwm_kb += status_field_kb(pid, "VmHWM:");
  }
};

// ---------------------------------------------------------------- stats

struct Percentiles {
  size_t n = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, min = 0;
};

Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
    return v[std::min(i, v.size() - 1)];
  };
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.max = v.back();
  p.min = v.front();
  return p;
}

std::string json_pct(const Percentiles& p) {
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "{\"n\":%zu,\"mean\":%.1f,\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
                "\"p999\":%.1f,\"max\":%.1f}",
                p.n, p.mean, p.min, p.p50, p.p90, p.p99, p.p999, p.max);
  return buf;
}

void write_raw(const std::string& path, const std::vector<double>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()),
          static_cast<std::streamsize>(v.size() * sizeof(double)));
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o;
}

// ---------------------------------------------------------------- HTTP response parsing

// Incremental HTTP/1.1 response reader: head, then the body (Content-Length, chunked, or until
// close) handed to a sink piece by piece, never stored.
class ResponseReader {
 public:
  enum class Result { kNeedMore, kDone, kError };

  void reset() {
    head_.clear();
    in_head_ = true;
    status_ = 0;
    chunked_ = false;
    until_close_ = false;
    close_ = false;
    left_ = 0;
    chunk_state_ = ChunkState::kSize;
    line_.clear();
    body_bytes_ = 0;
  }
  int status() const { return status_; }
  bool close_after() const { return close_; }
  bool until_close() const { return until_close_; }
  bool in_head() const { return in_head_; }
  uint64_t body_bytes() const { return body_bytes_; }
  const std::string& error() const { return error_; }

  // Feeds bytes; `*used` is how many belong to this response.
  template <typename Sink>
  Result feed(std::string_view data, size_t* used, Sink&& sink) {
    size_t i = 0;
    if (in_head_) {
      size_t before = head_.size();
      head_.append(data);
      size_t end = head_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
      if (end == std::string::npos) {
        *used = data.size();
        if (head_.size() > 256 * 1024) return fail("response head too large");
        return Result::kNeedMore;
      }
      i = end + 4 - before;
      head_.resize(end + 2);
      if (!parse_head()) return Result::kError;
      in_head_ = false;
      if (!chunked_ && !until_close_ && left_ == 0) {
        *used = i;
        return Result::kDone;
      }
    }
    while (i < data.size()) {
      if (!chunked_) {
        size_t n = until_close_ ? data.size() - i
                                : static_cast<size_t>(std::min<uint64_t>(left_, data.size() - i));
        sink(data.substr(i, n));
        body_bytes_ += n;
        i += n;
        if (!until_close_) {
          left_ -= n;
          if (left_ == 0) {
            *used = i;
            return Result::kDone;
          }
        }
        continue;
      }
      switch (chunk_state_) {
        case ChunkState::kSize:
        case ChunkState::kTrailer: {
          size_t nl = data.find('\n', i);
          if (nl == std::string_view::npos) {
            line_.append(data.substr(i));
            i = data.size();
            break;
          }
          line_.append(data.substr(i, nl - i));
          i = nl + 1;
          if (chunk_state_ == ChunkState::kTrailer) {
            bool empty = line_.empty() || line_ == "\r";
            line_.clear();
            if (empty) {
              *used = i;
              return Result::kDone;
            }
            break;
          }
          char* endp = nullptr;
          uint64_t size = std::strtoull(line_.c_str(), &endp, 16);
          if (endp == line_.c_str()) return fail("bad chunk size");
          line_.clear();
          if (size == 0) {
            chunk_state_ = ChunkState::kTrailer;
          } else {
            left_ = size;
            chunk_state_ = ChunkState::kData;
          }
          break;
        }
        case ChunkState::kData: {
          size_t n = static_cast<size_t>(std::min<uint64_t>(left_, data.size() - i));
          sink(data.substr(i, n));
          body_bytes_ += n;
          left_ -= n;
          i += n;
          if (left_ == 0) chunk_state_ = ChunkState::kDataCrlf;
          break;
        }
        case ChunkState::kDataCrlf: {
          size_t nl = data.find('\n', i);
          if (nl == std::string_view::npos) {
            i = data.size();
            break;
          }
          i = nl + 1;
          chunk_state_ = ChunkState::kSize;
          break;
        }
      }
    }
    *used = data.size();
    return Result::kNeedMore;
  }

 private:
  enum class ChunkState { kSize, kData, kDataCrlf, kTrailer };

  Result fail(std::string e) {
    error_ = std::move(e);
    return Result::kError;
  }

  bool parse_head() {
    std::string_view h = head_;
    if (!h.starts_with("HTTP/1.")) {
      error_ = "not an HTTP/1.x response";
      return false;
    }
    bool http10 = h.starts_with("HTTP/1.0");
    status_ = std::atoi(std::string(h.substr(9, 3)).c_str());
    bool have_length = false;
    size_t pos = h.find("\r\n") + 2;
    while (pos < h.size()) {
      size_t e = h.find("\r\n", pos);
      std::string_view line = h.substr(pos, e - pos);
      pos = e + 2;
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name(line.substr(0, colon));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (name == "content-length") {
        left_ = std::strtoull(std::string(value).c_str(), nullptr, 10);
        have_length = true;
      } else if (name == "transfer-encoding") {
        chunked_ = value.find("chunked") != std::string_view::npos;
      } else if (name == "connection") {
        std::string v(value);
        for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (v.find("close") != std::string::npos) close_ = true;
      }
    }
    if (http10) close_ = true;
    if (status_ == 204 || status_ == 304 || (status_ >= 100 && status_ < 200)) {
      chunked_ = false;
      left_ = 0;
    } else if (!chunked_ && !have_length) {
      until_close_ = true;
      close_ = true;
    }
    return true;
  }

  std::string head_;
  bool in_head_ = true;
  int status_ = 0;
  bool chunked_ = false;
  bool until_close_ = false;
  bool close_ = false;
  uint64_t left_ = 0;
  ChunkState chunk_state_ = ChunkState::kSize;
  std::string line_;
  uint64_t body_bytes_ = 0;
  std::string error_;
};

// ---------------------------------------------------------------- SSE parsing

struct SseStats {
  std::vector<double> delays_us;  // arrival - stamp, per event
  std::vector<double> ttfb_us;    // request written -> first response byte
  std::vector<double> ttfe_us;    // request written -> first event complete
  int64_t events = 0, dropped = 0, reordered = 0, late = 0;
  int64_t streams_started = 0, streams_complete = 0, streams_incomplete = 0;
  double max_delay_us = 0;
};

// Scans the decoded event stream of one response.
class SseParser {
 public:
  void reset(int expected) {
    buf_.clear();
    expected_ = expected;
    next_seq_ = 0;
    got_ = 0;
    done_ = false;
    first_event_ns_ = 0;
  }
  void feed(std::string_view data, int64_t arrival_ns, SseStats* st, double late_us) {
    buf_.append(data);
    size_t start = 0;
    while (true) {
      size_t end = buf_.find("\n\n", start);
      if (end == std::string::npos) break;
      std::string_view ev(buf_.data() + start, end - start);
      start = end + 2;
      if (ev.find("[DONE]") != std::string_view::npos) {
        done_ = true;
        continue;
      }
      int64_t seq = field(ev, "\"seq\":");
      int64_t stamp = field(ev, "\"t_us\":");
      if (seq < 0 || stamp < 0) continue;
      if (first_event_ns_ == 0) first_event_ns_ = arrival_ns;
      double delay = static_cast<double>(arrival_ns / 1000 - stamp);
      st->delays_us.push_back(delay);
      st->max_delay_us = std::max(st->max_delay_us, delay);
      if (delay > late_us) ++st->late;
      ++st->events;
      ++got_;
      if (seq < next_seq_) {
        ++st->reordered;
      } else {
        if (seq > next_seq_) st->dropped += seq - next_seq_;
        next_seq_ = seq + 1;
      }
    }
    buf_.erase(0, start);
  }
  // At the end of the response: events never seen count as dropped.
  bool finish(SseStats* st) {
    if (next_seq_ < expected_) st->dropped += expected_ - next_seq_;
    return done_ && got_ >= expected_;
  }
  int64_t first_event_ns() const { return first_event_ns_; }

 private:
  static int64_t field(std::string_view ev, std::string_view key) {
    size_t p = ev.find(key);
    if (p == std::string_view::npos) return -1;
    return std::strtoll(ev.data() + p + key.size(), nullptr, 10);
  }
  std::string buf_;
  int64_t expected_ = 0, next_seq_ = 0, got_ = 0;
  bool done_ = false;
  int64_t first_event_ns_ = 0;
};

// ---------------------------------------------------------------- the client

struct Conn {
  int fd = -1;
  bool connected = false;
  bool busy = false;  // a request is in flight
  bool want_out = false;
  std::string head;  // request head being written
  size_t head_off = 0;
  uint64_t body_left = 0;  // request body bytes still to write
  uint64_t body_off = 0;
  int64_t start_ns = 0;
  int64_t first_byte_ns = 0;
  ResponseReader reader;
  SseParser sse;
  bool done = false;   // no more requests on this connection
  int64_t due_ns = 0;  // --interval-ms: when the next request starts (0: not waiting)
};

class Client {
 public:
  explicit Client(const Options& o) : o_(o) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    sse_expected_ = 0;
    if (o_.mode == "sse") {
      size_t q = o_.path.find("n=");
      sse_expected_ = q == std::string::npos ? 10 : std::atoi(o_.path.c_str() + q + 2);
    }
    // A JSON body padded to body_bytes, repeated from one 64 KiB block for large bodies.
    std::string prefix =
        R"({"model":"bench","stream":false,"messages":[{"role":"user","content":")";
    std::string suffix = R"("}]})";
    if (o_.body_bytes > 0 && o_.body_bytes <= 64 * 1024) {
      body_block_ = prefix;
      if (o_.body_bytes > prefix.size() + suffix.size()) {
        body_block_.append(o_.body_bytes - prefix.size() - suffix.size(), 'a');
      }
      body_block_ += suffix;
      body_block_.resize(o_.body_bytes, ' ');
    } else if (o_.body_bytes > 0) {
      body_block_.assign(64 * 1024, 'a');
      for (size_t i = 0; i < body_block_.size(); i += 80) body_block_[i] = ' ';
    }
    head_ = o_.method + " " + o_.path + " HTTP/1.1\r\nHost: " + o_.host + ":" +
            std::to_string(o_.port) + "\r\nUser-Agent: bench_load\r\n";
    if (o_.mode == "sse") head_ += "Accept: text/event-stream\r\n";
    if (o_.body_bytes > 0 || o_.method == "POST") {
      head_ +=
          "Content-Type: application/json\r\nContent-Length: " + std::to_string(o_.body_bytes) +
          "\r\n";
    }
    head_ += "\r\n";
    if (o_.body_bytes > 0 && o_.body_bytes <= body_block_.size())
      head_and_body_ = head_ + body_block_;
  }

  int run() {
    int64_t t0 = mono_ns();
    hard_deadline_ = t0 + static_cast<int64_t>(o_.timeout * 1e9);
    window_start_ = t0 + static_cast<int64_t>(o_.warmup * 1e9);
    window_end_ =
        o_.duration > 0 ? window_start_ + static_cast<int64_t>(o_.duration * 1e9) : INT64_MAX;
    if (o_.warmup <= 0 && o_.warmup_requests <= 0) start_window(t0);
    conns_.resize(static_cast<size_t>(o_.connections));
    for (size_t i = 0; i < conns_.size(); ++i) open_conn(i);
    std::vector<epoll_event> events(4096);
    int64_t next_tick = mono_ns() + 100000000;
    while (true) {
      int64_t now = mono_ns();
      if (!window_started_ && o_.warmup > 0 && now >= window_start_) start_window(now);
      if (now >= hard_deadline_) {
        timed_out_ = true;
        break;
      }
      if (window_started_ && now >= window_end_) break;
      if (finished()) break;
      if (now >= next_tick) {
        for (auto& w : watches_) w.tick();
        next_tick = now + 100000000;
      }
      start_due_requests(now);
      int64_t wake = std::min({next_tick, hard_deadline_, window_end_,
                               window_started_ ? INT64_MAX : window_start_, next_due()});
      int timeout = static_cast<int>(std::max<int64_t>(0, (wake - now + 999999) / 1000000));
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno != EINTR) die(std::string("epoll_wait: ") + std::strerror(errno));
      for (int i = 0; i < n; ++i) {
        size_t idx = events[i].data.u64;
        Conn& c = conns_[idx];
        if (c.fd < 0) continue;
        uint32_t e = events[i].events;
        if (!c.connected && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
          int err = 0;
          socklen_t len = sizeof(err);
          getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            conn_failed(idx, std::string("connect: ") + std::strerror(err));
            continue;
          }
          c.connected = true;
          start_request(idx);
          continue;
        }
        if (e & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) on_readable(idx);
        if (conns_[idx].fd >= 0 && (e & EPOLLOUT)) write_request(idx);
      }
    }
    int64_t end = mono_ns();
    if (!window_started_) start_window(end);
    for (auto& w : watches_) w.stop();
    // Streams still open at the end are incomplete.
    if (o_.mode == "sse") {
      for (auto& c : conns_) {
        if (c.fd >= 0 && c.busy) {
          c.sse.finish(&sse_);
          ++sse_.streams_incomplete;
        }
      }
    }
    double elapsed = static_cast<double>(std::min(end, window_end_) - window_start_actual_) / 1e9;
    report(elapsed);
    return 0;
  }

 private:
  void start_window(int64_t now) {
    window_started_ = true;
    window_start_actual_ = now;
    window_start_ = now;
    if (o_.duration > 0) window_end_ = now + static_cast<int64_t>(o_.duration * 1e9);
    for (auto& [label, pids] : o_.watch) {
      Watch w;
      w.label = label;
      w.pids = pids;
      w.start();
      watches_.push_back(w);
    }
  }

  bool finished() const {
    if (o_.mode == "http") {
      if (o_.requests > 0 && counted_ >= o_.requests) return true;
    } else {
      int64_t total = o_.requests > 0 ? o_.requests : o_.connections;
      if (sse_.streams_started >= total && busy_count() == 0) return true;
    }
    return false;
  }
  int busy_count() const {
    int n = 0;
    for (const auto& c : conns_) n += (c.fd >= 0 && c.busy) ? 1 : 0;
    return n;
  }

  void open_conn(size_t idx) {
    Conn& c = conns_[idx];
    c = Conn();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(o_.port);
    inet_pton(AF_INET, o_.host.c_str(), &addr.sin_addr);
    c.fd = fd;
    ++connects_;
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = idx;
    c.want_out = true;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    if (rc == 0) {
      c.connected = true;
      start_request(idx);
    } else if (errno != EINPROGRESS) {
      conn_failed(idx, std::string("connect: ") + std::strerror(errno));
    }
  }

  void close_conn(size_t idx) {
    Conn& c = conns_[idx];
    if (c.fd >= 0) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
      ::close(c.fd);
    }
    c.fd = -1;
    c.busy = false;
  }

  void conn_failed(size_t idx, const std::string& why) {
    Conn& c = conns_[idx];
    ++errors_;
    if (last_error_.empty()) last_error_ = why;
    if (o_.mode == "sse" && c.busy) {
      c.sse.finish(&sse_);
      ++sse_.streams_incomplete;
    }
    close_conn(idx);
    // Reconnect (bounded by the run's deadlines), unless the run is winding down.
    if (!finished() && mono_ns() < hard_deadline_ && more_requests_wanted()) {
      if (errors_ < 10000) open_conn(idx);
    }
  }

  bool more_requests_wanted() const {
    if (o_.mode == "sse") {
      int64_t total = o_.requests > 0 ? o_.requests : o_.connections;
      return sse_.streams_started < total;
    }
    if (o_.requests > 0) return counted_ + busy_count() < o_.requests;
    return true;
  }

  void set_want_out(Conn& c, size_t idx, bool want) {
    if (c.want_out == want) return;
    c.want_out = want;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    ev.data.u64 = idx;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  // --interval-ms: connections whose pause is over start their next request.
  void start_due_requests(int64_t now) {
    if (o_.interval_ms <= 0) return;
    for (size_t i = 0; i < conns_.size(); ++i) {
      if (conns_[i].fd >= 0 && conns_[i].due_ns != 0 && conns_[i].due_ns <= now) {
        conns_[i].due_ns = 0;
        start_request(i);
      }
    }
  }
  int64_t next_due() const {
    int64_t due = INT64_MAX;
    if (o_.interval_ms <= 0) return due;
    for (const Conn& c : conns_) {
      if (c.fd >= 0 && c.due_ns != 0) due = std::min(due, c.due_ns);
    }
    return due;
  }

  void start_request(size_t idx) {
    Conn& c = conns_[idx];
    if (!more_requests_wanted()) {
      c.done = true;
      set_want_out(c, idx, false);
      return;
    }
    c.busy = true;
    c.head_off = 0;
    c.body_left = o_.body_bytes;
    c.body_off = 0;
    c.first_byte_ns = 0;
    c.reader.reset();
    if (o_.mode == "sse") {
      c.sse.reset(static_cast<int>(sse_expected_));
      ++sse_.streams_started;
    }
    c.start_ns = mono_ns();
    write_request(idx);
  }

  void write_request(size_t idx) {
    Conn& c = conns_[idx];
    if (!c.busy) {
      set_want_out(c, idx, false);
      return;
    }
    while (c.head_off < head_.size() || c.body_left > 0) {
      ssize_t n;
      if (c.head_off < head_.size()) {
        // Head and a small body in one send (one segment, like a real client).
        if (o_.body_bytes > 0 && o_.body_bytes <= body_block_.size() && c.body_off == 0 &&
            c.head_off == 0) {
          n = ::send(c.fd, head_and_body_.data(), head_and_body_.size(), MSG_NOSIGNAL);
          if (n > 0) {
            size_t hn = std::min(static_cast<size_t>(n), head_.size());
            c.head_off = hn;
            size_t bn = static_cast<size_t>(n) - hn;
            c.body_off += bn;
            c.body_left -= bn;
            continue;
          }
        } else {
          n = ::send(c.fd, head_.data() + c.head_off, head_.size() - c.head_off, MSG_NOSIGNAL);
          if (n > 0) {
            c.head_off += static_cast<size_t>(n);
            continue;
          }
        }
      } else {
        size_t off = static_cast<size_t>(c.body_off % body_block_.size());
        size_t want =
            static_cast<size_t>(std::min<uint64_t>(c.body_left, body_block_.size() - off));
        n = ::send(c.fd, body_block_.data() + off, want, MSG_NOSIGNAL);
        if (n > 0) {
          c.body_off += static_cast<uint64_t>(n);
          c.body_left -= static_cast<uint64_t>(n);
          continue;
        }
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        set_want_out(c, idx, true);
        return;
      }
      conn_failed(idx, std::string("send: ") + std::strerror(errno));
      return;
    }
    set_want_out(c, idx, false);
  }

  void on_readable(size_t idx) {
    static thread_local char buf[256 * 1024];
    while (conns_[idx].fd >= 0) {
      Conn& c = conns_[idx];
      ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      int64_t now = mono_ns();
      if (n <= 0) {
        if (c.busy && c.reader.until_close() && !c.reader.in_head()) {
          complete(idx, now);
          close_conn(idx);
          if (more_requests_wanted() && !finished()) open_conn(idx);
          return;
        }
        if (!c.busy) {
          // The server closed an idle keep-alive connection: reconnect.
          ++server_closes_;
          close_conn(idx);
          if (more_requests_wanted() && !finished()) open_conn(idx);
          return;
        }
        conn_failed(idx, n == 0 ? "server closed the connection mid-response"
                                : std::string("recv: ") + std::strerror(errno));
        return;
      }
      if (!c.busy) {
        ++errors_;
        if (last_error_.empty()) last_error_ = "unsolicited bytes from the server";
        close_conn(idx);
        return;
      }
      if (c.first_byte_ns == 0) c.first_byte_ns = now;
      std::string_view data(buf, static_cast<size_t>(n));
      while (!data.empty() && conns_[idx].fd >= 0) {
        Conn& cc = conns_[idx];
        size_t used = 0;
        ResponseReader::Result r;
        if (o_.mode == "sse") {
          r = cc.reader.feed(data, &used, [&](std::string_view piece) {
            if (cc.reader.status() == 200) cc.sse.feed(piece, now, &sse_, o_.late_ms * 1000);
          });
        } else {
          r = cc.reader.feed(data, &used, [](std::string_view) {});
        }
        data.remove_prefix(used);
        if (r == ResponseReader::Result::kError) {
          conn_failed(idx, "bad response: " + cc.reader.error());
          return;
        }
        if (r == ResponseReader::Result::kNeedMore) break;
        bool close_after = cc.reader.close_after();
        complete(idx, now);
        if (close_after) {
          close_conn(idx);
          if (more_requests_wanted() && !finished()) open_conn(idx);
          return;
        }
        if (!data.empty()) {
          ++errors_;
          if (last_error_.empty()) last_error_ = "bytes past the end of a response";
          close_conn(idx);
          return;
        }
        if (o_.interval_ms > 0) {
          conns_[idx].due_ns = mono_ns() + static_cast<int64_t>(o_.interval_ms * 1e6);
        } else {
          start_request(idx);
        }
      }
      if (static_cast<size_t>(n) < sizeof(buf)) return;
    }
  }

  void complete(size_t idx, int64_t now) {
    Conn& c = conns_[idx];
    c.busy = false;
    int status = c.reader.status();
    bool counted = window_started_ && c.start_ns >= window_start_actual_ && now <= window_end_;
    if (o_.mode == "http") {
      if (!window_started_ && o_.warmup_requests > 0 && ++warmup_done_ >= o_.warmup_requests) {
        start_window(now);
        return;
      }
      if (!counted) return;
      ++counted_;
      if (status < 200 || status >= 300) {
        ++status_errors_;
        if (last_error_.empty()) last_error_ = "status " + std::to_string(status);
      }
      latencies_.push_back(static_cast<double>(now - c.start_ns) / 1000.0);
      bytes_in_ += c.reader.body_bytes();
      bytes_out_ += o_.body_bytes;
      return;
    }
    // sse
    bool ok = c.sse.finish(&sse_) && status == 200;
    if (ok) {
      ++sse_.streams_complete;
    } else {
      ++sse_.streams_incomplete;
      if (last_error_.empty())
        last_error_ = "stream incomplete (status " + std::to_string(status) + ")";
    }
    sse_.ttfb_us.push_back(static_cast<double>(c.first_byte_ns - c.start_ns) / 1000.0);
    if (c.sse.first_event_ns() > 0) {
      sse_.ttfe_us.push_back(static_cast<double>(c.sse.first_event_ns() - c.start_ns) / 1000.0);
    }
    bytes_in_ += c.reader.body_bytes();
  }

  void report(double elapsed) {
    std::string j = "{";
    for (auto& [k, v] : o_.tags) j += "\"" + json_escape(k) + "\":\"" + json_escape(v) + "\",";
    char buf[1024];
    std::snprintf(buf, sizeof(buf),
                  "\"mode\":\"%s\",\"connections\":%d,\"elapsed_s\":%.4f,\"errors\":%lld,"
                  "\"connects\":%lld,\"server_closes\":%lld,\"timed_out\":%s,",
                  o_.mode.c_str(), o_.connections, elapsed, static_cast<long long>(errors_),
                  static_cast<long long>(connects_), static_cast<long long>(server_closes_),
                  timed_out_ ? "true" : "false");
    j += buf;
    if (!last_error_.empty()) j += "\"first_error\":\"" + json_escape(last_error_) + "\",";
    if (o_.mode == "http") {
      Percentiles p = percentiles(latencies_);
      double rps = elapsed > 0 ? static_cast<double>(counted_) / elapsed : 0;
      std::snprintf(buf, sizeof(buf),
                    "\"requests\":%lld,\"status_errors\":%lld,\"rps\":%.1f,\"bytes_in\":%llu,"
                    "\"bytes_out\":%llu,\"mb_s_in\":%.1f,\"mb_s_out\":%.1f,\"latency_us\":",
                    static_cast<long long>(counted_), static_cast<long long>(status_errors_), rps,
                    static_cast<unsigned long long>(bytes_in_),
                    static_cast<unsigned long long>(bytes_out_),
                    elapsed > 0 ? static_cast<double>(bytes_in_) / 1e6 / elapsed : 0,
                    elapsed > 0 ? static_cast<double>(bytes_out_) / 1e6 / elapsed : 0);
      j += buf + json_pct(p);
      if (!o_.raw.empty()) write_raw(o_.raw + ".lat", latencies_);
    } else {
      std::snprintf(buf, sizeof(buf),
                    "\"streams\":%lld,\"complete\":%lld,\"incomplete\":%lld,\"events\":%lld,"
                    "\"dropped\":%lld,\"reordered\":%lld,\"late\":%lld,\"late_ms\":%.1f,"
                    "\"bytes_in\":%llu,",
                    static_cast<long long>(sse_.streams_started),
                    static_cast<long long>(sse_.streams_complete),
                    static_cast<long long>(sse_.streams_incomplete),
                    static_cast<long long>(sse_.events), static_cast<long long>(sse_.dropped),
                    static_cast<long long>(sse_.reordered), static_cast<long long>(sse_.late),
                    o_.late_ms, static_cast<unsigned long long>(bytes_in_));
      j += buf;
      j += "\"event_delay_us\":" + json_pct(percentiles(sse_.delays_us));
      j += ",\"ttfb_us\":" + json_pct(percentiles(sse_.ttfb_us));
      j += ",\"ttfe_us\":" + json_pct(percentiles(sse_.ttfe_us));
      if (!o_.raw.empty()) {
        write_raw(o_.raw + ".ev", sse_.delays_us);
        write_raw(o_.raw + ".ttfb", sse_.ttfb_us);
      }
    }
    j += ",\"procs\":{";
    for (size_t i = 0; i < watches_.size(); ++i) {
      const Watch& w = watches_[i];
      double cpu = w.end.cpu_s - w.cpu_start;
      std::snprintf(
          buf, sizeof(buf),
          "%s\"%s\":{\"cpu_s\":%.2f,\"cpu_pct\":%.1f,\"hwm_kb\":%lld,\"rss_kb_start\":%lld,"
          "\"rss_kb_end\":%lld,\"rss_kb_max\":%lld,\"threads_max\":%lld}",
          i ? "," : "", json_escape(w.label).c_str(), cpu, elapsed > 0 ? 100.0 * cpu / elapsed : 0,
          static_cast<long long>(w.hwm_kb), static_cast<long long>(w.rss_start_kb),
          static_cast<long long>(w.end.rss_kb), static_cast<long long>(w.rss_max_kb),
          static_cast<long long>(w.threads_max));
      j += buf;
    }
    j += "}}";
    std::printf("%s\n", j.c_str());
  }

  const Options& o_;
  int ep_;
  std::vector<Conn> conns_;
  std::string head_;
  std::string body_block_;
  std::string head_and_body_;  // small bodies go out with the head in one send
  int64_t sse_expected_;
  int64_t hard_deadline_ = 0, window_start_ = 0, window_end_ = 0, window_start_actual_ = 0;
  bool window_started_ = false;
  bool timed_out_ = false;
  int64_t counted_ = 0, warmup_done_ = 0, status_errors_ = 0, errors_ = 0, connects_ = 0,
          server_closes_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  std::string last_error_;
  std::vector<double> latencies_;
  SseStats sse_;
  std::vector<Watch> watches_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  Client client(o);
  return client.run();
}
