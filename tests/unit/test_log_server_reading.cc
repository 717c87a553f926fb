// The reading side of the log server on real files and a real index: chunk arrival times,
// the v2 -> v3 migration, the model/provider filters, /stats arithmetic, deriving an exchange
// from its stored files (decoded, streamed, timed) and HAR entries that pass the validator.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/time_format.h"
#include "log-server/deriver.h"
#include "log-server/index_reader.h"
#include "log-server/index_schema.h"
#include "log-server/index_writer.h"
#include "log-server/reading_api.h"
#include "log-server/stats.h"
#include "tests/support/encoders.h"
#include "tests/support/har_validator.h"
#include "tests/support/sample_rows.h"
#include "tests/support/temp_dir.h"

using namespace lp;
using namespace lp::logsrv;

namespace {

constexpr int64_t kT0 = 1757729469LL * 1000000;  // 2025-09-13T02:11:09Z

using lp::test::TempDir;

using lp::test::gzip;

using lp::test::sample_row;

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// An exchange stored as the log server stores it: head + body per file, sizes in the row.
struct StoredExchange {
  ExchangeRow row;
  std::string chunk_times;
};

StoredExchange store_exchange(const BlobStore& store, const std::string& id,
                              const std::string& request_head, const std::string& request_body,
                              const std::string& response_head,
                              const std::vector<std::pair<std::string, int64_t>>& pieces) {
  StoredExchange x{sample_row(id, kT0), {}};
  write_file(store.path(x.row.request_file), request_head + request_body);
  x.row.request_head_size = static_cast<int64_t>(request_head.size());
  x.row.request_file_size = static_cast<int64_t>(request_head.size() + request_body.size());
  x.row.request_bytes = static_cast<int64_t>(request_body.size());
  x.row.response_file = id + "_response.bin";
  std::string body;
  for (const auto& [bytes, t] : pieces) {
    x.chunk_times += std::to_string(body.size()) + "," + std::to_string(t) + ";";
    body += bytes;
  }
  write_file(store.path(*x.row.response_file), response_head + body);
  x.row.response_head_size = static_cast<int64_t>(response_head.size());
  x.row.response_file_size = static_cast<int64_t>(response_head.size() + body.size());
  x.row.response_bytes = static_cast<int64_t>(body.size());
  return x;
}

StatsRow stats_row(const char* model, std::optional<int64_t> status, const char* outcome,
                   std::optional<int64_t> total_us, std::optional<int64_t> ttft_us,
                   std::optional<int64_t> in, std::optional<int64_t> out, bool llm_error = false) {
  StatsRow r;
  r.started_us = kT0;
  r.route = "r";
  if (model) r.model = model;
  r.status = status;
  r.outcome = outcome;
  r.total_us = total_us;
  r.ttft_us = ttft_us;
  r.input_tokens = in;
  r.output_tokens = out;
  r.llm_error = llm_error;
  return r;
}

}  // namespace

TEST_CASE("reading: chunk times parse and skip what is not theirs") {
  struct Row {
    const char* text;
    std::vector<std::pair<int64_t, int64_t>> want;
  };
  const Row rows[] = {
      {"", {}},
      {"0,10;", {{0, 10}}},
      {"0,10;5,20;9,30;", {{0, 10}, {5, 20}, {9, 30}}},
      {"0,10;5,20", {{0, 10}, {5, 20}}},        // last entry without ';'
      {"0,10;x,20;7,30;", {{0, 10}, {7, 30}}},  // malformed entry skipped
      {"5,10;2,20;", {{5, 10}}},                // offsets never go back
      {"0,10;;3,", {{0, 10}}},
      {"1,2,3;", {}},
  };
  for (const Row& r : rows) {
    CAPTURE(r.text);
    std::vector<std::pair<int64_t, int64_t>> got;
    for (const ChunkTime& c : parse_chunk_times(r.text)) got.emplace_back(c.offset, c.t_us);
    CHECK(got == r.want);
  }
}

TEST_CASE("reading: percentiles are nearest rank and exact") {
  auto at = [](std::vector<int64_t> v, double p) {
    std::optional<int64_t> out;
    percentiles_of({&v}, {p}, &out);
    return out;
  };
  CHECK_FALSE(at({}, 50).has_value());
  CHECK(*at({5}, 50) == 5);
  CHECK(*at({5}, 99) == 5);
  const std::vector<int64_t> ten = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
  CHECK(*at(ten, 50) == 5);
  CHECK(*at(ten, 95) == 10);
  CHECK(*at(ten, 90) == 9);
  CHECK(*at(ten, 10) == 1);
  std::vector<int64_t> hundred;
  for (int i = 100; i >= 1; --i) hundred.push_back(i);
  CHECK(*at(hundred, 99) == 99);
  CHECK(*at(hundred, 95) == 95);
}

TEST_CASE("reading: stats sum exactly, absent tokens are not 0s, errors by rule") {
  StatsAccumulator acc(GroupBy::kModel);
  acc.add(stats_row("gpt", 200, "complete", 1000, 300, 10, 5));
  acc.add(stats_row("gpt", 200, "complete", 3000, std::nullopt, 20, std::nullopt));
  acc.add(stats_row("gpt", 500, "complete", 2000, std::nullopt, std::nullopt, std::nullopt));
  acc.add(stats_row("claude", 200, "client_aborted", 500, 100, 7, 1));
  acc.add(stats_row("claude", 200, "complete", 400, 90, 1, 1, /*llm_error=*/true));
  acc.add(stats_row("claude", 200, "in_progress", std::nullopt, std::nullopt, std::nullopt,
                    std::nullopt));
  acc.add(stats_row(nullptr, 404, "complete", 100, std::nullopt, std::nullopt, std::nullopt));
  auto j = acc.result();
  REQUIRE(j["groups"].size() == 3);
  // Most requests first; ties in key order.
  const auto& claude = j["groups"][0];
  const auto& gpt = j["groups"][1];
  CHECK(claude["key"] == "claude");
  CHECK(claude["requests"] == 3);
  CHECK(claude["errors"] == 2);  // aborted + llm error; in progress is not an error yet
  CHECK(claude["input_tokens"] == 8);
  CHECK(claude["duration_ms"]["p50"] == 0.4);
  CHECK(claude["ttft_ms"]["p50"] == 0.09);
  CHECK(gpt["key"] == "gpt");
  CHECK(gpt["errors"] == 1);
  CHECK(gpt["input_tokens"] == 30);
  CHECK(gpt["output_tokens"] == 5);
  CHECK(gpt["duration_ms"]["p50"] == 2.0);
  CHECK(gpt["duration_ms"]["p99"] == 3.0);
  CHECK(gpt["ttft_ms"]["p50"] == 0.3);  // one stream: the others have no TTFT, not 0
  CHECK(gpt["cost"].is_null());
  CHECK(j["groups"][2]["key"].is_null());
  CHECK(j["total"]["requests"] == 7);
  CHECK(j["total"]["errors"] == 4);
  CHECK(j["total"]["input_tokens"] == 38);
  CHECK_FALSE(j["total"].contains("key"));
}

TEST_CASE("reading: stats by hour and day are in time order with UTC keys") {
  StatsAccumulator by_hour(GroupBy::kHour);
  StatsRow late = stats_row("m", 200, "complete", 1, std::nullopt, std::nullopt, std::nullopt);
  late.started_us = kT0 + 3600LL * 1000000;  // 03:11:09
  StatsRow early = late;
  early.started_us = kT0;
  by_hour.add(late);
  by_hour.add(early);
  by_hour.add(early);
  auto j = by_hour.result();
  REQUIRE(j["groups"].size() == 2);
  CHECK(j["groups"][0]["key"] == "2025-09-13T02:00:00Z");
  CHECK(j["groups"][0]["requests"] == 2);
  CHECK(j["groups"][1]["key"] == "2025-09-13T03:00:00Z");
  StatsAccumulator by_day(GroupBy::kDay);
  by_day.add(late);
  CHECK(by_day.result()["groups"][0]["key"] == "2025-09-13");
}

TEST_CASE("reading: group_by names") {
  CHECK(parse_group_by("model") == GroupBy::kModel);
  CHECK(parse_group_by("day") == GroupBy::kDay);
  CHECK_FALSE(parse_group_by("Model").has_value());
  CHECK_FALSE(parse_group_by("").has_value());
}

TEST_CASE("reading: a version 2 index migrates - its rows become pending derivation") {
  TempDir dir;
  const std::string path = dir.path() + "/index.sqlite";
  {
    Database db(path, true);
    db.exec(
        "CREATE TABLE exchanges (id TEXT PRIMARY KEY, short_id TEXT NOT NULL, started_at TEXT "
        "NOT NULL, started_us INTEGER NOT NULL, route TEXT NOT NULL, method TEXT NOT NULL, "
        "proxy_path TEXT NOT NULL, destination TEXT NOT NULL, client_ip TEXT NOT NULL, replay_of "
        "TEXT, status INTEGER, outcome TEXT NOT NULL, error TEXT, request_bytes INTEGER NOT NULL, "
        "response_bytes INTEGER NOT NULL, total_us INTEGER, request_forwarded_us INTEGER, "
        "upstream_headers_us INTEGER, first_byte_us INTEGER, request_content_type TEXT, "
        "response_content_type TEXT, response_content_encoding TEXT, request_file TEXT NOT NULL, "
        "response_file TEXT, request_file_size INTEGER NOT NULL, response_file_size INTEGER NOT "
        "NULL, request_head_size INTEGER NOT NULL, response_head_size INTEGER NOT NULL, proxy_id "
        "TEXT NOT NULL, ingested_at TEXT NOT NULL, timings_json TEXT)");
    db.exec(
        "INSERT INTO exchanges VALUES ('00000000-0000-4000-8000-000000000001', '00000000', "
        "'2025-09-13T02:11:09.000000Z', 1757729469000000, 'r', 'POST', '/p', 'http://x/', "
        "'127.0.0.1', NULL, 200, 'complete', NULL, 1, 1, 5, 1, 2, 3, NULL, NULL, NULL, 'a', 'b', "
        "10, 10, 9, 9, 'p1', 'now', NULL)");
    db.exec("PRAGMA user_version = 2");
  }
  auto db = open_index(path, true);
  IndexWriter writer(*db);
  auto row = writer.find("00000000-0000-4000-8000-000000000001");
  REQUIRE(row.has_value());
  CHECK_FALSE(row->derived_version.has_value());
  CHECK_FALSE(row->model.has_value());
  CHECK(row->total_us == 5);
  Statement& v = db->cached("PRAGMA user_version");
  StatementScope scope(v);
  REQUIRE(v.step());
  CHECK(v.int64(0) == 4);
}

TEST_CASE("reading: model and provider filter the list - stats read a covering index") {
  TempDir dir;
  const std::string path = dir.path() + "/index.sqlite";
  auto wdb = open_index(path, true);
  IndexWriter writer(*wdb);
  for (int i = 0; i < 6; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "0000000%d-0000-4000-8000-000000000000", i);
    ExchangeRow r = sample_row(id, kT0 + i);
    r.model = i % 2 ? "gpt-4o" : "claude";
    r.provider = i % 2 ? "openai" : "anthropic";
    writer.insert(r);
  }
  auto rdb = open_index(path, false);
  IndexReader reader(*rdb);
  ListQuery q;
  q.model = "gpt-4o";
  CHECK(reader.list(q).rows.size() == 3);
  q.provider = "anthropic";
  CHECK(reader.list(q).rows.empty());
  q = {};
  q.provider = "anthropic";
  CHECK(reader.list(q).rows.size() == 3);
  int seen = 0;
  reader.for_each_stats_row(q, [&](const StatsRow& r) {
    CHECK(r.provider == "anthropic");
    ++seen;
  });
  CHECK(seen == 3);

  Statement& s = rdb->cached(
      "EXPLAIN QUERY PLAN SELECT started_us, route, model, provider, status, outcome, total_us, "
      "ttft_us, input_tokens, output_tokens, cached_input_tokens, cost, llm_error FROM exchanges "
      "WHERE 1 AND started_us >= ?");
  StatementScope scope(s);
  std::string plan;
  while (s.step()) plan += s.text(3) + "\n";
  CHECK(plan.find("COVERING INDEX exchanges_for_stats") != std::string::npos);
}

TEST_CASE("reading: a gzip'ed SSE stream is derived from its files with its arrival times") {
  TempDir dir;
  BlobStore store(dir.path());
  const std::string stream =
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-"
      "2024\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
      "\"finish_reason\":null}]}\n\n"
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-"
      "2024\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}"
      "\n\n"
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-"
      "2024\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}"
      "]}\n\n"
      "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-"
      "2024\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_"
      "tokens\":11}}\n\ndata: [DONE]\n\n";
  // Not compressed as one piece: each event is its own gzip member, arriving at its own time,
  // so the decoded events line up with the stored arrival of the bytes that completed them.
  std::vector<std::pair<std::string, int64_t>> pieces;
  int64_t t = 150000;
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t end = stream.find("\n\n", pos) + 2;
    pieces.emplace_back(gzip(stream.substr(pos, end - pos)), t);
    t += 100000;
    pos = end;
  }
  const std::string request_body =
      R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]})";
  StoredExchange x = store_exchange(
      store, "11111111-0000-4000-8000-000000000000",
      "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: "
      "application/json\r\n\r\n",
      request_body,
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n\r\n",
      pieces);
  DeriveOutcome d = derive_exchange(x.row, store, x.chunk_times, 1 << 20);
  REQUIRE(d.ok);
  REQUIRE(d.llm.has_value());
  const auto& f = d.llm->fields;
  CHECK(f.provider == "openai");
  CHECK(f.api == "chat.completions");
  CHECK(f.model == "gpt-4o");
  CHECK(f.response_model == "gpt-4o-2024");
  CHECK(f.stream);
  CHECK(f.input_tokens == 9);
  CHECK(f.output_tokens == 2);
  CHECK(f.total_tokens == 11);
  CHECK(f.events == 5);
  REQUIRE(f.first_event_ms.has_value());
  CHECK(*f.first_event_ms == doctest::Approx(150.0));
  REQUIRE(f.ttft_ms.has_value());
  CHECK(*f.ttft_ms == doctest::Approx(250.0));  // the role-only chunk is not content
  CHECK(d.llm->assembled["choices"][0]["message"]["content"] == "Hello");

  // No stored times (an exchange captured before they were kept): no first event or TTFT.
  DeriveOutcome untimed = derive_exchange(x.row, store, "", 1 << 20);
  REQUIRE(untimed.llm.has_value());
  CHECK_FALSE(untimed.llm->fields.ttft_ms.has_value());
  CHECK(untimed.llm->fields.output_tokens == 2);

  // A bound smaller than the decoded stream: derived as cut, never over the bound.
  DeriveOutcome bounded = derive_exchange(x.row, store, x.chunk_times, 200);
  REQUIRE(bounded.llm.has_value());
  CHECK_FALSE(bounded.llm->fields.output_tokens.has_value());

  // The HAR entry of the same exchange is one Chrome DevTools would import.
  LoadedExchange loaded = load_exchange(x.row, store, 1 << 20);
  CHECK(loaded.response_body.bytes == stream);
  CHECK(loaded.request_body.bytes == request_body);
  nlohmann::json har =
      nlohmann::json::parse(har_prefix("1") + har_entry(x.row, loaded).dump() + har_suffix());
  CHECK(lp::test::validate_har(har).empty());
  CHECK(har["log"]["entries"][0]["response"]["content"]["text"] == stream);
  CHECK(har["log"]["entries"][0]["_id"] == x.row.id);
}

TEST_CASE("reading: a call that is not an LLM call derives to nothing - missing files fail") {
  TempDir dir;
  BlobStore store(dir.path());
  StoredExchange x = store_exchange(store, "22222222-0000-4000-8000-000000000000",
                                    "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n", "",
                                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
                                    {{"<html></html>", 1000}});
  x.row.method = "GET";
  x.row.destination = "http://example.com/index.html";
  DeriveOutcome d = derive_exchange(x.row, store, x.chunk_times, 1 << 20);
  CHECK(d.ok);
  CHECK_FALSE(d.llm.has_value());
  std::filesystem::remove(store.path(x.row.request_file));
  DeriveOutcome gone = derive_exchange(x.row, store, x.chunk_times, 1 << 20);
  CHECK_FALSE(gone.ok);
}

TEST_CASE("reading: UTF-8 validity and base64") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain"));
  CHECK(is_valid_utf8("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"));
  CHECK_FALSE(is_valid_utf8("\xC3"));              // cut sequence
  CHECK_FALSE(is_valid_utf8("\xE2\x82"));          // cut sequence
  CHECK_FALSE(is_valid_utf8("\x80"));              // lone continuation byte
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(is_valid_utf8(std::string("\x1f\x8b\x08\x00", 4) + "\xff"));
  CHECK(base64("") == "");
  CHECK(base64("f") == "Zg==");
  CHECK(base64("fo") == "Zm8=");
  CHECK(base64("foo") == "Zm9v");
  CHECK(base64(std::string("\0\xff", 2)) == "AP8=");
}
