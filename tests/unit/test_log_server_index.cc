// The SQLite index: every /requests filter, keyset pagination (stable under inserts between
// pages), and lookup by id and id prefix, on a real database file.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "common/time_format.h"
#include "log-server/index_reader.h"
#include "log-server/index_schema.h"
#include "log-server/index_writer.h"
#include "tests/support/sample_rows.h"
#include "tests/support/temp_dir.h"

using namespace lp;
using namespace lp::logsrv;

namespace {

constexpr int64_t kT0 = 1757729469LL * 1000000;  // 2025-09-13T02:11:09Z

using lp::test::TempDir;

using lp::test::test_id;

using lp::test::sample_row;

struct IndexFixture {
  TempDir dir;
  std::string path = dir.path() + "/index.sqlite";
  std::unique_ptr<Database> wdb = open_index(path, true);
  IndexWriter writer{*wdb};
  std::unique_ptr<Database> rdb = open_index(path, false);
  IndexReader reader{*rdb};

  void insert(const ExchangeRow& r) { writer.insert(r); }

  std::vector<std::string> ids(const ListQuery& q) {
    std::vector<std::string> out;
    for (const auto& r : reader.list(q).rows) out.push_back(r.id);
    return out;
  }
};

}  // namespace

TEST_CASE("index: rows come back as written") {
  IndexFixture f;
  ExchangeRow r = sample_row(test_id(1, 1), kT0 + 5);
  r.replay_of = test_id(9, 9);
  r.error = "boom";
  r.total_us = 1234;
  r.request_forwarded_us = 10;
  r.upstream_headers_us = 500;
  r.first_byte_us = 600;
  r.request_content_type = "application/json";
  r.response_content_type = "text/event-stream";
  r.response_content_encoding = "gzip";
  r.response_file = "x_response.bin";
  r.request_file_size = 100;
  r.response_file_size = 200;
  r.request_head_size = 40;
  r.response_head_size = 50;
  r.request_bytes = 60;
  r.response_bytes = 150;
  f.insert(r);
  auto got = f.reader.get(r.id);
  REQUIRE(got);
  CHECK(got->started_at == r.started_at);
  CHECK(got->replay_of == r.replay_of);
  CHECK(got->error == "boom");
  CHECK(got->total_us == 1234);
  CHECK(got->first_byte_us == 600);
  CHECK(got->response_content_encoding == "gzip");
  CHECK(got->response_file == "x_response.bin");
  CHECK(got->request_file_size == 100);
  CHECK(got->response_head_size == 50);
  CHECK(got->response_bytes == 150);
  CHECK_FALSE(f.reader.get(test_id(2, 2)));

  // update() writes the columns that change after the begin frame.
  got->status = 503;
  got->outcome = "upstream_error";
  got->error = std::nullopt;
  got->response_file_size = 999;
  f.writer.update(*got);
  auto again = f.reader.get(r.id);
  CHECK(again->status == 503);
  CHECK(again->outcome == "upstream_error");
  CHECK_FALSE(again->error);
  CHECK(again->response_file_size == 999);
  CHECK(f.writer.count() == 1);
}

TEST_CASE("index: newest first, ties broken by id") {
  IndexFixture f;
  f.insert(sample_row(test_id(1, 0), kT0));
  f.insert(sample_row(test_id(3, 0), kT0 + 10));
  f.insert(sample_row(test_id(2, 0), kT0 + 10));
  f.insert(sample_row(test_id(4, 0), kT0 - 10));
  CHECK(f.ids({}) ==
        std::vector<std::string>{test_id(3, 0), test_id(2, 0), test_id(1, 0), test_id(4, 0)});
}

TEST_CASE("index: every filter") {
  IndexFixture f;
  // 60 rows: route a/b/c, methods GET/POST, statuses 200/404/502, outcomes cycling.
  const char* outcomes[] = {"complete", "client_aborted", "upstream_error", "truncated",
                            "in_progress"};
  std::vector<ExchangeRow> rows;
  for (int i = 0; i < 60; ++i) {
    ExchangeRow r = sample_row(test_id(static_cast<uint32_t>(i), i), kT0 + i * 1000000LL);
    r.route = std::string(1, static_cast<char>('a' + i % 3));
    r.method = i % 2 ? "GET" : "POST";
    r.status = i % 5 == 0 ? std::optional<int64_t>() : (i % 3 == 0 ? 404 : 200);
    r.outcome = outcomes[i % 5];
    r.proxy_path = "/" + r.route + "/v1/" + (i % 4 == 0 ? "chat/completions" : "models") +
                   "?n=" + std::to_string(i);
    rows.push_back(r);
    f.insert(r);
  }
  auto expect = [&](const ListQuery& q, auto pred) {
    std::vector<std::string> want;
    for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
      if (pred(*it)) want.push_back(it->id);
    }
    if (want.size() > static_cast<size_t>(q.limit)) want.resize(q.limit);
    CHECK(f.ids(q) == want);
    CHECK_FALSE(want.empty());
  };
  ListQuery q;
  q.limit = 1000;
  SUBCASE("route") {
    q.route = "b";
    expect(q, [](const ExchangeRow& r) { return r.route == "b"; });
  }
  SUBCASE("method") {
    q.method = "GET";
    expect(q, [](const ExchangeRow& r) { return r.method == "GET"; });
  }
  SUBCASE("status") {
    q.status = 404;
    expect(q, [](const ExchangeRow& r) { return r.status == 404; });
  }
  SUBCASE("outcome") {
    q.outcome = "truncated";
    expect(q, [](const ExchangeRow& r) { return r.outcome == "truncated"; });
  }
  SUBCASE("since (inclusive)") {
    q.since_us = kT0 + 50 * 1000000LL;
    expect(q, [&](const ExchangeRow& r) { return r.started_us >= *q.since_us; });
    CHECK(f.ids(q).size() == 10);
  }
  SUBCASE("until (exclusive)") {
    q.until_us = kT0 + 10 * 1000000LL;
    expect(q, [&](const ExchangeRow& r) { return r.started_us < *q.until_us; });
    CHECK(f.ids(q).size() == 10);
  }
  SUBCASE("q: substring of proxy_path") {
    q.q = "chat/compl";
    expect(q, [](const ExchangeRow& r) {
      return r.proxy_path.find("chat/compl") != std::string::npos;
    });
    q.q = "?n=1";  // a substring with characters that LIKE or GLOB would treat specially
    expect(q, [](const ExchangeRow& r) { return r.proxy_path.find("?n=1") != std::string::npos; });
    q.q = "%";
    CHECK(f.ids(q).empty());
  }
  SUBCASE("limit") {
    q.limit = 7;
    expect(q, [](const ExchangeRow&) { return true; });
  }
  SUBCASE("everything combined") {
    q.route = "a";
    q.method = "POST";
    q.status = 404;
    q.outcome = "client_aborted";
    q.since_us = kT0;
    q.until_us = kT0 + 59 * 1000000LL;
    q.q = "/a/";
    expect(q, [&](const ExchangeRow& r) {
      return r.route == "a" && r.method == "POST" && r.status == 404 &&
             r.outcome == "client_aborted" && r.started_us >= *q.since_us &&
             r.started_us < *q.until_us && r.proxy_path.find("/a/") != std::string::npos;
    });
  }
  SUBCASE("no match") {
    q.route = "nope";
    CHECK(f.ids(q).empty());
    CHECK_FALSE(f.reader.list(q).next);
  }
}

TEST_CASE("index: cursor pagination is stable under inserts between pages") {
  IndexFixture f;
  std::vector<std::string> original;
  // 95 rows, several sharing a start time (ties are broken by id).
  for (int i = 0; i < 95; ++i) {
    auto r = sample_row(test_id(static_cast<uint32_t>(1000 + i), i), kT0 + (i / 3) * 1000LL);
    original.push_back(r.id);
    f.insert(r);
  }
  ListQuery q;
  q.limit = 20;
  ListPage first = f.reader.list(q);
  REQUIRE(first.rows.size() == 20);
  REQUIRE(first.next);

  // Between pages: 10 newer rows (must not show up later: they sort before the cursor) and 5
  // rows older than everything so far (must show up: no gaps for older rows).
  std::set<std::string> older;
  for (int i = 0; i < 10; ++i) {
    f.insert(sample_row(test_id(5000 + i, i), kT0 + 10000000LL + i));
  }
  for (int i = 0; i < 5; ++i) {
    auto r = sample_row(test_id(6000 + i, i), kT0 - 1000000LL - i);
    older.insert(r.id);
    f.insert(r);
  }

  std::vector<std::string> seen;
  for (const auto& r : first.rows) seen.push_back(r.id);
  std::optional<Cursor> cursor = first.next;
  int pages = 1;
  while (cursor) {
    // The cursor travels as text, as a client would send it back.
    ListQuery next = q;
    next.cursor = decode_cursor(encode_cursor(*cursor));
    REQUIRE(next.cursor);
    ListPage page = f.reader.list(next);
    for (const auto& r : page.rows) seen.push_back(r.id);
    cursor = page.next;
    REQUIRE(++pages < 20);
  }
  std::set<std::string> unique(seen.begin(), seen.end());
  CHECK(unique.size() == seen.size());  // no duplicates
  CHECK(seen.size() == original.size() + older.size());
  for (const auto& id : original) CHECK(unique.count(id) == 1);
  for (const auto& id : older) CHECK(unique.count(id) == 1);
  CHECK(pages == 5);  // 100 rows after the first page's boundary: 20 per page

  // The last page has exactly `limit` rows and no cursor when nothing follows.
  ListQuery all;
  all.limit = 110;
  ListPage whole = f.reader.list(all);
  CHECK(whole.rows.size() == 110);
  CHECK_FALSE(whole.next);
  all.limit = 109;
  CHECK(f.reader.list(all).next);
}

TEST_CASE("index: pagination with filters") {
  IndexFixture f;
  for (int i = 0; i < 50; ++i) {
    auto r = sample_row(test_id(static_cast<uint32_t>(i), i), kT0 + i);
    r.status = i % 2 ? 200 : 500;
    f.insert(r);
  }
  ListQuery q;
  q.status = 500;
  q.limit = 7;
  std::vector<std::string> seen;
  while (true) {
    ListPage p = f.reader.list(q);
    for (const auto& r : p.rows) {
      CHECK(r.status == 500);
      seen.push_back(r.id);
    }
    if (!p.next) break;
    q.cursor = p.next;
  }
  CHECK(seen.size() == 25);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 25);
}

TEST_CASE("index: prefix lookup and ambiguity") {
  IndexFixture f;
  f.insert(sample_row("092d0424-1111-4000-8000-000000000001", kT0));
  f.insert(sample_row("092d0424-2222-4000-8000-000000000002", kT0 + 1));
  f.insert(sample_row("092d0425-0000-4000-8000-000000000003", kT0 + 2));
  f.insert(sample_row("ffffffff-ffff-4fff-bfff-ffffffffffff", kT0 + 3));

  CHECK(f.reader.by_prefix("092d0424", 11).size() == 2);  // ambiguous
  auto one = f.reader.by_prefix("092d0425", 11);
  REQUIRE(one.size() == 1);
  CHECK(one[0].id == "092d0425-0000-4000-8000-000000000003");
  auto longer = f.reader.by_prefix("092d0424-2", 11);
  REQUIRE(longer.size() == 1);
  CHECK(longer[0].id == "092d0424-2222-4000-8000-000000000002");
  CHECK(f.reader.by_prefix("ffffffff", 11).size() == 1);
  CHECK(f.reader.by_prefix("00000000", 11).empty());
  CHECK(f.reader.by_prefix("092d042", 1).size() == 1);  // the limit applies
  // A full id works as a prefix of itself.
  CHECK(f.reader.by_prefix("092d0424-1111-4000-8000-000000000001", 11).size() == 1);
}

TEST_CASE("index: batch ledger and in-progress rows") {
  IndexFixture f;
  CHECK_FALSE(f.writer.batch_applied("p1", 1));
  f.writer.mark_batch_applied("p1", 1, "now");
  CHECK(f.writer.batch_applied("p1", 1));
  CHECK_FALSE(f.writer.batch_applied("p2", 1));
  CHECK_FALSE(f.writer.batch_applied("p1", 2));
  // seq is a u64 on the wire: the top half of the range survives the INTEGER column.
  f.writer.mark_batch_applied("p1", UINT64_MAX, "now");
  CHECK(f.writer.batch_applied("p1", UINT64_MAX));
  CHECK_FALSE(f.writer.batch_applied("p1", UINT64_MAX - 1));

  auto a = sample_row(test_id(1, 1), kT0);
  a.outcome = "in_progress";
  f.insert(a);
  f.insert(sample_row(test_id(2, 2), kT0));
  auto rows = f.writer.in_progress();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].id == a.id);
}

TEST_CASE("index: the filtered queries use an index") {
  IndexFixture f;
  auto plan = [&](const std::string& where) {
    Statement& s = f.rdb->cached("EXPLAIN QUERY PLAN SELECT id FROM exchanges WHERE " + where +
                                 " ORDER BY started_us DESC, id DESC LIMIT 51");
    StatementScope scope(s);
    std::string text;
    while (s.step()) text += s.text(3) + "\n";
    return text;
  };
  CHECK(plan("1").find("exchanges_by_time") != std::string::npos);
  CHECK(plan("route = 'x'").find("exchanges_by_route") != std::string::npos);
  CHECK(plan("status = 200").find("exchanges_by_status") != std::string::npos);
  CHECK(plan("outcome = 'complete'").find("exchanges_by_outcome") != std::string::npos);
  CHECK(plan("method = 'GET'").find("exchanges_by_method") != std::string::npos);
  CHECK(plan("(started_us, id) < (5, 'x')").find("exchanges_by_time") != std::string::npos);
  for (const char* w : {"1", "route = 'x'", "status = 200", "(started_us, id) < (5, 'x')"}) {
    CAPTURE(w);
    CHECK(plan(w).find("TEMP B-TREE") == std::string::npos);  // no sort step
  }
}

TEST_CASE("index: writer connections use WAL, NORMAL sync and in-memory statement journals") {
  TempDir dir;
  const std::string path = dir.path() + "/index.sqlite";
  auto pragma = [](Database& db, const char* name) {
    Statement& s = db.cached(std::string("PRAGMA ") + name);
    StatementScope scope(s);
    REQUIRE(s.step());
    return s.int64(0);
  };
  std::unique_ptr<Database> writer = open_index(path, true);
  CHECK(pragma(*writer, "synchronous") == 1);  // NORMAL: see open_index
  CHECK(pragma(*writer, "temp_store") == 2);   // MEMORY
  Statement& mode = writer->cached("PRAGMA journal_mode");
  {
    StatementScope scope(mode);
    REQUIRE(mode.step());
    CHECK(mode.text(0) == "wal");
  }
}

TEST_CASE("index: rollback undoes an open transaction and is a quiet no-op without one") {
  IndexFixture f;
  auto count = [&] {
    Statement& s = f.rdb->cached("SELECT count(*) FROM exchanges");
    StatementScope scope(s);
    REQUIRE(s.step());
    return s.int64(0);
  };
  f.wdb->rollback();  // nothing open: no throw
  f.writer.begin();
  f.insert(sample_row(test_id(1), kT0));
  f.wdb->rollback();
  CHECK(count() == 0);
  f.wdb->rollback();  // rolled back already: no throw
  f.writer.begin();
  f.insert(sample_row(test_id(2), kT0));
  f.writer.commit();
  f.wdb->rollback();  // after COMMIT: nothing to undo, the row stays
  CHECK(count() == 1);
  // A statement that fails inside a transaction leaves it open: rollback ends it, so the next
  // BEGIN succeeds (it throws while one is open).
  f.writer.begin();
  CHECK_THROWS(f.wdb->exec("BEGIN"));
  f.wdb->rollback();
  CHECK_NOTHROW(f.writer.begin());
  f.wdb->rollback();
}
