// Fuzz target: the Go-ServeMux pattern parser and router (lp::parse_pattern, lp::Router,
// Router::match, lp::upstream_target).
//
// Input (text, so the seeds read like a config and its traffic):
//   one pattern per line, up to a blank line (at most 16 are used), then
//   one request per line: "METHOD HOST TARGET" ("-" for no Host; TARGET split at '?').
// Checked beyond "no crash": the router throws lp::RouteError only; a parsed pattern re-parses
// to the same thing; a match names a route whose method fits; a redirect goes to a rooted
// location that does not redirect to itself; 405 lists methods; host matching ignores case;
// the upstream target starts with the destination path and ends with the query.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/url.h"
#include "fuzz/fuzz_check.h"
#include "proxy/router.h"

namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

void check_pattern(std::string_view text) {
  std::string error;
  std::optional<lp::Pattern> p = lp::parse_pattern(text, &error);
  if (!p) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  FUZZ_CHECK(!p->path.empty() && p->path.front() == '/');
  FUZZ_CHECK(!p->subtree || p->path.back() == '/');
  for (char c : p->host) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
  std::optional<lp::Pattern> again = lp::parse_pattern(p->raw, &error);
  FUZZ_CHECK(again && again->method == p->method && again->host == p->host &&
             again->path == p->path && again->subtree == p->subtree);
}

bool method_fits(const std::string& pattern_method, std::string_view method) {
  return pattern_method.empty() || pattern_method == method ||
         (pattern_method == "GET" && method == "HEAD");
}

bool same(const lp::RouteMatch& a, const lp::RouteMatch& b) {
  return a.kind == b.kind && a.route_index == b.route_index && a.location == b.location &&
         a.allow == b.allow;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string_view> lines =
      split_lines(std::string_view(reinterpret_cast<const char*>(data), size));
  std::vector<lp::RouteSpec> specs;
  size_t i = 0;
  for (; i < lines.size() && !lines[i].empty(); ++i) {
    check_pattern(lines[i]);
    if (specs.size() < 16) specs.push_back({"r" + std::to_string(i), std::string(lines[i])});
  }
  std::optional<lp::Router> router;
  try {
    router.emplace(specs);
  } catch (const lp::RouteError& e) {
    FUZZ_CHECK(!e.route().empty() && std::string_view(e.what()).size() > 0);
    return 0;
  }
  static const lp::Url destination = [] {
    std::string error;
    return *lp::parse_url("http://upstream.example:8080/base/?k=v", &error);
  }();

  int requests = 0;
  for (++i; i < lines.size() && requests < 16; ++i, ++requests) {
    std::string_view line = lines[i];
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    std::string_view method = line.substr(0, sp1);
    std::string_view host =
        sp1 == std::string_view::npos ? std::string_view{} : line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (host == "-") host = {};
    std::string_view target =
        sp2 == std::string_view::npos ? std::string_view("/") : line.substr(sp2 + 1);
    size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    std::string_view query =
        q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);

    lp::RouteMatch m = router->match(method, host, path, query);
    switch (m.kind) {
      case lp::RouteMatch::Kind::kRoute: {
        FUZZ_CHECK(m.route_index >= 0 && static_cast<size_t>(m.route_index) < specs.size());
        const lp::Pattern& p = router->pattern(m.route_index);
        FUZZ_CHECK(method_fits(p.method, method));
        std::string up = lp::upstream_target(p, destination, path, query);
        FUZZ_CHECK(up.rfind(destination.path, 0) == 0);
        if (!query.empty()) {
          FUZZ_CHECK(up.size() >= query.size() &&
                     up.compare(up.size() - query.size(), std::string::npos, query.data(),
                                query.size()) == 0);
        }
        break;
      }
      case lp::RouteMatch::Kind::kRedirect: {
        FUZZ_CHECK(!m.location.empty() && m.location.front() == '/');
        std::string_view loc = m.location;
        size_t lq = loc.find('?');
        lp::RouteMatch next =
            router->match(method, host, loc.substr(0, lq),
                          lq == std::string_view::npos ? std::string_view{} : loc.substr(lq + 1));
        FUZZ_CHECK(!(next.kind == lp::RouteMatch::Kind::kRedirect && next.location == m.location));
        break;
      }
      case lp::RouteMatch::Kind::kMethodNotAllowed:
        FUZZ_CHECK(!m.allow.empty());
        break;
      case lp::RouteMatch::Kind::kNotFound:
        FUZZ_CHECK(m.route_index == -1);
        break;
    }
    // Host matching ignores case.
    std::string upper(host);
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    FUZZ_CHECK(same(m, router->match(method, upper, path, query)));
  }
  return 0;
}
