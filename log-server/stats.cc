#include "log-server/stats.h"

#include <algorithm>
#include <cmath>

#include "log-server/time_format.h"

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

std::optional<int64_t> percentile(std::vector<int64_t>& values, double p) {
  if (values.empty()) return std::nullopt;
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  size_t index = rank == 0 ? 0 : std::min(rank, values.size()) - 1;
  std::nth_element(values.begin(), values.begin() + static_cast<ptrdiff_t>(index), values.end());
  return values[index];
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

void StatsAccumulator::add_to(Group& g, const StatsRow& row) {
  ++g.requests;
  if (is_error(row)) ++g.errors;
  g.input_tokens += row.input_tokens.value_or(0);
  g.output_tokens += row.output_tokens.value_or(0);
  g.cached_input_tokens += row.cached_input_tokens.value_or(0);
  if (row.cost) {
    g.cost += *row.cost;
    g.has_cost = true;
  }
  if (row.total_us) g.duration_us.push_back(*row.total_us);
  if (row.ttft_us) g.ttft_us.push_back(*row.ttft_us);
}

void StatsAccumulator::add(const StatsRow& row) {
  add_to(group_for(row), row);
  add_to(total_, row);
}

ojson StatsAccumulator::group_json(Group& g, bool with_key) {
  ojson j = ojson::object();
  if (with_key) j["key"] = g.key;
  j["requests"] = g.requests;
  j["errors"] = g.errors;
  j["input_tokens"] = g.input_tokens;
  j["output_tokens"] = g.output_tokens;
  j["cached_input_tokens"] = g.cached_input_tokens;
  j["cost"] = g.has_cost ? ojson(g.cost) : ojson(nullptr);
  j["duration_ms"] = {{"p50", ms_or_null(percentile(g.duration_us, 50))},
                      {"p95", ms_or_null(percentile(g.duration_us, 95))},
                      {"p99", ms_or_null(percentile(g.duration_us, 99))}};
  j["ttft_ms"] = {{"p50", ms_or_null(percentile(g.ttft_us, 50))},
                  {"p95", ms_or_null(percentile(g.ttft_us, 95))}};
  return j;
}

ojson StatsAccumulator::result() {
  std::vector<Group*> order;
  for (auto& [_, g] : by_number_) order.push_back(&g);  // in key order
  for (auto& [_, g] : by_text_) order.push_back(&g);
  if (null_group_) order.push_back(&*null_group_);
  if (by_ != GroupBy::kHour && by_ != GroupBy::kDay) {
    // Most requests first; ties by key, so the order does not depend on hashing.
    std::stable_sort(order.begin(), order.end(), [](const Group* a, const Group* b) {
      if (a->requests != b->requests) return a->requests > b->requests;
      return a->key.dump() < b->key.dump();
    });
  }
  ojson groups = ojson::array();
  for (Group* g : order) groups.push_back(group_json(*g, /*with_key=*/true));
  return ojson{{"groups", std::move(groups)}, {"total", group_json(total_, false)}};
}

}  // namespace lp::logsrv
