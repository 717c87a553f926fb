// Ingest: batches applied to real files and a real SQLite index in a temp dir. Frames of one
// exchange spread over batches, duplicates, undoing bytes of an attempt that never committed,
// startup recovery, and a file error rolling the whole batch back.
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/capture_wire.h"
#include "log-server/blob_store.h"
#include "log-server/index_schema.h"
#include "log-server/ingest.h"
#include "log-server/metrics.h"
#include "log-server/recovery.h"
#include "tests/support/temp_dir.h"

using namespace lp::logsrv;
using lp::wire::FrameType;
using json = nlohmann::json;

namespace {

const std::string kId = "092d0424-5a5b-4c6d-8e9f-0123456789ab";
const std::string kStarted = "2025-09-13T02:11:09.123456Z";
const std::string kRequestFile = "2025-09-13/2025-09-13_02-11-09.123_092d0424_request.bin";
const std::string kResponseFile = "2025-09-13/2025-09-13_02-11-09.123_092d0424_response.bin";
const std::string kRequestHead =
    "POST /v1/chat/completions HTTP/1.1\r\nHost: upstream\r\nContent-Type: application/json\r\n"
    "X-Proxy-Path: /mock/v1/chat/completions?x=1\r\n\r\n";
const std::string kResponseHead =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: identity\r\n\r\n";

using lp::test::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void append_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << data;
}

// Binary-ish test bytes (NUL, high bytes, CRLF) so nothing text-specific sneaks in.
std::string bytes(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + seed * 7) & 0xff);
  return s;
}

class Batch {
 public:
  Batch(const std::string& proxy_id, uint64_t seq) {
    lp::wire::begin_batch(&bytes_, proxy_id, seq);
  }

  Batch& begin(const std::string& id, const std::string& started_at = kStarted) {
    return frame(FrameType::kBegin,
                 {{"id", id},
                  {"route", "mock"},
                  {"method", "POST"},
                  {"proxy_path", "/mock/v1/chat/completions?x=1"},
                  {"destination", "http://127.0.0.1:9/v1/chat/completions?x=1"},
                  {"client_ip", "127.0.0.1"},
                  {"started_at", started_at}},
                 "");
  }
  Batch& request_head(const std::string& id, const std::string& data = kRequestHead) {
    return frame(FrameType::kRequestHead, {{"id", id}}, data);
  }
  Batch& request_body(const std::string& id, const std::string& data) {
    return frame(FrameType::kRequestBody, {{"id", id}}, data);
  }
  Batch& response_head(const std::string& id, const std::string& data = kResponseHead) {
    return frame(FrameType::kResponseHead, {{"id", id}, {"t_us", 500}}, data);
  }
  Batch& response_body(const std::string& id, const std::string& data) {
    return frame(FrameType::kResponseBody, {{"id", id}, {"t_us", 600}}, data);
  }
  Batch& end(const std::string& id, const std::string& outcome = "complete", int status = 200) {
    return frame(FrameType::kEnd,
                 {{"id", id},
                  {"outcome", outcome},
                  {"status", status},
                  {"request_bytes", 7000},
                  {"response_bytes", 9000},
                  {"timings",
                   {{"request_forwarded_us", 11},
                    {"upstream_headers_us", 1500},
                    {"first_byte_us", 1600},
                    {"total_us", 25000}}}},
                 "");
  }
  Batch& frame(FrameType type, const json& meta, const std::string& data) {
    lp::wire::append_frame(&bytes_, type, meta, data);
    return *this;
  }
  lp::wire::DecodedBatch decoded() const {
    std::string error;
    auto b = lp::wire::decode_batch(bytes_, &error);
    INFO(error);
    REQUIRE(b.has_value());
    return *b;
  }

 private:
  std::string bytes_;
};

struct Store {
  Store() = default;
  explicit Store(std::chrono::milliseconds wait) : order_wait(wait) {}
  std::chrono::milliseconds order_wait = Ingestor::kDefaultOrderWait;
  TempDir dir;
  std::string data = dir.path() + "/data";
  BlobStore blobs{data};
  std::unique_ptr<Database> db = open_index(data + "/index.sqlite", true);
  Metrics metrics;
  Ingestor ingestor{*db, blobs, metrics, order_wait};

  IngestResult apply(const Batch& b) { return ingestor.apply(b.decoded()); }
  IngestResult apply_ok(const Batch& b) {
    IngestResult r = apply(b);
    INFO(r.error);
    REQUIRE(r.status == IngestResult::Status::kApplied);
    return r;
  }
  ExchangeRow row(const std::string& id = kId) {
    auto r = ingestor.writer().find(id);
    REQUIRE(r.has_value());
    return *r;
  }
  std::string file(const std::string& relative) { return read_file(data + "/" + relative); }
  bool exists(const std::string& relative) {
    return std::filesystem::exists(data + "/" + relative);
  }
  // Whether `n` batches have been found waiting for the batch they follow, within 10 s.
  bool waiting(uint64_t n) {
    for (int i = 0; i < 2000 && metrics.batches_waited.load() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polls a condition
    }
    return metrics.batches_waited.load() == n;
  }
};

}  // namespace

TEST_CASE("ingest: one exchange across three batches, files byte-exact") {
  Store s;
  std::string req1 = bytes(3000, 1), req2 = bytes(4000, 2);
  std::string res1 = "data: {\"x\":1}\n\n";
  std::string res2 = bytes(9000 - res1.size(), 3);

  auto r1 = s.apply_ok(Batch("p1", 1).begin(kId).request_head(kId).request_body(kId, req1));
  CHECK(r1.frames == 3);
  CHECK(r1.skipped == 0);
  ExchangeRow a = s.row();
  CHECK(a.outcome == "in_progress");
  CHECK(a.short_id == "092d0424");
  CHECK(a.started_at == kStarted);
  CHECK(a.started_us == 1757729469123456LL);
  CHECK(a.route == "mock");
  CHECK(a.method == "POST");
  CHECK(a.proxy_path == "/mock/v1/chat/completions?x=1");
  CHECK(a.destination == "http://127.0.0.1:9/v1/chat/completions?x=1");
  CHECK(a.client_ip == "127.0.0.1");
  CHECK(a.proxy_id == "p1");
  CHECK(a.request_file == kRequestFile);
  CHECK_FALSE(a.response_file);
  CHECK(a.request_head_size == static_cast<int64_t>(kRequestHead.size()));
  CHECK(a.request_file_size == static_cast<int64_t>(kRequestHead.size() + req1.size()));
  CHECK(a.request_bytes == static_cast<int64_t>(req1.size()));
  CHECK(a.request_content_type == "application/json");
  CHECK(s.file(kRequestFile) == kRequestHead + req1);
  CHECK_FALSE(s.exists(kResponseFile));  // no response head yet

  s.apply_ok(Batch("p1", 2).request_body(kId, req2).response_head(kId).response_body(kId, res1));
  ExchangeRow b = s.row();
  CHECK(b.outcome == "in_progress");
  CHECK(b.status == 200);  // from the response head, before the end frame
  CHECK(b.response_file == kResponseFile);
  CHECK(b.response_content_type == "text/event-stream");
  CHECK(b.response_content_encoding == "identity");
  CHECK(b.response_bytes == static_cast<int64_t>(res1.size()));
  CHECK(s.file(kRequestFile) == kRequestHead + req1 + req2);
  CHECK(s.file(kResponseFile) == kResponseHead + res1);

  s.apply_ok(Batch("p1", 3).response_body(kId, res2).end(kId));
  ExchangeRow c = s.row();
  CHECK(c.outcome == "complete");
  CHECK(c.status == 200);
  CHECK_FALSE(c.error);
  CHECK(c.request_bytes == 7000);
  CHECK(c.response_bytes == 9000);
  CHECK(c.request_forwarded_us == 11);
  CHECK(c.upstream_headers_us == 1500);
  CHECK(c.first_byte_us == 1600);
  CHECK(c.total_us == 25000);
  CHECK(c.request_file_size == static_cast<int64_t>(kRequestHead.size() + 7000));
  CHECK(c.response_file_size == static_cast<int64_t>(kResponseHead.size() + 9000));
  CHECK(s.file(kRequestFile) == kRequestHead + req1 + req2);
  CHECK(s.file(kResponseFile) == kResponseHead + res1 + res2);

  // Permissions: directories 0700, files 0600.
  struct stat st;
  REQUIRE(stat((s.data + "/2025-09-13").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(stat((s.data + "/" + kRequestFile).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  CHECK(s.metrics.batches_applied == 3);
  CHECK(s.metrics.exchanges_ingested == 1);
  CHECK(s.metrics.exchanges == 1);
  CHECK(s.metrics.bytes_ingested.load() ==
        kRequestHead.size() + 7000 + kResponseHead.size() + 9000);
}

TEST_CASE("ingest: a batch applied twice is ignored the second time") {
  Store s;
  Batch b = Batch("p1", 7).begin(kId).request_head(kId).request_body(kId, "abc");
  s.apply_ok(b);
  IngestResult again = s.apply(b);
  CHECK(again.status == IngestResult::Status::kDuplicate);
  CHECK(s.file(kRequestFile) == kRequestHead + "abc");
  CHECK(s.metrics.batches_duplicate == 1);
  CHECK(s.metrics.batches_applied == 1);
  // The same seq from another proxy is a different batch.
  const std::string other = "11111111-2222-4333-8444-555555555555";
  CHECK(s.apply(Batch("p2", 7).begin(other)).status == IngestResult::Status::kApplied);
  // A later batch of p1 still applies.
  s.apply_ok(Batch("p1", 8).request_body(kId, "def"));
  CHECK(s.file(kRequestFile) == kRequestHead + "abcdef");
}

TEST_CASE("ingest: a batch that arrives before the one it follows waits for it") {
  Store s;
  // Batch 2 continues the exchange batch 1 begins: applied first, its frames would be skipped.
  Batch first = Batch("p1", 1).begin(kId).request_head(kId).request_body(kId, "abc");
  Batch second = Batch("p1", 2).request_body(kId, "def").end(kId);
  IngestResult later;
  std::thread t([&] { later = s.ingestor.apply(second.decoded(), 1); });
  CHECK(s.waiting(1));
  s.apply_ok(first);
  t.join();
  INFO(later.error);
  CHECK(later.status == IngestResult::Status::kApplied);
  CHECK(later.skipped == 0);
  CHECK(s.file(kRequestFile) == kRequestHead + "abcdef");
  CHECK(s.row().outcome == "complete");
  CHECK(s.metrics.batches_out_of_order == 0);
  // Following a batch already applied: no wait. A duplicate stays a duplicate.
  s.apply_ok(Batch("p1", 3).begin("11111111-2222-4333-8444-555555555555"));
  CHECK(s.ingestor.apply(Batch("p1", 4).decoded(), 3).status == IngestResult::Status::kApplied);
  CHECK(s.ingestor.apply(second.decoded(), 1).status == IngestResult::Status::kDuplicate);
  CHECK(s.metrics.batches_waited == 1);
}

TEST_CASE("ingest: batches waiting together are applied in one transaction, in seq order") {
  Store s;
  // Each batch continues the exchange the one before it begins; they arrive 3, 2, 2 again
  // (the same batch on another connection), and 1 last.
  Batch first = Batch("p1", 1).begin(kId).request_head(kId).request_body(kId, "abc");
  Batch second = Batch("p1", 2).request_body(kId, "def").response_head(kId);
  Batch third = Batch("p1", 3).response_body(kId, "r1").end(kId);
  IngestResult r3, r2, r2_again;
  std::thread t3([&] { r3 = s.ingestor.apply(third.decoded(), 2); });
  REQUIRE(s.waiting(1));
  std::thread t2([&] { r2 = s.ingestor.apply(second.decoded(), 1); });
  REQUIRE(s.waiting(2));
  std::thread t2_again([&] { r2_again = s.ingestor.apply(second.decoded(), 1); });
  REQUIRE(s.waiting(3));
  s.apply_ok(first);
  t3.join();
  t2.join();
  t2_again.join();
  CHECK(r2.status == IngestResult::Status::kApplied);
  CHECK(r3.status == IngestResult::Status::kApplied);
  CHECK(r2_again.status == IngestResult::Status::kDuplicate);
  CHECK(r2.skipped + r3.skipped == 0);
  CHECK(s.metrics.batches_applied == 3);
  CHECK(s.metrics.batches_duplicate == 1);
  CHECK(s.metrics.groups_committed == 1);  // one transaction, one sync
  CHECK(s.file(kRequestFile) == kRequestHead + "abcdef");
  CHECK(s.file(kResponseFile) == kResponseHead + "r1");
  CHECK(s.row().outcome == "complete");
  for (uint64_t seq : {1, 2, 3}) CHECK(s.ingestor.writer().batch_applied("p1", seq));
}

TEST_CASE("ingest: a group that fails fails each of its batches, and each applies once later") {
  Store s;
  Batch first = Batch("p1", 1).begin(kId).request_head(kId).request_body(kId, "abc");
  Batch second = Batch("p1", 2).request_body(kId, "def").end(kId);
  IngestResult r2;
  std::thread t2([&] { r2 = s.ingestor.apply(second.decoded(), 1); });
  REQUIRE(s.waiting(1));
  // The day directory is a file: creating the exchange's file fails, the group rolls back.
  std::filesystem::create_directories(s.data);
  append_file(s.data + "/2025-09-13", "not a directory");
  IngestResult r1 = s.ingestor.apply(first.decoded());
  t2.join();
  CHECK(r1.status == IngestResult::Status::kUnavailable);
  CHECK(r2.status == IngestResult::Status::kUnavailable);
  CHECK(r1.error == r2.error);
  CHECK_FALSE(s.ingestor.writer().batch_applied("p1", 1));
  CHECK_FALSE(s.ingestor.writer().batch_applied("p1", 2));
  CHECK(s.metrics.batches_applied == 0);
  std::filesystem::remove(s.data + "/2025-09-13");
  s.apply_ok(first);
  s.apply_ok(second);
  CHECK(s.file(kRequestFile) == kRequestHead + "abcdef");
  CHECK(s.row().outcome == "complete");
}

TEST_CASE("ingest: a batch whose predecessor does not come in time is refused, nothing applied") {
  using namespace std::chrono_literals;
  Store s(100ms);
  Batch b = Batch("p1", 5).begin(kId).request_head(kId);
  IngestResult r = s.ingestor.apply(b.decoded(), 4);
  CHECK(r.status == IngestResult::Status::kOutOfOrder);
  CHECK(r.error == "batch 5 follows batch 4, which was not applied within 100 ms");
  CHECK_FALSE(s.ingestor.writer().find(kId).has_value());
  CHECK_FALSE(s.exists(kRequestFile));
  CHECK(s.metrics.batches_out_of_order == 1);
  CHECK(s.metrics.batches_applied == 0);
  // The proxy sends it again once batch 4 has failed for good: alone, it applies.
  s.apply_ok(b);
  CHECK(s.file(kRequestFile) == kRequestHead);
  // Another proxy's batch 4 is not this proxy's.
  s.apply_ok(Batch("p2", 4));
  CHECK(s.ingestor.apply(Batch("p1", 6).decoded(), 4).status == IngestResult::Status::kOutOfOrder);
}

TEST_CASE("ingest: bytes of an attempt that never committed are cut off before appending") {
  Store s;
  s.apply_ok(Batch("p1", 1).begin(kId).request_head(kId).request_body(kId, "first"));
  // An earlier attempt at batch 2 wrote into both files and crashed before COMMIT.
  append_file(s.data + "/" + kRequestFile, "GARBAGE-FROM-A-CRASHED-ATTEMPT");
  append_file(s.data + "/" + kResponseFile, "HTTP/1.1 500 half written");
  s.apply_ok(
      Batch("p1", 2).request_body(kId, "second").response_head(kId).response_body(kId, "r1"));
  CHECK(s.file(kRequestFile) == kRequestHead + "firstsecond");
  CHECK(s.file(kResponseFile) == kResponseHead + "r1");
  // Again, in the middle of the response.
  append_file(s.data + "/" + kResponseFile, std::string(100000, 'X'));
  s.apply_ok(Batch("p1", 3).response_body(kId, "r2").end(kId));
  CHECK(s.file(kResponseFile) == kResponseHead + "r1r2");
  CHECK(s.file(kRequestFile) == kRequestHead + "firstsecond");  // untouched by batch 3
}

TEST_CASE("ingest: a re-sent batch after a crash before COMMIT applies exactly once") {
  Store s;
  Batch first = Batch("p1", 1).begin(kId).request_head(kId).request_body(kId, bytes(5000, 4));
  // The crashed attempt: the files of the batch written, the index never committed.
  std::filesystem::create_directories(s.data + "/2025-09-13");
  append_file(s.data + "/" + kRequestFile, kRequestHead + bytes(2000, 4));
  s.apply_ok(first);
  CHECK(s.file(kRequestFile) == kRequestHead + bytes(5000, 4));
}

TEST_CASE("ingest: frames for an unknown exchange are skipped, the rest applies") {
  Store s;
  const std::string lost = "aaaaaaaa-0000-4000-8000-000000000000";
  auto r = s.apply_ok(Batch("p1", 1)
                          .request_body(lost, "orphan")
                          .begin(kId)
                          .request_head(kId)
                          .response_body(lost, "orphan")
                          .end(lost));
  CHECK(r.frames == 2);
  CHECK(r.skipped == 3);
  CHECK(s.metrics.frames_skipped == 3);
  CHECK(s.metrics.errors(IngestErrorKind::kUnknownExchange) == 3);
  CHECK_FALSE(s.ingestor.writer().find(lost));
  CHECK(s.file(kRequestFile) == kRequestHead);
}

TEST_CASE("ingest: frames out of order are skipped") {
  Store s;
  auto r = s.apply_ok(Batch("p1", 1)
                          .begin(kId)
                          .response_body(kId, "no head yet")  // no response file to write to
                          .request_head(kId)
                          .request_head(kId)  // a second head
                          .begin(kId)         // a second begin
                          .frame(FrameType::kEnd, {{"id", kId}, {"outcome", "bogus"}}, "")
                          .frame(FrameType::kEnd, {{"id", kId}, {"outcome", "in_progress"}}, ""));
  CHECK(r.frames == 2);
  CHECK(r.skipped == 5);
  CHECK(s.metrics.errors(IngestErrorKind::kInvalidFrame) == 5);
  CHECK(s.file(kRequestFile) == kRequestHead);
  CHECK(s.row().outcome == "in_progress");
  CHECK_FALSE(s.exists(kResponseFile));
  // A begin for an exchange stored by an earlier batch does not reset it either.
  s.apply_ok(Batch("p1", 2).begin(kId));
  CHECK(s.file(kRequestFile) == kRequestHead);
}

TEST_CASE("ingest: a begin without a usable start time gets the arrival time") {
  Store s;
  s.apply_ok(
      Batch("p1", 1).frame(FrameType::kBegin, {{"id", kId}, {"started_at", "yesterday"}}, ""));
  ExchangeRow r = s.row();
  CHECK(r.started_us > 1757729469LL * 1000000);
  CHECK(r.route.empty());
  CHECK(s.exists(r.request_file));
}

TEST_CASE("ingest: many exchanges in one batch") {
  Store s;
  Batch b("p1", 1);
  std::vector<std::string> ids;
  for (int i = 0; i < 150; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "%08x-0000-4000-8000-%012d", 0x10000000 + i, i);
    ids.push_back(id);
    char started[40];
    std::snprintf(started, sizeof started, "2025-09-13T23:59:%02d.%03dZ", i % 60, i);
    b.begin(id, started).request_head(id).request_body(id, bytes(100 + i, i));
    b.response_head(id).response_body(id, bytes(200 + i, i + 1)).end(id);
  }
  auto r = s.apply_ok(b);
  CHECK(r.frames == 150 * 6);
  for (int i = 0; i < 150; ++i) {
    ExchangeRow row = s.row(ids[i]);
    CHECK(row.outcome == "complete");
    CHECK(s.file(row.request_file) == kRequestHead + bytes(100 + i, i));
    REQUIRE(row.response_file);
    CHECK(s.file(*row.response_file) == kResponseHead + bytes(200 + i, i + 1));
  }
  CHECK(s.metrics.exchanges == 150);
}

TEST_CASE("recovery: in-progress exchanges become truncated, files are cut back") {
  const std::string done = "dddddddd-0000-4000-8000-000000000000";
  Store s;
  s.apply_ok(
      Batch("p1", 1).begin(kId).request_head(kId).response_head(kId).response_body(kId, "partial"));
  s.apply_ok(Batch("p1", 2).begin(done).request_head(done).end(done));
  // The crash: an uncommitted attempt left bytes behind in both files of the open exchange.
  append_file(s.data + "/" + kRequestFile, "junk");
  append_file(s.data + "/" + kResponseFile, "junk");

  RecoveryReport rep = recover(s.ingestor.writer(), s.blobs);
  CHECK(rep.marked == 1);
  CHECK(rep.trimmed == 2);
  CHECK(rep.missing == 0);
  ExchangeRow r = s.row();
  CHECK(r.outcome == "truncated");
  CHECK(r.error == kRestartedError);
  CHECK(s.file(kRequestFile) == kRequestHead);
  CHECK(s.file(kResponseFile) == kResponseHead + "partial");
  CHECK(s.row(done).outcome == "complete");
  CHECK_FALSE(s.row(done).error);

  // Running it again finds nothing to do.
  CHECK(recover(s.ingestor.writer(), s.blobs).marked == 0);

  // The proxy re-sends what was never acknowledged: the exchange continues and ends.
  s.apply_ok(Batch("p1", 3).response_body(kId, " and the rest").end(kId));
  r = s.row();
  CHECK(r.outcome == "complete");
  CHECK_FALSE(r.error);
  CHECK(s.file(kResponseFile) == kResponseHead + "partial and the rest");
}

TEST_CASE("recovery: a missing file is reported, not fatal") {
  Store s;
  s.apply_ok(Batch("p1", 1).begin(kId).request_head(kId));
  std::filesystem::remove(s.data + "/" + kRequestFile);
  RecoveryReport rep = recover(s.ingestor.writer(), s.blobs);
  CHECK(rep.marked == 1);
  CHECK(rep.missing == 1);
}

TEST_CASE("ingest: a file error rolls the whole batch back") {
  Store s;
  s.apply_ok(Batch("p1", 1).begin(kId).request_head(kId).request_body(kId, "kept"));

  const std::string other = "eeeeeeee-0000-4000-8000-000000000000";
  Batch big = Batch("p1", 2)
                  .request_body(kId, "more")
                  .begin(other)
                  .request_head(other)
                  .request_body(other, bytes(300000, 9));
  // Files may not grow past 64 KiB for a moment: the big body fails with EFBIG.
  struct rlimit old;
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 64 * 1024;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  IngestResult failed = s.apply(big);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);

  CHECK(failed.status == IngestResult::Status::kUnavailable);
  CHECK(failed.error.find("File too large") != std::string::npos);
  CHECK(s.metrics.errors(IngestErrorKind::kIo) == 1);
  CHECK(s.metrics.batches_applied == 1);
  CHECK_FALSE(s.ingestor.writer().find(other));             // the row was rolled back
  CHECK_FALSE(s.ingestor.writer().batch_applied("p1", 2));  // not acknowledged
  CHECK(s.row().request_file_size == static_cast<int64_t>(kRequestHead.size() + 4));
  // (The request file of kId now holds "kept" + "more" past its acknowledged size.)
  CHECK(s.file(kRequestFile) == kRequestHead + "keptmore");

  // The proxy re-sends the batch: it applies once, byte-exact.
  s.apply_ok(big);
  CHECK(s.file(kRequestFile) == kRequestHead + "keptmore");
  ExchangeRow o = s.row(other);
  CHECK(s.file(o.request_file) == kRequestHead + bytes(300000, 9));
  CHECK(s.metrics.exchanges == 2);
}

TEST_CASE("ingest: exchanges whose file names would collide get full-id names") {
  Store s;
  // Same start millisecond, same first 8 characters.
  const std::string twin1 = "092d0424-aaaa-4000-8000-000000000001";
  const std::string twin2 = "092d0424-bbbb-4000-8000-000000000002";
  const std::string twin3 = "092d0424-cccc-4000-8000-000000000003";
  s.apply_ok(Batch("p1", 1).begin(kId).request_head(kId).request_body(kId, "zero"));
  s.apply_ok(Batch("p1", 2)
                 .begin(twin1)
                 .request_head(twin1)
                 .request_body(twin1, "one")
                 .begin(twin2)
                 .request_head(twin2)
                 .request_body(twin2, "two"));
  s.apply_ok(Batch("p1", 3).begin(twin3).request_head(twin3).request_body(twin3, "three"));
  CHECK(s.row(kId).request_file == kRequestFile);
  CHECK(s.file(kRequestFile) == kRequestHead + "zero");
  std::set<std::string> names;
  for (const auto& [id, body] : std::vector<std::pair<std::string, std::string>>{
           {twin1, "one"}, {twin2, "two"}, {twin3, "three"}}) {
    ExchangeRow r = s.row(id);
    CHECK(r.request_file == "2025-09-13/2025-09-13_02-11-09.123_" + id + "_request.bin");
    CHECK(s.file(r.request_file) == kRequestHead + body);
    names.insert(r.request_file);
  }
  CHECK(names.size() == 3);
  // The response file follows the request file's name.
  s.apply_ok(Batch("p1", 4).response_head(twin2));
  CHECK(s.row(twin2).response_file ==
        "2025-09-13/2025-09-13_02-11-09.123_" + twin2 + "_response.bin");
}

TEST_CASE("ingest: a name collision inside one batch") {
  Store s;
  const std::string twin = "092d0424-bbbb-4000-8000-000000000002";
  s.apply_ok(Batch("p1", 1)
                 .begin(kId)
                 .request_head(kId)
                 .request_body(kId, "first")
                 .begin(twin)
                 .request_head(twin)
                 .request_body(twin, "second"));
  CHECK(s.row(kId).request_file == kRequestFile);
  CHECK(s.file(kRequestFile) == kRequestHead + "first");
  CHECK(s.file(s.row(twin).request_file) == kRequestHead + "second");
  CHECK(s.row(twin).request_file != kRequestFile);
}

TEST_CASE("blob store: gathered appends land in order, in the right file, at the right size") {
  TempDir dir;
  BlobStore store(dir.path() + "/data");
  // Pieces stay valid until sync(), as the decoded batch's frames do.
  std::vector<std::string> pieces;
  for (int i = 0; i < 600; ++i) pieces.push_back("piece" + std::to_string(i) + ";");
  struct Step {
    const char* file;
    int first, count;  // pieces[first, first + count)
  };
  const Step steps[] = {
      {"2025-09-13/a.bin", 0, 2}, {"2025-09-13/b.bin", 2, 1},   {"2025-09-13/a.bin", 3, 1},
      {"2025-09-13/c.bin", 4, 0}, {"2025-09-13/b.bin", 4, 596},  // more than one pwritev
  };
  std::map<std::string, std::string> want;
  {
    BatchFiles files(store);
    for (const Step& st : steps) {
      files.touch(st.file, 0);
      for (int i = st.first; i < st.first + st.count; ++i) {
        want[st.file] += pieces[static_cast<size_t>(i)];
        CHECK(files.append(st.file, 0, pieces[static_cast<size_t>(i)]) ==
              static_cast<int64_t>(want[st.file].size()));
      }
    }
    files.sync();
    CHECK(files.bytes_written() ==
          want["2025-09-13/a.bin"].size() + want["2025-09-13/b.bin"].size());
  }
  CHECK(read_file(store.path("2025-09-13/a.bin")) == want["2025-09-13/a.bin"]);
  CHECK(read_file(store.path("2025-09-13/b.bin")) == want["2025-09-13/b.bin"]);
  CHECK(read_file(store.path("2025-09-13/c.bin")).empty());
}

TEST_CASE("blob store: file names") {
  FileNames n = BlobStore::names_for(1757729469123999LL, kId);
  CHECK(n.request == kRequestFile);
  CHECK(n.response == kResponseFile);
}

TEST_CASE("blob store: which names the orphan scan takes for exchange files") {
  struct Case {
    const char* day;
    const char* name;
    bool ours;
  };
  const Case cases[] = {
      {"2025-09-13", "2025-09-13_02-11-09.123_092d0424_request.bin", true},
      {"2025-09-13", "2025-09-13_02-11-09.123_092d0424_response.bin", true},
      {"2025-09-13", "2025-09-13_02-11-09.123_092d0424-5a5b-4c6d-8e9f-0123456789ab_request.bin",
       true},
      {"2025-09-13", "2025-09-14_02-11-09.123_092d0424_request.bin", false},  // another day
      {"2025-09-13", "2025-09-13_02-11-09.123_092d042_request.bin", false},   // 7 id chars
      {"2025-09-13", "2025-09-13_02-11-09.123_092D0424_request.bin", false},  // upper case
      {"2025-09-13", "2025-09-13_02-11-09.123_092d0424_request.bin.tmp", false},
      {"2025-09-13", "2025-09-13_02-11-09.123_092d0424_body.bin", false},
      {"2025-09-13", "2025-09-13_02-11-09_092d0424_request.bin", false},  // no milliseconds
      {"2025-09-13", "2025-09-13_02:11:09.123_092d0424_request.bin", false},
      {"2025-09-13", "notes.txt", false},
      {"2025-09-13", "", false},
      {"orphaned", "2025-09-13_02-11-09.123_092d0424_request.bin", false},
      {"2025-9-13", "2025-9-13_02-11-09.123_092d0424_request.bin", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.day);
    CAPTURE(c.name);
    CHECK(is_blob_file_name(c.day, c.name) == c.ours);
  }
  CHECK(is_day_directory_name("2025-09-13"));
  CHECK_FALSE(is_day_directory_name("orphaned"));
  CHECK_FALSE(is_day_directory_name("2025-09-133"));
  CHECK_FALSE(is_day_directory_name("2025_09_13"));
}

TEST_CASE("recovery: orphan files (no row names them) are moved aside and counted") {
  Store s;
  const std::string open = "0a0a0a0a-0000-4000-8000-000000000000";
  const std::string open_request = "2025-09-13/2025-09-13_02-11-09.123_0a0a0a0a_request.bin";
  const std::string open_response = "2025-09-13/2025-09-13_02-11-09.123_0a0a0a0a_response.bin";
  const std::string twin = "092d0424-bbbb-4000-8000-000000000002";
  s.apply_ok(Batch("p1", 1)
                 .begin(kId)
                 .request_head(kId)
                 .response_head(kId)
                 .response_body(kId, "done")
                 .end(kId)
                 .begin(twin)  // same millisecond and id8: full-id file names
                 .request_head(twin)
                 .response_head(twin)
                 .end(twin)
                 .begin(open)
                 .request_head(open));
  const std::string twin_request = s.row(twin).request_file;
  REQUIRE(twin_request.find(twin) != std::string::npos);

  // What a crash before COMMIT leaves: the response head of `open` never committed, nor the
  // begins of two other exchanges (one with a full-id name, on another day).
  const std::string lost1 = "2025-09-13/2025-09-13_05-00-00.000_ffffffff_request.bin";
  const std::string lost2 =
      "2025-09-14/2025-09-14_00-00-00.001_eeeeeeee-0000-4000-8000-000000000000_request.bin";
  std::filesystem::create_directories(s.data + "/2025-09-14");
  append_file(s.data + "/" + open_response, kResponseHead + "never acknowledged");
  append_file(s.data + "/" + lost1, kRequestHead + "lost one");
  append_file(s.data + "/" + lost2, kRequestHead);
  // Not ours: left alone wherever they are.
  const std::vector<std::string> foreign = {
      "2025-09-13/notes.txt", "2025-09-13/2025-09-14_00-00-00.001_ffffffff_request.bin",
      "stray_request.bin", "backup/2025-09-13_05-00-00.000_ffffffff_request.bin"};
  std::filesystem::create_directories(s.data + "/backup");
  for (const auto& f : foreign) append_file(s.data + "/" + f, "x");

  RecoveryReport rep = recover(s.ingestor.writer(), s.blobs);
  CHECK(rep.marked == 1);  // `open`
  CHECK(rep.orphans == 3);
  CHECK(rep.orphan_bytes ==
        kResponseHead.size() + 18 + kRequestHead.size() + 8 + kRequestHead.size());
  for (const auto& f : {open_response, lost1, lost2}) {
    CAPTURE(f);
    CHECK_FALSE(s.exists(f));
    CHECK(s.exists(std::string(kQuarantineDir) + "/" + f));
  }
  CHECK(s.file(std::string(kQuarantineDir) + "/" + lost1) == kRequestHead + "lost one");
  for (const auto& f : foreign) CHECK(s.exists(f));
  // Files rows name stay, byte for byte.
  CHECK(s.file(kRequestFile) == kRequestHead);
  CHECK(s.file(kResponseFile) == kResponseHead + "done");
  CHECK(s.exists(twin_request));
  CHECK(s.exists(*s.row(twin).response_file));
  CHECK(s.file(open_request) == kRequestHead);

  // Nothing left to find, and the quarantine is not scanned as a day.
  RecoveryReport again = recover(s.ingestor.writer(), s.blobs);
  CHECK(again.orphans == 0);
  CHECK(again.marked == 0);

  // The proxy re-sends the batch that never committed: it applies once, byte-exact.
  s.apply_ok(Batch("p1", 2).response_head(open).response_body(open, "now acknowledged").end(open));
  CHECK(s.row(open).response_file == open_response);
  CHECK(s.file(open_response) == kResponseHead + "now acknowledged");
  CHECK(recover(s.ingestor.writer(), s.blobs).orphans == 0);
}

namespace {

// Sets the disk quota test hook for the scope of a test.
class QuotaHook {
 public:
  explicit QuotaHook(const std::string& file) : file_(file) {
    REQUIRE(setenv(kTestQuotaEnv, file.c_str(), 1) == 0);
  }
  ~QuotaHook() { unsetenv(kTestQuotaEnv); }
  void set(uint64_t bytes) { std::ofstream(file_, std::ios::trunc) << bytes << "\n"; }

 private:
  std::string file_;
};

}  // namespace

TEST_CASE("ingest: a full disk (test quota hook) is disk full, rolled back, applied once later") {
  Store s;
  s.apply_ok(Batch("p1", 1).begin(kId).request_head(kId).request_body(kId, "kept"));
  const uint64_t used = kRequestHead.size() + 4;

  QuotaHook hook(s.dir.path() + "/quota");
  hook.set(used + 100);  // room for 100 more bytes
  const std::string other = "eeeeeeee-0000-4000-8000-000000000000";
  Batch b2 = Batch("p1", 2)
                 .request_body(kId, bytes(50, 1))
                 .begin(other)
                 .request_head(other)
                 .request_body(other, bytes(5000, 2));
  IngestResult full = s.apply(b2);
  CHECK(full.status == IngestResult::Status::kDiskFull);
  CHECK(full.error.find("No space left") != std::string::npos);
  CHECK(s.metrics.errors(IngestErrorKind::kDiskFull) == 1);
  CHECK_FALSE(s.ingestor.writer().batch_applied("p1", 2));
  CHECK_FALSE(s.ingestor.writer().find(other));
  CHECK(s.row().request_file_size == static_cast<int64_t>(used));

  // Still full: a re-send fails the same way, and nothing moves.
  CHECK(s.apply(b2).status == IngestResult::Status::kDiskFull);
  CHECK(s.metrics.batches_applied == 1);

  hook.set(10 * 1024 * 1024);  // space is back
  s.apply_ok(b2);
  CHECK(s.apply(b2).status == IngestResult::Status::kDuplicate);
  CHECK(s.file(kRequestFile) == kRequestHead + "kept" + bytes(50, 1));
  CHECK(s.file(s.row(other).request_file) == kRequestHead + bytes(5000, 2));
  CHECK(s.metrics.batches_applied == 2);
}

TEST_CASE("ingest: SQLITE_FULL from the index is disk full too, and rolled back") {
  Store s;
  s.apply_ok(Batch("p1", 1).begin(kId).request_head(kId));
  int64_t pages = 0;
  {
    Statement& st = s.db->cached("PRAGMA page_count");
    StatementScope scope(st);
    REQUIRE(st.step());
    pages = st.int64(0);
  }
  // The index may not grow: SQLite answers SQLITE_FULL, as on a full disk.
  s.db->exec("PRAGMA max_page_count = " + std::to_string(pages));
  Batch many("p1", 2);
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "%08x-0000-4000-8000-%012d", 0x20000000 + i, i);
    ids.push_back(id);
    many.begin(id).request_head(id).request_body(id, bytes(10, i)).end(id);
  }
  IngestResult full = s.apply(many);
  INFO(full.error);
  CHECK(full.status == IngestResult::Status::kDiskFull);
  CHECK(full.error.find("index:") == 0);
  CHECK(s.metrics.errors(IngestErrorKind::kDiskFull) == 1);
  CHECK_FALSE(s.ingestor.writer().find(ids[0]));
  CHECK_FALSE(s.ingestor.writer().batch_applied("p1", 2));

  s.db->exec("PRAGMA max_page_count = 1073741823");
  s.apply_ok(many);
  for (int i = 0; i < 200; i += 37) {
    ExchangeRow r = s.row(ids[i]);
    CHECK(r.outcome == "complete");
    CHECK(s.file(r.request_file) == kRequestHead + bytes(10, i));
  }
}

TEST_CASE("recovery: an exchange continued after a restart and cut short again is cut back") {
  Store s;
  s.apply_ok(
      Batch("p1", 1).begin(kId).request_head(kId).response_head(kId).response_body(kId, "a"));
  CHECK(recover(s.ingestor.writer(), s.blobs).marked == 1);
  // Re-sent frames continue it (still without its end); then a batch that never committed.
  s.apply_ok(Batch("p1", 2).response_body(kId, "b"));
  CHECK(s.row().outcome == "truncated");
  append_file(s.data + "/" + kResponseFile, "never committed");
  RecoveryReport rep = recover(s.ingestor.writer(), s.blobs);
  CHECK(rep.marked == 0);
  CHECK(rep.trimmed == 1);
  CHECK(s.file(kResponseFile) == kResponseHead + "ab");
  // Once its end arrives, it is final: recovery no longer reads its files.
  s.apply_ok(Batch("p1", 3).response_body(kId, "c").end(kId));
  append_file(s.data + "/" + kResponseFile, "x");
  CHECK(recover(s.ingestor.writer(), s.blobs).trimmed == 0);
}
