// The Prometheus text checker the /metrics tests rely on: valid expositions pass, and each rule,
// broken once in an otherwise valid text, is reported by a problem that names it.
#include "tests/support/prom_text.h"

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

using lp::test::parse_prom_text;
using lp::test::prom_value;

namespace {

std::string joined(const std::vector<std::string>& problems) {
  std::string out;
  for (const std::string& p : problems) out += p + "\n";
  return out;
}

const char* const kHistogram =
    "# HELP req_seconds Request duration.\n"
    "# TYPE req_seconds histogram\n"
    "req_seconds_bucket{route=\"a\",le=\"0.1\"} 1\n"
    "req_seconds_bucket{route=\"a\",le=\"1\"} 3\n"
    "req_seconds_bucket{route=\"a\",le=\"+Inf\"} 4\n"
    "req_seconds_sum{route=\"a\"} 7.25\n"
    "req_seconds_count{route=\"a\"} 4\n"
    "req_seconds_bucket{route=\"b\",le=\"0.1\"} 0\n"
    "req_seconds_bucket{route=\"b\",le=\"1\"} 0\n"
    "req_seconds_bucket{route=\"b\",le=\"+Inf\"} 0\n"
    "req_seconds_sum{route=\"b\"} 0\n"
    "req_seconds_count{route=\"b\"} 0\n";

}  // namespace

TEST_CASE("prom text: valid expositions have no problems") {
  const char* const valid[] = {
      "",
      "# HELP up_total Starts.\n# TYPE up_total counter\nup_total 3\n",
      // Labels with every escape, a trailing comma, spaces around; timestamps; other comments.
      "# A comment the format ignores.\n"
      "# HELP errors_total Errors by kind \\\\ with a\\nsecond line.\n"
      "# TYPE errors_total counter\n"
      "errors_total{kind=\"a\\\\b\\\"c\\nd\"} 1 1700000000000\n"
      "errors_total{ kind = \"x\" , } 2\n"
      "\n"
      "# HELP temp Degrees.\n# TYPE temp gauge\ntemp -1.5e3\n",
      // Special values; colons in names; an untyped family.
      "# HELP a:b Special values.\n# TYPE a:b gauge\na:b{x=\"1\"} +Inf\na:b{x=\"2\"} -Inf\n"
      "a:b{x=\"3\"} NaN\n# HELP u Untyped.\n# TYPE u untyped\nu 0\n",
      kHistogram,
      // A summary.
      "# HELP lat Latency.\n# TYPE lat summary\nlat{quantile=\"0.5\"} 1\nlat{quantile=\"0.9\"} 2\n"
      "lat_sum 10\nlat_count 5\n",
      // TYPE before HELP is fine.
      "# TYPE g gauge\n# HELP g G.\ng 1\n",
  };
  for (const char* text : valid) {
    auto e = parse_prom_text(text);
    INFO("text:\n" << text);
    CHECK_MESSAGE(e.problems.empty(), joined(e.problems));
  }
}

TEST_CASE("prom text: each broken rule is reported by name") {
  struct Case {
    const char* rule;
    std::string text;
    const char* expect;  // a part of the problem's text
  };
  const std::string help_type = "# HELP x_total X.\n# TYPE x_total counter\n";
  const std::vector<Case> cases = {
      {"no HELP", "# TYPE g gauge\ng 1\n", "has no # HELP of g"},
      {"no TYPE", "# HELP g G.\ng 1\n", "has no # TYPE of g"},
      {"no family at all", "g 1\n", "g has no # HELP and # TYPE"},
      {"HELP after samples", "# TYPE g gauge\ng 1\n# HELP g G.\n", "# HELP of g after its samples"},
      {"declared twice",
       "# HELP g G.\n# TYPE g gauge\ng 1\n# HELP h H.\n# TYPE h gauge\nh 1\n"
       "# HELP g G.\n",
       "g declared twice"},
      {"TYPE twice", "# HELP g G.\n# TYPE g gauge\n# TYPE g gauge\ng 1\n", "second # TYPE"},
      {"lines apart",
       "# HELP g G.\n# TYPE g gauge\ng{a=\"1\"} 1\n# HELP h H.\n# TYPE h gauge\n"
       "h 1\ng{a=\"2\"} 1\n",
       "must be contiguous"},
      {"bad metric name", "# HELP 1g G.\n# TYPE 1g gauge\n", "invalid metric name \"1g\""},
      {"bad sample name", help_type + "x-total 1\n", "invalid metric name \"x-total\""},
      {"bad label name", help_type + "x_total{1a=\"v\"} 1\n", "invalid label name \"1a\""},
      {"bad escape", help_type + "x_total{a=\"\\t\"} 1\n", "invalid escape \"\\t\""},
      {"unterminated label", help_type + "x_total{a=\"v} 1\n", "unterminated value"},
      {"label twice", help_type + "x_total{a=\"1\",a=\"2\"} 1\n", "label a appears twice"},
      {"bad HELP escape", "# HELP g G \\\" q.\n# TYPE g gauge\ng 1\n",
       "# HELP text: invalid escape"},
      {"counter without _total", "# HELP c C.\n# TYPE c counter\nc 1\n",
       "counter c does not end in _total"},
      {"negative counter", help_type + "x_total -1\n", "never negative"},
      {"unknown type", "# HELP g G.\n# TYPE g meter\ng 1\n", "unknown type \"meter\""},
      {"value not a float", help_type + "x_total one\n", "value \"one\" is not a float"},
      {"hex value", help_type + "x_total 0x10\n", "is not a float"},
      {"infinity spelled out", help_type + "x_total infinity\n", "is not a float"},
      {"no value", help_type + "x_total\n", "no value"},
      {"bad timestamp", help_type + "x_total 1 1.5\n", "timestamp \"1.5\" is not an integer"},
      {"duplicate sample", help_type + "x_total 1\nx_total 2\n", "appears twice"},
      {"no final line feed", help_type + "x_total 1", "does not end with a line feed"},
      {"CRLF", help_type + "x_total 1\r\n", "carriage return"},
      {"bucket order",
       "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"0.5\"} 1\n"
       "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
       "le must increase"},
      {"bucket counts decrease",
       "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 2\n"
       "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
       "counts never decrease"},
      {"no +Inf bucket",
       "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
       "no last bucket le=\"+Inf\""},
      {"+Inf differs from count",
       "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\nh_sum 1\n"
       "h_count 2\n",
       "differs from h_count"},
      {"no _sum", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
       "no h_sum"},
      {"no _count", "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n",
       "no h_count"},
      {"bucket without le",
       "# HELP h H.\n# TYPE h histogram\nh_bucket 1\nh_bucket{le=\"+Inf\"} 1\n"
       "h_sum 1\nh_count 1\n",
       "without an le label"},
      {"bad le",
       "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"x\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
       "h_sum 1\nh_count 1\n",
       "le=\"x\" is not a number"},
      {"bare histogram sample",
       "# HELP h H.\n# TYPE h histogram\nh 1\nh_bucket{le=\"+Inf\"} 1\n"
       "h_sum 1\nh_count 1\n",
       "only _bucket, _sum and _count"},
      {"summary without quantile", "# HELP s S.\n# TYPE s summary\ns 1\ns_sum 1\ns_count 1\n",
       "without a quantile label"},
  };
  for (const Case& c : cases) {
    auto e = parse_prom_text(c.text);
    INFO("rule: " << c.rule << "\ntext:\n" << c.text << "problems:\n" << joined(e.problems));
    bool found = false;
    for (const std::string& p : e.problems) found = found || p.find(c.expect) != std::string::npos;
    CHECK_MESSAGE(found, "expected a problem containing: " << c.expect);
  }
}

TEST_CASE("prom text: problems name their line") {
  auto e = parse_prom_text("# HELP g G.\n# TYPE g gauge\ng 1\ng x\n");
  REQUIRE(e.problems.size() == 1);
  CHECK(e.problems[0].starts_with("line 4: "));
}

TEST_CASE("prom text: families, samples and prom_value") {
  auto e = parse_prom_text(kHistogram);
  REQUIRE(e.problems.empty());
  REQUIRE(e.families.size() == 1);
  CHECK(e.families[0].name == "req_seconds");
  CHECK(e.families[0].type == "histogram");
  CHECK(e.families[0].help == "Request duration.");
  CHECK(e.families[0].samples.size() == 10);
  CHECK(prom_value(e, "req_seconds_count", {{"route", "a"}}) == 4);
  CHECK(prom_value(e, "req_seconds_bucket", {{"le", "1"}, {"route", "a"}}) == 3);  // any order
  CHECK(prom_value(e, "req_seconds_sum", {{"route", "a"}}) == 7.25);
  CHECK_FALSE(prom_value(e, "req_seconds_count"));  // labels must match exactly
  CHECK_FALSE(prom_value(e, "req_seconds_count", {{"route", "c"}}));

  auto special = parse_prom_text(
      "# HELP g G \\\\ h\\nx.\n# TYPE g gauge\ng{x=\"a\\\"b\\\\c\\nd\"} +Inf\ng{x=\"n\"} NaN\n");
  REQUIRE(special.problems.empty());
  CHECK(special.families[0].help == "G \\ h\nx.");
  CHECK(prom_value(special, "g", {{"x", "a\"b\\c\nd"}}) == HUGE_VAL);
  auto nan = prom_value(special, "g", {{"x", "n"}});
  REQUIRE(nan);
  CHECK(std::isnan(*nan));
}
