// Helpers for the end-to-end tests: child processes, temporary files, a test certificate, the
// mock upstream and proxy processes, and a raw-socket HTTP/1.1 client that reports exactly what
// arrives on the wire and when.
//
// Nothing here sleeps to synchronise: every wait is for a condition, bounded by a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace e2e {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;
using namespace std::chrono_literals;

// CLOCK_MONOTONIC in microseconds: the clock the mock upstream stamps its events and
// disconnects with (std::chrono::steady_clock is CLOCK_MONOTONIC on Linux).
int64_t now_us();

// Raises RLIMIT_NOFILE (soft, up to the hard limit); children inherit it. Returns the new limit.
long raise_fd_limit(long want = 8192);

// A free TCP port on 127.0.0.1 that nothing listens on (bound, read, closed).
int unused_port();

// Milliseconds since t0 (for the figures the tests report).
double ms_since(Clock::time_point t0);

// Polls until cond() holds; true if it did before `timeout`. For conditions nothing can notify
// us of (a file appearing, a row in another process's database): the interval is a poll, not
// synchronisation.
bool await_cond(const std::function<bool()>& cond, Ms timeout, Ms interval = 20ms);

// --- files -------------------------------------------------------------------------------------

class TempDir {
 public:
  TempDir();   // mkdtemp under $TMPDIR or /tmp
  ~TempDir();  // recursive removal
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_file(const std::string& path, std::string_view content);
std::string read_file(const std::string& path);
// Batches waiting in a proxy's spool dir (`*.batch`; its ".lock" file is there by design).
size_t count_spooled_batches(const std::string& dir);

// --- hashing and test data ----------------------------------------------------------------------

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string hex();  // finishes the digest

 private:
  void* ctx_;
};
std::string sha256_hex(std::string_view data);

// Deterministic pseudo-random bytes (xorshift64*), for request bodies generated on the fly.
class ByteGenerator {
 public:
  explicit ByteGenerator(uint64_t seed) : state_(seed | 1) {}
  void fill(char* out, size_t n);

 private:
  uint64_t state_;
};

// Checks a body against the mock's /large pattern, byte i = (i*31+7) & 0xff, as it streams by.
class PatternChecker {
 public:
  bool feed(std::string_view data);  // false at the first wrong byte (see first_error())
  uint64_t bytes() const { return pos_; }
  std::optional<uint64_t> first_error() const { return error_at_; }

 private:
  uint64_t pos_ = 0;
  std::optional<uint64_t> error_at_;
};

std::string gunzip(std::string_view gz);  // throws std::runtime_error on bad input

// --- processes ----------------------------------------------------------------------------------

struct ChildOptions {
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) ours
  std::string cwd;                                       // empty: ours
  std::string name;  // label for diagnostics; defaults to the executable's base name
};

// A child process with stdout+stderr captured line by line by a background thread. Its stdin is
// a pipe we hold open, so a child that exits on stdin EOF dies with us; it is also killed by the
// kernel (PR_SET_PDEATHSIG) if the test process dies.
class ChildProcess {
 public:
  ChildProcess(const std::string& exe, const std::vector<std::string>& args,
               ChildOptions opts = {});
  ~ChildProcess();  // SIGKILL if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }

  // Waits for an output line matching `re` (searched from line `from_line`); returns the match and
  // its groups. Fails the test with the collected output on timeout or if the child exits.
  std::vector<std::string> wait_for_line(const std::regex& re, Ms timeout, size_t from_line = 0);
  // Like wait_for_line but returns nullopt instead of failing.
  std::optional<std::vector<std::string>> find_line(const std::regex& re, Ms timeout,
                                                    size_t from_line = 0);
  std::vector<std::string> lines() const;
  size_t line_count() const;
  std::string output_tail(size_t max_lines = 60) const;

  void close_stdin();
  bool send_signal(int sig);
  // Waits for the child to exit; true if it did within `timeout`.
  bool wait_exit(Ms timeout);
  // SIGTERM, wait up to `timeout`, then SIGKILL. True if it exited by itself in time.
  bool terminate(Ms timeout = 5000ms);
  bool running();
  // Exit status once exited: the exit code, or 128 + signal number if killed by a signal.
  std::optional<int> exit_code();

  // From /proc/PID/status while the child runs (0 if unavailable).
  long peak_rss_kb() const;  // VmHWM
  long rss_kb() const;       // VmRSS
  long threads() const;      // Threads
  // Each thread's name (/proc/PID/task/TID/comm), sorted; empty once the process ended.
  std::vector<std::string> thread_names() const;

 private:
  void reader_loop(int fd);
  long status_field(const char* key) const;
  bool reap(bool block);

  std::string name_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  std::optional<int> status_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool output_closed_ = false;
};

// --- test certificate --------------------------------------------------------------------------

struct TestCert {
  std::string ca_pem;    // the CA certificate: the proxy route's ca_file
  std::string cert_pem;  // server certificate for DNS:localhost, IP:127.0.0.1, signed by the CA
  std::string key_pem;   // its private key
};
// Generates a CA and a server certificate in `dir` with the openssl CLI.
TestCert make_test_cert(const std::string& dir);
// One certificate for the whole test run (generated on first use, removed at exit).
const TestCert& shared_test_cert();

// --- raw HTTP/1.1 client ------------------------------------------------------------------------

struct ResponseHead {
  std::string version;
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  size_t raw_size = 0;                                       // bytes of the head incl. CRLFCRLF

  bool has(std::string_view name) const;
  std::string get(std::string_view name) const;  // first value, "" if absent
  std::vector<std::string> all(std::string_view name) const;
  std::string describe() const;  // the head as text, for messages
};
// Parses "HTTP/1.1 200 OK\r\nName: value\r\n...\r\n\r\n"; nullopt if malformed.
std::optional<ResponseHead> parse_response_head(std::string_view raw);

// Incremental decoder of a response body's framing (RFC 9112 section 6).
class BodyDecoder {
 public:
  enum class Framing { kNone, kLength, kChunked, kUntilClose };
  static Framing framing_for(const ResponseHead& head, std::string_view request_method);

  BodyDecoder() = default;
  BodyDecoder(const ResponseHead& head, std::string_view request_method);

  // Consumes bytes of `in` up to the end of the body and passes body bytes to `on_body` (views
  // into `in`). Returns the number of bytes consumed, or -1 on a framing error.
  using Sink = std::function<void(std::string_view)>;
  long feed(std::string_view in, const Sink& on_body);
  void eof();  // the connection closed: completes an until-close body
  bool done() const { return done_; }
  bool error() const { return error_; }
  Framing framing() const { return framing_; }
  uint64_t body_bytes() const { return body_bytes_; }

 private:
  Framing framing_ = Framing::kNone;
  enum class State { kSize, kData, kDataCrlf, kTrailer } state_ = State::kSize;
  uint64_t remaining_ = 0;
  uint64_t body_bytes_ = 0;
  std::string line_;
  bool done_ = true;
  bool error_ = false;
};

struct HttpResponse {
  ResponseHead head;
  std::string body;
  bool complete = false;  // the body's framing completed
  int status() const { return head.status; }
  json body_json() const;  // fails the test if the body is not JSON
};

// One request line + headers (+ body): "METHOD target HTTP/1.1", a Host header (unless one is
// given), Content-Length when a body is given or the method normally has one.
std::string make_request(const std::string& method, const std::string& target, int port,
                         const std::vector<std::pair<std::string, std::string>>& headers = {},
                         const std::string& body = "");

// A client TCP connection to 127.0.0.1:port (TCP_NODELAY) with a read buffer.
class RawConn {
 public:
  explicit RawConn(int port, Ms connect_timeout = 5000ms);  // fails the test if it can't connect
  ~RawConn();
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }

  // Sends everything, or returns false (peer closed, error, or timeout).
  bool send_all(std::string_view data, Ms timeout = 10000ms);
  // Receives once into the buffer: >0 bytes read, 0 peer closed (EOF), -1 timeout or error.
  long recv_some(Ms timeout);
  // Unconsumed received bytes.
  std::string_view buffered() const;
  void consume(size_t n);
  // Reads until `needle` is buffered; returns the bytes through it (consumed), nullopt on
  // timeout or EOF.
  std::optional<std::string> read_until(std::string_view needle, Ms timeout);
  // Waits for the peer to close the connection (reading and discarding); true if it did.
  bool wait_closed(Ms timeout);

  std::optional<ResponseHead> read_head(Ms timeout);
  // Streams the body of `head`: on_data gets decoded body bytes as they arrive and returns false
  // to stop early. `idle_timeout` bounds each wait for data. True when the body is complete.
  // Every byte received so far is passed on even after on_data returned false.
  bool read_body(const ResponseHead& head, std::string_view request_method, Ms idle_timeout,
                 const std::function<bool(std::string_view)>& on_data);
  // The same with a caller-owned decoder, to continue reading a body after stopping early.
  bool read_body(BodyDecoder& dec, Ms idle_timeout,
                 const std::function<bool(std::string_view)>& on_data);
  // Reads a whole response; `complete` tells whether the body's framing completed.
  std::optional<HttpResponse> read_response(std::string_view request_method, Ms timeout);
  // send_all + read_response.
  std::optional<HttpResponse> exchange(std::string_view request, std::string_view method,
                                       Ms timeout = 5000ms);
  void close();

 private:
  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;
};

// A request on a fresh connection; fails the test if no complete response arrives in time.
HttpResponse http_exchange(int port, const std::string& request, const std::string& method,
                           Ms timeout = 5000ms);
// GET target (Connection: close) on a fresh connection.
HttpResponse http_get(int port, const std::string& target, Ms timeout = 5000ms);

// --- the processes under test -------------------------------------------------------------------

std::string bin_dir();  // LP_BIN_DIR, overridable with $LP_E2E_BIN_DIR

// The mock upstream (tests/e2e/mock_upstream.cc), with HTTPS when a certificate is given.
class MockUpstream {
 public:
  // `extra_args` go to mock_upstream as they are (e.g. {"--threads", "1100"}).
  explicit MockUpstream(const TestCert* tls = nullptr, std::vector<std::string> extra_args = {});
  int http_port() const { return http_port_; }
  int https_port() const { return https_port_; }
  ChildProcess& process() { return *proc_; }

  json stats();  // GET /stats directly, not through the proxy
  // Polls /stats (short waits) until pred(stats) holds; returns the last stats and whether it did.
  std::pair<json, bool> await_stats(const std::function<bool(const json&)>& pred, Ms timeout);

 private:
  std::unique_ptr<ChildProcess> proc_;
  int http_port_ = 0, https_port_ = 0;
};

// Options for a child that must not see our environment's LOG_SERVER_TOKEN (it is set to ""),
// plus `env`.
ChildOptions child_opts(const std::string& name,
                        std::vector<std::pair<std::string, std::string>> env = {});

// A server process (log-server or logging-proxy) whose port is read from its startup line
// "... listening on http://HOST:PORT". The config file and data stay the caller's.
class ServerProcess {
 public:
  ServerProcess(const std::string& exe, const std::vector<std::string>& args, ChildOptions opts);
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  ChildProcess& process() { return *proc_; }

 private:
  std::unique_ptr<ChildProcess> proc_;
  int port_ = 0;
};

// `log-server --config CONFIG` from bin_dir().
class LogServerProc : public ServerProcess {
 public:
  using ServerProcess::ServerProcess;
  explicit LogServerProc(const std::string& config, const std::string& name = "log-server",
                         std::vector<std::pair<std::string, std::string>> env = {});
};

// `logging-proxy --config CONFIG` from bin_dir().
class ProxyProc : public ServerProcess {
 public:
  explicit ProxyProc(const std::string& config, const std::string& name = "proxy",
                     std::vector<std::pair<std::string, std::string>> env = {});
};

// `log_server:` on 127.0.0.1 with `data_dir` (and `auth_token` when given).
std::string log_server_yaml(const std::string& data_dir, int port = 0,
                            const std::string& token = "");

// logging-proxy started with a config file written into its own temp dir (also its cwd).
class Proxy {
 public:
  explicit Proxy(const std::string& config_yaml, ChildOptions opts = {});
  int port() const { return server_->port(); }
  ChildProcess& process() { return server_->process(); }
  const std::string& config_path() const { return config_path_; }

 private:
  TempDir dir_;
  std::string config_path_;
  std::unique_ptr<ServerProcess> server_;
};

struct ProxyRoutes {
  int mock_port = 0;
  int mock_tls_port = 0;  // 0: no tls route
  std::string ca_file;
  int dead_port = 0;  // 0: no dead route
  std::string upstream_timeout = "2s";
  std::string logging_extra;  // more `logging:` keys, e.g. "queue_bytes: 8MiB"
};
// The standard test config: routes mock, tls, dead, exact (see test_proxy_e2e.cc).
std::string proxy_config(const ProxyRoutes& r);

// Median / percentile of a copy of `v` (0 for an empty vector); p in [0, 1].
double percentile(std::vector<double> v, double p);

}  // namespace e2e
