#include "tests/e2e/harness.h"
#include "common/ascii.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <doctest/doctest.h>

extern char** environ;

namespace e2e {

namespace {

using lp::iequals;

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return std::string(s.substr(b, e - b));
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

std::string find_in_path(const std::string& exe) {
  if (exe.find('/') != std::string::npos) return exe;
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + exe;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return exe;
}

}  // namespace

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
      .count();
}

long raise_fd_limit(long want) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  rlim_t target = static_cast<rlim_t>(want);
  if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max) target = rl.rlim_max;
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= target) return static_cast<long>(rl.rlim_cur);
  rl.rlim_cur = target;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return static_cast<long>(rl.rlim_cur);
}

int unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// --- files -------------------------------------------------------------------------------------

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lp-e2e-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  REQUIRE_MESSAGE(::mkdtemp(buf.data()) != nullptr, "mkdtemp failed: " << std::strerror(errno));
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_file(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE_MESSAGE(out.good(), "cannot write " << path);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  REQUIRE_MESSAGE(out.good(), "cannot write " << path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --- hashing and test data ----------------------------------------------------------------------

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}
void Sha256::update(std::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}
std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(digits[md[i] >> 4]);
    out.push_back(digits[md[i] & 0xf]);
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex();
}

void ByteGenerator::fill(char* out, size_t n) {
  size_t i = 0;
  while (i < n) {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    uint64_t v = state_ * 0x2545F4914F6CDD1DULL;
    size_t take = std::min<size_t>(8, n - i);
    std::memcpy(out + i, &v, take);
    i += take;
  }
}

bool PatternChecker::feed(std::string_view data) {
  static const std::string pattern = [] {
    std::string p(64 * 1024 + 256, '\0');
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>((i * 31 + 7) & 0xff);
    return p;
  }();
  if (error_at_) return false;
  size_t done = 0;
  while (done < data.size()) {
    size_t n = std::min<size_t>(64 * 1024, data.size() - done);
    const char* expect = pattern.data() + (pos_ % 256);
    if (std::memcmp(data.data() + done, expect, n) != 0) {
      for (size_t k = 0; k < n; ++k) {
        if (data[done + k] != expect[k]) {
          error_at_ = pos_ + k;
          break;
        }
      }
      return false;
    }
    done += n;
    pos_ += n;
  }
  return true;
}

std::string gunzip(std::string_view gz) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) throw std::runtime_error("inflateInit2");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("not a complete gzip stream");
  return out;
}

// --- processes ----------------------------------------------------------------------------------

ChildProcess::ChildProcess(const std::string& exe, const std::vector<std::string>& args,
                           ChildOptions opts) {
  name_ = opts.name.empty() ? std::filesystem::path(exe).filename().string() : opts.name;
  const std::string path = find_in_path(exe);
  REQUIRE_MESSAGE(::access(path.c_str(), X_OK) == 0,
                  "cannot execute " << path << ": " << std::strerror(errno));

  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> argv_s{path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    std::string_view key = kv.substr(0, eq);
    bool replaced = std::any_of(opts.env.begin(), opts.env.end(),
                                [&](const auto& p) { return p.first == key; });
    if (!replaced) env_s.emplace_back(kv);
  }
  for (const auto& [k, v] : opts.env) env_s.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out_pipe[2], in_pipe[2];
  REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(in_pipe, O_CLOEXEC) == 0);
  const pid_t parent = ::getpid();
  const char* cwd = opts.cwd.empty() ? nullptr : opts.cwd.c_str();

  pid_ = ::fork();
  REQUIRE_MESSAGE(pid_ >= 0, "fork failed: " << std::strerror(errno));
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(in_pipe[0], STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(out_pipe[1], STDERR_FILENO);
    // Signal dispositions and masks survive exec: give the child the defaults.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (cwd && ::chdir(cwd) != 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "exec failed\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  stdin_fd_ = in_pipe[1];
  reader_ = std::thread([this, fd = out_pipe[0]] { reader_loop(fd); });
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reap(false)) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  close_stdin();
  if (reader_.joinable()) reader_.join();
}

void ChildProcess::reader_loop(int fd) {
  const bool echo = std::getenv("LP_E2E_VERBOSE") != nullptr;
  std::string partial;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial.append(buf, static_cast<size_t>(n));
    size_t start = 0, nl;
    std::vector<std::string> fresh;
    while ((nl = partial.find('\n', start)) != std::string::npos) {
      std::string line = partial.substr(start, nl - start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      fresh.push_back(std::move(line));
      start = nl + 1;
    }
    partial.erase(0, start);
    if (!fresh.empty()) {
      std::lock_guard<std::mutex> lk(mu_);
      for (auto& l : fresh) {
        if (echo) std::fprintf(stderr, "[%s] %s\n", name_.c_str(), l.c_str());
        lines_.push_back(std::move(l));
      }
      cv_.notify_all();
    }
  }
  ::close(fd);
  std::lock_guard<std::mutex> lk(mu_);
  if (!partial.empty()) lines_.push_back(partial);
  output_closed_ = true;
  cv_.notify_all();
}

std::optional<std::vector<std::string>> ChildProcess::find_line(const std::regex& re, Ms timeout,
                                                                size_t from_line) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock<std::mutex> lk(mu_);
  size_t next = from_line;
  for (;;) {
    for (; next < lines_.size(); ++next) {
      std::smatch m;
      if (std::regex_search(lines_[next], m, re)) {
        std::vector<std::string> groups;
        for (const auto& g : m) groups.push_back(g.str());
        return groups;
      }
    }
    if (output_closed_) return std::nullopt;
    if (cv_.wait_until(lk, deadline) == std::cv_status::timeout && next >= lines_.size()) {
      return std::nullopt;
    }
  }
}

std::vector<std::string> ChildProcess::wait_for_line(const std::regex& re, Ms timeout,
                                                     size_t from_line) {
  const auto t0 = Clock::now();
  auto found = find_line(re, timeout, from_line);
  if (!found) {
    const bool alive = running();
    const std::string state =
        alive ? "still running" : "exited with status " + std::to_string(exit_code().value_or(-1));
    FAIL(name_ << ": no matching output line after "
               << std::chrono::duration_cast<Ms>(Clock::now() - t0).count() << " ms (" << state
               << "). Output:\n"
               << output_tail());
  }
  return *found;
}

std::vector<std::string> ChildProcess::lines() const {
  std::lock_guard<std::mutex> lk(mu_);
  return lines_;
}

size_t ChildProcess::line_count() const {
  std::lock_guard<std::mutex> lk(mu_);
  return lines_.size();
}

std::string ChildProcess::output_tail(size_t max_lines) const {
  std::lock_guard<std::mutex> lk(mu_);
  std::string out;
  size_t start = lines_.size() > max_lines ? lines_.size() - max_lines : 0;
  if (start) out += "  [... " + std::to_string(start) + " earlier lines]\n";
  for (size_t i = start; i < lines_.size(); ++i) out += "  | " + lines_[i] + "\n";
  return out;
}

void ChildProcess::close_stdin() {
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
    stdin_fd_ = -1;
  }
}

bool ChildProcess::send_signal(int sig) {
  if (pid_ <= 0 || reap(false)) return false;
  return ::kill(pid_, sig) == 0;
}

bool ChildProcess::reap(bool block) {
  if (status_) return true;
  if (pid_ <= 0) return false;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return true;
  }
  return false;
}

bool ChildProcess::wait_exit(Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (reap(false)) {
      // The child has exited, but its last lines may still be in the pipe: wait for the reader
      // to see EOF (bounded: a grandchild could hold the pipe open), so lines() is complete.
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait_until(lk, Clock::now() + 2000ms, [&] { return output_closed_; });
      return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);  // polling a condition (waitpid), bounded by the deadline
  }
}

bool ChildProcess::terminate(Ms timeout) {
  if (reap(false)) return true;
  ::kill(pid_, SIGTERM);
  if (wait_exit(timeout)) return true;
  ::kill(pid_, SIGKILL);
  reap(true);
  return false;
}

bool ChildProcess::running() {
  return pid_ > 0 && !reap(false);
}

std::optional<int> ChildProcess::exit_code() {
  reap(false);
  return status_;
}

long ChildProcess::status_field(const char* key) const {
  if (pid_ <= 0 || status_) return 0;
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  const size_t klen = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, klen, key) == 0 && line.size() > klen && line[klen] == ':') {
      return std::strtol(line.c_str() + klen + 1, nullptr, 10);
    }
  }
  return 0;
}

long ChildProcess::peak_rss_kb() const {
  return status_field("VmHWM");
}
long ChildProcess::rss_kb() const {
  return status_field("VmRSS");
}
long ChildProcess::threads() const {
  return status_field("Threads");
}

std::vector<std::string> ChildProcess::thread_names() const {
  std::vector<std::string> out;
  if (pid_ <= 0 || status_) return out;
  std::error_code ec;
  for (const auto& t :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
    std::ifstream in(t.path() / "comm");
    std::string name;
    if (std::getline(in, name)) out.push_back(name);  // a thread that ended has no comm
  }
  std::sort(out.begin(), out.end());
  return out;
}

// --- test certificate --------------------------------------------------------------------------

namespace {
void run_tool(const std::vector<std::string>& args, const std::string& cwd) {
  std::vector<std::string> rest(args.begin() + 1, args.end());
  ChildProcess p(args[0], rest, ChildOptions{{}, cwd, args[0]});
  bool exited = p.wait_exit(30000ms);
  if (!exited || p.exit_code() != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    FAIL("command failed: " << cmd << "\n" << p.output_tail());
  }
}
}  // namespace

TestCert make_test_cert(const std::string& dir) {
  TestCert c{dir + "/ca.pem", dir + "/server.pem", dir + "/server.key"};
  const std::string ca_key = dir + "/ca.key", csr = dir + "/server.csr", ext = dir + "/server.ext";
  run_tool({"openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            ca_key,
            "-out",
            c.ca_pem,
            "-days",
            "7",
            "-subj",
            "/CN=logging-proxy e2e test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign"},
           dir);
  run_tool({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", c.key_pem, "-out", csr, "-subj", "/CN=localhost"},
           dir);
  write_file(ext,
             "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
             "basicConstraints=critical,CA:FALSE\n"
             "keyUsage=critical,digitalSignature\n"
             "extendedKeyUsage=serverAuth\n");
  run_tool({"openssl", "x509", "-req", "-in", csr, "-CA", c.ca_pem, "-CAkey", ca_key,
            "-CAcreateserial", "-out", c.cert_pem, "-days", "7", "-extfile", ext},
           dir);
  return c;
}

const TestCert& shared_test_cert() {
  static TempDir dir;
  static TestCert cert = make_test_cert(dir.path());
  return cert;
}

// --- raw HTTP/1.1 client ------------------------------------------------------------------------

bool ResponseHead::has(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return iequals(h.first, name); });
}

std::string ResponseHead::get(std::string_view name) const {
  for (const auto& h : headers) {
    if (iequals(h.first, name)) return h.second;
  }
  return "";
}

std::vector<std::string> ResponseHead::all(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& h : headers) {
    if (iequals(h.first, name)) out.push_back(h.second);
  }
  return out;
}

std::string ResponseHead::describe() const {
  std::string s = version + " " + std::to_string(status) + " " + reason + "\n";
  for (const auto& [k, v] : headers) s += k + ": " + v + "\n";
  return s;
}

std::optional<ResponseHead> parse_response_head(std::string_view raw) {
  ResponseHead h;
  h.raw_size = raw.size();
  size_t eol = raw.find("\r\n");
  if (eol == std::string_view::npos) return std::nullopt;
  std::string_view line = raw.substr(0, eol);
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return std::nullopt;
  h.version = std::string(line.substr(0, sp1));
  if (h.version.rfind("HTTP/1.", 0) != 0) return std::nullopt;
  size_t sp2 = line.find(' ', sp1 + 1);
  std::string code(
      line.substr(sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp1 - 1));
  if (code.size() != 3 || !std::all_of(code.begin(), code.end(), ::isdigit)) return std::nullopt;
  h.status = std::stoi(code);
  if (sp2 != std::string_view::npos) h.reason = std::string(line.substr(sp2 + 1));
  size_t pos = eol + 2;
  while (pos < raw.size()) {
    size_t e = raw.find("\r\n", pos);
    if (e == std::string_view::npos) return std::nullopt;
    if (e == pos) break;  // the blank line
    std::string_view hl = raw.substr(pos, e - pos);
    size_t colon = hl.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    h.headers.emplace_back(std::string(hl.substr(0, colon)), trim(hl.substr(colon + 1)));
    pos = e + 2;
  }
  return h;
}

BodyDecoder::Framing BodyDecoder::framing_for(const ResponseHead& head,
                                              std::string_view request_method) {
  if (request_method == "HEAD" || (head.status >= 100 && head.status < 200) || head.status == 204 ||
      head.status == 304) {
    return Framing::kNone;
  }
  for (const auto& te : head.all("Transfer-Encoding")) {
    if (lp::ascii_lowered(te).find("chunked") != std::string::npos) return Framing::kChunked;
  }
  if (head.has("Content-Length")) return Framing::kLength;
  return Framing::kUntilClose;
}

BodyDecoder::BodyDecoder(const ResponseHead& head, std::string_view request_method)
    : framing_(framing_for(head, request_method)) {
  done_ = false;
  switch (framing_) {
    case Framing::kNone:
      done_ = true;
      break;
    case Framing::kLength: {
      const std::string cl = head.get("Content-Length");
      char* end = nullptr;
      remaining_ = std::strtoull(cl.c_str(), &end, 10);
      if (cl.empty() || *end != '\0') error_ = done_ = true;
      if (remaining_ == 0) done_ = true;
      break;
    }
    case Framing::kChunked:
      state_ = State::kSize;
      break;
    case Framing::kUntilClose:
      break;
  }
}

long BodyDecoder::feed(std::string_view in, const Sink& on_body) {
  size_t pos = 0;
  auto emit = [&](size_t n) {
    if (n) on_body(in.substr(pos, n));
    body_bytes_ += n;
    pos += n;
  };
  while (!done_ && pos < in.size()) {
    switch (framing_) {
      case Framing::kNone:
        done_ = true;
        break;
      case Framing::kUntilClose:
        emit(in.size() - pos);
        break;
      case Framing::kLength: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - pos));
        emit(n);
        remaining_ -= n;
        if (remaining_ == 0) done_ = true;
        break;
      }
      case Framing::kChunked: {
        if (state_ == State::kData) {
          size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - pos));
          emit(n);
          remaining_ -= n;
          if (remaining_ == 0) state_ = State::kDataCrlf;
          break;
        }
        // A line: the chunk size, the CRLF after the data, or a trailer line.
        size_t nl = in.find('\n', pos);
        size_t take = (nl == std::string_view::npos ? in.size() : nl + 1) - pos;
        line_.append(in.substr(pos, take));
        pos += take;
        if (line_.size() > 4096) {
          error_ = done_ = true;
          return -1;
        }
        if (line_.empty() || line_.back() != '\n') break;  // need more bytes
        std::string line = line_.substr(0, line_.size() - 1);
        line_.clear();
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (state_ == State::kDataCrlf) {
          if (!line.empty()) {
            error_ = done_ = true;
            return -1;
          }
          state_ = State::kSize;
        } else if (state_ == State::kSize) {
          std::string size_text = line.substr(0, line.find(';'));
          size_text = trim(size_text);
          char* end = nullptr;
          errno = 0;
          uint64_t size = std::strtoull(size_text.c_str(), &end, 16);
          if (size_text.empty() || *end != '\0' || errno != 0) {
            error_ = done_ = true;
            return -1;
          }
          if (size == 0) {
            state_ = State::kTrailer;
          } else {
            remaining_ = size;
            state_ = State::kData;
          }
        } else if (state_ == State::kTrailer) {
          if (line.empty()) done_ = true;
        }
        break;
      }
    }
  }
  return static_cast<long>(pos);
}

void BodyDecoder::eof() {
  if (done_) return;
  if (framing_ == Framing::kUntilClose) {
    done_ = true;
  } else {
    error_ = done_ = true;
  }
}

json HttpResponse::body_json() const {
  try {
    return json::parse(body);
  } catch (const std::exception& e) {
    FAIL("response body is not JSON (" << e.what() << "): " << head.describe() << "\n"
                                       << body.substr(0, 2000));
  }
  return {};
}

std::string make_request(const std::string& method, const std::string& target, int port,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         const std::string& body) {
  std::string r = method + " " + target + " HTTP/1.1\r\n";
  bool has_host = false, has_length = false;
  for (const auto& [k, v] : headers) {
    if (iequals(k, "Host")) has_host = true;
    if (iequals(k, "Content-Length") || iequals(k, "Transfer-Encoding")) has_length = true;
  }
  if (!has_host) r += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
  if (!has_length && (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")) {
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  r += "\r\n";
  r += body;
  return r;
}

RawConn::RawConn(int port, Ms connect_timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  REQUIRE(fd_ >= 0);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd_, POLLOUT, 0};
    int pr = ::poll(&p, 1, static_cast<int>(connect_timeout.count()));
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    rc = (pr == 1 && err == 0) ? 0 : -1;
    if (pr == 1) errno = err;
  }
  if (rc != 0) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    FAIL("cannot connect to 127.0.0.1:" << port << ": " << std::strerror(e));
  }
}

RawConn::~RawConn() {
  close();
}

void RawConn::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

bool RawConn::send_all(std::string_view data, Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  size_t sent = 0;
  while (sent < data.size()) {
    if (fd_ < 0) return false;
    ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int left = remaining_ms(deadline);
      if (left == 0) return false;
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, left);
      continue;
    }
    return false;
  }
  return true;
}

long RawConn::recv_some(Ms timeout) {
  if (fd_ < 0) return -1;
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (1 << 20) && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const size_t old = buf_.size();
    buf_.resize(old + 256 * 1024);
    ssize_t n = ::recv(fd_, buf_.data() + old, 256 * 1024, 0);
    buf_.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n > 0) return n;
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    int left = remaining_ms(deadline);
    if (left == 0) return -1;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, left) == 0) return -1;
  }
}

std::string_view RawConn::buffered() const {
  return std::string_view(buf_).substr(pos_);
}

void RawConn::consume(size_t n) {
  pos_ = std::min(buf_.size(), pos_ + n);
}

std::optional<std::string> RawConn::read_until(std::string_view needle, Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  size_t searched = 0;
  for (;;) {
    auto view = buffered();
    size_t from = searched >= needle.size() ? searched - needle.size() + 1 : 0;
    size_t at = view.find(needle, from);
    if (at != std::string_view::npos) {
      std::string out(view.substr(0, at + needle.size()));
      consume(at + needle.size());
      return out;
    }
    searched = view.size();
    int left = remaining_ms(deadline);
    if (left == 0) return std::nullopt;
    if (recv_some(Ms(left)) <= 0) return std::nullopt;
  }
}

bool RawConn::wait_closed(Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    consume(buffered().size());
    int left = remaining_ms(deadline);
    long n = recv_some(Ms(left));
    if (n == 0) return true;
    if (n < 0) {
      if (fd_ >= 0 && errno == ECONNRESET) return true;
      if (remaining_ms(deadline) == 0) return false;
    }
  }
}

std::optional<ResponseHead> RawConn::read_head(Ms timeout) {
  // Interim 1xx responses (100 Continue) are skipped.
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto raw = read_until("\r\n\r\n", Ms(remaining_ms(deadline)));
    if (!raw) return std::nullopt;
    auto head = parse_response_head(*raw);
    if (!head) return std::nullopt;
    if (head->status >= 100 && head->status < 200 && head->status != 101) continue;
    return head;
  }
}

bool RawConn::read_body(const ResponseHead& head, std::string_view request_method, Ms idle_timeout,
                        const std::function<bool(std::string_view)>& on_data) {
  BodyDecoder dec(head, request_method);
  return read_body(dec, idle_timeout, on_data);
}

bool RawConn::read_body(BodyDecoder& dec, Ms idle_timeout,
                        const std::function<bool(std::string_view)>& on_data) {
  bool stop = false;
  auto sink = [&](std::string_view d) {
    if (!on_data(d)) stop = true;
  };
  for (;;) {
    auto view = buffered();
    if (!view.empty() && !dec.done()) {
      long used = dec.feed(view, sink);
      if (used < 0) return false;
      consume(static_cast<size_t>(used));
    }
    if (dec.done()) return !dec.error();
    if (stop) return false;
    long n = recv_some(idle_timeout);
    if (n == 0) {
      dec.eof();
      return !dec.error();
    }
    if (n < 0) return false;
  }
}

std::optional<HttpResponse> RawConn::read_response(std::string_view request_method, Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  auto head = read_head(timeout);
  if (!head) return std::nullopt;
  HttpResponse r;
  r.head = *head;
  r.complete = read_body(*head, request_method, Ms(std::max(1, remaining_ms(deadline))),
                         [&](std::string_view d) {
                           r.body.append(d);
                           return true;
                         });
  return r;
}

std::optional<HttpResponse> RawConn::exchange(std::string_view request, std::string_view method,
                                              Ms timeout) {
  if (!send_all(request, timeout)) return std::nullopt;
  return read_response(method, timeout);
}

HttpResponse http_exchange(int port, const std::string& request, const std::string& method,
                           Ms timeout) {
  RawConn c(port);
  auto r = c.exchange(request, method, timeout);
  if (!r) {
    FAIL("no response within " << timeout.count() << " ms from 127.0.0.1:" << port << " to:\n"
                               << request.substr(0, 2000));
  }
  if (!r->complete) {
    FAIL("incomplete response body from 127.0.0.1:" << port << " to:\n"
                                                    << request.substr(0, 2000) << "\ngot:\n"
                                                    << r->head.describe() << "\n"
                                                    << r->body.substr(0, 2000));
  }
  return *r;
}

HttpResponse http_get(int port, const std::string& target, Ms timeout) {
  return http_exchange(port, make_request("GET", target, port, {{"Connection", "close"}}), "GET",
                       timeout);
}

// --- the processes under test -------------------------------------------------------------------

std::string bin_dir() {
  if (const char* d = std::getenv("LP_E2E_BIN_DIR"); d && *d) return d;
  return LP_BIN_DIR;
}

MockUpstream::MockUpstream(const TestCert* tls, std::vector<std::string> extra_args) {
  raise_fd_limit();
  std::vector<std::string> args = std::move(extra_args);
  if (tls) args.insert(args.end(), {"--tls-cert", tls->cert_pem, "--tls-key", tls->key_pem});
  proc_ = std::make_unique<ChildProcess>(bin_dir() + "/mock_upstream", args,
                                         ChildOptions{{}, "", "mock"});
  auto m = proc_->wait_for_line(std::regex(R"(mock_upstream http=(\d+) https=(\d+))"), 10000ms);
  http_port_ = std::stoi(m[1]);
  https_port_ = std::stoi(m[2]);
}

json MockUpstream::stats() {
  return http_get(http_port_, "/stats").body_json();
}

std::pair<json, bool> MockUpstream::await_stats(const std::function<bool(const json&)>& pred,
                                                Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    json s = stats();
    if (pred(s)) return {s, true};
    if (Clock::now() >= deadline) return {s, false};
    std::this_thread::sleep_for(5ms);  // polling a condition, bounded by the deadline
  }
}

Proxy::Proxy(const std::string& config_yaml, ChildOptions opts) {
  raise_fd_limit();
  config_path_ = dir_.file("config.yaml");
  write_file(config_path_, config_yaml);
  if (opts.cwd.empty()) opts.cwd = dir_.path();
  if (opts.name.empty()) opts.name = "proxy";
  server_ = std::make_unique<ServerProcess>(bin_dir() + "/logging-proxy",
                                            std::vector<std::string>{"--config", config_path_},
                                            std::move(opts));
}

ChildOptions child_opts(const std::string& name,
                        std::vector<std::pair<std::string, std::string>> env) {
  env.emplace_back("LOG_SERVER_TOKEN", "");
  return ChildOptions{std::move(env), "", name};
}

ServerProcess::ServerProcess(const std::string& exe, const std::vector<std::string>& args,
                             ChildOptions opts) {
  proc_ = std::make_unique<ChildProcess>(exe, args, std::move(opts));
  auto m = proc_->wait_for_line(std::regex(R"(listening on http://[^ ]+:(\d+))"), 10000ms);
  port_ = std::stoi(m[1]);
}

LogServerProc::LogServerProc(const std::string& config, const std::string& name,
                             std::vector<std::pair<std::string, std::string>> env)
    : ServerProcess(bin_dir() + "/log-server", {"--config", config},
                    child_opts(name, std::move(env))) {}

ProxyProc::ProxyProc(const std::string& config, const std::string& name,
                     std::vector<std::pair<std::string, std::string>> env)
    : ServerProcess(bin_dir() + "/logging-proxy", {"--config", config},
                    child_opts(name, std::move(env))) {}

std::string log_server_yaml(const std::string& data_dir, int port, const std::string& token) {
  std::string y = "log_server:\n  host: \"127.0.0.1\"\n  port: " + std::to_string(port) +
                  "\n  data_dir: \"" + data_dir + "\"\n";
  if (!token.empty()) y += "  auth_token: \"" + token + "\"\n";
  return y;
}

std::string proxy_config(const ProxyRoutes& r) {
  std::string y;
  y += "server: {host: \"127.0.0.1\", port: 0, upstream_timeout: \"" + r.upstream_timeout + "\"}\n";
  y += "logging: {console: true, server_url: \"http://127.0.0.1:9\", default: true" +
       (r.logging_extra.empty() ? "" : ", " + r.logging_extra) + "}\n";
  y += "routes:\n";
  const std::string mock = "http://127.0.0.1:" + std::to_string(r.mock_port);
  y += "  mock: {pattern: \"/mock/\", destination: \"" + mock + "/\"}\n";
  if (r.mock_tls_port) {
    y += "  tls: {pattern: \"/tls/\", destination: \"https://localhost:" +
         std::to_string(r.mock_tls_port) + "/\", ca_file: \"" + r.ca_file + "\"}\n";
  }
  if (r.dead_port) {
    y += "  dead: {pattern: \"/dead/\", destination: \"http://127.0.0.1:" +
         std::to_string(r.dead_port) + "/\"}\n";
  }
  y += "  exact: {pattern: \"GET /exact\", destination: \"" + mock + "/echo/exact-target\"}\n";
  return y;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

bool await_cond(const std::function<bool()>& cond, Ms timeout, Ms interval) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);  // poll interval, not synchronisation
  }
}

size_t count_spooled_batches(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec) && e.path().extension() == ".batch") ++n;
  }
  return n;
}

}  // namespace e2e
