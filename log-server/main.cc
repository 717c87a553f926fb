// log-server: the command line. Loads the config, opens the store (recovering from an
// unclean stop), serves the API, and turns SIGINT/SIGTERM into a clean stop (in-flight
// requests finish, the index is checkpointed) with exit 0.
#include <malloc.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "common/cli.h"
#include "common/config.h"
#include "common/healthcheck.h"
#include "common/termination_signals.h"
#include "log-server/api.h"
#include "log-server/auth.h"
#include "log-server/blob_store.h"
#include "log-server/cpu_priority.h"
#include "log-server/data_dir_lock.h"
#include "log-server/deriver.h"
#include "log-server/index_reader.h"
#include "log-server/index_schema.h"
#include "log-server/ingest.h"
#include "log-server/live_feed.h"
#include "log-server/metrics.h"
#include "log-server/recovery.h"
#include "log-server/retention.h"

#ifndef LP_VERSION
#define LP_VERSION "0.0.0"
#endif

namespace {

constexpr const char* kUsage = R"(Usage: log-server [--config FILE] [--check]
       log-server reindex [--config FILE]
       log-server healthcheck [--config FILE] [--timeout DURATION]
       log-server --help | --version

Stores the captures that logging-proxy ships (POST /ingest) as files plus a
SQLite index under log_server.data_dir, and serves them:
  GET /requests, /requests/{id}, /requests/{id}/request, /requests/{id}/response,
  /requests/{id}/request/body, /requests/{id}/response/body, /requests/{id}/assembled,
  /stats, /export, /live (Server-Sent Events), /healthz, /metrics

Commands:
  reindex         derive every exchange's LLM fields again from the stored files
                  (after an upgrade, or for captures stored by an older version);
                  safe while the server runs
  healthcheck     GET /healthz of the server this config describes (on loopback when
                  log_server.host is 0.0.0.0 or ::) and exit 0 when it answers 200
                  within --timeout (default 3s), 1 otherwise, 2 for a bad config;
                  for container health checks (the image has no curl)

Options:
  --config FILE   configuration file (default: config.yaml in the working directory)
  --check         validate the configuration, print what would run, and exit
                  (0 when valid, 2 with the problem otherwise)
  --help          show this help
  --version       show the version

With log_server.auth_token (or LOG_SERVER_TOKEN) set, every endpoint but /healthz
needs "Authorization: Bearer TOKEN".
Signals: SIGINT/SIGTERM stop accepting, finish in-flight requests, and exit 0.
)";

// Workers for everything but GET /live; the pool gets one more per allowed live subscriber.
constexpr int kApiThreads = 64;

// The live feed's settings. LP_TEST_LIVE_KEEPALIVE_MS is a test hook (not a setting): the
// interval of the ": keepalive" comments, 15 s otherwise, so a test need not wait 15 s.
lp::logsrv::LiveFeed::Options live_options() {
  lp::logsrv::LiveFeed::Options o;
  if (const char* v = std::getenv("LP_TEST_LIVE_KEEPALIVE_MS")) {
    char* end = nullptr;
    long ms = std::strtol(v, &end, 10);
    if (end != v && *end == '\0' && ms > 0 && ms <= 3600000) {
      o.keepalive = std::chrono::milliseconds(ms);
    }
  }
  return o;
}

std::string index_path(const lp::Config& config) {
  return config.log_server.data_dir + "/index.sqlite";
}

void describe(const lp::Config& config, std::ostream& out) {
  const auto& ls = config.log_server;
  out << "log server: http://" << ls.host << ":" << ls.port
      << (ls.port == 0 ? " (a free port)" : "") << "\n";
  out << "data dir: " << ls.data_dir << " (index " << index_path(config) << ")\n";
  out << "auth: " << (ls.auth_token.empty() ? "none" : "bearer token required (all but /healthz)")
      << "\n";
  out << "retention: ";
  if (!ls.retention.max_age && !ls.retention.max_bytes) out << "none (captures are kept)";
  if (ls.retention.max_age) {
    out << "older than " << ls.retention.max_age->count() / 1000 << " s";
  }
  if (ls.retention.max_bytes) {
    out << (ls.retention.max_age ? ", " : "") << "beyond " << *ls.retention.max_bytes
        << " bytes of files";
  }
  out << " (checked at start and every minute)\n";
  out << "decoded bodies: at most " << ls.max_decoded_bytes << " bytes\n";
  out << "cpu priority: ";
  if (ls.nice == 0) {
    out << "as started (log_server.nice 0)\n";
  } else {
    out << "nice " << ls.nice << " or nicer, so the proxy's traffic gets the CPU first\n";
  }
}

// Applies log_server.nice to this process; a failure only costs latency, so it is a warning.
void apply_nice(const lp::LogServerConfig& ls, const char* who) {
  const lp::logsrv::CpuPriority p = lp::logsrv::lower_cpu_priority(ls.nice);
  if (!p.error.empty()) {
    std::cerr << "WARNING: " << who << ": log_server.nice " << ls.nice << " not applied ("
              << p.error << "); running at nice " << p.nice << "\n";
  }
}

// `log-server reindex`: every row derived again, oldest first, with a progress line. Each row
// is derived outside any transaction and written in small transactions, so a running server
// keeps ingesting meanwhile.
int reindex(const lp::Config& config) {
  using namespace lp::logsrv;
  const auto& ls = config.log_server;
  apply_nice(ls, "log-server reindex");
  std::unique_ptr<BlobStore> store;
  std::unique_ptr<Database> db;
  try {
    store = std::make_unique<BlobStore>(ls.data_dir);
    db = open_index(index_path(config), /*writer=*/true);
  } catch (const std::exception& e) {
    std::cerr << "log-server reindex: cannot open the store in " << ls.data_dir << ": " << e.what()
              << "\n";
    return 1;
  }
  IndexWriter counter(*db);
  const int64_t total = counter.count();
  int64_t done = 0, llm = 0, failed = 0, changed = 0;
  int64_t after_us = INT64_MIN;
  std::string after_id;
  auto last_report = std::chrono::steady_clock::now();
  // One line a second (and a last one): readable on a terminal and in a log file alike.
  auto report = [&] {
    std::fprintf(stderr, "reindex: %lld/%lld exchanges (%d%%), %lld LLM calls, %lld unreadable\n",
                 static_cast<long long>(done), static_cast<long long>(total),
                 total ? static_cast<int>(done * 100 / total) : 100, static_cast<long long>(llm),
                 static_cast<long long>(failed));
  };
  try {
    for (;;) {
      std::vector<ExchangeRow> rows;
      {
        Statement& s = db->cached(std::string("SELECT ") + kExchangeColumns +
                                  " FROM exchanges WHERE (started_us, id) > (?1, ?2) ORDER BY "
                                  "started_us, id LIMIT 200");
        StatementScope scope(s);
        s.bind(1, after_us).bind(2, after_id);
        while (s.step()) rows.push_back(read_exchange_row(s));
      }
      if (rows.empty()) break;
      std::vector<DeriveOutcome> outcomes;
      for (const ExchangeRow& row : rows) {
        if (row.outcome == kInProgress) {
          outcomes.emplace_back();  // derived by the server when it ends
          continue;
        }
        std::string times = read_chunk_times(*db, row.id).value_or("");
        outcomes.push_back(derive_exchange(row, *store, times, ls.max_decoded_bytes));
      }
      db->exec("BEGIN IMMEDIATE");
      for (size_t i = 0; i < rows.size(); ++i) {
        ++done;
        if (rows[i].outcome == kInProgress) continue;
        if (!outcomes[i].ok) ++failed;
        if (outcomes[i].llm) ++llm;
        if (store_derivation(*db, rows[i], outcomes[i])) ++changed;
      }
      db->exec("COMMIT");
      after_us = rows.back().started_us;
      after_id = rows.back().id;
      if (std::chrono::steady_clock::now() - last_report > std::chrono::seconds(1)) {
        report();
        last_report = std::chrono::steady_clock::now();
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "\nlog-server reindex: " << e.what() << "\n";
    return 1;
  }
  report();
  std::printf("reindexed %lld exchanges: %lld LLM calls, %lld with unreadable files\n",
              static_cast<long long>(changed), static_cast<long long>(llm),
              static_cast<long long>(failed));
  return 0;
}

// `log-server healthcheck`: the config is read as the server reads it, but only for its address;
// nothing is printed on success, so a health log shows only the failures.
int healthcheck(int argc, char** argv) {
  const lp::HealthcheckArgs args = lp::parse_healthcheck_args(argc, argv, 2);
  if (int code = lp::cli_exit_code(args.cli, "log-server healthcheck", kUsage, LP_VERSION);
      code >= 0) {
    return code;
  }
  lp::Config config;
  try {
    config = lp::load_config_file(args.cli.config_path, {.expand_env = false});
  } catch (const lp::ConfigError& e) {
    std::cerr << "log-server healthcheck: " << e.what() << "\n";
    return 2;
  }
  const auto& ls = config.log_server;
  if (ls.port == 0) {
    std::cerr << "log-server healthcheck: " << config.source
              << ": log_server.port is 0 (a free port chosen at start): no port to check\n";
    return 2;
  }
  return lp::run_healthcheck("log-server healthcheck", lp::healthcheck_host(ls.host), ls.port,
                             "/healthz", args.timeout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives each of the API's worker threads its own malloc arena and keeps what a large
  // /requests answer used: RSS went 17 -> 117 MiB after one full listing in the soak run, and
  // stayed there. Two arenas keep it near 20 MiB; ingest is serialised anyway.
  mallopt(M_ARENA_MAX, 2);
  if (argc > 1 && std::string(argv[1]) == "healthcheck") return healthcheck(argc, argv);
  const bool reindex_command = argc > 1 && std::string(argv[1]) == "reindex";
  const lp::CliArgs args = lp::parse_cli_args(argc, argv, reindex_command ? 2 : 1);
  if (int code = lp::cli_exit_code(args, "log-server", kUsage, LP_VERSION); code >= 0) return code;
  const std::string& config_path = args.config_path;
  const bool check = args.check;

  lp::Config config;
  try {
    config = lp::load_config_file(config_path, {.expand_env = false});
  } catch (const lp::ConfigError& e) {
    std::cerr << "log-server: " << e.what() << "\n";
    return 2;
  }
  const auto& ls = config.log_server;
  if (auto problem = lp::logsrv::token_problem(ls.auth_token)) {
    std::cerr << "log-server: " << config.source << ": log_server.auth_token " << *problem << "\n";
    return 2;
  }
  if (ls.data_dir.empty()) {
    std::cerr << "log-server: " << config.source << ": log_server.data_dir must not be empty\n";
    return 2;
  }
  // Warnings go to stderr in --check mode too, so a config can be vetted before it runs.
  if (!lp::is_loopback_host(ls.host) && ls.auth_token.empty()) {
    std::cerr << "WARNING: log-server listens on " << ls.host
              << " without an auth_token: anyone who can reach it can read every capture and "
                 "write new ones. Set log_server.auth_token or LOG_SERVER_TOKEN.\n";
  }
  if (reindex_command) {
    if (check) {
      std::cerr << "log-server reindex: --check is not an option of reindex\n";
      return 2;
    }
    return reindex(config);
  }
  if (check) {
    std::cout << config.source << ": OK\n";
    describe(config, std::cout);
    return 0;
  }

  lp::TerminationSignals signals;  // before any thread starts
  // Before the workers start: each inherits it.
  apply_nice(ls, "log-server");

  using namespace lp::logsrv;
  std::unique_ptr<BlobStore> store;
  std::unique_ptr<DataDirLock> data_dir_lock;
  std::unique_ptr<Database> db;
  Metrics metrics;
  try {
    ::umask(077);
    store = std::make_unique<BlobStore>(ls.data_dir);
    // Before the index and recovery: recovery is only right when no other server writes here.
    data_dir_lock = std::make_unique<DataDirLock>(ls.data_dir);
    db = open_index(index_path(config), /*writer=*/true);
  } catch (const std::exception& e) {
    std::cerr << "log-server: cannot open the store in " << ls.data_dir << ": " << e.what() << "\n";
    return 1;
  }
  // A data dir made by the user beforehand keeps its mode (files inside are 0600 anyway), but
  // listing it would show which exchanges happened when; say so instead of changing it.
  if (struct stat st{}; ::stat(ls.data_dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    std::cerr << "WARNING: log_server.data_dir " << ls.data_dir << " is accessible by group or "
              << "others (mode " << std::oct << (st.st_mode & 0777) << std::dec
              << "); captures hold prompts and responses: chmod 700 it.\n";
  }
  Ingestor ingestor(*db, *store, metrics);
  try {
    // A retention pass a crash interrupted is finished first: its files are deletions to
    // complete, not orphans to report.
    if (uint64_t n = finish_pending_deletions(*db, *store); n > 0) {
      std::cerr << "log-server: retention: finished an interrupted deletion (" << n
                << " file(s))\n";
    }
    RecoveryReport r = recover(ingestor.writer(), *store);
    if (r.marked + r.trimmed + r.missing + r.short_files > 0) {
      std::cerr << "log-server: recovery: " << r.marked
                << " exchange(s) were in progress at the last stop, marked truncated (" << r.trimmed
                << " file(s) cut back to acknowledged size, " << r.missing << " missing, "
                << r.short_files << " shorter than recorded)\n";
    }
    if (r.orphans > 0) {
      std::cerr << "log-server: recovery: " << r.orphans << " orphan file(s) (" << r.orphan_bytes
                << " bytes, written by batches that never committed) moved to "
                << store->path(kQuarantineDir) << "\n";
    }
    metrics.orphan_files = r.orphans;
    metrics.exchanges = ingestor.writer().count();
  } catch (const std::exception& e) {
    std::cerr << "log-server: recovery failed: " << e.what() << "\n";
    return 1;
  }

  // GET /live: ingest announces begun and ended rows after each COMMIT (rows listener first,
  // so an exchange's end event precedes its derived one); the deriver re-announces rows whose
  // LLM fields it stored, read back on its own thread (never on the ingest path).
  ReaderPool readers(index_path(config));
  LiveFeed live(metrics, live_options());
  ingestor.set_rows_listener([&live](const std::vector<ExchangeRow>& rows) { live.publish(rows); });
  Deriver deriver(index_path(config), *store, metrics, ls.max_decoded_bytes);
  ingestor.set_ended_listener(
      [&deriver](const std::vector<std::string>& ids) { deriver.notify(ids); });
  deriver.set_derived_listener([&live, &readers](const std::vector<std::string>& ids) {
    std::vector<ExchangeRow> rows = readers.with_reader([&](IndexReader& r) {
      std::vector<ExchangeRow> out;
      for (const std::string& id : ids) {
        if (auto row = r.get(id)) out.push_back(std::move(*row));
      }
      return out;
    });
    live.publish(rows);
  });
  deriver.start();
  RetentionThread retention(index_path(config), *store, metrics,
                            RetentionPolicy::from_config(ls.retention));
  retention.start();

  ApiServer server(ApiDeps{readers, ingestor, *store, metrics, live, ls.auth_token,
                           ls.max_decoded_bytes, LP_VERSION},
                   kApiThreads);
  try {
    server.bind(ls.host, ls.port);
  } catch (const std::exception& e) {
    std::cerr << "log-server: " << e.what() << "\n";
    return 1;
  }
  std::string shown_host = ls.host;
  if (shown_host.find(':') != std::string::npos && shown_host.front() != '[') {
    shown_host = "[" + shown_host + "]";  // an IPv6 literal
  }
  std::printf("log-server listening on http://%s:%d\n", shown_host.c_str(), server.port());
  std::fflush(stdout);

  std::atomic<bool> finished{false};
  signals.start([&](const char* name) {
    std::cerr << "log-server: " << name << ": stopping\n";
    // stop() is a no-op until the listener runs: repeat until run() returned.
    while (!finished) {
      server.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  bool ok = server.run();
  finished = true;
  retention.stop();
  deriver.stop();
  signals.stop();
  try {
    db->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (const std::exception& e) {
    std::cerr << "log-server: checkpoint at exit: " << e.what() << "\n";
  }
  std::cerr << "log-server: stopped\n";
  return ok ? 0 : 1;
}
