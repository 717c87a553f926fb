// The read side of the index: the /requests page query, lookup by id or id prefix, and a pool
// of read-only connections. WAL lets these run concurrently with the one writer; each query
// reads one consistent snapshot.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "log-server/index_schema.h"
#include "log-server/list_query.h"

namespace lp::logsrv {

struct ListPage {
  std::vector<ExchangeRow> rows;
  std::optional<Cursor> next;  // set when more rows may follow
};

// The columns /stats aggregates (read from a covering index, never the whole row). The texts
// are views into SQLite's row: valid during the callback only (a million rows are read
// without a copy).
struct StatsRow {
  int64_t started_us = 0;
  std::string_view route;
  std::optional<std::string_view> model;
  std::optional<std::string_view> provider;
  std::optional<int64_t> status;
  std::string_view outcome;
  std::optional<int64_t> total_us;
  std::optional<int64_t> ttft_us;
  std::optional<int64_t> input_tokens;
  std::optional<int64_t> output_tokens;
  std::optional<int64_t> cached_input_tokens;
  std::optional<double> cost;
  bool llm_error = false;
};

class IndexReader {
 public:
  explicit IndexReader(Database& db) : db_(db) {}
  Database& db() { return db_; }

  // Newest first (started_us DESC, id DESC), after q.cursor when set. Statements are cached
  // per combination of filters.
  ListPage list(const ListQuery& q);
  // Every row the filters select (q.limit and q.cursor as for list() are ignored), in no
  // particular order; `fn` must not call back into this reader.
  void for_each_stats_row(const ListQuery& q, const std::function<void(const StatsRow&)>& fn);
  std::optional<ExchangeRow> get(const std::string& id);
  // Rows whose id starts with `prefix`, in id order, at most `limit`.
  std::vector<ExchangeRow> by_prefix(const std::string& prefix, int limit);

 private:
  Statement& filtered(const ListQuery& q, bool stats);

  Database& db_;
};

// Read connections, opened on demand and reused; at most one per concurrent caller.
class ReaderPool {
 public:
  explicit ReaderPool(std::string path) : path_(std::move(path)) {}

  template <class F>
  auto with_reader(F&& f) {
    std::unique_ptr<Database> db = take();
    struct Return {
      ReaderPool* pool;
      std::unique_ptr<Database>* db;
      ~Return() { pool->give_back(std::move(*db)); }
    } give{this, &db};
    IndexReader reader(*db);
    return f(reader);
  }

 private:
  std::unique_ptr<Database> take();
  void give_back(std::unique_ptr<Database> db);

  std::string path_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Database>> idle_;
};

}  // namespace lp::logsrv
