// A checker of the Prometheus text exposition format (version 0.0.4) for tests, so that a
// /metrics answer is known to be scraped as it was meant, not just to contain some lines.
//
// Checked: every sample belongs to a family whose "# HELP" and "# TYPE" lines come before its
// samples, and a family's lines are contiguous; metric names match [a-zA-Z_:][a-zA-Z0-9_:]*
// and label names [a-zA-Z_][a-zA-Z0-9_]*; label values and HELP text use only the escapes the
// format has (\\, \" and \n, HELP text without \"); the TYPE is counter, gauge, histogram,
// summary or untyped; counter names end in _total and their values are not negative; a
// histogram's samples are only NAME_bucket (with an "le" label), NAME_sum and NAME_count, and
// per label set the buckets come in increasing "le" with non-decreasing counts, end with
// le="+Inf" equal to NAME_count, and NAME_sum is there; no family is declared twice, no sample
// appears twice; values parse as floats ("+Inf", "-Inf", "NaN" included), timestamps as
// integers; the text ends with a line feed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lp::test {

using PromLabelSet = std::vector<std::pair<std::string, std::string>>;  // unescaped, in order

struct PromSample {
  std::string name;
  PromLabelSet labels;
  double value = 0;
  int line = 0;
};

struct PromFamily {
  std::string name;
  std::string type;  // as declared; empty without a # TYPE line
  std::string help;  // unescaped
  bool has_help = false;
  bool has_type = false;
  std::vector<PromSample> samples;
};

struct PromExposition {
  std::vector<PromFamily> families;  // in order of appearance
  // Every rule broken, each "line N: <what is wrong>" (or "<family>: ..." for a histogram's
  // series, checked once the family is complete). Empty means valid.
  std::vector<std::string> problems;
};

PromExposition parse_prom_text(std::string_view text);

// The value of the sample named `name` whose labels are exactly `labels` (in any order), or
// nullopt if there is none.
std::optional<double> prom_value(const PromExposition& exposition, std::string_view name,
                                 const PromLabelSet& labels = {});

}  // namespace lp::test
