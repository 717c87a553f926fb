// GET /stats: rows the filters select, grouped, summed and ranked. Pure: rows in, JSON out.
// Percentiles are exact (nearest rank over the group's values, no sketches): a user compares
// them with their own numbers. Rows without a value (no TTFT: not a stream) are left out of
// that percentile, never counted as 0.
#pragma once

#include <cstdint>
#include <functional>
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

// The nearest-rank percentile (p in (0, 100]) of `values`, which it reorders; nullopt when
// empty.
std::optional<int64_t> percentile(std::vector<int64_t>& values, double p);

class StatsAccumulator {
 public:
  explicit StatsAccumulator(GroupBy by) : by_(by) {}
  void add(const StatsRow& row);
  // {"groups": [...], "total": {...}}; groups by requests (most first) or, for hour and day,
  // in time order.
  nlohmann::ordered_json result();

 private:
  struct Group {
    nlohmann::json key;
    int64_t requests = 0;
    int64_t errors = 0;
    int64_t input_tokens = 0;
    int64_t output_tokens = 0;
    int64_t cached_input_tokens = 0;
    double cost = 0;
    bool has_cost = false;
    std::vector<int64_t> duration_us;
    std::vector<int64_t> ttft_us;
  };
  // Text keys (model, route, provider) are looked up without building a string per row.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  static void add_to(Group& g, const StatsRow& row);
  static nlohmann::ordered_json group_json(Group& g, bool with_key);
  Group& group_for(const StatsRow& row);

  GroupBy by_;
  // Text groups; a NULL model/provider is its own group (key null).
  std::unordered_map<std::string, Group, Hash, std::equal_to<>> by_text_;
  std::optional<Group> null_group_;
  // Status codes, and hour/day buckets (the bucket's start in µs).
  std::map<int64_t, Group> by_number_;
  Group total_;
};

}  // namespace lp::logsrv
