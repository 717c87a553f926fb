#include "proxy/router.h"
#include "common/ascii.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

namespace lp {
namespace {

constexpr std::string_view kSpace = " \t\n\v\f\r";

enum class PathEnd {
  kExact,     // "/a/b": exactly that path
  kSubtree,   // "/a/b/": that path with its slash and everything below
  kAnchored,  // "/a/b/{$}": exactly the path with its trailing slash
};

PathEnd path_end(const Pattern& p) {
  if (p.subtree) return PathEnd::kSubtree;
  return p.path.back() == '/' ? PathEnd::kAnchored : PathEnd::kExact;
}

// How a pattern's path covers a request path. Go redirects "/x" to "/x/" only when the slashed
// path is matched exactly, so "inexact" (a subtree matching something below its root) matters.
enum class Fit { kNone, kInexact, kExact };

// The relation between the requests two patterns match, as in Go's pattern.go.
enum class Relation { kEquivalent, kMoreGeneral, kMoreSpecific, kDisjoint, kOverlaps };

Relation inverse(Relation r) {
  if (r == Relation::kMoreGeneral) return Relation::kMoreSpecific;
  if (r == Relation::kMoreSpecific) return Relation::kMoreGeneral;
  return r;
}

// Relation of two patterns when one part of them relates by `a` and the other by `b`.
Relation combine(Relation a, Relation b) {
  switch (a) {
    case Relation::kEquivalent:
      return b;
    case Relation::kDisjoint:
      return Relation::kDisjoint;
    case Relation::kOverlaps:
      return b == Relation::kDisjoint ? Relation::kDisjoint : Relation::kOverlaps;
    case Relation::kMoreGeneral:
    case Relation::kMoreSpecific:
      if (b == Relation::kEquivalent) return a;
      if (b == inverse(a)) return Relation::kOverlaps;
      return b;
  }
  return Relation::kDisjoint;
}

bool is_tchar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go unescapes a segment only when every '%' starts a two-digit hex escape; a segment with a
// broken escape is compared as written (pattern "/%x" matches request "/%25x" and "/%x").
bool escapes_valid(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size()) return false;
    if (hex_value(s[i + 1]) < 0 || hex_value(s[i + 2]) < 0) return false;
    i += 2;
  }
  return true;
}

std::string unescape_segment(std::string_view s) {
  if (s.find('%') == std::string_view::npos || !escapes_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Compares a raw request segment with a decoded pattern literal without building the decoded
// segment: matching runs for every request.
bool segment_equals(std::string_view raw, std::string_view literal) {
  if (raw.find('%') == std::string_view::npos || !escapes_valid(raw)) return raw == literal;
  size_t j = 0;
  for (size_t i = 0; i < raw.size(); ++i, ++j) {
    char c = raw[i];
    if (c == '%') {
      c = static_cast<char>(hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2]));
      i += 2;
    }
    if (j >= literal.size() || literal[j] != c) return false;
  }
  return j == literal.size();
}

// Whether Go's cleanPath would leave `path` unchanged: rooted, no empty segment except a
// trailing slash, no "." or ".." segment.
bool is_clean(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  size_t pos = 1;
  while (true) {
    size_t slash = path.find('/', pos);
    std::string_view seg = path.substr(pos, slash == std::string_view::npos ? slash : slash - pos);
    if (seg == "." || seg == "..") return false;
    if (slash == std::string_view::npos) return true;
    if (seg.empty()) return false;
    pos = slash + 1;
  }
}

// Go's cleanPath: path.Clean on the rooted path, then the trailing slash put back, because
// "/a/" and "/a" are different routes.
std::string clean_path(std::string_view path) {
  std::vector<std::string_view> kept;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(pos, slash - pos);
    if (seg == "..") {
      if (!kept.empty()) kept.pop_back();
    } else if (!seg.empty() && seg != ".") {
      kept.push_back(seg);
    }
    pos = slash + 1;
  }
  std::string out;
  for (std::string_view seg : kept) {
    out += '/';
    out += seg;
  }
  if (out.empty()) return "/";
  if (path.back() == '/') out += '/';
  return out;
}

// The Host header without its port, IPv6 literals without brackets. Go leaves "[::1]" (no port)
// bracketed and strips "[::1]:8080" to "::1", so one pattern could never match both; here both
// become "::1". Anything malformed is returned unchanged, as Go does.
std::string_view request_host(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return host;
    std::string_view after = host.substr(close + 1);
    if (!after.empty() && after.front() != ':') return host;
    return host.substr(1, close - 1);
  }
  size_t colon = host.find(':');
  if (colon == std::string_view::npos || host.find(':', colon + 1) != std::string_view::npos) {
    return host;
  }
  return host.substr(0, colon);
}

// A request path split into segments. Go's ServeMux tries "/x/" when "/x" has no exact match;
// `add_slash` does that without building the string.
struct RequestPath {
  std::string_view body;  // the path without its leading and trailing slash
  size_t count = 0;       // number of segments
  bool trailing = false;  // the path ends in '/' (the root "/" counts as one)

  RequestPath(std::string_view path, bool add_slash) {
    body = path.substr(1);
    trailing = add_slash || body.empty() || body.back() == '/';
    if (!add_slash && !body.empty() && body.back() == '/') body.remove_suffix(1);
    count = body.empty() ? 0 : static_cast<size_t>(std::count(body.begin(), body.end(), '/')) + 1;
  }
};

Fit fit(const Pattern& pattern, const std::vector<std::string>& literals, const RequestPath& rp) {
  size_t n = literals.size();
  if (rp.count < n) return Fit::kNone;
  size_t pos = 0;
  for (const std::string& literal : literals) {
    size_t slash = rp.body.find('/', pos);
    size_t end = slash == std::string_view::npos ? rp.body.size() : slash;
    if (!segment_equals(rp.body.substr(pos, end - pos), literal)) return Fit::kNone;
    pos = end + 1;
  }
  switch (path_end(pattern)) {
    case PathEnd::kExact:
      return rp.count == n && !rp.trailing ? Fit::kExact : Fit::kNone;
    case PathEnd::kAnchored:
      return rp.count == n && rp.trailing ? Fit::kExact : Fit::kNone;
    case PathEnd::kSubtree:
      if (rp.count > n) return Fit::kInexact;
      return rp.trailing ? Fit::kExact : Fit::kNone;
  }
  return Fit::kNone;
}

bool method_matches(std::string_view pattern_method, std::string_view method) {
  return pattern_method.empty() || pattern_method == method ||
         (pattern_method == "GET" && method == "HEAD");
}

Relation compare_methods(const Pattern& a, const Pattern& b) {
  if (a.method == b.method) return Relation::kEquivalent;
  if (a.method.empty()) return Relation::kMoreGeneral;
  if (b.method.empty()) return Relation::kMoreSpecific;
  if (a.method == "GET" && b.method == "HEAD") return Relation::kMoreGeneral;
  if (a.method == "HEAD" && b.method == "GET") return Relation::kMoreSpecific;
  return Relation::kDisjoint;
}

// A path as Go's pattern.go sees it: literal segments, then "/" for {$} or "..." for a subtree.
struct PathToken {
  enum Kind { kLiteral, kSlash, kMulti } kind;
  std::string_view text;
};

std::vector<PathToken> tokens(const Pattern& p, const std::vector<std::string>& literals) {
  std::vector<PathToken> out;
  for (const std::string& l : literals) out.push_back({PathToken::kLiteral, l});
  switch (path_end(p)) {
    case PathEnd::kSubtree:
      out.push_back({PathToken::kMulti, {}});
      break;
    case PathEnd::kAnchored:
      out.push_back({PathToken::kSlash, {}});
      break;
    case PathEnd::kExact:
      break;
  }
  return out;
}

Relation compare_tokens(const PathToken& a, const PathToken& b) {
  bool a_multi = a.kind == PathToken::kMulti;
  bool b_multi = b.kind == PathToken::kMulti;
  if (a_multi && b_multi) return Relation::kEquivalent;
  if (a_multi) return Relation::kMoreGeneral;
  if (b_multi) return Relation::kMoreSpecific;
  return a.kind == b.kind && a.text == b.text ? Relation::kEquivalent : Relation::kDisjoint;
}

Relation compare_paths(const std::vector<PathToken>& a, const std::vector<PathToken>& b) {
  bool a_multi = !a.empty() && a.back().kind == PathToken::kMulti;
  bool b_multi = !b.empty() && b.back().kind == PathToken::kMulti;
  if (a.size() != b.size() && !a_multi && !b_multi) return Relation::kDisjoint;
  Relation rel = Relation::kEquivalent;
  size_t common = std::min(a.size(), b.size());
  for (size_t i = 0; i < common; ++i) {
    rel = combine(rel, compare_tokens(a[i], b[i]));
    if (rel == Relation::kDisjoint) return rel;
  }
  if (a.size() == b.size()) return rel;
  // The shorter path's trailing "..." also covers the longer one's remaining segments.
  if (a.size() < b.size() && a_multi) return combine(rel, Relation::kMoreGeneral);
  if (b.size() < a.size() && b_multi) return combine(rel, Relation::kMoreSpecific);
  return Relation::kDisjoint;
}

// Used at construction only: it allocates.
struct Compared {
  Relation methods;
  Relation paths;
  Relation overall;
};

Compared compare(const Pattern& a, const std::vector<std::string>& a_literals, const Pattern& b,
                 const std::vector<std::string>& b_literals) {
  Compared c;
  c.methods = compare_methods(a, b);
  c.paths = compare_paths(tokens(a, a_literals), tokens(b, b_literals));
  c.overall = combine(c.methods, c.paths);
  return c;
}

std::vector<std::string> literal_segments(const Pattern& p) {
  std::vector<std::string> out;
  std::string_view body = std::string_view(p.path).substr(1);
  if (!body.empty() && body.back() == '/') body.remove_suffix(1);
  while (!body.empty()) {
    size_t slash = body.find('/');
    out.push_back(unescape_segment(body.substr(0, slash)));
    if (slash == std::string_view::npos) break;
    body.remove_prefix(slash + 1);
  }
  return out;
}

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

// Pattern hosts are compared with request hosts whose port was stripped, so a pattern host with
// a port could never match: that is reported instead of silently routing nothing.
bool normalize_pattern_host(std::string* host, std::string* error) {
  for (char& c : *host) c = ascii_lower(c);
  std::string_view h = *host;
  if (!h.empty() && h.front() == '[') {
    size_t close = h.find(']');
    if (close == std::string_view::npos) {
      *error = "host " + quoted(h) + " has an unterminated IPv6 literal";
      return false;
    }
    if (close + 1 != h.size()) {
      *error = "host " + quoted(h) + " has a port; ports are ignored when matching";
      return false;
    }
    *host = std::string(h.substr(1, close - 1));
    return true;
  }
  size_t colon = h.find(':');
  if (colon != std::string_view::npos && h.find(':', colon + 1) == std::string_view::npos) {
    *error = "host " + quoted(h) + " has a port; ports are ignored when matching";
    return false;
  }
  return true;
}

struct Candidate {
  int index = -1;
  Fit fit = Fit::kNone;
};

// Specificity of a pattern that matches the request, as a sortable key. Two patterns matching
// the same request are never in conflict (that was rejected up front), so their paths and
// methods cannot point in opposite directions and Go's "more specific" order reduces to:
// narrower path first (exact or {$} beats any subtree, a longer subtree beats a shorter one),
// then narrower method (the request's own, then GET serving HEAD, then any). This avoids
// building the pattern.go comparison per request.
struct Rank {
  size_t path;
  int method;
  bool operator>(const Rank& o) const { return path != o.path ? path > o.path : method > o.method; }
};

Rank rank(const Pattern& p, const std::vector<std::string>& literals, std::string_view method) {
  Rank r;
  r.path = p.subtree ? literals.size() : static_cast<size_t>(-1);
  r.method = p.method.empty() ? 0 : p.method == method ? 2 : 1;
  return r;
}

// Go's precedence: patterns naming the request's host first, then host-less ones; within a
// group the most specific matching pattern.
Candidate find_route(const std::vector<Pattern>& patterns,
                     const std::vector<std::vector<std::string>>& literals, std::string_view host,
                     std::string_view method, std::string_view path, bool add_slash) {
  RequestPath rp(path, add_slash);
  auto best_in_group = [&](bool with_host) {
    Candidate best;
    Rank best_rank{};
    for (size_t i = 0; i < patterns.size(); ++i) {
      const Pattern& p = patterns[i];
      if (with_host ? !iequals(p.host, host) : !p.host.empty()) continue;
      if (!method_matches(p.method, method)) continue;
      Fit f = fit(p, literals[i], rp);
      if (f == Fit::kNone) continue;
      Rank r = rank(p, literals[i], method);
      if (best.index < 0 || r > best_rank) {
        best = {static_cast<int>(i), f};
        best_rank = r;
      }
    }
    return best;
  };
  if (!host.empty()) {
    Candidate c = best_in_group(true);
    if (c.index >= 0) return c;
  }
  return best_in_group(false);
}

std::string with_query(std::string path, std::string_view query) {
  if (!query.empty()) {
    path += '?';
    path += query;
  }
  return path;
}

RouteMatch redirect(std::string path, std::string_view query) {
  RouteMatch m;
  m.kind = RouteMatch::Kind::kRedirect;
  m.location = with_query(std::move(path), query);
  return m;
}

}  // namespace

std::optional<Pattern> parse_pattern(std::string_view text, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Pattern> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  if (text.empty()) return fail("empty pattern");
  Pattern p;
  p.raw = std::string(text);
  std::string_view rest = text;
  size_t space = text.find_first_of(" \t");
  if (space != std::string_view::npos) {
    // Like Go, any run of blanks separates the method, and blanks around the rest are ignored.
    std::string_view method = text.substr(0, space);
    rest = text.substr(space + 1);
    size_t first = rest.find_first_not_of(kSpace);
    rest = first == std::string_view::npos ? std::string_view{} : rest.substr(first);
    rest = rest.substr(0, rest.find_last_not_of(kSpace) + 1);
    if (!method.empty() && !is_token(method)) {
      return fail("invalid method " + quoted(method) + " (not an HTTP token)");
    }
    p.method = std::string(method);
  }
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return fail("missing path: a pattern needs a '/'");
  p.host = std::string(rest.substr(0, slash));
  std::string_view path = rest.substr(slash);
  if (p.host.find('{') != std::string::npos) {
    return fail("host " + quoted(p.host) + " contains '{' (missing initial '/'?)");
  }
  std::string host_error;
  if (!normalize_pattern_host(&p.host, &host_error)) return fail(host_error);
  if (!is_clean(path)) {
    return fail("path " + quoted(path) + " is not clean (it contains \"//\", \".\" or \"..\"); " +
                "requests are cleaned before matching, so it could never match");
  }
  size_t pos = 1;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(pos, end - pos);
    size_t brace = seg.find('{');
    if (brace != std::string_view::npos) {
      if (brace != 0) {
        return fail("bad wildcard segment " + quoted(seg) + " (must start with '{')");
      }
      if (seg.back() != '}') {
        return fail("bad wildcard segment " + quoted(seg) + " (must end with '}')");
      }
      if (seg != "{$}") {
        return fail("wildcards other than {$} are not supported: " + std::string(seg));
      }
      if (end != path.size()) return fail("{$} must be the last segment of the path");
      p.path = std::string(path.substr(0, pos));
      return p;
    }
    pos = end + 1;
  }
  p.path = std::string(path);
  p.subtree = path.back() == '/';
  return p;
}

Router::Router(const std::vector<RouteSpec>& routes) {
  for (const RouteSpec& route : routes) {
    std::string error;
    std::optional<Pattern> p = parse_pattern(route.pattern, &error);
    if (!p) throw RouteError(route.name, "invalid pattern " + quoted(route.pattern) + ": " + error);
    std::vector<std::string> literals = literal_segments(*p);
    for (size_t i = 0; i < patterns_.size(); ++i) {
      const Pattern& other = patterns_[i];
      // A pattern with a host always beats one without, and different hosts never meet.
      if (other.host != p->host) continue;
      Compared c = compare(*p, literals, other, literals_[i]);
      if (c.overall == Relation::kEquivalent) {
        std::string msg =
            "pattern " + quoted(p->raw) + " is identical to route '" + names_[i] + "'";
        if (other.raw != p->raw) msg += " (" + quoted(other.raw) + ")";
        throw RouteError(route.name, msg);
      }
      if (c.overall != Relation::kOverlaps) continue;
      // With literal paths only, an overlap means one pattern has the narrower method and the
      // other the narrower path; a request with both is matched by both.
      const std::string& method = c.methods == Relation::kMoreSpecific ? p->method : other.method;
      const std::string& path = c.paths == Relation::kMoreSpecific ? p->path : other.path;
      std::string example = (method.empty() ? "" : method + " ") + p->host + path;
      throw RouteError(route.name, "pattern " + quoted(p->raw) + " conflicts with route '" +
                                       names_[i] + "' (" + quoted(other.raw) + "): both match " +
                                       example + " and neither is more specific");
    }
    patterns_.push_back(std::move(*p));
    names_.push_back(route.name);
    literals_.push_back(std::move(literals));
  }
}

RouteMatch Router::match(std::string_view method, std::string_view host, std::string_view raw_path,
                         std::string_view query) const {
  std::string_view h = request_host(host);
  // Go does not canonicalise CONNECT targets; every other request is matched on its clean path.
  std::string cleaned;
  std::string_view path = raw_path;
  if (method != "CONNECT" && !is_clean(raw_path)) {
    cleaned = clean_path(raw_path);
    path = cleaned;
  }
  if (path.empty() || path.front() != '/') return RouteMatch{};

  Candidate found = find_route(patterns_, literals_, h, method, path, false);
  if (found.fit != Fit::kExact && path.back() != '/') {
    Candidate slashed = find_route(patterns_, literals_, h, method, path, true);
    if (slashed.fit == Fit::kExact) return redirect(std::string(path) + "/", query);
  }
  if (!cleaned.empty()) return redirect(std::move(cleaned), query);

  RouteMatch m;
  if (found.index >= 0) {
    m.kind = RouteMatch::Kind::kRoute;
    m.route_index = found.index;
    return m;
  }

  // Which methods would have matched, counting the slashed path like the redirect above does.
  std::vector<std::string_view> methods;
  RequestPath plain(path, false);
  std::optional<RequestPath> slashed;
  if (path.back() != '/') slashed.emplace(path, true);
  for (size_t i = 0; i < patterns_.size(); ++i) {
    const Pattern& p = patterns_[i];
    if (p.method.empty()) continue;
    if (!p.host.empty() && (h.empty() || !iequals(p.host, h))) continue;
    if (fit(p, literals_[i], plain) == Fit::kNone &&
        (!slashed || fit(p, literals_[i], *slashed) == Fit::kNone)) {
      continue;
    }
    methods.push_back(p.method);
    if (p.method == "GET") methods.push_back("HEAD");
  }
  if (methods.empty()) return m;
  std::sort(methods.begin(), methods.end());
  methods.erase(std::unique(methods.begin(), methods.end()), methods.end());
  m.kind = RouteMatch::Kind::kMethodNotAllowed;
  for (std::string_view method_name : methods) {
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += method_name;
  }
  return m;
}

std::string upstream_target(const Pattern& pattern, const Url& destination,
                            std::string_view raw_path, std::string_view query) {
  std::string target = destination.path;
  if (pattern.subtree) {
    // Count segments on the raw path so the remainder keeps the client's escaping byte for byte.
    size_t skip =
        static_cast<size_t>(std::count(pattern.path.begin(), pattern.path.end(), '/')) - 1;
    size_t pos = raw_path.empty() ? 0 : 1;
    for (size_t i = 0; i < skip && pos <= raw_path.size(); ++i) {
      size_t slash = raw_path.find('/', pos);
      pos = slash == std::string_view::npos ? raw_path.size() + 1 : slash + 1;
    }
    std::string_view remainder = pos <= raw_path.size() ? raw_path.substr(pos) : std::string_view{};
    if (target.empty() || target.back() != '/') target += '/';
    target += remainder;
  }
  std::string_view dest_query = destination.query;
  if (!dest_query.empty() || !query.empty()) {
    target += '?';
    target += dest_query;
    if (!dest_query.empty() && !query.empty()) target += '&';
    target += query;
  }
  return target;
}

}  // namespace lp
