#include "log-server/index_reader.h"

namespace lp::logsrv {

namespace {

int bind_filters(const ListQuery& q, Statement& s) {
  int c = 1;
  if (q.route) s.bind(c++, *q.route);
  if (q.method) s.bind(c++, *q.method);
  if (q.status) s.bind(c++, *q.status);
  if (q.outcome) s.bind(c++, *q.outcome);
  if (q.since_us) s.bind(c++, *q.since_us);
  if (q.until_us) s.bind(c++, *q.until_us);
  if (q.q) s.bind(c++, *q.q);
  if (q.replay_of) s.bind(c++, *q.replay_of);
  if (q.model) s.bind(c++, *q.model);
  if (q.provider) s.bind(c++, *q.provider);
  if (q.cursor) {
    s.bind(c++, q.cursor->started_us);
    s.bind(c++, q.cursor->id);
  }
  return c;
}

}  // namespace

// The SQL is assembled from fixed fragments with anonymous `?` placeholders; bind_filters()
// binds every value in the same order (tests/unit/test_log_server_sql.cc checks that no
// runtime text ever becomes part of the SQL). `stats` selects only what /stats aggregates
// (a covering index) in no order; otherwise whole rows, newest first, one more than the limit.
Statement& IndexReader::filtered(const ListQuery& q, bool stats) {
  std::string sql = "SELECT ";
  if (stats) {
    sql +=
        "started_us, route, model, provider, status, outcome, total_us, ttft_us, input_tokens, "
        "output_tokens, cached_input_tokens, cost, llm_error";
  } else {
    sql += kExchangeColumns;
  }
  sql += " FROM exchanges WHERE 1";
  if (q.route) sql += " AND route = ?";
  if (q.method) sql += " AND method = ?";
  if (q.status) sql += " AND status = ?";
  if (q.outcome) sql += " AND outcome = ?";
  if (q.since_us) sql += " AND started_us >= ?";
  if (q.until_us) sql += " AND started_us < ?";
  if (q.q) sql += " AND instr(proxy_path, ?) > 0";
  if (q.replay_of) sql += " AND replay_of = ?";
  if (q.model) sql += " AND model = ?";
  if (q.provider) sql += " AND provider = ?";
  if (q.cursor) sql += " AND (started_us, id) < (?, ?)";
  if (!stats) sql += " ORDER BY started_us DESC, id DESC LIMIT ?";
  return db_.cached(sql);
}

ListPage IndexReader::list(const ListQuery& q) {
  Statement& s = filtered(q, /*stats=*/false);
  StatementScope scope(s);
  int c = bind_filters(q, s);
  // One row more than asked tells whether another page exists.
  s.bind(c++, q.limit + 1);

  ListPage page;
  while (s.step()) {
    if (static_cast<int>(page.rows.size()) == q.limit) {
      const ExchangeRow& last = page.rows.back();
      page.next = Cursor{last.started_us, last.id};
      break;
    }
    page.rows.push_back(read_exchange_row(s));
  }
  return page;
}

void IndexReader::for_each_stats_row(const ListQuery& q,
                                     const std::function<void(const StatsRow&)>& fn) {
  Statement& s = filtered(q, /*stats=*/true);
  StatementScope scope(s);
  bind_filters(q, s);
  StatsRow r;
  while (s.step()) {
    r.started_us = s.int64(0);
    r.route = s.opt_view(1).value_or("");
    r.model = s.opt_view(2);
    r.provider = s.opt_view(3);
    r.status = s.opt_int64(4);
    r.outcome = s.opt_view(5).value_or("");
    r.total_us = s.opt_int64(6);
    r.ttft_us = s.opt_int64(7);
    r.input_tokens = s.opt_int64(8);
    r.output_tokens = s.opt_int64(9);
    r.cached_input_tokens = s.opt_int64(10);
    r.cost = s.opt_double(11);
    r.llm_error = s.int64(12) != 0;
    fn(r);
  }
}

std::optional<ExchangeRow> IndexReader::get(const std::string& id) {
  Statement& s =
      db_.cached(std::string("SELECT ") + kExchangeColumns + " FROM exchanges WHERE id = ?1");
  StatementScope scope(s);
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_exchange_row(s);
}

std::vector<ExchangeRow> IndexReader::by_prefix(const std::string& prefix, int limit) {
  // A range on the primary key: ids are [0-9a-f-], all of which sort below '~'.
  Statement& s = db_.cached(std::string("SELECT ") + kExchangeColumns +
                            " FROM exchanges WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3");
  StatementScope scope(s);
  s.bind(1, prefix).bind(2, prefix + "~").bind(3, limit);
  std::vector<ExchangeRow> rows;
  while (s.step()) rows.push_back(read_exchange_row(s));
  return rows;
}

std::unique_ptr<Database> ReaderPool::take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto db = std::move(idle_.back());
      idle_.pop_back();
      return db;
    }
  }
  return open_index(path_, /*writer=*/false);
}

void ReaderPool::give_back(std::unique_ptr<Database> db) {
  if (!db) return;
  std::lock_guard lock(mu_);
  idle_.push_back(std::move(db));
}

}  // namespace lp::logsrv
