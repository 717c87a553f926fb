// Hourly rollups for GET /stats, so that a query over a million exchanges reads a few
// thousand pre-summed rows instead of stepping through every exchange, with answers that stay
// exact (decision 004).
//
// The tables (index_schema.cc, schema version 4):
//   stats_hourly       one row per (hour, route, model, provider, status, outcome): counts,
//                      token sums, the cost as an exact sum, and every duration and TTFT
//                      (sorted, delta + varint coded), so percentiles are the row scan's.
//   stats_dirty_hours  the hours whose stats_hourly rows are missing or out of date.
// SQLite triggers on `exchanges` put an hour into stats_dirty_hours whenever a row of it is
// inserted, deleted or changes a column /stats reads, in the writer's own transaction: every
// writer (ingest, the deriver, retention, `log-server reindex` in another process) keeps the
// invariant without knowing about rollups. The invariant: for every hour not in
// stats_dirty_hours, its stats_hourly rows are exactly the sum of its exchanges (none: no
// exchanges). A dirty hour's stale rows are ignored until it is built again.
//
// build_stats_rollups() (the deriver's thread, with its writer connection) builds dirty hours
// that have ended, one hour per BEGIN IMMEDIATE transaction. read_stats() (any API thread, a
// reader connection) takes whole clean hours from the rollups and everything else from the
// rows, inside one read transaction, so both come from the same snapshot.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "log-server/index_reader.h"
#include "log-server/list_query.h"
#include "log-server/stats.h"

namespace lp::logsrv {

inline constexpr int64_t kUsPerHour = 3600LL * 1000 * 1000;

// The start of the UTC hour holding `us` (floor, for times before 1970 too).
constexpr int64_t hour_start(int64_t us) {
  return us - (((us % kUsPerHour) + kUsPerHour) % kUsPerHour);
}

// Sorted values as a blob: the first value zigzag'ed, then the gaps to the next, each an
// unsigned LEB128 varint (a million durations take ~2-3 MB instead of 8). `sorted` must be
// ascending.
std::string encode_sorted_values(const std::vector<int64_t>& sorted);
// Appends the values of a blob to `out`; false (out unspecified) when the blob is malformed.
bool decode_sorted_values(std::string_view blob, std::vector<int64_t>* out);

// An ExactSum as a blob (its parts, 8 bytes each, little-endian IEEE 754) and back.
std::string encode_exact_sum(const ExactSum& sum);
bool decode_exact_sum(std::string_view blob, ExactSum* out);

// A half-open time range [from, to); nullopt: unbounded on that side.
struct TimeRange {
  std::optional<int64_t> from;
  std::optional<int64_t> to;
  bool operator==(const TimeRange&) const = default;
};

// The whole hours inside [since, until) as a range of hour starts [from, to) (so an hour h is
// whole when from <= h < to); nullopt when no hour fits.
std::optional<TimeRange> whole_hours(std::optional<int64_t> since, std::optional<int64_t> until);

// What a rollup query still reads from rows: [since, until) minus the clean whole hours, i.e.
// the partial hours at either end plus the `dirty` hours (ascending, all whole hours of the
// query), adjacent pieces merged.
std::vector<TimeRange> row_ranges(std::optional<int64_t> since, std::optional<int64_t> until,
                                  const std::vector<int64_t>& dirty);

// Whether the rollups can answer these filters (they keep route, model, provider, status and
// outcome per part, and hours for since/until; method, q and replay_of need the rows).
bool rollups_apply(const ListQuery& q);

// How read_stats() answered (for tests and the bench's curiosity).
struct StatsReadReport {
  size_t parts = 0;       // rollup rows added
  size_t row_ranges = 0;  // row scans run
  size_t rows = 0;        // exchange rows added
};

// Adds every exchange the filters select to `acc`, from rollups where they apply, else from
// rows; the result is identical either way. Runs one read transaction on the reader's
// connection (which must not be in one already).
StatsReadReport read_stats(IndexReader& reader, const ListQuery& q, StatsAccumulator& acc);

// The parts of one hour's rows, in key order (pure; the builder and the tests use it).
class HourRollup {
 public:
  explicit HourRollup(int64_t hour_us) : hour_us_(hour_us) {}
  void add(const StatsRow& row);
  // The parts with their value lists sorted.
  std::vector<StatsPart> finish();

 private:
  int64_t hour_us_;
  std::vector<StatsPart> parts_;
};

struct RollupBuildLimits {
  size_t max_hours = 100000;
  // Checked after each hour: a pass builds at least one hour when one is due.
  std::chrono::steady_clock::duration budget = std::chrono::milliseconds(100);
};

struct RollupBuildResult {
  size_t built = 0;    // hours built in this pass
  size_t pending = 0;  // ended hours still dirty afterwards
};

// Builds dirty hours that ended by `now_us` (newest first: recent ranges are asked for most),
// each in its own BEGIN IMMEDIATE transaction on `db` (a writer connection, outside any
// transaction), until `limits` say stop. Throws SqliteError.
RollupBuildResult build_stats_rollups(Database& db, int64_t now_us,
                                      const RollupBuildLimits& limits = {});

// Marks every hour that has exchanges dirty (the v3 -> v4 migration: nothing is rolled up
// yet). Visits one row per hour through the time index, not every row.
void mark_all_hours_dirty(Database& db);

}  // namespace lp::logsrv
