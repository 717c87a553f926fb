// Writing the Prometheus text exposition format (0.0.4) for /metrics: a family's HELP and
// TYPE lines, then its samples, label values escaped. Pure string building; one writer per
// rendering, on the caller's thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace lp {

using PromLabels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class PromText {
 public:
  // Starts a family: `type` is counter, gauge or histogram. Samples of it follow.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, PromLabels labels, double value);
  void sample(std::string_view name, PromLabels labels, uint64_t value);
  void sample(std::string_view name, PromLabels labels, int64_t value);
  // A one-sample family.
  void counter(std::string_view name, std::string_view help, uint64_t value);
  void gauge(std::string_view name, std::string_view help, int64_t value);
  // A histogram's samples (its family() first): `counts[i]` observations fell at or below
  // `bounds[i]` and above the bound before (not cumulative); counts has one more entry, for
  // the observations above the last bound. Written cumulative, with _sum and _count.
  void histogram_samples(std::string_view name, PromLabels labels, std::span<const double> bounds,
                         std::span<const uint64_t> counts, double sum);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void begin_sample(std::string_view name, PromLabels labels, std::string_view extra_name = {},
                    std::string_view extra_value = {});
  std::string out_;
};

// A label value with backslash, double quote and line feed escaped, as the format requires.
std::string prom_escape_label(std::string_view value);
// A sample value: integers exactly, others shortest round-trip, "+Inf"/"-Inf"/"NaN".
std::string prom_number(double value);

}  // namespace lp
