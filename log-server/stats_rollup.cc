#include "log-server/stats_rollup.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <tuple>

namespace lp::logsrv {

namespace {

constexpr int64_t kMinUs = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxUs = std::numeric_limits<int64_t>::max();

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool get_varint(std::string_view& in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    // The tenth byte may hold only the top bit.
    if (shift == 63 && byte > 1) return false;
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *v = result;
      return true;
    }
  }
  return false;
}

std::optional<int64_t> ceil_hour(int64_t us) {
  int64_t h = hour_start(us);
  if (h == us) return h;
  if (h > kMaxUs - kUsPerHour) return std::nullopt;
  return h + kUsPerHour;
}

}  // namespace

std::string encode_sorted_values(const std::vector<int64_t>& sorted) {
  std::string out;
  out.reserve(sorted.size() * 2);
  uint64_t prev = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    auto v = static_cast<uint64_t>(sorted[i]);
    if (i == 0) {
      // Zigzag, so that a small negative first value stays short.
      put_varint(out, (v << 1) ^ static_cast<uint64_t>(sorted[i] >> 63));
    } else {
      put_varint(out, v - prev);  // wraps correctly: the gap of an ascending pair fits
    }
    prev = v;
  }
  return out;
}

bool decode_sorted_values(std::string_view blob, std::vector<int64_t>* out) {
  uint64_t prev = 0;
  for (bool first = true; !blob.empty(); first = false) {
    uint64_t v = 0;
    if (!get_varint(blob, &v)) return false;
    prev = first ? (v >> 1) ^ (~(v & 1) + 1) : prev + v;
    out->push_back(static_cast<int64_t>(prev));
  }
  return true;
}

std::string encode_exact_sum(const ExactSum& sum) {
  std::string out;
  for (double d : sum.parts()) {
    uint64_t bits = 0;
    std::memcpy(&bits, &d, sizeof bits);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  }
  return out;
}

bool decode_exact_sum(std::string_view blob, ExactSum* out) {
  if (blob.size() % 8 != 0) return false;
  for (size_t at = 0; at < blob.size(); at += 8) {
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) {
      bits |= static_cast<uint64_t>(static_cast<uint8_t>(blob[at + static_cast<size_t>(i)]))
              << (8 * i);
    }
    double d = 0;
    std::memcpy(&d, &bits, sizeof d);
    out->add(d);  // adding the parts of an exact sum reproduces it exactly
  }
  return true;
}

std::optional<TimeRange> whole_hours(std::optional<int64_t> since, std::optional<int64_t> until) {
  TimeRange span;
  if (since) {
    span.from = ceil_hour(*since);
    if (!span.from) return std::nullopt;
  }
  if (until) span.to = hour_start(*until);
  if (span.from && span.to && *span.from >= *span.to) return std::nullopt;
  return span;
}

std::vector<TimeRange> row_ranges(std::optional<int64_t> since, std::optional<int64_t> until,
                                  const std::vector<int64_t>& dirty) {
  std::optional<TimeRange> span = whole_hours(since, until);
  if (!span) return {TimeRange{since, until}};
  std::vector<TimeRange> out;
  auto push = [&](TimeRange r) {
    if (!out.empty() && out.back().to && r.from && *out.back().to == *r.from) {
      out.back().to = r.to;
    } else {
      out.push_back(r);
    }
  };
  if (since && *since < *span->from) push({since, span->from});
  for (int64_t h : dirty) {
    // The last hour before the end of time has no end to name: unbounded.
    std::optional<int64_t> end;
    if (h <= kMaxUs - kUsPerHour) end = h + kUsPerHour;
    push({h, end});
  }
  if (until && *span->to < *until) push({span->to, until});
  return out;
}

bool rollups_apply(const ListQuery& q) {
  return !q.method && !q.q && !q.replay_of && !q.cursor;
}

void HourRollup::add(const StatsRow& row) {
  // Rows arrive in the covering index's order (started_us first), so equal keys are not
  // adjacent: look the part up.
  auto same_key = [&](const StatsPart& p) {
    return p.route == row.route && p.outcome == row.outcome && p.status == row.status &&
           p.model.has_value() == row.model.has_value() && (!p.model || *p.model == *row.model) &&
           p.provider.has_value() == row.provider.has_value() &&
           (!p.provider || *p.provider == *row.provider);
  };
  // The most recent part is the likeliest match; then the rest (few per hour in practice,
  // and a hash would cost as much for so few).
  StatsPart* part = nullptr;
  if (!parts_.empty() && same_key(parts_.back())) part = &parts_.back();
  for (size_t i = 0; !part && i < parts_.size(); ++i) {
    if (same_key(parts_[i])) part = &parts_[i];
  }
  if (!part) {
    StatsPart& p = parts_.emplace_back();
    p.hour_us = hour_us_;
    p.route = std::string(row.route);
    if (row.model) p.model = std::string(*row.model);
    if (row.provider) p.provider = std::string(*row.provider);
    p.status = row.status;
    p.outcome = std::string(row.outcome);
    part = &p;
  }
  part->add(row);
}

std::vector<StatsPart> HourRollup::finish() {
  auto key = [](const StatsPart& p) {
    return std::tie(p.route, p.model, p.provider, p.status, p.outcome);
  };
  std::sort(parts_.begin(), parts_.end(),
            [&](const StatsPart& a, const StatsPart& b) { return key(a) < key(b); });
  for (StatsPart& p : parts_) {
    std::sort(p.duration_us.begin(), p.duration_us.end());
    std::sort(p.ttft_us.begin(), p.ttft_us.end());
  }
  return std::move(parts_);
}

namespace {

void run_row_scans(IndexReader& reader, const ListQuery& q, const std::vector<TimeRange>& ranges,
                   StatsAccumulator& acc, StatsReadReport& report) {
  for (const TimeRange& r : ranges) {
    ListQuery part = q;
    part.since_us = r.from;
    part.until_us = r.to;
    reader.for_each_stats_row(part, [&](const StatsRow& row) {
      acc.add(row);
      ++report.rows;
    });
    ++report.row_ranges;
  }
}

void add_parts(Statement& s, const std::vector<int64_t>& dirty, StatsAccumulator& acc,
               StatsReadReport& report, std::vector<int64_t>* unreadable);

// Reads the parts of the whole hours [from, to) that pass the filters and are not `dirty` into
// `acc`, hour by hour; an hour whose stored part cannot be decoded is added to `unreadable`
// (its rows are read instead) and none of its parts are used.
void add_rollups(Database& db, const ListQuery& q, int64_t from, int64_t to,
                 const std::vector<int64_t>& dirty, StatsAccumulator& acc, StatsReadReport& report,
                 std::vector<int64_t>* unreadable) {
  // Read twice: the keys and counts first (no BLOBs, so cheap) to size the value vectors,
  // then everything.
  for (bool sizing : {true, false}) {
    std::string sql = "SELECT hour_us, route, model, provider, status, outcome, requests";
    if (!sizing) {
      sql +=
          ", errors, input_tokens, output_tokens, cached_input_tokens, cost, cost_rows, "
          "durations, ttfts";
    }
    sql += " FROM stats_hourly WHERE hour_us >= ? AND hour_us < ?";
    if (q.route) sql += " AND route = ?";
    if (q.status) sql += " AND status = ?";
    if (q.outcome) sql += " AND outcome = ?";
    if (q.model) sql += " AND model = ?";
    if (q.provider) sql += " AND provider = ?";
    sql += " ORDER BY hour_us, part";
    Statement& s = db.cached(sql);
    StatementScope scope(s);
    s.bind(1, from).bind(2, to);
    int c = 3;
    if (q.route) s.bind(c++, *q.route);
    if (q.status) s.bind(c++, *q.status);
    if (q.outcome) s.bind(c++, *q.outcome);
    if (q.model) s.bind(c++, *q.model);
    if (q.provider) s.bind(c++, *q.provider);
    if (sizing) {
      StatsPart p;
      while (s.step()) {
        p.hour_us = s.int64(0);
        if (std::binary_search(dirty.begin(), dirty.end(), p.hour_us)) continue;
        p.route = s.text(1);
        p.model = s.opt_text(2);
        p.provider = s.opt_text(3);
        p.status = s.opt_int64(4);
        p.outcome = s.text(5);
        p.requests = s.int64(6);
        acc.plan(p);
      }
      acc.reserve_planned();
      continue;
    }
    add_parts(s, dirty, acc, report, unreadable);
  }
}

// The second reading of add_rollups(): whole parts, hour by hour.
void add_parts(Statement& s, const std::vector<int64_t>& dirty, StatsAccumulator& acc,
               StatsReadReport& report, std::vector<int64_t>* unreadable) {
  std::vector<StatsPart> hour;  // the parts of the hour being read
  size_t used = 0;
  bool hour_ok = true;
  auto flush = [&] {
    if (used == 0) return;
    if (hour_ok) {
      for (size_t i = 0; i < used; ++i) acc.add(hour[i]);
      report.parts += used;
    } else {
      unreadable->push_back(hour[0].hour_us);
    }
    used = 0;
    hour_ok = true;
  };
  while (s.step()) {
    int64_t h = s.int64(0);
    if (used > 0 && hour[0].hour_us != h) flush();
    // A dirty hour's parts are stale: its rows are read instead.
    if (std::binary_search(dirty.begin(), dirty.end(), h)) continue;
    if (used == hour.size()) hour.emplace_back();
    StatsPart& p = hour[used++];
    p.hour_us = h;
    p.route = s.text(1);
    p.model = s.opt_text(2);
    p.provider = s.opt_text(3);
    p.status = s.opt_int64(4);
    p.outcome = s.text(5);
    p.requests = s.int64(6);
    p.errors = s.int64(7);
    p.input_tokens = s.int64(8);
    p.output_tokens = s.int64(9);
    p.cached_input_tokens = s.int64(10);
    p.cost = ExactSum();
    p.cost_rows = s.int64(12);
    p.duration_us.clear();
    p.ttft_us.clear();
    if (!decode_exact_sum(s.blob(11), &p.cost) ||
        !decode_sorted_values(s.blob(13), &p.duration_us) ||
        !decode_sorted_values(s.blob(14), &p.ttft_us)) {
      hour_ok = false;
    }
  }
  flush();
}

}  // namespace

StatsReadReport read_stats(IndexReader& reader, const ListQuery& q, StatsAccumulator& acc) {
  StatsReadReport report;
  std::optional<TimeRange> span = whole_hours(q.since_us, q.until_us);
  if (!rollups_apply(q) || !span) {
    run_row_scans(reader, q, {TimeRange{q.since_us, q.until_us}}, acc, report);
    return report;
  }
  Database& db = reader.db();
  const int64_t from = span->from.value_or(kMinUs);
  const int64_t to = span->to.value_or(kMaxUs);
  // One snapshot for the dirty list, the parts and the rows: a writer committing in between
  // cannot make an hour count twice or not at all.
  db.exec("BEGIN");
  try {
    std::vector<int64_t> dirty;
    {
      Statement& s = db.cached(
          "SELECT hour_us FROM stats_dirty_hours WHERE hour_us >= ?1 AND hour_us < ?2 "
          "ORDER BY hour_us");
      StatementScope scope(s);
      s.bind(1, from).bind(2, to);
      while (s.step()) dirty.push_back(s.int64(0));
    }
    std::vector<int64_t> unreadable;
    add_rollups(db, q, from, to, dirty, acc, report, &unreadable);
    if (!unreadable.empty()) {
      dirty.insert(dirty.end(), unreadable.begin(), unreadable.end());
      std::sort(dirty.begin(), dirty.end());
    }
    run_row_scans(reader, q, row_ranges(q.since_us, q.until_us, dirty), acc, report);
    db.exec("COMMIT");
  } catch (...) {
    db.rollback();
    throw;
  }
  return report;
}

namespace {

// Rebuilds the parts of hour `h` from its rows; the caller holds the write transaction.
void build_hour(Database& db, int64_t h) {
  {
    Statement& del = db.cached("DELETE FROM stats_hourly WHERE hour_us = ?1");
    StatementScope scope(del);
    del.bind(1, h);
    del.step();
  }
  HourRollup rollup(h);
  ListQuery rows;
  rows.since_us = h;
  if (h <= kMaxUs - kUsPerHour) rows.until_us = h + kUsPerHour;
  IndexReader(db).for_each_stats_row(rows, [&](const StatsRow& row) { rollup.add(row); });
  Statement& ins = db.cached(
      "INSERT INTO stats_hourly (hour_us, part, route, model, provider, status, outcome, "
      "requests, errors, input_tokens, output_tokens, cached_input_tokens, cost, cost_rows, "
      "durations, ttfts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
      "?15, ?16)");
  int64_t n = 0;
  for (const StatsPart& p : rollup.finish()) {
    StatementScope scope(ins);
    ins.bind(1, h).bind(2, n++).bind(3, p.route).bind(4, p.model).bind(5, p.provider);
    ins.bind(6, p.status).bind(7, p.outcome).bind(8, p.requests).bind(9, p.errors);
    ins.bind(10, p.input_tokens).bind(11, p.output_tokens).bind(12, p.cached_input_tokens);
    ins.bind_blob(13, encode_exact_sum(p.cost)).bind(14, p.cost_rows);
    ins.bind_blob(15, encode_sorted_values(p.duration_us));
    ins.bind_blob(16, encode_sorted_values(p.ttft_us));
    ins.step();
  }
  Statement& clean = db.cached("DELETE FROM stats_dirty_hours WHERE hour_us = ?1");
  StatementScope scope(clean);
  clean.bind(1, h);
  clean.step();
}

}  // namespace

RollupBuildResult build_stats_rollups(Database& db, int64_t now_us,
                                      const RollupBuildLimits& limits) {
  RollupBuildResult result;
  // An hour has ended when its last microsecond is in the past: h + 1 h <= now.
  const int64_t last_ended = now_us - kUsPerHour;
  const auto start = std::chrono::steady_clock::now();
  while (result.built < limits.max_hours) {
    // Picked inside the transaction that builds it, so no write can slip in between.
    db.exec("BEGIN IMMEDIATE");
    try {
      std::optional<int64_t> h;
      {
        Statement& s = db.cached(
            "SELECT hour_us FROM stats_dirty_hours WHERE hour_us <= ?1 ORDER BY hour_us DESC "
            "LIMIT 1");
        StatementScope scope(s);
        s.bind(1, last_ended);
        if (s.step()) h = s.int64(0);
      }
      if (h) build_hour(db, *h);
      db.exec("COMMIT");
      if (!h) break;
    } catch (...) {
      db.rollback();
      throw;
    }
    ++result.built;
    if (std::chrono::steady_clock::now() - start >= limits.budget) break;
  }
  Statement& s = db.cached("SELECT count(*) FROM stats_dirty_hours WHERE hour_us <= ?1");
  StatementScope scope(s);
  s.bind(1, last_ended);
  if (s.step()) result.pending = static_cast<size_t>(s.int64(0));
  return result;
}

void mark_all_hours_dirty(Database& db) {
  Statement& next = db.cached(
      "SELECT started_us FROM exchanges WHERE started_us >= ?1 ORDER BY started_us "
      "LIMIT 1");
  Statement& mark = db.cached("INSERT OR IGNORE INTO stats_dirty_hours (hour_us) VALUES (?1)");
  int64_t from = kMinUs;
  for (;;) {
    int64_t h = 0;
    {
      StatementScope scope(next);
      next.bind(1, from);
      if (!next.step()) return;
      h = hour_start(next.int64(0));
    }
    {
      StatementScope scope(mark);
      mark.bind(1, h);
      mark.step();
    }
    if (h > kMaxUs - kUsPerHour) return;
    from = h + kUsPerHour;  // the next hour's first row, one index seek away
  }
}

}  // namespace lp::logsrv
