#include "log-server/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/time_format.h"

namespace lp::logsrv {

namespace {

using ojson = nlohmann::ordered_json;

ojson ms_or_null(const std::optional<int64_t>& us) {
  return us ? ojson(static_cast<double>(*us) / 1000.0) : ojson(nullptr);
}

}  // namespace

std::optional<GroupBy> parse_group_by(std::string_view s) {
  if (s == "model") return GroupBy::kModel;
  if (s == "route") return GroupBy::kRoute;
  if (s == "provider") return GroupBy::kProvider;
  if (s == "status") return GroupBy::kStatus;
  if (s == "hour") return GroupBy::kHour;
  if (s == "day") return GroupBy::kDay;
  return std::nullopt;
}

bool is_error(const StatsRow& row) {
  if (row.status && *row.status >= 400) return true;
  if (row.outcome != "complete" && row.outcome != "in_progress") return true;
  return row.llm_error;
}

namespace {

// Nearest rank: the smallest value with at least p% of the values at or below it.
size_t rank_index(size_t n, double p) {
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
  return rank == 0 ? 0 : std::min(rank, n) - 1;
}

}  // namespace

void percentiles_of(const std::vector<const std::vector<int64_t>*>& lists,
                    std::initializer_list<double> ps, std::optional<int64_t>* out) {
  size_t n = 0;
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  for (const auto* list : lists) {
    n += list->size();
    for (int64_t v : *list) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (n == 0 || lo == hi) {
    for (size_t i = 0; i < ps.size(); ++i) out[i] = n == 0 ? std::nullopt : std::optional(lo);
    return;
  }
  // Offsets from lo fit in uint64_t even across the whole int64_t range.
  const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  const uint64_t max_buckets = std::min<uint64_t>(n, uint64_t{1} << 16);
  int shift = 0;
  while ((span >> shift) >= max_buckets) ++shift;
  auto bucket_of = [lo, shift](int64_t v) {
    return static_cast<size_t>((static_cast<uint64_t>(v) - static_cast<uint64_t>(lo)) >> shift);
  };
  std::vector<size_t> counts(static_cast<size_t>(span >> shift) + 1);
  for (const auto* list : lists) {
    for (int64_t v : *list) ++counts[bucket_of(v)];
  }
  // Each wanted rank's bucket, and its rank within that bucket.
  struct Want {
    size_t bucket;
    size_t rank;
  };
  std::vector<Want> wants;
  size_t before = 0, b = 0;
  for (double p : ps) {
    const size_t index = rank_index(n, p);
    while (before + counts[b] <= index) before += counts[b++];
    wants.push_back({b, index - before});
  }
  // The values of the wanted buckets (a few distinct ones), then an exact selection in each.
  std::vector<size_t> buckets;
  for (const Want& w : wants) {
    if (buckets.empty() || buckets.back() != w.bucket) buckets.push_back(w.bucket);
  }
  std::vector<std::vector<int64_t>> chosen(buckets.size());
  for (size_t i = 0; i < buckets.size(); ++i) chosen[i].reserve(counts[buckets[i]]);
  for (const auto* list : lists) {
    for (int64_t v : *list) {
      const size_t bv = bucket_of(v);
      for (size_t i = 0; i < buckets.size(); ++i) {
        if (buckets[i] == bv) chosen[i].push_back(v);
      }
    }
  }
  for (size_t i = 0; i < wants.size(); ++i) {
    const size_t which = static_cast<size_t>(
        std::find(buckets.begin(), buckets.end(), wants[i].bucket) - buckets.begin());
    auto& values = chosen[which];
    std::nth_element(values.begin(), values.begin() + static_cast<ptrdiff_t>(wants[i].rank),
                     values.end());
    out[i] = values[wants[i].rank];
  }
}

void ExactSum::add(double x) {
  if (!std::isfinite(x)) {
    special_ += x;
    has_special_ = true;
    return;
  }
  // Shewchuk: keep the sum as non-overlapping partials; each addition is exact (two-sum).
  size_t i = 0;
  for (double y : partials_) {
    if (std::fabs(x) < std::fabs(y)) std::swap(x, y);
    double hi = x + y;
    double lo = y - (hi - x);
    if (lo != 0.0) partials_[i++] = lo;
    x = hi;
  }
  partials_.resize(i);
  if (!std::isfinite(x)) {  // the finite values overflowed together
    special_ += x;
    has_special_ = true;
    partials_.clear();
    return;
  }
  partials_.push_back(x);
}

void ExactSum::add(const ExactSum& other) {
  for (double p : other.partials_) add(p);
  if (other.has_special_) add(other.special_);
}

double ExactSum::value() const {
  if (has_special_) return special_;
  // Python's math.fsum: add the partials from the largest down while that stays exact, then
  // correct the one rounding so that it is half-even across the remaining partials too.
  size_t n = partials_.size();
  if (n == 0) return 0.0;
  double hi = partials_[--n];
  double lo = 0;
  while (n > 0) {
    double x = hi;
    double y = partials_[--n];
    hi = x + y;
    double yr = hi - x;
    lo = y - yr;
    if (lo != 0.0) break;
  }
  if (n > 0 && ((lo < 0.0 && partials_[n - 1] < 0.0) || (lo > 0.0 && partials_[n - 1] > 0.0))) {
    double y = lo * 2.0;
    double x = hi + y;
    double yr = x - hi;
    if (y == yr) hi = x;
  }
  return hi;
}

std::vector<double> ExactSum::parts() const {
  std::vector<double> out = partials_;
  if (has_special_) out.push_back(special_);
  return out;
}

void StatsSums::add(const StatsRow& row, bool values) {
  ++requests;
  if (is_error(row)) ++errors;
  input_tokens += row.input_tokens.value_or(0);
  output_tokens += row.output_tokens.value_or(0);
  cached_input_tokens += row.cached_input_tokens.value_or(0);
  if (row.cost) {
    cost.add(*row.cost);
    ++cost_rows;
  }
  if (!values) return;
  if (row.total_us) duration_us.push_back(*row.total_us);
  if (row.ttft_us) ttft_us.push_back(*row.ttft_us);
}

void StatsSums::add(const StatsSums& other, bool values) {
  requests += other.requests;
  errors += other.errors;
  input_tokens += other.input_tokens;
  output_tokens += other.output_tokens;
  cached_input_tokens += other.cached_input_tokens;
  if (other.cost_rows > 0) {
    cost.add(other.cost);
    cost_rows += other.cost_rows;
  }
  if (!values) return;
  duration_us.insert(duration_us.end(), other.duration_us.begin(), other.duration_us.end());
  ttft_us.insert(ttft_us.end(), other.ttft_us.begin(), other.ttft_us.end());
}

StatsAccumulator::Group& StatsAccumulator::group_for(const StatsRow& row) {
  constexpr int64_t kHourUs = 3600LL * 1000 * 1000;
  std::optional<std::string_view> text;
  switch (by_) {
    case GroupBy::kModel:
      text = row.model;
      break;
    case GroupBy::kRoute:
      text = row.route;
      break;
    case GroupBy::kProvider:
      text = row.provider;
      break;
    case GroupBy::kStatus: {
      // No status (no response head): its own group, sorted first, key null.
      int64_t code = row.status.value_or(-1);
      auto [it, inserted] = by_number_.try_emplace(code);
      if (inserted) it->second.key = row.status ? nlohmann::json(code) : nlohmann::json(nullptr);
      return it->second;
    }
    case GroupBy::kHour:
    case GroupBy::kDay: {
      const int64_t span = by_ == GroupBy::kHour ? kHourUs : 24 * kHourUs;
      int64_t start = row.started_us - (((row.started_us % span) + span) % span);
      auto [it, inserted] = by_number_.try_emplace(start);
      if (inserted) {
        std::string t = format_rfc3339_us(start);  // "2025-09-13T02:00:00.000000Z"
        it->second.key = by_ == GroupBy::kHour ? t.substr(0, 13) + ":00:00Z" : t.substr(0, 10);
      }
      return it->second;
    }
  }
  if (!text) {
    if (!null_group_) null_group_.emplace().key = nullptr;
    return *null_group_;
  }
  auto it = by_text_.find(*text);
  if (it == by_text_.end()) {
    it = by_text_.emplace(std::string(*text), Group{}).first;
    it->second.key = it->first;
  }
  return it->second;
}

void StatsAccumulator::add(const StatsRow& row) {
  group_for(row).add(row);
  total_.add(row, /*values=*/false);
}

StatsRow StatsAccumulator::key_of(const StatsPart& part) {
  // The key columns are all group_for() reads; the hour stands for its rows' start times.
  StatsRow key;
  key.started_us = part.hour_us;
  key.route = part.route;
  key.model = part.model;
  key.provider = part.provider;
  key.status = part.status;
  key.outcome = part.outcome;
  return key;
}

void StatsAccumulator::add(const StatsPart& part) {
  group_for(key_of(part)).add(part);
  total_.add(part, /*values=*/false);
}

void StatsAccumulator::plan(const StatsPart& part) {
  group_for(key_of(part)).planned += static_cast<size_t>(part.requests);
}

void StatsAccumulator::reserve_planned() {
  auto reserve = [](Group& g) {
    g.duration_us.reserve(g.duration_us.size() + g.planned);
    g.ttft_us.reserve(g.ttft_us.size() + g.planned);
    g.planned = 0;
  };
  for (auto& [_, g] : by_number_) reserve(g);
  for (auto& [_, g] : by_text_) reserve(g);
  if (null_group_) reserve(*null_group_);
}

ojson StatsAccumulator::group_json(const Group& g, bool with_key,
                                   const std::vector<const std::vector<int64_t>*>& durations,
                                   const std::vector<const std::vector<int64_t>*>& ttfts) {
  ojson j = ojson::object();
  if (with_key) j["key"] = g.key;
  j["requests"] = g.requests;
  j["errors"] = g.errors;
  j["input_tokens"] = g.input_tokens;
  j["output_tokens"] = g.output_tokens;
  j["cached_input_tokens"] = g.cached_input_tokens;
  j["cost"] = g.cost_rows > 0 ? ojson(g.cost.value()) : ojson(nullptr);
  std::optional<int64_t> d[3];
  percentiles_of(durations, {50, 95, 99}, d);
  std::optional<int64_t> t[2];
  percentiles_of(ttfts, {50, 95}, t);
  j["duration_ms"] = {
      {"p50", ms_or_null(d[0])}, {"p95", ms_or_null(d[1])}, {"p99", ms_or_null(d[2])}};
  j["ttft_ms"] = {{"p50", ms_or_null(t[0])}, {"p95", ms_or_null(t[1])}};
  return j;
}

ojson StatsAccumulator::result() {
  // A group made by plan() alone has no requests: no group (rows never make one).
  std::vector<Group*> order;
  for (auto& [_, g] : by_number_) {
    if (g.requests > 0) order.push_back(&g);  // in key order
  }
  for (auto& [_, g] : by_text_) {
    if (g.requests > 0) order.push_back(&g);
  }
  if (null_group_ && null_group_->requests > 0) order.push_back(&*null_group_);
  if (by_ != GroupBy::kHour && by_ != GroupBy::kDay) {
    // Most requests first; ties by key, so the order does not depend on hashing.
    std::stable_sort(order.begin(), order.end(), [](const Group* a, const Group* b) {
      if (a->requests != b->requests) return a->requests > b->requests;
      return a->key.dump() < b->key.dump();
    });
  }
  ojson groups = ojson::array();
  std::vector<const std::vector<int64_t>*> all_durations, all_ttfts;
  for (Group* g : order) {
    groups.push_back(group_json(*g, /*with_key=*/true, {&g->duration_us}, {&g->ttft_us}));
    all_durations.push_back(&g->duration_us);
    all_ttfts.push_back(&g->ttft_us);
  }
  // Every exchange is in exactly one group: the total's values are the groups' together.
  return ojson{{"groups", std::move(groups)},
               {"total", group_json(total_, false, all_durations, all_ttfts)}};
}

}  // namespace lp::logsrv
