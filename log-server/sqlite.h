// A thin RAII layer over the SQLite C API: a connection, prepared statements, and errors as
// exceptions carrying the SQLite result code. No policy lives here (schema and pragmas are in
// index_schema.h); statements are cached per connection by their SQL text.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace lp::logsrv {

class SqliteError : public std::runtime_error {
 public:
  SqliteError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }  // primary SQLite result code (SQLITE_FULL, SQLITE_IOERR...)

 private:
  int code_;
};

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Bind by 1-based index. Strings are copied by SQLite (SQLITE_TRANSIENT).
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, std::nullopt_t);
  Statement& bind(int index, const std::optional<int64_t>& value);
  Statement& bind(int index, const std::optional<std::string>& value);
  Statement& bind(int index, double value);
  Statement& bind(int index, const std::optional<double>& value);
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const std::string& value) {
    return bind(index, std::string_view(value));
  }
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  // Bytes as a BLOB (copied), for binary data that is not text.
  Statement& bind_blob(int index, std::string_view bytes);

  // Steps once: true when a row is available, false when done. Throws SqliteError.
  bool step();
  // Resets for re-execution and clears the bindings.
  void reset();

  bool is_null(int col) const;
  int64_t int64(int col) const;
  std::optional<int64_t> opt_int64(int col) const;
  std::optional<double> opt_double(int col) const;
  std::string text(int col) const;  // "" for NULL
  // The text without a copy: valid until the next step(), reset() or type conversion.
  std::optional<std::string_view> opt_view(int col) const;
  std::optional<std::string> opt_text(int col) const;
  // A BLOB's bytes without a copy (empty for NULL or a zero-length blob); valid as opt_view.
  std::string_view blob(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// Resets a cached statement when the scope ends, even on an exception.
class StatementScope {
 public:
  explicit StatementScope(Statement& s) : s_(s) {}
  ~StatementScope() { s_.reset(); }
  StatementScope(const StatementScope&) = delete;
  StatementScope& operator=(const StatementScope&) = delete;
  Statement* operator->() { return &s_; }
  Statement& operator*() { return s_; }

 private:
  Statement& s_;
};

class Database {
 public:
  // Opens (creating when `create`) the database file; throws SqliteError.
  Database(const std::string& path, bool create);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(const std::string& sql);
  // Undoes the open transaction, if any (a failed BEGIN, a COMMIT, or an error SQLite answered
  // by rolling back itself leave none); never throws, so it is safe in a catch block.
  void rollback() noexcept;
  // A statement prepared once per connection and reused (the caller resets it, e.g. with
  // StatementScope).
  Statement& cached(const std::string& sql);
  int64_t changes() const;
  sqlite3* handle() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::map<std::string, std::unique_ptr<Statement>, std::less<>> cache_;
};

}  // namespace lp::logsrv
