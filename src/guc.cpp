// Definitions of the pkonline.* configuration parameters.
#include "pkonline/guc.hpp"

#include <climits>
#include <stdexcept>
#include <string>

#include "pkonline/jobs/window.hpp"

extern "C" {
#include "postgres.h"
#include "utils/guc.h"
}

namespace pkonline::guc {

int lock_timeout_ms = 100;
int lock_retries = 30;
int batch_size = 200;
int batch_time_ms = 50;
int batch_sleep_ms = 5;
int vacuum_every = 1000;
int max_workers = 2;
bool debug_wait_points = false;
char* wal_compression = nullptr;
bool backfill_fires_triggers = false;
int max_replica_lag_ms = 10000;
int max_wal_rate_kb = 0;
int load_rise = 50;
char* run_window = nullptr;
bool stop_before_final = false;

namespace {

bool CheckRunWindow(char** value, void**, GucSource) {
  std::string why;
  try {
    jobs::RunWindow::Parse(*value != nullptr ? *value : "");
    return true;
  } catch (const std::exception& e) {
    why = e.what();
  } catch (...) {
    why = "unreadable";
  }
  // (PostgreSQL's calls outside any C++ handler: they may longjmp)
  GUC_check_errdetail("%s", why.c_str());
  GUC_check_errhint(
      "Spans of the day in the server's time zone, e.g. '01:00-05:00' or '22:00-04:00, "
      "12:00-13:00'; '' for always.");
  return false;
}
}  // namespace

void Define() {
  DefineCustomIntVariable(
      "pkonline.lock_timeout", "lock_timeout for each brief DDL step of a job; the step is retried after it.",
      nullptr, &lock_timeout_ms, 100, 1, 60000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pkonline.lock_retries",
                          "How often a brief DDL step is retried after a lock timeout before the job fails.",
                          nullptr, &lock_retries, 30, 0, 10000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pkonline.batch_size",
                          "Heap blocks per batch with batch_time 0; else the most the first batch of a walk "
                          "may take (it starts with a probe of at most 8).",
                          nullptr, &batch_size, 200, 1, 1000000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pkonline.batch_time",
      "Target duration of one backfill batch; the batch size adapts to it (0: fixed size).", nullptr,
      &batch_time_ms, 50, 0, 60000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pkonline.batch_sleep", "Pause between two backfill batches.", nullptr,
                          &batch_sleep_ms, 5, 0, 600000, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("pkonline.vacuum_every",
                          "VACUUM the table each time the backfill has filled this many heap blocks, to "
                          "reuse dead space (0: never).",
                          nullptr, &vacuum_every, 1000, 0, INT_MAX, PGC_USERSET, 0, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("pkonline.max_workers",
                          "Jobs that may run at once in one database; further jobs wait in the queue.",
                          nullptr, &max_workers, 2, 1, 64, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("pkonline.debug_wait_points",
                           "Testing only: jobs stop at named wait points held by advisory locks.", nullptr,
                           &debug_wait_points, false, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("pkonline.wal_compression",
                             "wal_compression for the job's own work (full-page images of the pages it "
                             "changes): off, pglz, lz4 or zstd. Only the worker's session is affected. "
                             "Superuser-only, like wal_compression itself (compressed sizes of pages the job "
                             "writes can tell about rows its owner may not read).",
                             nullptr, &wal_compression, "lz4", PGC_SUSET, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable(
      "pkonline.backfill_fires_triggers",
      "Fire the table's row triggers for the backfill's UPDATEs (by default they do not: "
      "the backfill sets only the new column).",
      nullptr, &backfill_fires_triggers, false, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pkonline.max_replica_lag",
      "The backfill waits while a physical standby replays more than this behind (0: never waits).", nullptr,
      &max_replica_lag_ms, 10000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pkonline.max_wal_rate",
      "WAL the job's batches may write per second; it pauses between batches to keep to it "
      "(0: no limit).",
      nullptr, &max_wal_rate_kb, 0, 0, INT_MAX, PGC_USERSET, GUC_UNIT_KB, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pkonline.load_rise",
      "How much the database's active client sessions may rise (in %) while the job's batches run before "
      "it pauses between them (0: no such throttle).",
      nullptr, &load_rise, 50, 0, 10000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "pkonline.run_window",
      "When the job may work: spans of the day in the server's time zone, e.g. '01:00-05:00' (empty: "
      "always). Outside them the worker waits at its next safe point.",
      nullptr, &run_window, "", PGC_USERSET, 0, CheckRunWindow, nullptr, nullptr);
  DefineCustomBoolVariable(
      "pkonline.stop_before_final",
      "The job pauses just before its final step (the point of no return); pkonline.complete(job) runs it.",
      nullptr, &stop_before_final, false, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  MarkGUCPrefixReserved("pkonline");
}

jobs::JobSettings CurrentJobSettings() {
  jobs::JobSettings s;
  s.lock_timeout_ms = lock_timeout_ms;
  s.lock_retries = lock_retries;
  s.batch_size = batch_size;
  s.batch_time_ms = batch_time_ms;
  s.batch_sleep_ms = batch_sleep_ms;
  s.vacuum_every = vacuum_every;
  s.max_replica_lag_ms = max_replica_lag_ms;
  s.max_wal_rate_kb = max_wal_rate_kb;
  s.debug_wait_points = debug_wait_points;
  s.backfill_fires_triggers = backfill_fires_triggers;
  s.wal_compression = wal_compression ? wal_compression : "off";
  s.run_window = run_window ? run_window : "";
  s.stop_before_final = stop_before_final;
  s.load_rise = load_rise;
  return s;
}

}  // namespace pkonline::guc
