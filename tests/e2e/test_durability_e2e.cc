// Durability of the log server end to end, with real processes:
//   - SIGKILL at random moments during ingest, many rounds: after each restart every
//     acknowledged batch is there byte-exact, the batch in flight applied entirely or not at all
//     (and exactly once when re-sent), and the index and the files agree (no file shorter or
//     longer than its row says, no file without a row: recovery moves those aside and says so);
//   - a full disk: POST /ingest answers 507 and applies nothing, the proxy keeps its clients
//     unaffected and spools, and once space is back every capture arrives exactly once;
//   - retention: by age and by size through the real server, and a SIGKILL at each point of its
//     deletion protocol followed by restarts: rows and files stay together, nothing is orphaned.
// The kill test's plan comes from a seeded RNG (printed; LP_DURABILITY_SEED=N repeats the plan,
// the kill points depend on timing too). A random delay before each kill is the kill point, not
// synchronisation: every wait for a condition is bounded and polls.

#include <signal.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <fcntl.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <doctest/doctest.h>
#include <httplib.h>

#include "common/capture_wire.h"
#include "tests/e2e/harness.h"

using namespace e2e;
using lp::wire::FrameType;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<httplib::Client> client_for(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);  // else delayed ACKs add ~40 ms to every small request
  c->set_connection_timeout(2, 0);
  c->set_read_timeout(30, 0);
  c->set_write_timeout(30, 0);
  return c;
}

json get_json(httplib::Client& c, const std::string& path) {
  auto r = c.Get(path.c_str());
  REQUIRE_MESSAGE(r, "GET " << path << ": " << httplib::to_string(r.error()));
  INFO("GET " << path << " -> " << r->status << " " << r->body.substr(0, 500));
  REQUIRE(r->status == 200);
  json j = json::parse(r->body, nullptr, false);
  REQUIRE(!j.is_discarded());
  return j;
}

std::string get_raw(httplib::Client& c, const std::string& path) {
  auto r = c.Get(path.c_str());
  REQUIRE_MESSAGE(r, "GET " << path << ": " << httplib::to_string(r.error()));
  INFO("GET " << path << " -> " << r->status);
  REQUIRE(r->status == 200);
  return r->body;
}

// Every row of /requests?QUERY, following next_cursor (bounded).
std::vector<json> list_all(httplib::Client& c, const std::string& query = "") {
  std::vector<json> rows;
  std::string cursor;
  for (int page = 0; page < 100; ++page) {
    std::string path = "/requests?limit=1000" + (query.empty() ? "" : "&" + query);
    if (!cursor.empty()) path += "&cursor=" + cursor;
    json j = get_json(c, path);
    for (auto& row : j["requests"]) rows.push_back(std::move(row));
    if (!j["next_cursor"].is_string()) return rows;
    cursor = j["next_cursor"].get<std::string>();
  }
  FAIL("more than 100 pages of /requests");
  return rows;
}

double metric(httplib::Client& c, const std::string& line_prefix) {
  auto r = c.Get("/metrics");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(line_prefix + " ", 0) == 0)
      return std::stod(line.substr(line_prefix.size() + 1));
  }
  FAIL("metric " << line_prefix << " not found in\n" << r->body);
  return -1;
}

// Exchange files (.bin) under data_dir, relative, outside the quarantine.
std::set<std::string> stored_files(const std::string& data) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(data)) {
    if (!e.is_regular_file() || e.path().extension() != ".bin") continue;
    std::string rel = fs::relative(e.path(), data).string();
    if (rel.rfind("orphaned/", 0) != 0) out.insert(rel);
  }
  return out;
}

size_t count_files(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) ++n;
  }
  return n;
}

// "2025-09-13T23:59:50.000000Z" + offset.
std::string rfc3339(int64_t us) {
  time_t secs = static_cast<time_t>(us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(us % 1000000));
  return buf;
}

// --- the kill test's plan: what one proxy ships, batch by batch -------------------------------

const std::string kRequestHead =
    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"
    "Content-Type: application/octet-stream\r\nX-Proxy-Path: /mock/v1/durable\r\n\r\n";
const std::string kResponseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";

struct PlannedFrame {
  FrameType type;
  std::string id;
  std::string data;
  std::string outcome;  // end frames
};

struct PlannedBatch {
  uint64_t seq = 0;
  std::vector<PlannedFrame> frames;
  std::string bytes;  // encoded
};

// What the log server must hold for one exchange.
struct ExpectedExchange {
  std::string request;   // request file bytes
  std::string response;  // response file bytes
  bool has_response = false;
  std::string outcome;  // "" until the end frame
};

// The expected store: the effect of a prefix of the planned batches.
struct Expected {
  std::map<std::string, ExpectedExchange> ex;
  void apply(const PlannedBatch& b) {
    for (const auto& f : b.frames) {
      ExpectedExchange& e = ex[f.id];
      switch (f.type) {
        case FrameType::kRequestHead:
        case FrameType::kRequestBody:
          e.request += f.data;
          break;
        case FrameType::kResponseHead:
          e.has_response = true;
          [[fallthrough]];
        case FrameType::kResponseBody:
          e.response += f.data;
          break;
        case FrameType::kEnd:
          e.outcome = f.outcome;
          break;
        default:
          break;
      }
    }
  }
};

class Planner {
 public:
  Planner(uint64_t seed, std::string proxy_id) : rng_(seed), proxy_id_(std::move(proxy_id)) {}

  PlannedBatch next(bool finish = false) {
    PlannedBatch b;
    b.seq = ++seq_;
    if (!finish && (open_.size() < 2 || (open_.size() < 5 && pick(3) == 0))) start(b);
    for (size_t i = 0; i < open_.size();) {
      if (!finish && pick(3) == 0) {  // this exchange sends nothing in this batch
        ++i;
        continue;
      }
      int steps = finish ? 100 : 1 + static_cast<int>(pick(2));
      bool ended = false;
      for (int s = 0; s < steps && !ended; ++s) ended = advance(open_[i], b);
      if (ended) {
        open_.erase(open_.begin() + static_cast<long>(i));
      } else {
        ++i;
      }
    }
    // Every batch changes what the server shows, so a check can tell whether it was applied.
    if (b.frames.empty() && advance(open_.front(), b)) open_.erase(open_.begin());
    lp::wire::begin_batch(&b.bytes, proxy_id_, b.seq);
    for (const auto& f : b.frames) {
      json meta = {{"id", f.id}};
      if (f.type == FrameType::kBegin) {
        meta = {{"id", f.id},
                {"route", "mock"},
                {"method", "POST"},
                {"proxy_path", "/mock/v1/durable/" + f.id.substr(0, 8)},
                {"destination", "http://127.0.0.1:9/v1/durable"},
                {"client_ip", "127.0.0.1"},
                {"started_at", f.data}};
        lp::wire::append_frame(&b.bytes, f.type, meta, "");
        continue;
      }
      if (f.type == FrameType::kEnd) {
        meta = {{"id", f.id}, {"outcome", f.outcome}, {"status", 200}};
      }
      lp::wire::append_frame(&b.bytes, f.type, meta, f.data);
    }
    return b;
  }
  bool has_open() const { return !open_.empty(); }
  uint64_t large_bytes() const { return large_bytes_; }

 private:
  struct Open {
    std::string id;
    int stage = 0;  // 0 request body, 1 response head, 2 response body, 3 end
    int left = 0;   // body chunks left in the stage
  };

  uint64_t pick(uint64_t n) { return rng_() % n; }

  // Mostly small chunks; some of 1-3 MB (multi-MB batches), bounded in total.
  std::string chunk() {
    size_t n = 1 + pick(12000);
    if (large_bytes_ < kLargeBudget && pick(20) == 0) {
      n = (1u << 20) + pick(2u << 20);
      large_bytes_ += n;
    }
    std::string s(n, '\0');
    ByteGenerator(rng_()).fill(s.data(), n);
    return s;
  }

  void start(PlannedBatch& b) {
    char id[40];
    ++started_;
    std::snprintf(id, sizeof id, "%08x-0000-4000-8000-%012d", 0x0d000000 + started_, started_);
    // 97 ms apart from 23:59:50 UTC: the exchanges fill two day directories.
    const int64_t base = 1757807990LL * 1000000;  // 2025-09-13T23:59:50Z
    b.frames.push_back({FrameType::kBegin, id, rfc3339(base + started_ * 97000LL), ""});
    b.frames.push_back({FrameType::kRequestHead, id, kRequestHead, ""});
    open_.push_back({id, 0, static_cast<int>(pick(3))});
  }

  // One step of `o`; true when it ended.
  bool advance(Open& o, PlannedBatch& b) {
    switch (o.stage) {
      case 0:
        if (o.left-- > 0) {
          b.frames.push_back({FrameType::kRequestBody, o.id, chunk(), ""});
          return false;
        }
        o.stage = 1;
        [[fallthrough]];
      case 1:
        b.frames.push_back({FrameType::kResponseHead, o.id, kResponseHead, ""});
        o.stage = 2;
        o.left = 1 + static_cast<int>(pick(4));
        return false;
      case 2:
        if (o.left-- > 0) {
          b.frames.push_back({FrameType::kResponseBody, o.id, chunk(), ""});
          return false;
        }
        o.stage = 3;
        [[fallthrough]];
      default: {
        static const char* kOutcomes[] = {"complete", "complete", "complete", "client_aborted",
                                          "upstream_error"};
        b.frames.push_back({FrameType::kEnd, o.id, "", kOutcomes[pick(5)]});
        return true;
      }
    }
  }

  static constexpr uint64_t kLargeBudget = 40ull << 20;
  std::mt19937_64 rng_;
  std::string proxy_id_;
  uint64_t seq_ = 0;
  int started_ = 0;
  uint64_t large_bytes_ = 0;
  std::vector<Open> open_;
};

// What the server holds, as its API describes it.
struct StoredRow {
  std::string outcome;
  std::string request_file;
  int64_t request_size = 0;
  std::optional<std::string> response_file;
  int64_t response_size = 0;
};

std::map<std::string, StoredRow> stored_rows(httplib::Client& c) {
  std::map<std::string, StoredRow> out;
  for (const json& r : list_all(c)) {
    const std::string id = r["id"].get<std::string>();
    json d = get_json(c, "/requests/" + id);
    StoredRow s;
    s.outcome = d["outcome"].get<std::string>();
    s.request_file = d["files"]["request"].get<std::string>();
    s.request_size = d["files"]["request_size"].get<int64_t>();
    if (d["files"]["response"].is_string()) {
      s.response_file = d["files"]["response"].get<std::string>();
    }
    s.response_size = d["files"]["response_size"].get<int64_t>();
    out.emplace(id, std::move(s));
  }
  return out;
}

// Differences between the server's rows + files and `want` (empty: they agree). Files must be
// exactly as long as their rows say (recovery cut back whatever an unfinished batch appended).
std::vector<std::string> differences(const std::map<std::string, StoredRow>& rows,
                                     const std::string& data, const Expected& want) {
  std::vector<std::string> out;
  auto note = [&](const std::string& s) {
    if (out.size() < 20) out.push_back(s);
  };
  for (const auto& [id, row] : rows) {
    if (!want.ex.count(id)) note("row " + id + " was never acknowledged");
  }
  auto check_file = [&](const std::string& id, const std::string& rel, int64_t size,
                        const std::string& bytes, const char* which) {
    if (size != static_cast<int64_t>(bytes.size())) {
      note(id + " " + which + " size " + std::to_string(size) + ", want " +
           std::to_string(bytes.size()));
      return;
    }
    std::error_code ec;
    auto on_disk = fs::file_size(data + "/" + rel, ec);
    if (ec) {
      note(id + " " + which + " file " + rel + " missing");
    } else if (on_disk != bytes.size()) {
      note(id + " " + which + " file " + rel + " holds " + std::to_string(on_disk) +
           " bytes, its row says " + std::to_string(size));
    } else if (read_file(data + "/" + rel) != bytes) {
      note(id + " " + which + " file " + rel + " differs from what was sent");
    }
  };
  for (const auto& [id, e] : want.ex) {
    auto it = rows.find(id);
    if (it == rows.end()) {
      note("acknowledged exchange " + id + " has no row");
      continue;
    }
    const StoredRow& r = it->second;
    check_file(id, r.request_file, r.request_size, e.request, "request");
    if (e.has_response != r.response_file.has_value()) {
      note(id + " response file " + (e.has_response ? "missing from the row" : "unexpected"));
    } else if (e.has_response) {
      check_file(id, *r.response_file, r.response_size, e.response, "response");
    }
    if (!e.outcome.empty() ? r.outcome != e.outcome
                           : r.outcome != "in_progress" && r.outcome != "truncated") {
      note(id + " outcome " + r.outcome + ", want " +
           (e.outcome.empty() ? "in_progress or truncated" : e.outcome));
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "\n  " + x;
  return s;
}

}  // namespace

TEST_CASE("durability: SIGKILL at random points of ingest, 24 restarts, nothing lost or doubled") {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("LP_DURABILITY_SEED"); s && *s) seed = std::stoull(s);
  MESSAGE("seed " << seed << " (repeat the plan with LP_DURABILITY_SEED=" << seed << ")");
  INFO("seed " << seed);
  const auto t0 = Clock::now();

  TempDir dir;
  const std::string data = dir.file("data");
  write_file(dir.file("log-server.yaml"), log_server_yaml(data));
  Planner planner(seed, "durability-proxy");
  std::mt19937_64 kill_rng(seed ^ 0x9e3779b97f4a7c15ULL);
  Expected acked;                       // the batches acknowledged with a 2xx
  std::optional<PlannedBatch> pending;  // sent (or about to be) but not acknowledged
  size_t orphans_seen = 0, applied_unacked = 0, batches_acked = 0, quarantined_before = 0;
  uint64_t bytes_acked = 0;
  double check_ms = 0;

  // After a restart: the store is the acknowledged prefix, plus perhaps the whole batch that was
  // in flight (committed before the kill, its answer lost), never a part of it; no orphans.
  auto check_restart = [&](LogServerProc& ls, int round) {
    CAPTURE(round);
    const auto t = Clock::now();
    auto c = client_for(ls.port());
    auto rows = stored_rows(*c);
    std::vector<std::string> diff_acked = differences(rows, data, acked);
    bool pending_applied = false;
    if (!diff_acked.empty() && pending) {
      Expected with = acked;
      with.apply(*pending);
      std::vector<std::string> diff_with = differences(rows, data, with);
      INFO("against the acknowledged batches:" << join(diff_acked));
      INFO("with the batch in flight applied:" << join(diff_with));
      REQUIRE(diff_with.empty());
      pending_applied = true;
      ++applied_unacked;
    } else {
      INFO("against the acknowledged batches:" << join(diff_acked));
      REQUIRE(diff_acked.empty());
    }
    // Every exchange file has a row; what had none was moved aside and reported.
    std::set<std::string> named;
    for (const auto& [id, r] : rows) {
      named.insert(r.request_file);
      if (r.response_file) named.insert(*r.response_file);
    }
    for (const std::string& f : stored_files(data)) {
      CHECK_MESSAGE(named.count(f), "orphan file left in the store: " << f);
    }
    const size_t quarantined = count_files(data + "/orphaned");
    const double reported = metric(*c, "log_server_recovery_orphan_files_total");
    CHECK(reported == static_cast<double>(quarantined - quarantined_before));
    if (quarantined > quarantined_before) {
      CHECK(ls.process().find_line(std::regex(R"(recovery: \d+ orphan file\(s\))"), 0ms));
    }
    orphans_seen += quarantined - quarantined_before;
    quarantined_before = quarantined;
    // The proxy re-sends what was not acknowledged: it applies once.
    if (pending) {
      auto r = c->Post("/ingest", pending->bytes, "application/octet-stream");
      REQUIRE_MESSAGE(r, "re-send: " << httplib::to_string(r.error()));
      INFO("re-sent batch " << pending->seq << " -> " << r->status << " " << r->body);
      REQUIRE(r->status == 200);
      json j = json::parse(r->body);
      CHECK(j.value("duplicate", false) == pending_applied);
      CHECK(j.value("applied", false) == !pending_applied);
      acked.apply(*pending);
      bytes_acked += pending->bytes.size();
      ++batches_acked;
      pending.reset();
    }
    check_ms += ms_since(t);
  };

  const int kRounds = 24;
  const auto deadline = Clock::now() + 60s;
  std::vector<double> kill_after_ms;
  for (int round = 0; round < kRounds && Clock::now() < deadline; ++round) {
    LogServerProc ls(dir.file("log-server.yaml"), "log-server-" + std::to_string(round));
    if (round > 0) check_restart(ls, round);
    auto c = client_for(ls.port());
    // The kill point: a random moment of this round's ingest.
    const int delay_ms = static_cast<int>(kill_rng() % 200);
    kill_after_ms.push_back(delay_ms);
    const pid_t pid = ls.process().pid();
    std::thread killer([pid, delay_ms] {
      std::this_thread::sleep_for(Ms(delay_ms));  // the kill point, not synchronisation
      ::kill(pid, SIGKILL);
    });
    for (int sent = 0; sent < 10000; ++sent) {
      if (!pending) pending = planner.next();
      auto r = c->Post("/ingest", pending->bytes, "application/octet-stream");
      if (!r) break;  // killed
      INFO("batch " << pending->seq << " -> " << r->status << " " << r->body);
      REQUIRE(r->status == 200);
      acked.apply(*pending);
      bytes_acked += pending->bytes.size();
      ++batches_acked;
      pending.reset();
    }
    killer.join();
    REQUIRE(ls.process().wait_exit(5000ms));
    CHECK(ls.process().exit_code() == 128 + SIGKILL);
  }
  const int rounds = static_cast<int>(kill_after_ms.size());
  CHECK(rounds == kRounds);

  // The last start: check, then finish every open exchange and check everything once more,
  // this time through the raw API as well.
  LogServerProc ls(dir.file("log-server.yaml"), "log-server-final");
  check_restart(ls, rounds);
  auto c = client_for(ls.port());
  for (int i = 0; i < 100 && planner.has_open(); ++i) {
    PlannedBatch b = planner.next(/*finish=*/true);
    auto r = c->Post("/ingest", b.bytes, "application/octet-stream");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    acked.apply(b);
    ++batches_acked;
    bytes_acked += b.bytes.size();
  }
  REQUIRE_FALSE(planner.has_open());
  auto rows = stored_rows(*c);
  std::vector<std::string> diff = differences(rows, data, acked);
  INFO("final state:" << join(diff));
  CHECK(diff.empty());
  CHECK(rows.size() == acked.ex.size());
  size_t raw_checked = 0;
  for (const auto& [id, e] : acked.ex) {
    CAPTURE(id);
    CHECK(e.outcome != "");
    CHECK(get_raw(*c, "/requests/" + id + "/request") == e.request);
    CHECK(get_raw(*c, "/requests/" + id + "/response") == e.response);
    ++raw_checked;
  }
  size_t truncated_marked = 0;
  for (const auto& line : ls.process().lines()) {
    if (line.find("marked truncated") != std::string::npos) ++truncated_marked;
  }
  c.reset();  // an idle keep-alive connection would hold the server's stop for its timeout
  REQUIRE(ls.process().terminate(5000ms));
  CHECK(ls.process().exit_code() == 0);

  MESSAGE(rounds << " SIGKILLs (kill points 0-199 ms into each round), " << batches_acked
                 << " batches (" << bytes_acked / 1048576.0 << " MiB, "
                 << planner.large_bytes() / 1048576.0 << " MiB in 1-3 MB chunks) acknowledged, "
                 << acked.ex.size() << " exchanges (" << raw_checked
                 << " byte-exact through the raw API); batches committed but unacknowledged at a "
                    "kill: "
                 << applied_unacked << "; orphan files moved aside by recovery: " << orphans_seen
                 << "; checks took " << check_ms << " ms; total " << ms_since(t0) << " ms");
}

// --- the full disk -----------------------------------------------------------------------------

namespace {

constexpr long kTmpfsMagic = 0x01021994;

// The data dir on a small disk. Either a real tmpfs: log-server runs in its own user and mount
// namespace (`unshare --user --map-root-user --mount`, no root needed where the kernel allows
// unprivileged user namespaces) with a tmpfs mounted on data_dir, reached by the test through
// /proc/PID/root; the test fills it with a filler file and frees it by deleting that. Or, where
// no such namespace can be made (containers without the right, hardened kernels), the
// LP_TEST_DISK_QUOTA_FILE hook of blob_store.cc (LP_DURABILITY_FORCE_HOOK=1 forces the hook).
class SmallDisk {
 public:
  SmallDisk(const TempDir& dir, const std::string& data) : dir_(dir), data_(data) {
    fs::create_directories(data_);
    write_file(dir_.file("log-server.yaml"), log_server_yaml(data_));
    std::string why = try_tmpfs();
    if (!server_) {
      reason_ = why;
      quota_file_ = dir_.file("quota");
      write_file(quota_file_, "1000000000000\n");
      server_ = std::make_unique<LogServerProc>(dir_.file("log-server.yaml"), "log-server",
                                                std::vector<std::pair<std::string, std::string>>{
                                                    {"LP_TEST_DISK_QUOTA_FILE", quota_file_}});
    }
  }

  bool real() const { return quota_file_.empty(); }
  const std::string& reason() const { return reason_; }
  LogServerProc& server() { return *server_; }

  // Fills the disk; returns the filler's size (real) or 0 (hook).
  uint64_t fill() {
    if (!real()) {
      write_file(quota_file_, "0\n");
      return 0;
    }
    const std::string filler = view() + "/filler";
    int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE_MESSAGE(fd >= 0, "open " << filler << ": " << std::strerror(errno));
    std::string block(1 << 20, 'F');
    uint64_t total = 0;
    // Big blocks, then small ones for the last pages; bounded by the tmpfs size.
    for (size_t size : {size_t{1} << 20, size_t{4096}, size_t{1}}) {
      for (int i = 0; i < 100000; ++i) {
        ssize_t n = ::write(fd, block.data(), size);
        if (n <= 0) break;
        total += static_cast<uint64_t>(n);
      }
    }
    ::close(fd);
    return total;
  }

  void free() {
    if (!real()) {
      write_file(quota_file_, "1000000000000\n");
      return;
    }
    REQUIRE(::unlink((view() + "/filler").c_str()) == 0);
  }

 private:
  std::string view() const {
    return "/proc/" + std::to_string(server_->process().pid()) + "/root" + data_;
  }

  // Starts the log server on a tmpfs; on failure returns why (and leaves server_ empty).
  std::string try_tmpfs() {
    if (const char* f = std::getenv("LP_DURABILITY_FORCE_HOOK"); f && *f) {
      return "LP_DURABILITY_FORCE_HOOK is set";
    }
    std::string unshare;
    for (const char* p : {"/usr/bin/unshare", "/bin/unshare"}) {
      if (::access(p, X_OK) == 0) unshare = p;
    }
    if (unshare.empty()) return "no unshare(1)";
    {
      const std::string probe = dir_.file("probe");
      fs::create_directories(probe);
      ChildProcess p(unshare,
                     {"--user", "--map-root-user", "--mount", "/bin/sh", "-c",
                      "mount -t tmpfs -o size=1m lp-probe \"$0\" && echo mounted", probe},
                     child_opts("unshare-probe"));
      if (!p.wait_exit(10000ms) || p.exit_code() != 0 ||
          !p.find_line(std::regex("^mounted$"), 0ms)) {
        return "unshare --user --mount + mount -t tmpfs failed: " + p.output_tail(5);
      }
    }
    // The probe worked, so this start is expected to work too (it fails the test otherwise).
    server_ = std::make_unique<LogServerProc>(
        unshare,
        std::vector<std::string>{
            "--user", "--map-root-user", "--mount", "/bin/sh", "-c",
            "mount -t tmpfs -o size=24m,mode=0700 lp-durability \"$0\" && exec \"$1\" --config "
            "\"$2\"",
            data_, bin_dir() + "/log-server", dir_.file("log-server.yaml")},
        child_opts("log-server-tmpfs"));
    struct statfs st;
    if (::statfs(view().c_str(), &st) != 0) {
      server_.reset();
      return "statfs " + view() + ": " + std::strerror(errno);
    }
    if (st.f_type != kTmpfsMagic || st.f_blocks * st.f_bsize > (64ull << 20)) {
      server_.reset();
      return "the data dir seen through /proc/PID/root is not the small tmpfs";
    }
    return "";
  }

  const TempDir& dir_;
  std::string data_;
  std::string quota_file_;
  std::string reason_;
  std::unique_ptr<LogServerProc> server_;
};

std::string proxy_yaml(int mock_port, const std::string& server_url, const std::string& spool) {
  const std::string mock = "http://127.0.0.1:" + std::to_string(mock_port) + "/";
  return "server: {host: \"127.0.0.1\", port: 0, upstream_timeout: \"10s\"}\n"
         "logging: {console: true, server_url: \"" +
         server_url + "\", default: true, spool_dir: \"" + spool +
         "\", batch_interval: 50ms}\n"
         "routes:\n  mock: {pattern: \"/mock/\", destination: \"" +
         mock + "\"}\n";
}

struct Call {
  std::string method, path, body;
  std::string response_body;  // as the client received it (de-chunked)
};

// One call through the proxy; fails the test unless it is answered in full, unchanged.
void make_call(int port, Call& call) {
  RawConn conn(port);
  auto r = conn.exchange(make_request(call.method, call.path, port,
                                      {{"Content-Type", "application/octet-stream"}}, call.body),
                         call.method, 10000ms);
  REQUIRE_MESSAGE(r, "no response to " << call.path);
  REQUIRE_MESSAGE(r->complete, "incomplete response to " << call.path);
  REQUIRE(r->status() == 200);
  if (call.path.find("/mock/echo") == 0) {
    json e = json::parse(r->body, nullptr, false);
    REQUIRE(!e.is_discarded());
    CHECK(e.value("body_sha256", "") == sha256_hex(call.body));
  } else if (call.path.find("/mock/large") == 0) {
    PatternChecker pc;
    CHECK(pc.feed(r->body));
  }
  call.response_body = r->body;
}

std::string split_body(const std::string& message) {
  size_t p = message.find("\r\n\r\n");
  REQUIRE(p != std::string::npos);
  return message.substr(p + 4);
}

}  // namespace

TEST_CASE("durability: a full disk answers 507, the proxy spools, all arrives once space is back") {
  const auto t0 = Clock::now();
  std::string stages;  // where the time went
  auto stage = [&](const char* what) {
    stages += std::string(" ") + what + "@" + std::to_string(static_cast<int>(ms_since(t0)));
  };
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  SmallDisk disk(dir, data);
  if (disk.real()) {
    MESSAGE("full disk: a real 24 MiB tmpfs in a user+mount namespace");
  } else {
    MESSAGE("full disk: the LP_TEST_DISK_QUOTA_FILE test hook (no real small filesystem here: "
            << disk.reason() << ")");
  }
  LogServerProc& ls = disk.server();
  stage("server");
  write_file(dir.file("proxy.yaml"), proxy_yaml(mock.http_port(), ls.url(), spool));
  ProxyProc proxy(dir.file("proxy.yaml"));
  const int port = proxy.port();
  auto api = client_for(ls.port());
  const std::string tag = "full-" + std::to_string(::getpid()) + "-" + std::to_string(now_us());

  // Space left: a call arrives as usual.
  Call warm{"POST", "/mock/echo?tag=" + tag + "-warm", "before the disk fills", ""};
  make_call(port, warm);
  REQUIRE(await_cond([&] { return list_all(*api, "q=" + tag + "-warm").size() == 1; }, 10000ms));
  stage("warm");

  const uint64_t filler = disk.fill();
  if (disk.real()) MESSAGE("filler file: " << filler / 1048576.0 << " MiB");

  // A batch straight to /ingest: 507, not applied.
  std::string batch;
  const std::string own_id = "0f0f0f0f-0000-4000-8000-000000000001";
  lp::wire::begin_batch(&batch, "durability-direct", 1);
  lp::wire::append_frame(&batch, FrameType::kBegin,
                         {{"id", own_id},
                          {"route", "direct"},
                          {"method", "POST"},
                          {"proxy_path", "/direct/" + tag},
                          {"destination", "http://127.0.0.1:9/"},
                          {"client_ip", "127.0.0.1"},
                          {"started_at", "2025-09-13T02:11:09.123456Z"}},
                         "");
  std::string own_body(256 * 1024, '\0');
  ByteGenerator(7).fill(own_body.data(), own_body.size());
  lp::wire::append_frame(&batch, FrameType::kRequestHead, {{"id", own_id}}, kRequestHead);
  lp::wire::append_frame(&batch, FrameType::kRequestBody, {{"id", own_id}}, own_body);
  lp::wire::append_frame(&batch, FrameType::kEnd,
                         {{"id", own_id}, {"outcome", "complete"}, {"status", 200}}, "");
  {
    auto r = api->Post("/ingest", batch, "application/octet-stream");
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 507);
    auto g = api->Get(("/requests/" + own_id).c_str());
    REQUIRE(g);
    CHECK(g->status == 404);
  }

  // Traffic while the disk is full: clients see nothing of it.
  std::vector<Call> calls;
  for (int i = 0; i < 24; ++i) {
    const std::string p = "tag=" + tag + "-" + std::to_string(i);
    if (i % 4 == 3) {
      calls.push_back(
          {"GET", "/mock/large?" + p + "&bytes=" + std::to_string(100000 + i * 20000), "", ""});
    } else if (i % 4 == 2) {
      calls.push_back({"GET", "/mock/sse?n=4&ms=1&first_ms=0&" + p, "", ""});
    } else {
      std::string body(1000 + static_cast<size_t>(i) * 9000, '\0');
      ByteGenerator(static_cast<uint64_t>(i) + 100).fill(body.data(), body.size());
      calls.push_back({"POST", "/mock/echo?" + p, body, ""});
    }
  }
  const auto t_calls = Clock::now();
  for (auto& call : calls) make_call(port, call);
  const double calls_ms = ms_since(t_calls);
  stage("calls");

  // The log server refused (507) and the proxy spooled.
  CHECK(proxy.process().find_line(std::regex(R"(\[capture\] log server answered 507)"), 10000ms));
  CHECK(await_cond([&] { return count_spooled_batches(spool) > 0; }, 10000ms));
  CHECK(metric(*api, "log_server_ingest_errors_total{kind=\"disk_full\"}") >= 2);
  CHECK(ls.process().find_line(std::regex("failed, rolled back: .*(No space left|full)"), 0ms));
  const size_t spooled = count_spooled_batches(spool);
  stage("spooled");
  std::set<std::string> refusals;  // what the log server said, without batch ids and paths
  for (const auto& line : ls.process().lines()) {
    auto p = line.find("rolled back: ");
    if (p == std::string::npos) continue;
    std::string why = line.substr(p + 13);
    if (auto colon = why.rfind(": "); colon != std::string::npos) why = why.substr(colon + 2);
    refusals.insert(line.find("index:") != std::string::npos ? "index: " + why : "file: " + why);
  }
  std::string refusal_text;
  for (const auto& r : refusals) refusal_text += " [" + r + "]";
  MESSAGE("log server refusals while full:" << refusal_text);

  disk.free();
  const auto t_free = Clock::now();
  {
    auto r = api->Post("/ingest", batch, "application/octet-stream");
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 200);
    CHECK(split_body(get_raw(*api, "/requests/" + own_id + "/request")) == own_body);
  }

  std::vector<json> rows;
  const bool arrived = await_cond(
      [&] {
        rows = list_all(*api, "q=" + tag + "-");
        size_t done = 0;
        for (const auto& r : rows) done += r["outcome"] != "in_progress";
        return done >= calls.size() + 1;
      },
      30000ms, 100ms);
  const double arrive_ms = ms_since(t_free);
  stage("arrived");
  INFO(rows.size() << " rows");
  REQUIRE(arrived);
  std::map<std::string, std::vector<json>> by_path;
  for (const auto& r : rows) by_path[r["proxy_path"].get<std::string>()].push_back(r);
  CHECK(by_path.size() == calls.size() + 1);
  for (const auto& call : calls) {
    CAPTURE(call.path);
    REQUIRE(by_path[call.path].size() == 1);  // exactly once
    const json& row = by_path[call.path][0];
    CHECK(row["outcome"] == "complete");
    CHECK(row["status"] == 200);
    const std::string id = row["id"].get<std::string>();
    CHECK(split_body(get_raw(*api, "/requests/" + id + "/request")) == call.body);
    CHECK(split_body(get_raw(*api, "/requests/" + id + "/response")) == call.response_body);
  }
  stage("checked");
  const bool drained = await_cond([&] { return count_spooled_batches(spool) == 0; }, 15000ms);
  std::string left;
  for (const auto& e : fs::recursive_directory_iterator(spool)) left += " " + e.path().string();
  CHECK_MESSAGE(drained, "left in the spool:" << left);
  CHECK(proxy.process().find_line(std::regex(R"(\[capture\] log server .* is back)"), 5000ms));
  stage("drained");
  MESSAGE(calls.size() << " calls while the disk was full took " << calls_ms << " ms, all 200 and "
                       << "unchanged; " << spooled << " batches spooled; all captures arrived "
                       << arrive_ms << " ms after space was freed, each once, byte-exact; total "
                       << ms_since(t0) << " ms (ms since start:" << stages << ")");
}

// --- retention ---------------------------------------------------------------------------------
// Exchanges are sent straight to /ingest with chosen start times (old ones weeks in the past), so
// the test controls what the policy must delete. Retention passes every 100 ms there
// (LP_TEST_RETENTION_INTERVAL_MS); the kill test stops the process at each point of the deletion
// protocol with LP_TEST_RETENTION_CRASH_AT (log-server/retention.h).

namespace {

int64_t wall_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr int64_t kDayUs = 86400LL * 1000000;

struct SentExchange {
  std::string id;
  int64_t started_us = 0;
  int64_t bytes = 0;  // request file + response file
};

// One finished exchange appended to `batch`: begin, request head and body, response head and
// body, end.
SentExchange append_exchange(std::string* batch, int n, int64_t started_us, size_t request_body,
                             size_t response_body) {
  char id[40];
  std::snprintf(id, sizeof id, "%08x-0000-4000-8000-%012d", 0x0e000000 + n, n);
  std::string req(request_body, '\0'), res(response_body, '\0');
  ByteGenerator(static_cast<uint64_t>(n) * 2 + 1).fill(req.data(), req.size());
  ByteGenerator(static_cast<uint64_t>(n) * 2 + 2).fill(res.data(), res.size());
  lp::wire::append_frame(batch, FrameType::kBegin,
                         {{"id", id},
                          {"route", "mock"},
                          {"method", "POST"},
                          {"proxy_path", "/mock/v1/retention/" + std::to_string(n)},
                          {"destination", "http://127.0.0.1:9/v1/retention"},
                          {"client_ip", "127.0.0.1"},
                          {"started_at", rfc3339(started_us)}},
                         "");
  lp::wire::append_frame(batch, FrameType::kRequestHead, {{"id", id}}, kRequestHead);
  lp::wire::append_frame(batch, FrameType::kRequestBody, {{"id", id}}, req);
  lp::wire::append_frame(batch, FrameType::kResponseHead, {{"id", id}}, kResponseHead);
  lp::wire::append_frame(batch, FrameType::kResponseBody, {{"id", id}}, res);
  lp::wire::append_frame(batch, FrameType::kEnd,
                         {{"id", id}, {"outcome", "complete"}, {"status", 200}}, "");
  return {
      id, started_us,
      static_cast<int64_t>(kRequestHead.size() + req.size() + kResponseHead.size() + res.size())};
}

void post_batch(httplib::Client& c, const std::string& batch) {
  auto r = c.Post("/ingest", batch, "application/octet-stream");
  REQUIRE_MESSAGE(r, "POST /ingest: " << httplib::to_string(r.error()));
  INFO(r->body);
  REQUIRE(r->status == 200);
}

std::string retention_yaml(const std::string& data, const std::string& retention) {
  return log_server_yaml(data) + "  retention:\n" + retention;
}

std::vector<std::pair<std::string, std::string>> retention_env(
    std::vector<std::pair<std::string, std::string>> more = {}) {
  more.emplace_back("LP_TEST_RETENTION_INTERVAL_MS", "100");
  return more;
}

std::set<std::string> ids_listed(httplib::Client& c) {
  std::set<std::string> out;
  for (const json& r : list_all(c)) out.insert(r["id"].get<std::string>());
  return out;
}

// The store as a restarted server shows it: every row's files exist with the sizes it records,
// every exchange file has a row, nothing moved to orphaned/, no empty day directory. Returns the
// number of rows.
size_t check_store(httplib::Client& c, const std::string& data) {
  auto rows = stored_rows(c);
  std::set<std::string> named;
  for (const auto& [id, r] : rows) {
    CAPTURE(id);
    std::error_code ec;
    CHECK(fs::file_size(data + "/" + r.request_file, ec) == static_cast<uintmax_t>(r.request_size));
    CHECK_MESSAGE(!ec, r.request_file << ": " << ec.message());
    named.insert(r.request_file);
    if (r.response_file) {
      CHECK(fs::file_size(data + "/" + *r.response_file, ec) ==
            static_cast<uintmax_t>(r.response_size));
      CHECK_MESSAGE(!ec, *r.response_file << ": " << ec.message());
      named.insert(*r.response_file);
    }
  }
  for (const std::string& f : stored_files(data)) {
    CHECK_MESSAGE(named.count(f), "exchange file without a row: " << f);
  }
  CHECK(count_files(data + "/orphaned") == 0);
  CHECK(metric(c, "log_server_recovery_orphan_files_total") == 0);
  for (const auto& e : fs::directory_iterator(data)) {
    if (e.is_directory() && e.path().filename() != "orphaned") {
      CHECK_MESSAGE(!fs::is_empty(e.path()), "empty day directory " << e.path());
    }
  }
  return rows.size();
}

// Rows of pending_deletions, read with the sqlite3 command line tool while the server runs;
// nullopt where the tool is not installed.
std::optional<int> pending_deletions(const std::string& data) {
  const char* tool = "/usr/bin/sqlite3";
  if (::access(tool, X_OK) != 0) return std::nullopt;
  ChildProcess p(tool, {data + "/index.sqlite", "SELECT count(*) FROM pending_deletions;"},
                 child_opts("sqlite3"));
  REQUIRE(p.wait_exit(10000ms));
  REQUIRE(p.exit_code() == 0);
  auto lines = p.lines();
  REQUIRE_FALSE(lines.empty());
  return std::stoi(lines.back());
}

// Waits until `rows_gone` holds and then until a retention pass ends: rows go at a group's
// COMMIT, files, pending_deletions entries and emptied day directories after it, and a pass is
// counted when it is over. A pass that ends after `rows_gone` was seen is the one that deleted
// them or a later one, so the store is settled once the count moves past the one seen then.
bool await_retention_settled(httplib::Client& c, const std::function<bool()>& rows_gone) {
  if (!await_cond(rows_gone, 10000ms, 50ms)) return false;
  const double runs = metric(c, "log_server_retention_runs_total");
  return await_cond([&] { return metric(c, "log_server_retention_runs_total") > runs; }, 10000ms,
                    20ms);
}

}  // namespace

TEST_CASE("durability: retention deletes by age and by size through the real server") {
  const auto t0 = Clock::now();
  TempDir dir;
  const std::string data = dir.file("data");
  const int64_t now = wall_now_us();
  std::string batch;
  lp::wire::begin_batch(&batch, "retention-proxy", 1);
  std::vector<SentExchange> old, recent;
  // 4 exchanges 40 days old (deleted for their age), 6 from the last minutes, each T bytes;
  // max_bytes = 3.5 T keeps the newest 3.
  for (int i = 0; i < 4; ++i) {
    old.push_back(append_exchange(&batch, i, now - 40 * kDayUs + i * 1000000LL, 1000, 2000));
  }
  for (int i = 0; i < 6; ++i) {
    recent.push_back(append_exchange(&batch, 10 + i, now - (6 - i) * 60000000LL, 1000, 2000));
  }
  const int64_t t = recent[0].bytes;
  const int64_t max_bytes = 3 * t + t / 2;
  write_file(
      dir.file("log-server.yaml"),
      retention_yaml(data, "    max_age: 30d\n    max_bytes: " + std::to_string(max_bytes) + "\n"));
  LogServerProc ls(dir.file("log-server.yaml"), "log-server-retention", retention_env());
  auto c = client_for(ls.port());
  post_batch(*c, batch);

  const std::set<std::string> want = {recent[3].id, recent[4].id, recent[5].id};
  std::set<std::string> listed;
  const bool converged = await_retention_settled(*c, [&] {
    listed = ids_listed(*c);
    return listed == want;
  });
  INFO("listed " << listed.size() << " exchanges, " << stored_files(data).size() << " files");
  REQUIRE(converged);
  CHECK_FALSE(fs::exists(data + "/" + rfc3339(old[0].started_us).substr(0, 10)));
  for (const std::string& f : stored_files(data)) {
    bool kept = false;
    for (const std::string& id : want) kept |= f.find("_" + id.substr(0, 8) + "_") != f.npos;
    CHECK_MESSAGE(kept, "a file of a deleted exchange is still there: " << f);
  }
  CHECK(check_store(*c, data) == 3);

  CHECK(metric(*c, "log_server_retention_exchanges_deleted_total") == 7);
  CHECK(metric(*c, "log_server_retention_bytes_deleted_total") == static_cast<double>(7 * t));
  CHECK(metric(*c, "log_server_retention_failures_total") == 0);
  CHECK(metric(*c, "log_server_retention_runs_total") >= 1);
  CHECK(metric(*c, "log_server_exchanges") == 3);
  // The pass reports after its last step.
  CHECK(ls.process().find_line(
      std::regex(R"(log-server: retention: deleted \d+ exchange\(s\), \d+ bytes \(older than 30d)"),
      5000ms));
  CHECK(ls.process().find_line(std::regex(R"(log-server: retention: deleted .*over )"), 5000ms));
  if (auto p = pending_deletions(data)) CHECK(*p == 0);
  c.reset();
  REQUIRE(ls.process().terminate(5000ms));
  CHECK(ls.process().exit_code() == 0);
  MESSAGE("retention by age and size converged; total " << ms_since(t0) << " ms");
}

TEST_CASE("durability: retention killed at every point of its protocol, then restarted") {
  const auto t0 = Clock::now();
  TempDir dir;
  const std::string seed = dir.file("seed");
  const int64_t now = wall_now_us();
  // The seed store: 300 exchanges 40 days old (two groups: 256 + 44) and 3 recent ones, written
  // by a server without retention and stopped cleanly. Each round starts from a copy.
  std::set<std::string> young;
  {
    write_file(dir.file("seed.yaml"), log_server_yaml(seed));
    LogServerProc ls(dir.file("seed.yaml"), "log-server-seed");
    auto c = client_for(ls.port());
    std::string batch;
    lp::wire::begin_batch(&batch, "retention-crash", 1);
    for (int i = 0; i < 300; ++i) {
      append_exchange(&batch, i, now - 40 * kDayUs + i * 1000000LL, 100, 200);
    }
    for (int i = 0; i < 3; ++i) {
      young.insert(append_exchange(&batch, 1000 + i, now - i * 1000000LL, 100, 200).id);
    }
    post_batch(*c, batch);
    c.reset();
    REQUIRE(ls.process().terminate(5000ms));
  }
  const std::string retain = "    max_age: 30d\n";
  std::string timings;
  for (int point = 1; point <= 5; ++point) {
    CAPTURE(point);
    const auto tr = Clock::now();
    const std::string data = dir.file("data-" + std::to_string(point));
    fs::copy(seed, data, fs::copy_options::recursive);
    write_file(dir.file("crash.yaml"), retention_yaml(data, retain));
    write_file(dir.file("plain.yaml"), log_server_yaml(data));
    {
      // The first pass starts at startup and dies at `point` of its first group.
      ChildProcess crashing(
          bin_dir() + "/log-server", {"--config", dir.file("crash.yaml")},
          child_opts("log-server-crash",
                     retention_env({{"LP_TEST_RETENTION_CRASH_AT", std::to_string(point)}})));
      REQUIRE(crashing.wait_exit(10000ms));
      INFO(crashing.output_tail(10));
      CHECK(crashing.exit_code() == 128 + SIGKILL);
      // The exit can be seen before the output reader has taken the last line from the pipe.
      CHECK(crashing.find_line(std::regex("TEST HOOK LP_TEST_RETENTION_CRASH_AT=" +
                                          std::to_string(point) + ": SIGKILL now"),
                               5000ms));
    }
    {
      // Restarted without retention: recovery alone makes the store consistent.
      LogServerProc ls(dir.file("plain.yaml"), "log-server-after-" + std::to_string(point));
      auto c = client_for(ls.port());
      // Point 1 is before the COMMIT: nothing was deleted. Later points: the first group was.
      CHECK(check_store(*c, data) == (point == 1 ? 303u : 303u - 256u));
      if (auto p = pending_deletions(data)) CHECK(*p == 0);
      CHECK_FALSE(ls.process().find_line(std::regex("orphan"), 0ms));
      // Points 2 and 3 left listed files on disk (256 exchanges' 512, less the one unlinked at
      // 3): startup finished them. At 4 and 5 they were all unlinked already.
      const int left = point == 2 ? 512 : point == 3 ? 511 : 0;
      CHECK(ls.process()
                .find_line(std::regex("retention: finished an interrupted deletion \\(" +
                                      std::to_string(left) + " file"),
                           0ms)
                .has_value() == (left > 0));
      c.reset();
      REQUIRE(ls.process().terminate(5000ms));
    }
    {
      // With retention again: it completes.
      LogServerProc ls(dir.file("crash.yaml"), "log-server-final-" + std::to_string(point),
                       retention_env());
      auto c = client_for(ls.port());
      REQUIRE(await_retention_settled(*c, [&] { return ids_listed(*c) == young; }));
      CHECK(check_store(*c, data) == 3);
      CHECK(stored_files(data).size() == 6);
      CHECK(metric(*c, "log_server_retention_exchanges_deleted_total") ==
            (point == 1 ? 300 : 300 - 256));
      CHECK(metric(*c, "log_server_retention_failures_total") == 0);
      if (auto p = pending_deletions(data)) CHECK(*p == 0);
      c.reset();
      REQUIRE(ls.process().terminate(5000ms));
      CHECK(ls.process().exit_code() == 0);
    }
    timings += " " + std::to_string(point) + ":" + std::to_string(static_cast<int>(ms_since(tr)));
  }
  if (::access("/usr/bin/sqlite3", X_OK) != 0) {
    MESSAGE("no /usr/bin/sqlite3: the pending_deletions table was not inspected");
  }
  MESSAGE(
      "5 kill points, each: crash, restart (consistent, no orphans), retention completes; "
      "ms per point:"
      << timings << "; total " << ms_since(t0) << " ms");
}
