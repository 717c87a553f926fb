// Request routing with Go 1.22 net/http.ServeMux semantics, restricted to what the
// proxy supports: "[METHOD ][HOST]/PATH" where PATH is literal, may end in "/" (a subtree)
// or in "/{$}" (exactly that path with its trailing slash); other {wildcards} are rejected.
// Pure code: no I/O, no allocation on the match path beyond the result.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/url.h"

namespace lp {

struct Pattern {
  std::string raw;       // as written in the config
  std::string method;    // empty: any method
  std::string host;      // empty: any host; lower case, IPv6 literals without brackets
  std::string path;      // literal path as written, without the "{$}" suffix; ends in '/' for
                         // subtrees and for "{$}" patterns (which are not subtrees)
  bool subtree = false;  // PATH ended in '/' (and not "{$}"): matches everything below
};

// Parses a pattern; nullopt with *error set to a sentence naming the problem.
std::optional<Pattern> parse_pattern(std::string_view text, std::string* error);

class RouteError : public std::runtime_error {
 public:
  RouteError(std::string route, const std::string& message)
      : std::runtime_error(message), route_(std::move(route)) {}
  const std::string& route() const { return route_; }

 private:
  std::string route_;
};

struct RouteSpec {
  std::string name;
  std::string pattern;
};

struct RouteMatch {
  enum class Kind {
    kRoute,             // route_index is valid
    kRedirect,          // 301 to `location` (subtree root without slash, or unclean path)
    kNotFound,          // 404
    kMethodNotAllowed,  // 405; `allow` lists the methods that would match
  };
  Kind kind = Kind::kNotFound;
  int route_index = -1;
  std::string location;  // for kRedirect: path (+ "?" + query when the request had one)
  std::string allow;     // for kMethodNotAllowed: e.g. "GET, HEAD"
};

class Router {
 public:
  // Throws RouteError naming the offending route for invalid patterns, identical patterns
  // and conflicting patterns (neither more specific than the other, same host).
  explicit Router(const std::vector<RouteSpec>& routes);

  // `host` is the request's Host header (port ignored); `raw_path` the request target's
  // path as received (still percent-encoded); `query` without '?'.
  RouteMatch match(std::string_view method, std::string_view host, std::string_view raw_path,
                   std::string_view query) const;

  const Pattern& pattern(int route_index) const { return patterns_[route_index]; }

 private:
  std::vector<Pattern> patterns_;
  std::vector<std::string> names_;
  // Per route, the percent-decoded literal segments of its path: matching compares these with
  // the decoded request segments without re-parsing the pattern on every request.
  std::vector<std::vector<std::string>> literals_;
};

// The upstream request target for a request routed by `pattern` to `destination`:
// a subtree pattern replaces its prefix by the destination path ("/lmstudio/" + "/lmstudio/v1/x"
// + "http://h/" -> "/v1/x"; "https://h/api/v1/" keeps its prefix); an exact pattern forwards to
// the destination path as written. The request query (raw) is appended, after any query the
// destination itself has. `raw_path` stays percent-encoded as received.
std::string upstream_target(const Pattern& pattern, const Url& destination,
                            std::string_view raw_path, std::string_view query);

}  // namespace lp
