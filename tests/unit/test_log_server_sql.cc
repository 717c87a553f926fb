// SQL reaches SQLite only as text fixed at compile time; every runtime value is a bound
// parameter. This test enforces that on the log server's sources: it finds every place SQL
// text is handed over (Database::exec / Database::cached, and the raw sqlite3_exec /
// sqlite3_prepare* calls, which only the wrapper in sqlite.cc may make) and fails unless the
// SQL argument is built only from string literals and constants whose own initialisers are
// literals. A local string variable is accepted when every assignment and append to it in
// the function is built the same way: that is how IndexReader::list assembles its WHERE
// clause from fixed fragments ("AND route = ?") while the filter values are bound.
//
// The scanner is a small tokenizer (comments dropped, string, raw-string and character
// literals kept whole), not a C++ parser: anything it does not understand is a finding, so a
// new way of building SQL has to be made to fit the rule rather than slipping past it.
#include <doctest/doctest.h>

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Token {
  enum Kind { kIdent, kString, kNumber, kChar, kPunct } kind;
  std::string text;
  int line;
};

std::vector<Token> tokenize(const std::string& src) {
  std::vector<Token> out;
  int line = 1;
  size_t i = 0, n = src.size();
  auto add = [&](Token::Kind k, size_t from, size_t to, int at_line) {
    out.push_back({k, src.substr(from, to - from), at_line});
  };
  auto ident_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  while (i < n) {
    char c = src[i];
    if (c == '\n') {
      ++line;
      ++i;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (src.compare(i, 2, "//") == 0) {
      while (i < n && src[i] != '\n') ++i;
    } else if (src.compare(i, 2, "/*") == 0) {
      size_t end = src.find("*/", i + 2);
      end = end == std::string::npos ? n : end + 2;
      line += static_cast<int>(std::count(src.begin() + i, src.begin() + end, '\n'));
      i = end;
    } else if (c == '#' && (out.empty() || out.back().line != line)) {
      while (i < n && src[i] != '\n') ++i;  // preprocessor line
    } else if (ident_char(c) && !std::isdigit(static_cast<unsigned char>(c))) {
      size_t s = i;
      while (i < n && ident_char(src[i])) ++i;
      std::string word = src.substr(s, i - s);
      // String literal prefixes: R"delim( ... )delim", u8"...", L"..."
      bool raw = !word.empty() && word.back() == 'R' &&
                 (word == "R" || word == "u8R" || word == "uR" || word == "UR" || word == "LR");
      bool prefix = word == "u8" || word == "u" || word == "U" || word == "L";
      if (i < n && src[i] == '"' && raw) {
        size_t open = src.find('(', i);
        std::string delim = ")" + src.substr(i + 1, open - i - 1) + "\"";
        size_t end = src.find(delim, open);
        end = end == std::string::npos ? n : end + delim.size();
        int at = line;
        line += static_cast<int>(std::count(src.begin() + i, src.begin() + end, '\n'));
        add(Token::kString, s, end, at);
        i = end;
      } else if (i < n && src[i] == '"' && prefix) {
        i = s + word.size();  // the string is lexed next round; the prefix is dropped
      } else {
        add(Token::kIdent, s, i, line);
      }
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t s = i;
      while (i < n && (ident_char(src[i]) || src[i] == '.' || src[i] == '\'')) ++i;
      add(Token::kNumber, s, i, line);
    } else if (c == '"' || c == '\'') {
      size_t s = i++;
      while (i < n && src[i] != c && src[i] != '\n') i += src[i] == '\\' ? 2 : 1;
      ++i;
      add(c == '"' ? Token::kString : Token::kChar, s, std::min(i, n), line);
    } else {
      static const char* const kTwo[] = {"::", "->", "+=", "==", "!=", "<=", ">=", "&&", "||",
                                         "<<", ">>", "++", "--", "-=", "*=", "/=", "|=", "&="};
      size_t len = 1;
      for (const char* t : kTwo) {
        if (src.compare(i, 2, t) == 0) len = 2;
      }
      add(Token::kPunct, i, i + len, line);
      i += len;
    }
  }
  return out;
}

struct Finding {
  std::string file;
  int line;
  std::string message;
};

std::string join(const std::vector<Token>& t, size_t from, size_t to) {
  std::string s;
  for (size_t i = from; i < to && i < t.size(); ++i) s += (s.empty() ? "" : " ") + t[i].text;
  return s;
}

// The end (exclusive) of the expression starting at `from`: the first `,` `)` `;` or `}` at
// parenthesis depth 0.
size_t expression_end(const std::vector<Token>& t, size_t from) {
  int parens = 0;
  for (size_t i = from; i < t.size(); ++i) {
    const std::string& x = t[i].text;
    if (t[i].kind != Token::kPunct) continue;
    if (x == "(" || x == "[" || x == "{") ++parens;
    if (x == ")" || x == "]" || x == "}") {
      if (parens == 0) return i;
      --parens;
    }
    if ((x == "," || x == ";") && parens == 0) return i;
  }
  return t.size();
}

// True when t[from, to) is built only of string literals, numbers, known constants, `+`,
// parentheses, std::string(...)/std::string_view(...) and std::to_string(...). `also_ok` is a
// variable name that may appear too (an append to a builder that is itself checked).
bool compile_time_text(const std::vector<Token>& t, size_t from, size_t to,
                       const std::set<std::string>& constants, const std::string& also_ok = "") {
  if (from >= to) return false;
  static const std::set<std::string> kAllowedIdents = {"std", "string", "string_view", "to_string"};
  for (size_t i = from; i < to; ++i) {
    const Token& k = t[i];
    switch (k.kind) {
      case Token::kString:
      case Token::kNumber:
        break;
      case Token::kChar:
        return false;
      case Token::kIdent:
        if (!kAllowedIdents.count(k.text) && !constants.count(k.text) && k.text != also_ok) {
          return false;
        }
        break;
      case Token::kPunct:
        if (k.text != "+" && k.text != "(" && k.text != ")" && k.text != "::") return false;
        break;
    }
  }
  return true;
}

struct Source {
  std::string name;
  std::vector<Token> tokens;
};

// Names defined as `const`/`constexpr` with an initialiser that is compile-time text, across
// all sources (repeated until nothing new is found, so constants may build on constants).
std::set<std::string> find_constants(const std::vector<Source>& sources) {
  std::set<std::string> constants;
  for (bool grew = true; grew;) {
    grew = false;
    for (const Source& s : sources) {
      const auto& t = s.tokens;
      for (size_t i = 1; i + 1 < t.size(); ++i) {
        if (t[i].kind != Token::kIdent || t[i + 1].text != "=" || constants.count(t[i].text)) {
          continue;
        }
        // Walk back over the declaration to the previous statement boundary.
        // A default argument (`f(const char* x = "")`) is not a constant: stop at ( ) ,.
        bool is_const = false;
        for (size_t j = i; j-- > 0;) {
          const std::string& x = t[j].text;
          if (x == ";" || x == "{" || x == "}") break;
          if (x == "(" || x == ")" || x == ",") {
            is_const = false;
            break;
          }
          if (x == "const" || x == "constexpr") is_const = true;
        }
        if (!is_const) continue;
        size_t end = expression_end(t, i + 2);
        if (compile_time_text(t, i + 2, end, constants)) {
          constants.insert(t[i].text);
          grew = true;
        }
      }
    }
  }
  return constants;
}

struct ScanResult {
  std::vector<Finding> findings;
  int sinks = 0;  // places SQL text is handed to SQLite (or to the wrapper)
};

// Checks a local builder variable `name` used as SQL at token `call`: in its function, each
// occurrence must be its declaration, an assignment or an append of compile-time text, or
// this use.
void check_builder(const Source& s, size_t arg, const std::string& name,
                   const std::set<std::string>& constants, ScanResult* r) {
  const auto& t = s.tokens;
  // The function's body: the outermost enclosing `{` that follows a parameter list (namespace
  // and class braces follow a name).
  size_t body = 0;
  int level = 0;
  for (size_t j = arg; j-- > 0;) {
    if (t[j].text == "}") ++level;
    if (t[j].text != "{") continue;
    if (level > 0) {
      --level;
      continue;
    }
    const std::string& before = j > 0 ? t[j - 1].text : "";
    if (before == ")" || before == "const" || before == "noexcept" || before == "override") {
      body = j;
    }
  }
  bool declared = false;
  for (size_t i = body; i < arg; ++i) {
    if (t[i].kind != Token::kIdent || t[i].text != name) continue;
    const std::string& next = i + 1 < t.size() ? t[i + 1].text : "";
    bool declaration = i >= 3 && t[i - 1].text == "string" && t[i - 2].text == "::" &&
                       t[i - 3].text == "std" && next == "=";
    if (declaration || ((next == "=" || next == "+=") && declared)) {
      size_t end = expression_end(t, i + 2);
      if (!compile_time_text(t, i + 2, end, constants, name)) {
        r->findings.push_back({s.name, t[i].line,
                               "SQL builder `" + name + "` gets runtime text: " + join(t, i, end) +
                                   " (bind the value with ? instead)"});
      }
      declared = true;
      i = end;
      continue;
    }
    r->findings.push_back({s.name, t[i].line,
                           "SQL builder `" + name +
                               "` is used in a way this check cannot "
                               "verify: " +
                               join(t, i > 0 ? i - 1 : i, std::min(i + 4, t.size()))});
  }
  if (!declared) {
    r->findings.push_back({s.name, t[arg].line,
                           "SQL argument `" + name +
                               "` is neither a constant nor a std::string built in this "
                               "function from literals"});
  }
}

ScanResult scan(const std::vector<Source>& sources) {
  ScanResult r;
  std::set<std::string> constants = find_constants(sources);
  static const std::set<std::string> kWrapperCalls = {"exec", "cached"};
  for (const Source& s : sources) {
    const auto& t = s.tokens;
    bool is_wrapper = s.name == "sqlite.cc";
    for (size_t i = 0; i + 1 < t.size(); ++i) {
      if (t[i].kind != Token::kIdent || t[i + 1].text != "(") continue;
      const std::string& f = t[i].text;
      bool raw = f.rfind("sqlite3_prepare", 0) == 0 || f == "sqlite3_exec" ||
                 f.find("printf") != std::string::npos;
      bool member =
          kWrapperCalls.count(f) && i > 0 && (t[i - 1].text == "." || t[i - 1].text == "->");
      if (!raw && !member) continue;
      ++r.sinks;
      size_t arg = i + 2;
      if (raw) {
        if (f.find("printf") != std::string::npos && f.rfind("sqlite3_", 0) == 0) {
          r.findings.push_back({s.name, t[i].line, f + " formats SQL text: bind values instead"});
          continue;
        }
        if (f.find("printf") != std::string::npos) {
          --r.sinks;  // snprintf and friends elsewhere are not SQL
          continue;
        }
        // The wrapper passes its own `sql` parameter on; nobody else talks to SQLite directly.
        size_t a1 = expression_end(t, arg);
        size_t a2 = expression_end(t, a1 + 1);
        std::string sql_arg = join(t, a1 + 1, a2);
        if (!is_wrapper || sql_arg != "sql . c_str ( )") {
          r.findings.push_back({s.name, t[i].line,
                                "direct " + f + "(" + sql_arg +
                                    ", ...): use Database::exec/cached with bound parameters"});
        }
        continue;
      }
      size_t end = expression_end(t, arg);
      if (end == arg + 1 && t[arg].kind == Token::kIdent && !constants.count(t[arg].text)) {
        check_builder(s, arg, t[arg].text, constants, &r);
      } else if (!compile_time_text(t, arg, end, constants)) {
        r.findings.push_back({s.name, t[i].line,
                              "SQL text built from a runtime value: " + f + "(" +
                                  join(t, arg, end) + ") (bind the value with ? instead)"});
      }
    }
  }
  return r;
}

ScanResult scan_text(const std::string& text) {
  return scan({Source{"example.cc", tokenize(text)}});
}

std::string describe(const ScanResult& r) {
  std::string s;
  for (const auto& f : r.findings) {
    s += f.file + ":" + std::to_string(f.line) + ": " + f.message + "\n";
  }
  return s;
}

}  // namespace

TEST_CASE("SQL scanner: literal SQL and bound values pass, concatenated values are caught") {
  struct Case {
    const char* name;
    const char* code;
    bool clean;
  };
  const Case cases[] = {
      {"literal", R"(void f(Database& db) { db.exec("BEGIN IMMEDIATE"); })", true},
      {"bound parameter",
       R"(void f(Database& db, std::string v) { auto& s = db.cached("SELECT 1 WHERE a = ?1");
          s.bind(1, v); })",
       true},
      {"constant columns",
       R"(const char* const kCols = "a, b" "c";
          void f(Database* db) { db->cached(std::string("SELECT ") + kCols + " FROM t"); })",
       true},
      {"constexpr number",
       R"(constexpr int kVersion = 3;
          void f(Database& db) { db.exec("PRAGMA user_version = " + std::to_string(kVersion)); })",
       true},
      {"raw string constant",
       R"x(constexpr const char* kSchema = R"sql(CREATE TABLE t (a); -- "quoted" ')sql";
           void f(Database& db) { db.exec(kSchema); })x",
       true},
      {"builder from fragments",
       R"(void f(Database& db, const Q& q) { std::string sql = "SELECT a FROM t WHERE 1";
          if (q.a) sql += " AND a = ?"; sql += " LIMIT ?"; db.cached(sql); })",
       true},
      {"quoted value concatenated",
       R"(void f(Database& db, std::string value) {
          db.cached("SELECT * FROM t WHERE a = '" + value + "'"); })",
       false},
      {"value via to_string",
       R"(void f(Database& db, int n) { db.exec("PRAGMA x = " + std::to_string(n)); })", false},
      {"member value", R"(void f(Database& db, Q q) { db.cached("SELECT " + q.col); })", false},
      {"non-const global",
       R"(std::string kCols = "a"; void f(Database& db) { db.cached("SELECT " + kCols); })", false},
      {"const initialised at run time",
       R"(void f(Database& db, std::string v) { const std::string where = "a = '" + v + "'";
          db.cached("SELECT 1 WHERE " + where); })",
       false},
      {"builder gets a value",
       R"(void f(Database& db, std::string v) { std::string sql = "SELECT 1 WHERE a = '";
          sql += v; db.cached(sql); })",
       false},
      {"builder appended to",
       R"(void f(Database& db, std::string v) { std::string sql = "SELECT 1";
          sql.append(v); db.cached(sql); })",
       false},
      {"builder reassigned",
       R"(void f(Database& db, std::string v) { std::string sql = "SELECT 1";
          sql = sql + " WHERE a = '" + v + "'"; db.exec(sql); })",
       false},
      {"parameter passed in", R"(void f(Database& db, const std::string& sql) { db.exec(sql); })",
       false},
      {"direct sqlite3_exec",
       R"(void f(sqlite3* db) { sqlite3_exec(db, "DELETE FROM t", nullptr, nullptr, nullptr); })",
       false},
      {"direct sqlite3_prepare_v2",
       R"(void f(sqlite3* db, sqlite3_stmt** s) { sqlite3_prepare_v2(db, "SELECT 1", -1, s, 0); })",
       false},
      {"sqlite3_mprintf", R"(void f(const char* v) { char* q = sqlite3_mprintf("SELECT %Q", v); })",
       false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    ScanResult r = scan_text(c.code);
    INFO(describe(r));
    CHECK(r.sinks >= 1);
    CHECK(r.findings.empty() == c.clean);
  }
  // Comments and strings that merely mention the calls are not calls.
  ScanResult quiet =
      scan_text("// db.exec(\"x\" + v)\n/* db.cached(v) */ const char* s = \"db.exec(v)\";");
  CHECK(quiet.sinks == 0);
}

TEST_CASE("SQL in log-server/ is compile-time text with bound values") {
  const std::string dir = std::string(LP_SOURCE_DIR) + "/log-server";
  std::vector<Source> sources;
  DIR* d = ::opendir(dir.c_str());
  REQUIRE_MESSAGE(d != nullptr, "cannot open " << dir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > 3 && (name.ends_with(".cc") || name.ends_with(".h"))) names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  REQUIRE(names.size() >= 10);
  for (const auto& name : names) {
    std::ifstream in(dir + "/" + name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    sources.push_back({name, tokenize(ss.str())});
  }
  ScanResult r = scan(sources);
  INFO(describe(r));
  CHECK(r.findings.empty());
  // Not vacuous: the writer, the reader, the schema setup and the wrapper were all seen.
  MESSAGE("SQL call sites checked: " << r.sinks);
  CHECK(r.sinks >= 20);
}
