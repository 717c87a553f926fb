// GET /stats: rows the filters select, grouped, summed and ranked. Pure: rows in, JSON out.
// Percentiles are exact (nearest rank over the group's values, no sketches): a user compares
// them with their own numbers. Rows without a value (no TTFT: not a stream) are left out of
// that percentile, never counted as 0.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "log-server/index_reader.h"

namespace lp::logsrv {

enum class GroupBy { kModel, kRoute, kProvider, kStatus, kHour, kDay };
std::optional<GroupBy> parse_group_by(std::string_view s);  // "model", "route", ...

// An exchange counts as an error when its status is >= 400, it ended other than `complete`
// (one still in progress is not an error yet), or the provider reported an error.
bool is_error(const StatsRow& row);

// Nearest-rank percentiles (the smallest value with at least p% of the values at or below it)
// over the union of `lists`, none reordered or copied: one pass finds the range, one counts
// the values into at most 65,536 equal buckets of it, and only the buckets holding a wanted
// rank are selected exactly. `ps` ascending, each in (0, 100]; out[i] for ps[i], nullopt when
// there are no values.
void percentiles_of(const std::vector<const std::vector<int64_t>*>& lists,
                    std::initializer_list<double> ps, std::optional<int64_t>* out);

// The sum of doubles, exact until the one final rounding (Shewchuk's partials, as Python's
// math.fsum), so it does not depend on the order of the additions: a sum read from hourly
// rollups equals the sum over the same rows in any order, to the last bit. Non-finite values
// are summed apart and win.
class ExactSum {
 public:
  void add(double x);
  void add(const ExactSum& other);
  double value() const;
  // Non-overlapping doubles, smallest magnitude first, whose exact sum is the sum (plus the
  // non-finite part as one more element when there is one): what a rollup stores.
  std::vector<double> parts() const;

 private:
  std::vector<double> partials_;
  double special_ = 0;  // the sum of the non-finite values
  bool has_special_ = false;
};

// What the rows of one hour that share (route, model, provider, status, outcome) add up to:
// one row of the stats_hourly rollup (stats_rollup.h). `duration_us` and `ttft_us` hold every
// value, so percentiles over parts stay exact.
// What a set of rows adds up to. `duration_us` and `ttft_us` hold every value, not a summary:
// percentiles over merged sums stay exact. Absent tokens add nothing (they are not 0s in a
// row, but a sum of present values is what /stats reports).
struct StatsSums {
  int64_t requests = 0;
  int64_t errors = 0;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cached_input_tokens = 0;
  ExactSum cost;
  int64_t cost_rows = 0;  // rows with a cost (none: the cost is null, not 0)
  std::vector<int64_t> duration_us;
  std::vector<int64_t> ttft_us;

  // `values`: false to count and sum only (the total, whose percentiles are taken over the
  // groups' own values).
  void add(const StatsRow& row, bool values = true);
  void add(const StatsSums& other, bool values = true);
};

struct StatsPart : StatsSums {
  int64_t hour_us = 0;  // the hour's start (UTC, µs)
  std::string route;
  std::optional<std::string> model;
  std::optional<std::string> provider;
  std::optional<int64_t> status;
  std::string outcome;
};

class StatsAccumulator {
 public:
  explicit StatsAccumulator(GroupBy by) : by_(by) {}
  void add(const StatsRow& row);
  // The same as adding every row the part was made of.
  void add(const StatsPart& part);
  // Room for the values of `requests` more exchanges of the part's group (the vectors of a
  // million values then grow once, not by doubling: copies and page faults were most of a
  // rollup query's time). Takes effect at reserve_planned(); a hint only.
  void plan(const StatsPart& part);
  void reserve_planned();
  // {"groups": [...], "total": {...}}; groups by requests (most first) or, for hour and day,
  // in time order.
  nlohmann::ordered_json result();

 private:
  struct Group : StatsSums {
    nlohmann::json key;
    size_t planned = 0;  // plan(): values to make room for
  };
  // Text keys (model, route, provider) are looked up without building a string per row.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  // Percentiles over `durations` and `ttfts` (the group's own, or every group's).
  static nlohmann::ordered_json group_json(
      const Group& g, bool with_key, const std::vector<const std::vector<int64_t>*>& durations,
      const std::vector<const std::vector<int64_t>*>& ttfts);
  Group& group_for(const StatsRow& row);
  static StatsRow key_of(const StatsPart& part);

  GroupBy by_;
  // Text groups; a NULL model/provider is its own group (key null).
  std::unordered_map<std::string, Group, Hash, std::equal_to<>> by_text_;
  std::optional<Group> null_group_;
  // Status codes, and hour/day buckets (the bucket's start in µs).
  std::map<int64_t, Group> by_number_;
  Group total_;
};

}  // namespace lp::logsrv
