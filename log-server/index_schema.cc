#include "log-server/index_schema.h"

#include "log-server/stats_rollup.h"

namespace lp::logsrv {

const char* const kExchangeColumns =
    "id, short_id, started_at, started_us, route, method, proxy_path, destination, client_ip, "
    "replay_of, status, outcome, error, request_bytes, response_bytes, total_us, "
    "request_forwarded_us, upstream_headers_us, first_byte_us, request_content_type, "
    "response_content_type, response_content_encoding, request_file, response_file, "
    "request_file_size, response_file_size, request_head_size, response_head_size, proxy_id, "
    "ingested_at, timings_json, derived_version, provider, model, input_tokens, output_tokens, "
    "cached_input_tokens, cost, ttft_us, llm_error, llm_json";

namespace {

// 2: timings_json. 3: the derived LLM columns, response_chunks (arrival times of the
// response body pieces, "OFFSET,T_US;" each) and pending_deletions (retention). Older indexes
// get the columns when a writer opens them; their rows are then derived in the background.
// 4: the hourly /stats rollups (stats_rollup.h); an older index starts with every hour dirty.
constexpr int kSchemaVersion = 4;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS exchanges (
  id TEXT PRIMARY KEY,
  short_id TEXT NOT NULL,
  started_at TEXT NOT NULL,
  started_us INTEGER NOT NULL,
  route TEXT NOT NULL,
  method TEXT NOT NULL,
  proxy_path TEXT NOT NULL,
  destination TEXT NOT NULL,
  client_ip TEXT NOT NULL,
  replay_of TEXT,
  status INTEGER,
  outcome TEXT NOT NULL,
  error TEXT,
  request_bytes INTEGER NOT NULL,
  response_bytes INTEGER NOT NULL,
  total_us INTEGER,
  request_forwarded_us INTEGER,
  upstream_headers_us INTEGER,
  first_byte_us INTEGER,
  request_content_type TEXT,
  response_content_type TEXT,
  response_content_encoding TEXT,
  request_file TEXT NOT NULL,
  response_file TEXT,
  request_file_size INTEGER NOT NULL,
  response_file_size INTEGER NOT NULL,
  request_head_size INTEGER NOT NULL,
  response_head_size INTEGER NOT NULL,
  proxy_id TEXT NOT NULL,
  ingested_at TEXT NOT NULL,
  timings_json TEXT,
  derived_version INTEGER,
  provider TEXT,
  model TEXT,
  input_tokens INTEGER,
  output_tokens INTEGER,
  cached_input_tokens INTEGER,
  cost REAL,
  ttft_us INTEGER,
  llm_error INTEGER NOT NULL DEFAULT 0,
  llm_json TEXT,
  response_chunks TEXT
);
CREATE TABLE IF NOT EXISTS applied_batches (
  proxy_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  applied_at TEXT NOT NULL,
  PRIMARY KEY (proxy_id, seq)
) WITHOUT ROWID;
-- Files of exchanges whose rows retention deleted, until they are unlinked: a crash between
-- the two leaves a list to finish, never a row without files or an unexplained file.
CREATE TABLE IF NOT EXISTS pending_deletions (
  file TEXT PRIMARY KEY
) WITHOUT ROWID;
-- /stats rollups (log-server/stats_rollup.h): one row per key within an hour, `part` numbering
-- them; keyed by hour so that a time range is one range of the table itself. `cost`: the exact
-- sum as non-overlapping doubles; `durations`, `ttfts`: every value, sorted, delta + varint.
CREATE TABLE IF NOT EXISTS stats_hourly (
  hour_us INTEGER NOT NULL,
  part INTEGER NOT NULL,
  route TEXT NOT NULL,
  model TEXT,
  provider TEXT,
  status INTEGER,
  outcome TEXT NOT NULL,
  requests INTEGER NOT NULL,
  errors INTEGER NOT NULL,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cached_input_tokens INTEGER NOT NULL,
  cost BLOB NOT NULL,
  cost_rows INTEGER NOT NULL,
  durations BLOB NOT NULL,
  ttfts BLOB NOT NULL,
  PRIMARY KEY (hour_us, part)
) WITHOUT ROWID;
-- Hours whose stats_hourly rows are missing or stale; the triggers below add them.
CREATE TABLE IF NOT EXISTS stats_dirty_hours (
  hour_us INTEGER PRIMARY KEY
);
)sql";

// Any change to what /stats reads marks the hour (the start of started_us's UTC hour) dirty,
// inside the writer's transaction, whoever the writer is. An UPDATE that leaves those columns
// as they were (ingest rewrites a row's end fields with every batch; reindex derives the same
// values again) does not. Only a key is inserted: stale parts are skipped by readers and
// replaced by the builder.
constexpr const char* kTriggers = R"sql(
CREATE TRIGGER IF NOT EXISTS stats_dirty_on_insert AFTER INSERT ON exchanges BEGIN
  INSERT OR IGNORE INTO stats_dirty_hours (hour_us) VALUES
    (NEW.started_us - (((NEW.started_us % 3600000000) + 3600000000) % 3600000000));
END;
CREATE TRIGGER IF NOT EXISTS stats_dirty_on_delete AFTER DELETE ON exchanges BEGIN
  INSERT OR IGNORE INTO stats_dirty_hours (hour_us) VALUES
    (OLD.started_us - (((OLD.started_us % 3600000000) + 3600000000) % 3600000000));
END;
CREATE TRIGGER IF NOT EXISTS stats_dirty_on_update AFTER UPDATE OF started_us, route, model,
  provider, status, outcome, total_us, ttft_us, input_tokens, output_tokens, cached_input_tokens,
  cost, llm_error ON exchanges
WHEN OLD.started_us IS NOT NEW.started_us OR OLD.route IS NOT NEW.route
  OR OLD.model IS NOT NEW.model OR OLD.provider IS NOT NEW.provider
  OR OLD.status IS NOT NEW.status OR OLD.outcome IS NOT NEW.outcome
  OR OLD.total_us IS NOT NEW.total_us OR OLD.ttft_us IS NOT NEW.ttft_us
  OR OLD.input_tokens IS NOT NEW.input_tokens OR OLD.output_tokens IS NOT NEW.output_tokens
  OR OLD.cached_input_tokens IS NOT NEW.cached_input_tokens OR OLD.cost IS NOT NEW.cost
  OR OLD.llm_error IS NOT NEW.llm_error
BEGIN
  INSERT OR IGNORE INTO stats_dirty_hours (hour_us) VALUES
    (OLD.started_us - (((OLD.started_us % 3600000000) + 3600000000) % 3600000000));
  INSERT OR IGNORE INTO stats_dirty_hours (hour_us) VALUES
    (NEW.started_us - (((NEW.started_us % 3600000000) + 3600000000) % 3600000000));
END;
)sql";

// After the columns exist (created, or added by the migration).
constexpr const char* kIndexes = R"sql(
-- Newest first, keyset on (started_us, id); each filter column leads its own index so an
-- equality filter plus the time order is one range scan.
CREATE INDEX IF NOT EXISTS exchanges_by_time ON exchanges(started_us, id);
CREATE INDEX IF NOT EXISTS exchanges_by_route ON exchanges(route, started_us, id);
CREATE INDEX IF NOT EXISTS exchanges_by_method ON exchanges(method, started_us, id);
CREATE INDEX IF NOT EXISTS exchanges_by_status ON exchanges(status, started_us, id);
CREATE INDEX IF NOT EXISTS exchanges_by_outcome ON exchanges(outcome, started_us, id);
CREATE INDEX IF NOT EXISTS exchanges_by_replay_of ON exchanges(replay_of, started_us, id)
  WHERE replay_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS exchanges_by_model ON exchanges(model, started_us, id);
CREATE INDEX IF NOT EXISTS exchanges_by_provider ON exchanges(provider, started_us, id);
-- The rows the deriver still has to do (ended or not; it skips those in progress).
CREATE INDEX IF NOT EXISTS exchanges_underived ON exchanges(started_us)
  WHERE derived_version IS NULL;
-- /stats reads only this index (covering), in time order.
CREATE INDEX IF NOT EXISTS exchanges_for_stats ON exchanges(started_us, route, model, provider,
  status, outcome, total_us, ttft_us, input_tokens, output_tokens, cached_input_tokens, cost,
  llm_error);
)sql";

}  // namespace

ExchangeRow read_exchange_row(const Statement& s) {
  ExchangeRow r;
  int c = 0;
  r.id = s.text(c++);
  r.short_id = s.text(c++);
  r.started_at = s.text(c++);
  r.started_us = s.int64(c++);
  r.route = s.text(c++);
  r.method = s.text(c++);
  r.proxy_path = s.text(c++);
  r.destination = s.text(c++);
  r.client_ip = s.text(c++);
  r.replay_of = s.opt_text(c++);
  r.status = s.opt_int64(c++);
  r.outcome = s.text(c++);
  r.error = s.opt_text(c++);
  r.request_bytes = s.int64(c++);
  r.response_bytes = s.int64(c++);
  r.total_us = s.opt_int64(c++);
  r.request_forwarded_us = s.opt_int64(c++);
  r.upstream_headers_us = s.opt_int64(c++);
  r.first_byte_us = s.opt_int64(c++);
  r.request_content_type = s.opt_text(c++);
  r.response_content_type = s.opt_text(c++);
  r.response_content_encoding = s.opt_text(c++);
  r.request_file = s.text(c++);
  r.response_file = s.opt_text(c++);
  r.request_file_size = s.int64(c++);
  r.response_file_size = s.int64(c++);
  r.request_head_size = s.int64(c++);
  r.response_head_size = s.int64(c++);
  r.proxy_id = s.text(c++);
  r.ingested_at = s.text(c++);
  r.timings_json = s.opt_text(c++);
  r.derived_version = s.opt_int64(c++);
  r.provider = s.opt_text(c++);
  r.model = s.opt_text(c++);
  r.input_tokens = s.opt_int64(c++);
  r.output_tokens = s.opt_int64(c++);
  r.cached_input_tokens = s.opt_int64(c++);
  r.cost = s.opt_double(c++);
  r.ttft_us = s.opt_int64(c++);
  r.llm_error = s.int64(c++) != 0;
  r.llm_json = s.opt_text(c++);
  return r;
}

std::unique_ptr<Database> open_index(const std::string& path, bool writer) {
  auto db = std::make_unique<Database>(path, writer);
  db->exec("PRAGMA busy_timeout = 5000");
  if (writer) {
    db->exec("PRAGMA journal_mode = WAL");
    // NORMAL: in WAL mode a COMMIT is synced at the next checkpoint, not at once. A crash or
    // kill -9 loses nothing; a power loss may lose the index rows of the last acknowledged
    // batches, whose synced files recovery then moves to orphaned/. FULL closes that gap but
    // made a second writer connection fail at once with "database is locked" under a
    // committing loop (retention's test), so it waits for a look at why.
    db->exec("PRAGMA synchronous = NORMAL");
    // A statement that fires a trigger (every INSERT or UPDATE of exchanges) keeps a statement
    // journal of the pages it changes; in a temp file that is a dozen pages written per row,
    // most of the ingest's time. Writers change one row per statement, so it stays small.
    db->exec("PRAGMA temp_store = MEMORY");
    db->exec("BEGIN IMMEDIATE");
    try {
      int64_t version = 0;
      {
        Statement& v = db->cached("PRAGMA user_version");
        StatementScope scope(v);
        if (v.step()) version = v.int64(0);
      }
      if (version > kSchemaVersion) {
        throw SqliteError(1, "index schema version " + std::to_string(version) +
                                 " is newer than this log-server (" +
                                 std::to_string(kSchemaVersion) + ")");
      }
      // A new file gets every column from kSchema; an older one gets what it lacks.
      const bool existing = version > 0;
      db->exec(kSchema);
      if (existing && version < 2) db->exec("ALTER TABLE exchanges ADD COLUMN timings_json TEXT");
      if (existing && version < 3) {
        db->exec("ALTER TABLE exchanges ADD COLUMN derived_version INTEGER");
        db->exec("ALTER TABLE exchanges ADD COLUMN provider TEXT");
        db->exec("ALTER TABLE exchanges ADD COLUMN model TEXT");
        db->exec("ALTER TABLE exchanges ADD COLUMN input_tokens INTEGER");
        db->exec("ALTER TABLE exchanges ADD COLUMN output_tokens INTEGER");
        db->exec("ALTER TABLE exchanges ADD COLUMN cached_input_tokens INTEGER");
        db->exec("ALTER TABLE exchanges ADD COLUMN cost REAL");
        db->exec("ALTER TABLE exchanges ADD COLUMN ttft_us INTEGER");
        db->exec("ALTER TABLE exchanges ADD COLUMN llm_error INTEGER NOT NULL DEFAULT 0");
        db->exec("ALTER TABLE exchanges ADD COLUMN llm_json TEXT");
        db->exec("ALTER TABLE exchanges ADD COLUMN response_chunks TEXT");
      }
      db->exec(kIndexes);
      db->exec(kTriggers);
      // Rows from before the rollups: every hour of them is built in the background.
      if (existing && version < 4) mark_all_hours_dirty(*db);
      db->exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
      db->exec("COMMIT");
    } catch (...) {
      db->rollback();
      throw;
    }
  } else {
    db->exec("PRAGMA query_only = 1");
  }
  return db;
}

}  // namespace lp::logsrv
