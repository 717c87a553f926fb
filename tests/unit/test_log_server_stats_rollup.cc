// The /stats hourly rollups: the value and sum codings, the time arithmetic (tables), and on
// a real SQLite index in a temp dir: answers from rollups byte-identical to the row scan over
// randomized data (every group_by, filters, since/until on and off hour boundaries, partly
// built), invalidation by the triggers, the v3 -> v4 migration and the builder's bounds.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/time_format.h"
#include "log-server/index_reader.h"
#include "log-server/index_schema.h"
#include "log-server/index_writer.h"
#include "log-server/stats.h"
#include "log-server/stats_rollup.h"
#include "tests/support/sample_rows.h"
#include "tests/support/temp_dir.h"

using namespace lp;
using namespace lp::logsrv;

namespace {

constexpr int64_t kH = kUsPerHour;
constexpr int64_t kBase = 1757728800LL * 1000000;  // 2025-09-13T02:00:00Z, an hour start
constexpr int64_t kFuture = kBase + 1000 * kH;     // every test hour has ended by then

using lp::test::TempDir;

ExchangeRow make_row(int n, int64_t started_us) {
  return lp::test::sample_row(lp::test::test_id(static_cast<uint32_t>(n)), started_us);
}

// Rows with every kind of value /stats treats specially: NULL model, provider, status, TTFT,
// tokens and cost, errors of each kind, costs whose naive sum depends on the order.
ExchangeRow random_row(std::mt19937_64& rng, int n, int64_t started_us) {
  auto pick = [&](int k) { return static_cast<int>(rng() % static_cast<uint64_t>(k)); };
  ExchangeRow r = make_row(n, started_us);
  static const char* const kRoutes[] = {"openai", "anthropic", "", "gemini"};
  static const char* const kModels[] = {"gpt-4o", "claude", "gemini-2.5-flash"};
  static const char* const kOutcomes[] = {"complete",       "complete",       "complete",
                                          "client_aborted", "upstream_error", "in_progress",
                                          "truncated"};
  static const double kCosts[] = {0.1, 0.2, 0.3, 1e-7, 3.3e-5, 12.75, 1e15};
  r.route = kRoutes[pick(4)];
  if (pick(5)) r.model = kModels[pick(3)];
  if (pick(4)) r.provider = pick(2) ? "openai" : "anthropic";
  int s = pick(10);
  if (s == 0) {
    r.status = std::nullopt;
  } else {
    r.status = s < 7 ? 200 : (s < 9 ? 429 : 500);
  }
  r.outcome = kOutcomes[pick(7)];
  if (pick(6)) r.total_us = static_cast<int64_t>(rng() % 5000000) - (pick(50) ? 0 : 1000);
  if (pick(3)) r.ttft_us = static_cast<int64_t>(rng() % 900000);
  if (pick(4)) r.input_tokens = static_cast<int64_t>(rng() % 4000);
  if (pick(4)) r.output_tokens = static_cast<int64_t>(rng() % 2000);
  if (pick(3)) r.cached_input_tokens = static_cast<int64_t>(rng() % 100);
  if (pick(3)) r.cost = kCosts[pick(7)] * (1 + pick(3));
  r.llm_error = pick(10) == 0;
  return r;
}

std::string by_rows(IndexReader& reader, const ListQuery& q, GroupBy by) {
  StatsAccumulator acc(by);
  reader.for_each_stats_row(q, [&](const StatsRow& row) { acc.add(row); });
  return acc.result().dump();
}

std::string by_rollups(IndexReader& reader, const ListQuery& q, GroupBy by,
                       StatsReadReport* report = nullptr) {
  StatsAccumulator acc(by);
  StatsReadReport r = read_stats(reader, q, acc);
  if (report) *report = r;
  return acc.result().dump();
}

std::vector<int64_t> dirty_hours(Database& db) {
  std::vector<int64_t> out;
  Statement& s = db.cached("SELECT hour_us FROM stats_dirty_hours ORDER BY hour_us");
  StatementScope scope(s);
  while (s.step()) out.push_back(s.int64(0));
  return out;
}

int64_t count_of(Database& db, const std::string& sql) {
  Statement& s = db.cached(sql);
  StatementScope scope(s);
  REQUIRE(s.step());
  return s.int64(0);
}

constexpr GroupBy kAllGroupings[] = {GroupBy::kModel,  GroupBy::kRoute, GroupBy::kProvider,
                                     GroupBy::kStatus, GroupBy::kHour,  GroupBy::kDay};

RollupBuildLimits unbounded() {
  return RollupBuildLimits{.max_hours = 1000000, .budget = std::chrono::hours(1)};
}

}  // namespace

TEST_CASE("stats rollup: sorted values code and decode exactly") {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::vector<std::vector<int64_t>> cases = {
      {},
      {0},
      {-1},
      {5, 5, 5},
      {-300, -2, 0, 1, 127, 128, 16383, 16384},
      {kMin, 0, kMax},
      {kMin, kMin},
      {kMax},
      {1000, 1250000, 4999999},
  };
  for (const auto& values : cases) {
    CAPTURE(values.size());
    std::string blob = encode_sorted_values(values);
    std::vector<int64_t> back = {42};  // decoding appends
    REQUIRE(decode_sorted_values(blob, &back));
    back.erase(back.begin());
    CHECK(back == values);
  }
  // Small gaps take one byte each.
  CHECK(encode_sorted_values({1, 2, 3, 100}).size() == 4);
  std::vector<int64_t> out;
  CHECK_FALSE(decode_sorted_values(std::string("\x80", 1), &out));            // cut varint
  CHECK_FALSE(decode_sorted_values(std::string(10, '\xff') + "\x01", &out));  // 11 bytes
  CHECK_FALSE(decode_sorted_values(std::string(9, '\xff') + "\x02", &out));   // > 64 bits
}

TEST_CASE("stats rollup: exact sums do not depend on the order and survive the blob") {
  const std::vector<std::vector<double>> cases = {
      {},
      {0.1, 0.2, 0.3},
      {1e16, 1.0, -1e16, 1.0},
      {1e100, 1.0, -1e100, 1e-100},
      {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1},
      {12.75, 3.3e-5, 2e-7, 2e15, 0.6, 3e15, 0.3},
      {-0.0},
  };
  std::mt19937_64 rng(7);
  for (const auto& values : cases) {
    CAPTURE(values.size());
    ExactSum forward;
    for (double v : values) forward.add(v);
    for (int round = 0; round < 20; ++round) {
      std::vector<double> shuffled = values;
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      // Split in two sums merged, as hours are.
      ExactSum a, b;
      for (size_t i = 0; i < shuffled.size(); ++i) (i % 2 ? a : b).add(shuffled[i]);
      ExactSum merged;
      REQUIRE(decode_exact_sum(encode_exact_sum(a), &merged));
      REQUIRE(decode_exact_sum(encode_exact_sum(b), &merged));
      CHECK(merged.value() == forward.value());
    }
  }
  ExactSum tenth;
  for (int i = 0; i < 10; ++i) tenth.add(0.1);
  CHECK(tenth.value() == 1.0);  // the naive sum is 0.9999999999999999
  ExactSum cancel;
  for (double v : {1e16, 1.0, -1e16}) cancel.add(v);
  CHECK(cancel.value() == 1.0);  // the naive sum is 0
  ExactSum bad;
  CHECK_FALSE(decode_exact_sum("1234567", &bad));
}

TEST_CASE("stats: percentiles over several lists equal a sort of their union") {
  // The nearest-rank value from a full sort: what percentiles_of must give, bucket by bucket.
  auto reference = [](std::vector<int64_t> all, double p) -> std::optional<int64_t> {
    if (all.empty()) return std::nullopt;
    std::sort(all.begin(), all.end());
    auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(all.size())));
    return all[rank == 0 ? 0 : std::min(rank, all.size()) - 1];
  };
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  std::mt19937_64 rng(11);
  struct Shape {
    const char* name;
    std::function<int64_t()> draw;
  };
  const std::vector<Shape> shapes = {
      {"small range", [&] { return static_cast<int64_t>(rng() % 50); }},
      {"durations", [&] { return static_cast<int64_t>(200 + rng() % 90'000'000); }},
      {"all equal", [] { return int64_t{42}; }},
      {"negative and positive", [&] { return static_cast<int64_t>(rng() % 2001) - 1000; }},
      {"the whole int64 range", [&] { return static_cast<int64_t>(rng()); }},
      {"extremes", [&] { return rng() % 2 ? kMin : kMax; }},
      {"one far outlier", [&] { return rng() % 1000 ? static_cast<int64_t>(rng() % 10) : kMax; }},
  };
  for (const Shape& shape : shapes) {
    for (size_t n : {0, 1, 2, 3, 20, 21, 101, 5000, 70000}) {
      CAPTURE(shape.name);
      CAPTURE(n);
      // Split over 0-4 lists of uneven size, some empty.
      std::vector<std::vector<int64_t>> lists(1 + rng() % 4);
      std::vector<int64_t> all;
      for (size_t i = 0; i < n; ++i) {
        int64_t v = shape.draw();
        lists[rng() % lists.size()].push_back(v);
        all.push_back(v);
      }
      std::vector<const std::vector<int64_t>*> ptrs;
      for (const auto& l : lists) ptrs.push_back(&l);
      const auto before = lists;
      std::optional<int64_t> got[5];
      percentiles_of(ptrs, {1, 50, 95, 99, 100}, got);
      const double ps[] = {1, 50, 95, 99, 100};
      for (int i = 0; i < 5; ++i) CHECK(got[i] == reference(all, ps[i]));
      CHECK(lists == before);  // nothing reordered
    }
  }
}

TEST_CASE("stats rollup: whole hours and the ranges left to the rows") {
  using R = TimeRange;
  struct Case {
    std::optional<int64_t> since, until;
    std::vector<int64_t> dirty;
    std::optional<R> whole;
    std::vector<R> rows;
  };
  const int64_t b = kBase;
  const std::vector<Case> cases = {
      // Unbounded: every hour is whole; only dirty hours are read from rows.
      {std::nullopt, std::nullopt, {}, R{}, {}},
      {std::nullopt,
       std::nullopt,
       {b, b + kH, b + 3 * kH},
       R{},
       {{b, b + 2 * kH}, {b + 3 * kH, b + 4 * kH}}},
      // On hour boundaries: no partial hours.
      {b, b + 5 * kH, {}, R{b, b + 5 * kH}, {}},
      {b, b + 5 * kH, {b + 4 * kH}, R{b, b + 5 * kH}, {{b + 4 * kH, b + 5 * kH}}},
      // Off boundaries: the partial hours at both ends, merged with adjacent dirty hours.
      {b + 1,
       b + 5 * kH - 1,
       {},
       R{b + kH, b + 4 * kH},
       {{b + 1, b + kH}, {b + 4 * kH, b + 5 * kH - 1}}},
      {b + 1,
       b + 5 * kH - 1,
       {b + kH, b + 3 * kH},
       R{b + kH, b + 4 * kH},
       {{b + 1, b + 2 * kH}, {b + 3 * kH, b + 5 * kH - 1}}},
      {b + 1, std::nullopt, {}, R{b + kH, std::nullopt}, {{b + 1, b + kH}}},
      {std::nullopt,
       b + 2 * kH + 7,
       {b},
       R{std::nullopt, b + 2 * kH},
       {{b, b + kH}, {b + 2 * kH, b + 2 * kH + 7}}},
      // Within one hour, or exactly one hour off the boundaries: no whole hour.
      {b + 10, b + 20, {}, std::nullopt, {{b + 10, b + 20}}},
      {b + 10, b + kH + 10, {}, std::nullopt, {{b + 10, b + kH + 10}}},
      {b, b, {}, std::nullopt, {{b, b}}},
      // Before 1970 too.
      {-kH - 5, kH, {}, R{-kH, kH}, {{-kH - 5, -kH}}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.since.value_or(-1));
    CAPTURE(c.until.value_or(-1));
    CHECK(whole_hours(c.since, c.until) == c.whole);
    CHECK(row_ranges(c.since, c.until, c.dirty) == c.rows);
  }
  CHECK(hour_start(b + kH - 1) == b);
  CHECK(hour_start(-1) == -kH);
  CHECK(hour_start(-kH) == -kH);
}

TEST_CASE("stats rollup: answers from rollups are byte-identical to the row scan") {
  TempDir dir;
  const std::string path = dir.path() + "/index.sqlite";
  auto wdb = open_index(path, true);
  IndexWriter writer(*wdb);
  std::mt19937_64 rng(20251205);
  constexpr int kHours = 60;  // two and a half days, so `day` has several groups
  int n = 0;
  writer.begin();
  for (int h = 0; h < kHours; ++h) {
    if (h % 13 == 5) continue;  // hours without rows
    int rows = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < rows; ++i) {
      // Some rows exactly on the hour's first and last microsecond.
      int64_t off = i == 0 ? 0 : (i == 1 ? kH - 1 : static_cast<int64_t>(rng() % kH));
      writer.insert(random_row(rng, n++, kBase + h * kH + off));
    }
  }
  writer.commit();
  auto rdb = open_index(path, false);
  IndexReader reader(*rdb);

  auto compare_all = [&](bool expect_parts) {
    std::vector<ListQuery> queries;
    std::vector<std::optional<int64_t>> times = {std::nullopt,        kBase,
                                                 kBase + 3 * kH,      kBase + 3 * kH + 1,
                                                 kBase + 17 * kH - 1, kBase + 30 * kH + 123456,
                                                 kBase + kHours * kH, kBase - 5 * kH + 77};
    for (const auto& since : times) {
      for (const auto& until : times) {
        if (since && until && *until < *since) continue;
        ListQuery q;
        q.since_us = since;
        q.until_us = until;
        queries.push_back(q);
      }
    }
    auto with = [&](auto set) {
      for (int i = 0; i < 3; ++i) {
        ListQuery q;
        if (rng() % 2) q.since_us = kBase + static_cast<int64_t>(rng() % (kHours * kH));
        if (rng() % 2) q.until_us = kBase + static_cast<int64_t>(rng() % (kHours * kH));
        if (q.since_us && q.until_us && *q.until_us < *q.since_us)
          std::swap(q.since_us, q.until_us);
        set(q);
        queries.push_back(q);
      }
    };
    with([](ListQuery& q) { q.route = "anthropic"; });
    with([](ListQuery& q) { q.route = ""; });
    with([](ListQuery& q) { q.model = "claude"; });
    with([](ListQuery& q) { q.provider = "openai"; });
    with([](ListQuery& q) { q.status = 429; });
    with([](ListQuery& q) { q.outcome = "in_progress"; });
    with([](ListQuery& q) {
      q.route = "openai";
      q.model = "gpt-4o";
      q.status = 200;
      q.outcome = "complete";
      q.provider = "openai";
    });
    with([](ListQuery& q) { q.method = "POST"; });  // rows only
    with([](ListQuery& q) { q.q = "chat"; });       // rows only
    size_t parts = 0;
    for (const ListQuery& q : queries) {
      for (GroupBy by : kAllGroupings) {
        CAPTURE(q.since_us.value_or(-1));
        CAPTURE(q.until_us.value_or(-1));
        CAPTURE(static_cast<int>(by));
        StatsReadReport report;
        std::string fast = by_rollups(reader, q, by, &report);
        REQUIRE(fast == by_rows(reader, q, by));
        parts += report.parts;
        if (q.method || q.q) CHECK(report.parts == 0);
      }
    }
    CHECK((parts > 0) == expect_parts);
  };

  // Nothing built: every hour is dirty, everything comes from rows.
  CHECK(dirty_hours(*wdb).size() == static_cast<size_t>(kHours - 5));
  compare_all(false);
  // Partly built (newest first), then fully.
  RollupBuildResult r =
      build_stats_rollups(*wdb, kFuture, {.max_hours = 20, .budget = std::chrono::hours(1)});
  CHECK(r.built == 20);
  CHECK(r.pending == static_cast<size_t>(kHours - 5 - 20));
  compare_all(true);
  r = build_stats_rollups(*wdb, kFuture, unbounded());
  CHECK(r.pending == 0);
  CHECK(dirty_hours(*wdb).empty());
  compare_all(true);
  // The unfiltered query reads no rows at all once everything is built.
  StatsReadReport report;
  by_rollups(reader, ListQuery{}, GroupBy::kModel, &report);
  CHECK(report.rows == 0);
  CHECK(report.parts > 0);
  // More rows in built hours and new hours, deletions, updates: dirty again, still identical.
  writer.begin();
  for (int i = 0; i < 30; ++i) {
    writer.insert(random_row(rng, n++, kBase + static_cast<int64_t>(rng() % (kHours + 3)) * kH));
  }
  writer.commit();
  wdb->exec("DELETE FROM exchanges WHERE rowid % 17 = 3");
  wdb->exec("UPDATE exchanges SET cost = 0.7 WHERE rowid % 11 = 1");
  CHECK_FALSE(dirty_hours(*wdb).empty());
  compare_all(true);
  build_stats_rollups(*wdb, kFuture, unbounded());
  compare_all(true);
}

TEST_CASE("stats rollup: a change in a built hour marks it dirty, and only then") {
  TempDir dir;
  const std::string path = dir.path() + "/index.sqlite";
  auto db = open_index(path, true);
  IndexWriter writer(*db);
  // Three hours, two rows each.
  for (int i = 0; i < 6; ++i) {
    ExchangeRow r = make_row(i, kBase + (i / 2) * kH + 10 * i);
    r.model = "m";
    r.total_us = 1000 + i;
    r.cost = 0.25;
    writer.insert(r);
  }
  CHECK(dirty_hours(*db) == std::vector<int64_t>{kBase, kBase + kH, kBase + 2 * kH});
  build_stats_rollups(*db, kFuture, unbounded());
  REQUIRE(dirty_hours(*db).empty());
  CHECK(count_of(*db, "SELECT count(*) FROM stats_hourly") == 3);
  IndexReader reader(*db);
  auto same = [&] {
    for (GroupBy by : kAllGroupings) {
      CHECK(by_rollups(reader, ListQuery{}, by) == by_rows(reader, ListQuery{}, by));
    }
  };
  const std::string id0 = make_row(0, 0).id;
  const std::string id2 = make_row(2, 0).id;

  SUBCASE("a column /stats does not read, or the same value again: still clean") {
    db->exec("UPDATE exchanges SET request_file_size = 99, derived_version = NULL");
    db->exec("UPDATE exchanges SET model = 'm', cost = 0.25, status = 200");
    auto row = writer.find(id0);
    REQUIRE(row);
    writer.update(*row);  // ingest rewrites the end fields with the same values
    CHECK(dirty_hours(*db).empty());
  }
  SUBCASE("update of each column /stats reads") {
    const char* const kUpdates[] = {
        "UPDATE exchanges SET route = 'x' WHERE id = ?1",
        "UPDATE exchanges SET model = NULL WHERE id = ?1",
        "UPDATE exchanges SET provider = 'p' WHERE id = ?1",
        "UPDATE exchanges SET status = 500 WHERE id = ?1",
        "UPDATE exchanges SET outcome = 'truncated' WHERE id = ?1",
        "UPDATE exchanges SET total_us = 7 WHERE id = ?1",
        "UPDATE exchanges SET ttft_us = 7 WHERE id = ?1",
        "UPDATE exchanges SET input_tokens = 7 WHERE id = ?1",
        "UPDATE exchanges SET output_tokens = 7 WHERE id = ?1",
        "UPDATE exchanges SET cached_input_tokens = 7 WHERE id = ?1",
        "UPDATE exchanges SET cost = 0.5 WHERE id = ?1",
        "UPDATE exchanges SET llm_error = 1 WHERE id = ?1",
    };
    for (const char* sql : kUpdates) {
      CAPTURE(sql);
      Statement& s = db->cached(sql);
      StatementScope scope(s);
      s.bind(1, id2);
      s.step();
      CHECK(dirty_hours(*db) == std::vector<int64_t>{kBase + kH});
      same();  // the change shows at once: the dirty hour is read from rows
      build_stats_rollups(*db, kFuture, unbounded());
      CHECK(dirty_hours(*db).empty());
      same();
    }
  }
  SUBCASE("moving a row to another hour dirties both") {
    Statement& s = db->cached("UPDATE exchanges SET started_us = ?2 WHERE id = ?1");
    StatementScope scope(s);
    s.bind(1, id0).bind(2, kBase + 2 * kH + 5);
    s.step();
    CHECK(dirty_hours(*db) == std::vector<int64_t>{kBase, kBase + 2 * kH});
    same();
  }
  SUBCASE("insert and delete") {
    writer.insert(make_row(100, kBase + 2 * kH + kH - 1));
    CHECK(dirty_hours(*db) == std::vector<int64_t>{kBase + 2 * kH});
    same();
    build_stats_rollups(*db, kFuture, unbounded());
    Statement& s = db->cached("DELETE FROM exchanges WHERE id = ?1");
    StatementScope scope(s);
    s.bind(1, id0);
    s.step();
    CHECK(dirty_hours(*db) == std::vector<int64_t>{kBase});
    same();
    // Deleting the last rows of an hour: built again, the hour has no parts left.
    db->exec("DELETE FROM exchanges WHERE started_us < " + std::to_string(kBase + kH));
    build_stats_rollups(*db, kFuture, unbounded());
    CHECK(count_of(*db, "SELECT count(*) FROM stats_hourly WHERE hour_us = " +
                            std::to_string(kBase)) == 0);
    same();
  }
  SUBCASE("a stored part that cannot be decoded: that hour is read from rows") {
    db->exec("UPDATE stats_hourly SET durations = x'80' WHERE hour_us = " +
             std::to_string(kBase + kH));
    StatsReadReport report;
    CHECK(by_rollups(reader, ListQuery{}, GroupBy::kHour, &report) ==
          by_rows(reader, ListQuery{}, GroupBy::kHour));
    CHECK(report.rows == 2);
    CHECK(report.parts == 2);
  }
}

TEST_CASE("stats rollup: a version 3 index migrates with its hours dirty, then builds") {
  TempDir dir;
  const std::string path = dir.path() + "/index.sqlite";
  {
    // A version 3 index is this schema without the rollup tables and triggers.
    auto db = open_index(path, true);
    db->exec(
        "DROP TRIGGER stats_dirty_on_insert; DROP TRIGGER stats_dirty_on_delete; DROP TRIGGER "
        "stats_dirty_on_update; DROP TABLE stats_hourly; DROP TABLE stats_dirty_hours; PRAGMA "
        "user_version = 3");
    IndexWriter writer(*db);
    for (int i = 0; i < 7; ++i) writer.insert(make_row(i, kBase + (i % 3) * 5 * kH + i));
    writer.insert(make_row(50, kBase - 2 * kH));
  }
  auto db = open_index(path, true);
  CHECK(count_of(*db, "PRAGMA user_version") == 4);
  CHECK(dirty_hours(*db) ==
        std::vector<int64_t>{kBase - 2 * kH, kBase, kBase + 5 * kH, kBase + 10 * kH});
  IndexReader reader(*db);
  CHECK(by_rollups(reader, ListQuery{}, GroupBy::kHour) ==
        by_rows(reader, ListQuery{}, GroupBy::kHour));
  RollupBuildResult r = build_stats_rollups(*db, kFuture, unbounded());
  CHECK(r.built == 4);
  CHECK(r.pending == 0);
  StatsReadReport report;
  CHECK(by_rollups(reader, ListQuery{}, GroupBy::kHour, &report) ==
        by_rows(reader, ListQuery{}, GroupBy::kHour));
  CHECK(report.rows == 0);
  // Opening again changes nothing.
  db.reset();
  db = open_index(path, true);
  CHECK(dirty_hours(*db).empty());
}

TEST_CASE("stats rollup: the builder keeps to its bounds and leaves the running hour") {
  TempDir dir;
  const std::string path = dir.path() + "/index.sqlite";
  auto db = open_index(path, true);
  IndexWriter writer(*db);
  for (int h = 0; h < 10; ++h) writer.insert(make_row(h, kBase + h * kH + 1));
  const int64_t now = kBase + 9 * kH + 30;  // hour 9 is running

  RollupBuildResult r =
      build_stats_rollups(*db, now, {.max_hours = 3, .budget = std::chrono::hours(1)});
  CHECK(r.built == 3);
  CHECK(r.pending == 6);
  // Newest first.
  CHECK(dirty_hours(*db) == std::vector<int64_t>{kBase, kBase + kH, kBase + 2 * kH, kBase + 3 * kH,
                                                 kBase + 4 * kH, kBase + 5 * kH, kBase + 9 * kH});
  // A spent time budget still builds one hour per pass (progress), never more.
  for (size_t left = 6; left > 0; --left) {
    r = build_stats_rollups(*db, now, {.budget = std::chrono::nanoseconds(0)});
    CHECK(r.built == 1);
    CHECK(r.pending == left - 1);
  }
  r = build_stats_rollups(*db, now, unbounded());
  CHECK(r.built == 0);
  CHECK(r.pending == 0);
  CHECK(dirty_hours(*db) == std::vector<int64_t>{kBase + 9 * kH});
  // Once it has ended (its last microsecond is past), it is built.
  r = build_stats_rollups(*db, kBase + 10 * kH - 1, unbounded());
  CHECK(r.built == 0);
  r = build_stats_rollups(*db, kBase + 10 * kH, unbounded());
  CHECK(r.built == 1);
  CHECK(dirty_hours(*db).empty());
}
