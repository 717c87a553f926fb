#include "log-server/index_writer.h"

namespace lp::logsrv {

void IndexWriter::begin() {
  db_.exec("BEGIN IMMEDIATE");
}

void IndexWriter::commit() {
  db_.exec("COMMIT");
}

void IndexWriter::rollback() noexcept {
  db_.rollback();
}

bool IndexWriter::batch_applied(const std::string& proxy_id, uint64_t seq) {
  Statement& s = db_.cached("SELECT 1 FROM applied_batches WHERE proxy_id = ?1 AND seq = ?2");
  StatementScope scope(s);
  s.bind(1, proxy_id).bind(2, static_cast<int64_t>(seq));
  return s.step();
}

void IndexWriter::mark_batch_applied(const std::string& proxy_id, uint64_t seq,
                                     const std::string& at) {
  Statement& s =
      db_.cached("INSERT INTO applied_batches (proxy_id, seq, applied_at) VALUES (?1, ?2, ?3)");
  StatementScope scope(s);
  // seq is a u64 on the wire; it is stored with the same bits as an INTEGER.
  s.bind(1, proxy_id).bind(2, static_cast<int64_t>(seq)).bind(3, at);
  s.step();
}

std::optional<ExchangeRow> IndexWriter::find(const std::string& id) {
  static const std::string kSql =
      std::string("SELECT ") + kExchangeColumns + " FROM exchanges WHERE id = ?1";
  Statement& s = db_.cached(kSql);
  StatementScope scope(s);
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_exchange_row(s);
}

bool IndexWriter::exists(const std::string& id) {
  Statement& s = db_.cached("SELECT 1 FROM exchanges WHERE id = ?1");
  StatementScope scope(s);
  s.bind(1, id);
  return s.step();
}

void IndexWriter::insert(const ExchangeRow& r, std::string_view chunk_times) {
  // Built once: the statement cache is keyed by the SQL text.
  static const std::string kSql =
      std::string("INSERT INTO exchanges (") + kExchangeColumns +
      ", response_chunks) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
      "?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, "
      "?33, ?34, ?35, ?36, ?37, ?38, ?39, ?40, ?41, ?42)";
  Statement& s = db_.cached(kSql);
  StatementScope scope(s);
  int c = 1;
  s.bind(c++, r.id);
  s.bind(c++, r.short_id);
  s.bind(c++, r.started_at);
  s.bind(c++, r.started_us);
  s.bind(c++, r.route);
  s.bind(c++, r.method);
  s.bind(c++, r.proxy_path);
  s.bind(c++, r.destination);
  s.bind(c++, r.client_ip);
  s.bind(c++, r.replay_of);
  s.bind(c++, r.status);
  s.bind(c++, r.outcome);
  s.bind(c++, r.error);
  s.bind(c++, r.request_bytes);
  s.bind(c++, r.response_bytes);
  s.bind(c++, r.total_us);
  s.bind(c++, r.request_forwarded_us);
  s.bind(c++, r.upstream_headers_us);
  s.bind(c++, r.first_byte_us);
  s.bind(c++, r.request_content_type);
  s.bind(c++, r.response_content_type);
  s.bind(c++, r.response_content_encoding);
  s.bind(c++, r.request_file);
  s.bind(c++, r.response_file);
  s.bind(c++, r.request_file_size);
  s.bind(c++, r.response_file_size);
  s.bind(c++, r.request_head_size);
  s.bind(c++, r.response_head_size);
  s.bind(c++, r.proxy_id);
  s.bind(c++, r.ingested_at);
  s.bind(c++, r.timings_json);
  s.bind(c++, r.derived_version);
  s.bind(c++, r.provider);
  s.bind(c++, r.model);
  s.bind(c++, r.input_tokens);
  s.bind(c++, r.output_tokens);
  s.bind(c++, r.cached_input_tokens);
  s.bind(c++, r.cost);
  s.bind(c++, r.ttft_us);
  s.bind(c++, r.llm_error ? 1 : 0);
  s.bind(c++, r.llm_json);
  // A new row holds nothing yet, so the cap of append_chunk_times does not apply.
  if (chunk_times.empty()) {
    s.bind(c++, std::nullopt);
  } else {
    s.bind(c++, chunk_times);
  }
  s.step();
}

void IndexWriter::update(const ExchangeRow& r) {
  Statement& s = db_.cached(
      "UPDATE exchanges SET status = ?2, outcome = ?3, error = ?4, request_bytes = ?5, "
      "response_bytes = ?6, total_us = ?7, request_forwarded_us = ?8, upstream_headers_us = ?9, "
      "first_byte_us = ?10, request_content_type = ?11, response_content_type = ?12, "
      "response_content_encoding = ?13, response_file = ?14, request_file_size = ?15, "
      "response_file_size = ?16, request_head_size = ?17, response_head_size = ?18, "
      "timings_json = ?19, derived_version = NULL WHERE id = ?1");
  StatementScope scope(s);
  int c = 1;
  s.bind(c++, r.id);
  s.bind(c++, r.status);
  s.bind(c++, r.outcome);
  s.bind(c++, r.error);
  s.bind(c++, r.request_bytes);
  s.bind(c++, r.response_bytes);
  s.bind(c++, r.total_us);
  s.bind(c++, r.request_forwarded_us);
  s.bind(c++, r.upstream_headers_us);
  s.bind(c++, r.first_byte_us);
  s.bind(c++, r.request_content_type);
  s.bind(c++, r.response_content_type);
  s.bind(c++, r.response_content_encoding);
  s.bind(c++, r.response_file);
  s.bind(c++, r.request_file_size);
  s.bind(c++, r.response_file_size);
  s.bind(c++, r.request_head_size);
  s.bind(c++, r.response_head_size);
  s.bind(c++, r.timings_json);
  s.step();
}

void IndexWriter::append_chunk_times(const std::string& id, std::string_view entries) {
  // Capped so that an endless stream cannot grow one row without bound; later pieces then
  // have no recorded arrival (README: "Chunk arrival times").
  Statement& s = db_.cached(
      "UPDATE exchanges SET response_chunks = coalesce(response_chunks, '') || ?2 "
      "WHERE id = ?1 AND length(coalesce(response_chunks, '')) < ?3");
  StatementScope scope(s);
  s.bind(1, id).bind(2, entries).bind(3, static_cast<int64_t>(kMaxChunkTimesBytes));
  s.step();
}

bool IndexWriter::request_file_taken(const std::string& request_file, int64_t started_us,
                                     const std::string& id) {
  Statement& s = db_.cached(
      "SELECT 1 FROM exchanges WHERE started_us >= ?1 AND started_us < ?2 AND "
      "request_file = ?3 AND id <> ?4 LIMIT 1");
  StatementScope scope(s);
  int64_t ms = started_us >= 0 ? started_us / 1000 : -((-started_us + 999) / 1000);
  s.bind(1, ms * 1000).bind(2, ms * 1000 + 1000).bind(3, request_file).bind(4, id);
  return s.step();
}

std::vector<ExchangeRow> IndexWriter::in_progress() {
  Statement& s = db_.cached(std::string("SELECT ") + kExchangeColumns +
                            " FROM exchanges WHERE outcome = 'in_progress'");
  StatementScope scope(s);
  std::vector<ExchangeRow> rows;
  while (s.step()) rows.push_back(read_exchange_row(s));
  return rows;
}

std::vector<ExchangeRow> IndexWriter::truncated_with(const std::string& error) {
  Statement& s = db_.cached(std::string("SELECT ") + kExchangeColumns +
                            " FROM exchanges WHERE outcome = 'truncated' AND error = ?1");
  StatementScope scope(s);
  s.bind(1, error);
  std::vector<ExchangeRow> rows;
  while (s.step()) rows.push_back(read_exchange_row(s));
  return rows;
}

std::vector<std::string> IndexWriter::files_started_between(int64_t from_us, int64_t to_us) {
  Statement& s = db_.cached(
      "SELECT request_file, response_file FROM exchanges WHERE started_us >= ?1 AND "
      "started_us < ?2");
  StatementScope scope(s);
  s.bind(1, from_us).bind(2, to_us);
  std::vector<std::string> files;
  while (s.step()) {
    files.push_back(s.text(0));
    if (!s.is_null(1)) files.push_back(s.text(1));
  }
  return files;
}

int64_t IndexWriter::count() {
  Statement& s = db_.cached("SELECT count(*) FROM exchanges");
  StatementScope scope(s);
  return s.step() ? s.int64(0) : 0;
}

}  // namespace lp::logsrv
