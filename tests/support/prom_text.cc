#include "tests/support/prom_text.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <system_error>

namespace lp::test {
namespace {

bool is_name_start(char c, bool colon_ok) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}
bool is_name_char(char c, bool colon_ok) {
  return is_name_start(c, colon_ok) || (c >= '0' && c <= '9');
}
bool valid_name(std::string_view s, bool colon_ok) {
  if (s.empty() || !is_name_start(s[0], colon_ok)) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return is_name_char(c, colon_ok); });
}
bool valid_metric_name(std::string_view s) {
  return valid_name(s, true);
}
bool valid_label_name(std::string_view s) {
  return valid_name(s, false);
}

// A sample value as the format writes floats: decimal (with optional exponent), "+Inf",
// "-Inf", "Inf" or "NaN". Hex floats and "infinity", which strtod would take, are not.
std::optional<double> parse_float(std::string_view s) {
  if (s == "+Inf" || s == "Inf") return HUGE_VAL;
  if (s == "-Inf") return -HUGE_VAL;
  if (s == "NaN") return std::nan("");
  std::string_view digits = s;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  if (digits.empty() || !(std::isdigit(static_cast<unsigned char>(digits[0])) || digits[0] == '.'))
    return std::nullopt;
  double v = 0;
  // from_chars takes no leading '+'.
  std::string_view body = s[0] == '+' ? s.substr(1) : s;
  auto [end, ec] =
      std::from_chars(body.data(), body.data() + body.size(), v, std::chars_format::general);
  if (ec != std::errc() || end != body.data() + body.size()) return std::nullopt;
  return v;
}

bool parse_timestamp(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string escape_for_message(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string describe(std::string_view name, const PromLabelSet& labels) {
  std::string out(name);
  if (labels.empty()) return out;
  out += '{';
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += labels[i].first + "=\"" + escape_for_message(labels[i].second) + "\"";
  }
  return out + '}';
}

// The labels sorted, without `skip`: the identity of a series.
std::string series_key(const PromLabelSet& labels, std::string_view skip = {}) {
  PromLabelSet sorted;
  for (const auto& l : labels) {
    if (l.first != skip) sorted.push_back(l);
  }
  std::sort(sorted.begin(), sorted.end());
  return describe("", sorted);
}

const char* const kTypes[] = {"counter", "gauge", "histogram", "summary", "untyped"};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  PromExposition run() {
    if (!text_.empty() && text_.back() != '\n') {
      problem(0, "the text does not end with a line feed");
    }
    size_t pos = 0;
    int line_no = 0;
    while (pos < text_.size()) {
      size_t nl = text_.find('\n', pos);
      std::string_view line =
          text_.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      pos = nl == std::string_view::npos ? text_.size() : nl + 1;
      ++line_no;
      parse_line(line, line_no);
    }
    for (const PromFamily& f : out_.families) {
      if (f.type == "histogram") check_histogram(f);
    }
    return std::move(out_);
  }

 private:
  void problem(int line, const std::string& what) {
    out_.problems.push_back(line > 0 ? "line " + std::to_string(line) + ": " + what : what);
  }

  void parse_line(std::string_view line, int n) {
    if (line.empty()) return;
    if (!line.empty() && line.back() == '\r') {
      problem(n, "carriage return at the end of the line (lines end with a line feed only)");
      line.remove_suffix(1);
    }
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos) return;
    if (line[first] == '#') {
      parse_comment(line.substr(first + 1), n);
    } else {
      parse_sample(line.substr(first), n);
    }
  }

  // "# HELP name text", "# TYPE name type"; any other comment is ignored, as scrapers do.
  void parse_comment(std::string_view rest, int n) {
    size_t i = rest.find_first_not_of(" \t");
    if (i == std::string_view::npos || i == 0) return;
    rest.remove_prefix(i);
    bool help = rest.starts_with("HELP") && (rest.size() == 4 || rest[4] == ' ' || rest[4] == '\t');
    bool type = rest.starts_with("TYPE") && (rest.size() == 4 || rest[4] == ' ' || rest[4] == '\t');
    if (!help && !type) return;
    const char* keyword = help ? "# HELP" : "# TYPE";
    rest.remove_prefix(4);
    rest.remove_prefix(std::min(rest.size(), rest.find_first_not_of(" \t")));
    size_t end = rest.find_first_of(" \t");
    std::string_view name = rest.substr(0, end);
    std::string_view arg;
    if (end != std::string_view::npos) {
      arg = rest.substr(end);
      // HELP text keeps its inner spaces: only the one separator goes.
      arg.remove_prefix(std::min(arg.size(), arg.find_first_not_of(" \t")));
    }
    if (name.empty()) {
      problem(n, std::string(keyword) + " without a metric name");
      return;
    }
    if (!valid_metric_name(name)) {
      problem(n, std::string(keyword) + ": invalid metric name \"" + std::string(name) + "\"");
    }
    PromFamily& f = declare(name, keyword, n);
    if (help) {
      if (f.has_help) {
        problem(n, std::string(name) + " declared twice (a second # HELP)");
        return;
      }
      f.has_help = true;
      f.help = unescape_help(arg, n);
    } else {
      std::string_view t = arg.substr(0, arg.find_first_of(" \t"));
      if (f.has_type) {
        problem(n, std::string(name) + " declared twice (a second # TYPE)");
        return;
      }
      f.has_type = true;
      f.type = std::string(t);
      if (std::find(std::begin(kTypes), std::end(kTypes), t) == std::end(kTypes)) {
        problem(n, "# TYPE " + std::string(name) + ": unknown type \"" + std::string(t) + "\"");
      } else if (t == "counter" && !name.ends_with("_total")) {
        problem(n, "counter " + std::string(name) + " does not end in _total");
      }
    }
  }

  // The family a HELP or TYPE line names, created if new. A family whose samples were already
  // seen, or that another family's lines followed, is being declared again.
  PromFamily& declare(std::string_view name, const char* keyword, int n) {
    auto it = index_.find(std::string(name));
    if (it == index_.end()) {
      out_.families.emplace_back().name = std::string(name);
      current_ = out_.families.size() - 1;
      index_.emplace(std::string(name), current_);
      return out_.families.back();
    }
    PromFamily& f = out_.families[it->second];
    if (it->second != current_) {
      problem(n, std::string(name) + " declared twice (" + keyword + " after other families)");
    } else if (!f.samples.empty()) {
      problem(n, std::string(keyword) + " of " + std::string(name) + " after its samples");
    }
    return f;
  }

  std::string unescape_help(std::string_view s, int n) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '\\') {
        out += s[i];
        continue;
      }
      char next = i + 1 < s.size() ? s[i + 1] : '\0';
      if (next == '\\') {
        out += '\\';
      } else if (next == 'n') {
        out += '\n';
      } else {
        problem(n, "# HELP text: invalid escape \"\\" + std::string(next ? 1 : 0, next) +
                       "\" (only \\\\ and \\n)");
        out += '\\';
        continue;
      }
      ++i;
    }
    return out;
  }

  void parse_sample(std::string_view line, int n) {
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
    std::string name(line.substr(0, i));
    if (!valid_metric_name(name)) {
      problem(n, "invalid metric name \"" + name + "\"");
      return;
    }
    PromSample sample;
    sample.name = name;
    sample.line = n;
    if (i < line.size() && line[i] == '{') {
      if (!parse_labels(line, &i, &sample.labels, n)) return;
    }
    std::string_view rest = line.substr(i);
    if (rest.empty() || (rest[0] != ' ' && rest[0] != '\t')) {
      problem(n, "sample " + name + ": no value after the name and labels");
      return;
    }
    std::vector<std::string_view> fields;
    while (!rest.empty()) {
      size_t start = rest.find_first_not_of(" \t");
      if (start == std::string_view::npos) break;
      rest.remove_prefix(start);
      size_t end = std::min(rest.size(), rest.find_first_of(" \t"));
      fields.push_back(rest.substr(0, end));
      rest.remove_prefix(end);
    }
    if (fields.empty()) {
      problem(n, "sample " + name + ": no value");
      return;
    }
    std::optional<double> value = parse_float(fields[0]);
    if (!value) {
      problem(n, "sample " + name + ": value \"" + std::string(fields[0]) + "\" is not a float");
      return;
    }
    if (fields.size() > 1 && !parse_timestamp(fields[1])) {
      problem(n, "sample " + name + ": timestamp \"" + std::string(fields[1]) +
                     "\" is not an integer (milliseconds)");
    }
    if (fields.size() > 2) problem(n, "sample " + name + ": text after the timestamp");
    sample.value = *value;
    add_sample(std::move(sample), n);
  }

  // From the '{' at *i to past the '}'.
  bool parse_labels(std::string_view line, size_t* i, PromLabelSet* labels, int n) {
    const std::string name(line.substr(0, *i));
    size_t p = *i + 1;
    auto skip_blanks = [&] {
      while (p < line.size() && (line[p] == ' ' || line[p] == '\t')) ++p;
    };
    std::set<std::string> seen;
    for (;;) {
      skip_blanks();
      if (p < line.size() && line[p] == '}') break;  // also after a trailing comma, as allowed
      size_t start = p;
      while (p < line.size() && line[p] != '=' && line[p] != ' ' && line[p] != '\t' &&
             line[p] != '}' && line[p] != ',')
        ++p;
      std::string label(line.substr(start, p - start));
      if (!valid_label_name(label)) {
        problem(n, "sample " + name + ": invalid label name \"" + label + "\"");
        return false;
      }
      skip_blanks();
      if (p >= line.size() || line[p] != '=') {
        problem(n, "sample " + name + ": label " + label + " has no '='");
        return false;
      }
      ++p;
      skip_blanks();
      if (p >= line.size() || line[p] != '"') {
        problem(n, "sample " + name + ": label " + label + " has no quoted value");
        return false;
      }
      ++p;
      std::string value;
      bool closed = false;
      while (p < line.size()) {
        char c = line[p++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c != '\\') {
          value += c;
          continue;
        }
        char next = p < line.size() ? line[p] : '\0';
        if (next == '\\' || next == '"') {
          value += next;
        } else if (next == 'n') {
          value += '\n';
        } else {
          problem(n, "sample " + name + ": label " + label + ": invalid escape \"\\" +
                         std::string(next ? 1 : 0, next) +
                         "\" in its value (only \\\\, \\\" and \\n)");
          return false;
        }
        ++p;
      }
      if (!closed) {
        problem(n, "sample " + name + ": label " + label + ": unterminated value");
        return false;
      }
      if (!seen.insert(label).second) {
        problem(n, "sample " + name + ": label " + label + " appears twice");
      }
      labels->emplace_back(std::move(label), std::move(value));
      skip_blanks();
      if (p < line.size() && line[p] == ',') {
        ++p;
        continue;
      }
      if (p < line.size() && line[p] == '}') break;
      problem(n, "sample " + name + ": expected ',' or '}' after label " + labels->back().first);
      return false;
    }
    *i = p + 1;
    return true;
  }

  // The family `name` belongs to: its own, or a histogram's/summary's for the suffixed names.
  std::optional<size_t> family_of(const std::string& name) {
    if (auto it = index_.find(name); it != index_.end()) return it->second;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (!name.ends_with(suffix)) continue;
      auto it = index_.find(name.substr(0, name.size() - suffix.size()));
      if (it == index_.end()) continue;
      const std::string& type = out_.families[it->second].type;
      if (type == "histogram" || (type == "summary" && suffix != "_bucket")) return it->second;
    }
    return std::nullopt;
  }

  void add_sample(PromSample sample, int n) {
    const std::string id = describe(sample.name, {}) + series_key(sample.labels);
    if (!series_.insert(id).second) problem(n, "sample " + id + " appears twice");

    std::optional<size_t> index = family_of(sample.name);
    if (!index) {
      problem(n, "sample " + sample.name + " has no # HELP and # TYPE before it");
      out_.families.emplace_back().name = sample.name;
      index = out_.families.size() - 1;
      index_.emplace(sample.name, *index);
      current_ = *index;
      reported_.insert(*index);
    }
    PromFamily& f = out_.families[*index];
    if (*index != current_) {
      problem(n, "sample " + sample.name + " is apart from the other lines of its family " +
                     f.name + " (a family's lines must be contiguous)");
      current_ = *index;
    }
    if ((!f.has_help || !f.has_type) && reported_.insert(*index).second) {
      problem(n, "sample " + sample.name + " has no " + (f.has_help ? "# TYPE" : "# HELP") +
                     " of " + f.name + " before it");
    }
    check_sample_kind(f, sample, n);
    f.samples.push_back(std::move(sample));
  }

  void check_sample_kind(const PromFamily& f, const PromSample& s, int n) {
    const std::string suffix = s.name.substr(f.name.size());
    if (f.type == "histogram") {
      if (suffix.empty()) {
        problem(n, "histogram " + f.name + ": sample " + s.name +
                       " (only _bucket, _sum and _count samples)");
      }
      bool has_le = std::any_of(s.labels.begin(), s.labels.end(),
                                [](const auto& l) { return l.first == "le"; });
      if (suffix == "_bucket" && !has_le) {
        problem(n, "histogram " + f.name + ": " + s.name + " without an le label");
      }
      if (suffix != "_bucket" && has_le) {
        problem(n, "histogram " + f.name + ": " + s.name + " with an le label");
      }
    } else if (f.type == "summary") {
      bool has_quantile = std::any_of(s.labels.begin(), s.labels.end(),
                                      [](const auto& l) { return l.first == "quantile"; });
      if (suffix.empty() && !has_quantile) {
        problem(n, "summary " + f.name + ": sample " + s.name + " without a quantile label");
      }
    } else if (f.type == "counter" && s.value < 0) {
      problem(n, "counter " + f.name + ": value " + std::to_string(s.value) +
                     " (a counter is never negative)");
    }
  }

  void check_histogram(const PromFamily& f) {
    struct Series {
      std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
      std::optional<double> sum, count;
      int first_line = 0;
    };
    std::map<std::string, Series> all;
    std::vector<std::string> order;
    for (const PromSample& s : f.samples) {
      const std::string key = series_key(s.labels, "le");
      auto [it, inserted] = all.try_emplace(key);
      if (inserted) {
        order.push_back(key);
        it->second.first_line = s.line;
      }
      Series& series = it->second;
      const std::string id = f.name + key;
      if (s.name == f.name + "_sum") {
        series.sum = s.value;
      } else if (s.name == f.name + "_count") {
        series.count = s.value;
      } else if (s.name == f.name + "_bucket") {
        auto le = std::find_if(s.labels.begin(), s.labels.end(),
                               [](const auto& l) { return l.first == "le"; });
        if (le == s.labels.end()) continue;  // reported with the sample
        std::optional<double> bound = parse_float(le->second);
        if (!bound || std::isnan(*bound)) {
          problem(s.line, "histogram " + id + ": le=\"" + le->second + "\" is not a number");
          continue;
        }
        if (!series.buckets.empty()) {
          if (*bound <= series.buckets.back().first) {
            problem(s.line, "histogram " + id + ": le=\"" + le->second +
                                "\" after a bucket with an equal or greater le (le must increase)");
          }
          if (s.value < series.buckets.back().second) {
            problem(s.line, "histogram " + id + ": bucket le=\"" + le->second +
                                "\" counts less than the bucket before it (counts never decrease)");
          }
        }
        series.buckets.emplace_back(*bound, s.value);
      }
    }
    for (const std::string& key : order) {
      const Series& s = all[key];
      const std::string id = f.name + key;
      if (s.buckets.empty() || !std::isinf(s.buckets.back().first) || s.buckets.back().first < 0) {
        problem(s.first_line, "histogram " + id + ": no last bucket le=\"+Inf\"");
      } else if (s.count && s.buckets.back().second != *s.count) {
        problem(s.first_line, "histogram " + id + ": bucket le=\"+Inf\" (" +
                                  std::to_string(s.buckets.back().second) + ") differs from " +
                                  f.name + "_count (" + std::to_string(*s.count) + ")");
      }
      if (!s.count) problem(s.first_line, "histogram " + id + ": no " + f.name + "_count");
      if (!s.sum) problem(s.first_line, "histogram " + id + ": no " + f.name + "_sum");
    }
  }

  std::string_view text_;
  PromExposition out_;
  std::map<std::string, size_t> index_;  // family name -> out_.families
  size_t current_ = SIZE_MAX;            // the family whose lines come last
  std::set<size_t> reported_;            // families whose missing HELP/TYPE was reported
  std::set<std::string> series_;         // every sample's name and sorted labels
};

}  // namespace

PromExposition parse_prom_text(std::string_view text) {
  return Parser(text).run();
}

std::optional<double> prom_value(const PromExposition& exposition, std::string_view name,
                                 const PromLabelSet& labels) {
  const std::string want = series_key(labels);
  for (const PromFamily& f : exposition.families) {
    for (const PromSample& s : f.samples) {
      if (s.name == name && series_key(s.labels) == want) return s.value;
    }
  }
  return std::nullopt;
}

}  // namespace lp::test
