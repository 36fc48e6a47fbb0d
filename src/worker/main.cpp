// The job worker's main, the per-database scan worker's main, and the launcher (preload mode).
#include <cstring>

#include "pkonline/jobs/runner.hpp"
#include "pkonline/jobs/store.hpp"
#include "pkonline/ops/operation.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/lock_waits.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/txn.hpp"
#include "pkonline/text.hpp"
#include "pkonline/worker/extra.hpp"
#include "pkonline/worker/slots.hpp"
#include "pkonline/worker/start.hpp"

extern "C" {
#include "postgres.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"
}

#include <vector>

namespace pkonline::worker {

namespace {

// The worker's session settings, whatever ALTER DATABASE ... SET gave the database (its owner may,
// for any setting a user may change): the role the connection took (the scan would read the job
// tables as that role, and RLS would hide other roles' jobs), read-only or serializable
// transactions, timeouts, the date style the job's own SQL reads; search_path pinned.
void PinSessionSettings() {
  Call([]() {
    static const char* const kSettings[][2] = {{"role", "none"},
                                               {"default_transaction_read_only", "off"},
                                               {"default_transaction_isolation", "read committed"},
                                               {"default_transaction_deferrable", "off"},
                                               {"statement_timeout", "0"},
                                               {"idle_in_transaction_session_timeout", "0"},
                                               {"session_replication_role", "origin"},
                                               {"DateStyle", "ISO, MDY"},
                                               {"IntervalStyle", "postgres"}};
    for (const auto& s : kSettings) SetConfigOption(s[0], s[1], PGC_SUSET, PGC_S_SESSION);
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
  });
}

// The job runs only once the transaction that created or started it has ended.
void WaitForCreator(uint32_t xid) {
  if (xid == 0) return;
  pg::InTransaction("pkonline: waiting for the creating transaction",
                    [&]() { Call([&]() { XactLockTableWait(xid, nullptr, nullptr, XLTW_None); }); });
}

// A job found 'running' lost its worker without a word: the server restarted or crashed, or the
// process was terminated — possibly by the job's own work (a fill that terminates its backend).
// Resumed, unless its workers were lost kMaxLostWorkers times in a row at the same point (step
// and cursor): then it fails, visibly, instead of being started and lost again for ever.
constexpr int kMaxLostWorkers = 3;

bool GiveUpAfterLostWorkers(const jobs::Job& job) {
  const std::string at = std::to_string(job.step_no) + ":" + std::to_string(job.cursor_block);
  // {"at": step:cursor, "count": workers lost there in a row}
  const Json was = jobs::store::OptionNow(job.id, "lost_workers");
  const bool same_place =
      was.kind() == Json::Kind::kObject && was.Find("at") && was.At("at") == Json::String(at);
  const int count = same_place ? static_cast<int>(was.At("count").AsInt()) + 1 : 1;
  Json now = Json::Object();
  now.Set("at", Json::String(at));
  now.Set("count", Json::Number(count));
  jobs::store::SetOption(job.id, "lost_workers", now);
  if (count < kMaxLostWorkers) {
    jobs::store::Event(
        job.id, "worker_lost", "",
        Fmt("the job's worker ended without finishing step %1% (the server restarted, or the process "
            "was terminated): resuming it",
            job.step_no));
    return false;
  }
  const std::string message =
      Fmt("the job's worker was lost %1% times in a row at the same point of step %2%", count, job.step_no);
  jobs::store::MarkFailed(
      job.id, "57P01", message,
      "Each time, its process ended without recording an error: the server restarted, or the "
      "process was terminated (by pg_terminate_backend, the OOM killer, or the job's own work, "
      "such as a fill that ends its own session).",
      Fmt("Find the cause in the server log, then pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id));
  jobs::store::Event(job.id, "error", "", message);
  return true;
}

void RunClaimedJob(int64_t job_id, const WorkerExtra& extra) {
  PinSessionSettings();
  pg::lock_waits::Install();
  Call([&]() {
    // Work as the table's owner, as PostgreSQL's own maintenance commands do (VACUUM, CREATE
    // INDEX, REFRESH MATERIALIZED VIEW since CVE-2022-1552): inside a security-restricted
    // operation, so that nothing the work calls (the table's triggers, CHECK and index
    // expressions, a fill) can SET ROLE, create temporary objects or leave other state behind.
    if (!OidIsValid(extra.run_as))
      elog(ERROR, "pkonline: job %lld has no role to run as", static_cast<long long>(job_id));
    // session_user too, for what the work runs (an audit trigger that records session_user).
    StartTransactionCommand();
    const bool super = superuser_arg(extra.run_as);
    CommitTransactionCommand();
    SetSessionAuthorization(extra.run_as, super);
    SetUserIdAndSecContext(extra.run_as, SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    char name[64];
    snprintf(name, sizeof name, "pkonline job %lld", static_cast<long long>(job_id));
    pgstat_report_appname(name);
  });
  WaitForCreator(extra.wait_xid);
  bool claimed = false;
  bool runnable = false;
  std::string operation;
  try {
    pg::InTransaction("pkonline: claim job", [&]() {
      if (!jobs::store::Exists(job_id)) return;  // the creating transaction rolled back
      claimed = jobs::store::Claim(job_id);
      if (!claimed) return;  // another worker runs it
      jobs::Job job = jobs::store::Load(job_id);
      operation = job.operation;
      using jobs::JobState;
      runnable = job.state == JobState::kQueued || job.state == JobState::kRunning ||
                 job.state == JobState::kWaiting || job.state == JobState::kCancelling;
      if (runnable && jobs::store::Foreign(job_id))
        Fail(sqlstate::kObjectNotInState,
             Fmt("pkonline job %1% was restored from a dump: it is not resumed on a table that may differ",
                 job_id),
             "The job's records name objects by the OIDs they had where it ran.",
             Fmt("pkonline.cancel(%1%) closes it.", job_id));
      if (runnable) jobs::RequireStillAllowed(job, job.state != JobState::kCancelling);
      // (a job lost while it waited for its run window made no progress to lose: not counted)
      if (runnable && job.state == JobState::kRunning) runnable = !GiveUpAfterLostWorkers(job);
      if (runnable && job.state == JobState::kQueued) jobs::store::NoteQueueWait(job_id);
      if (runnable) jobs::store::MarkRunning(job_id, MyProcPid);
    });
  } catch (const PgError& e) {
    if (claimed) jobs::RecordFailure(job_id, e);
    throw;
  }
  if (claimed && runnable) {
    try {
      jobs::RunJob(job_id, *ops::MakeOperation(operation));
    } catch (const jobs::YieldSlot&) {
      // the job waits for its run window without a worker; this slot goes to a queued job below
    } catch (const jobs::ClaimLost&) {
      Call([&]() {
        elog(LOG, "pkonline job %lld: another worker took the job's claim; this one leaves it to that one",
             static_cast<long long>(job_id));
      });
      return;
    }
  }
  // Hand the slot to the next queued job of this database.
  slots::Leave();
  pg::InTransaction("pkonline: start next job", [&]() {
    if (claimed) jobs::store::Release(job_id);
    if (pg::Query("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pkonline'", {}, true).empty())
      return;
    pg::AsRole(jobs::store::ExtensionOwner(), []() { StartPending(0); });
  });
}

void ScanDatabase() {
  PinSessionSettings();
  pg::InTransaction("pkonline: resume jobs", [&]() {
    if (pg::Query("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pkonline'", {}, true).empty())
      return;
    // As the extension's owner, who sees every role's jobs through the tables' row security.
    int n = 0;
    pg::AsRole(jobs::store::ExtensionOwner(), [&]() { n = StartPending(0); });
    if (n > 0) Call([&]() { elog(LOG, "pkonline: started %d pending job(s) in this database", n); });
  });
}

std::vector<Oid> ListDatabases() {
  static Oid found[4096];
  int n = 0;
  Call([&]() {
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tup;
    while ((tup = heap_getnext(scan, ForwardScanDirection)) != nullptr && n < 4096) {
      Form_pg_database db = (Form_pg_database)GETSTRUCT(tup);
      if (db->datallowconn && !db->datistemplate) found[n++] = db->oid;
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    PopActiveSnapshot();
    CommitTransactionCommand();
  });
  return std::vector<Oid>(found, found + n);
}

}  // namespace

}  // namespace pkonline::worker

using pkonline::worker::WorkerExtra;

extern "C" {

PGDLLEXPORT void pkonline_worker_main(Datum arg);
PGDLLEXPORT void pkonline_scan_main(Datum arg);
PGDLLEXPORT void pkonline_launcher_main(Datum arg);

void pkonline_worker_main(Datum arg) {
  const int64 job_id = DatumGetInt64(arg);
  WorkerExtra extra;
  memcpy(&extra, MyBgworkerEntry->bgw_extra, sizeof extra);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  // Connected without a login role (as the bootstrap superuser, like the scan worker): the work
  // itself runs as the table's owner (RunClaimedJob), and a login role that is dropped or loses
  // LOGIN cannot leave the job stranded.
  BackgroundWorkerInitializeConnectionByOid(extra.db, InvalidOid, 0);
  pkonline::Entry([&]() {
    // The slot reserved when the worker was registered is this process's until it exits.
    if (!pkonline::worker::slots::Occupy({extra.slot, extra.slot_generation})) {
      elog(LOG, "pkonline job %lld: the worker's slot was given up before it started; the job stays queued",
           static_cast<long long>(job_id));
      return;
    }
    pkonline::worker::RunClaimedJob(job_id, extra);
  });
}

void pkonline_scan_main(Datum arg) {
  WorkerExtra extra;
  memcpy(&extra, MyBgworkerEntry->bgw_extra, sizeof extra);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(extra.db, InvalidOid, 0);
  pkonline::Entry([&]() { pkonline::worker::ScanDatabase(); });
}

// Preload mode: at every server start (and after a crash restart) start a scan of each
// database, which resumes its queued and orphaned jobs; then idle until shutdown.
void pkonline_launcher_main(Datum arg) {
  pqsignal(SIGTERM, die);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
  pkonline::Entry([&]() {
    for (Oid db : pkonline::worker::ListDatabases()) {
      if (!pkonline::worker::StartDatabaseScan(db))
        pkonline::Call([]() { elog(WARNING, "pkonline: no free worker slot to resume jobs"); });
    }
  });
  for (;;) {
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
  }
}

}  // extern "C"
