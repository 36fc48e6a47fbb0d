// Registration of dynamic background workers for jobs, at commit.
#include "pkonline/worker/start.hpp"

#include <cstring>
#include <string>

#include "pkonline/guc.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/worker/extra.hpp"
#include "pkonline/worker/slots.hpp"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
}

namespace pkonline::worker {

namespace {

bool RegisterRaw(const char* function, const char* name, int64_t job_id, const WorkerExtra& extra) {
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pkonline");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "%s", function);
  snprintf(w.bgw_name, BGW_MAXLEN, "%s", name);
  snprintf(w.bgw_type, BGW_MAXLEN, "pkonline worker");
  w.bgw_main_arg = Int64GetDatum(job_id);
  memcpy(w.bgw_extra, &extra, sizeof extra);
  w.bgw_notify_pid = IsUnderPostmaster && !IsBackgroundWorker ? MyProcPid : 0;
  BackgroundWorkerHandle* handle = nullptr;
  return RegisterDynamicBackgroundWorker(&w, &handle);
}

// Workers this transaction will start when it commits, each with the subtransaction that asked
// for it (a rolled-back subtransaction's are forgotten). A transaction that never commits, or
// rolls back what it did, takes no worker slot.
struct Pending {
  int64_t job_id;
  WorkerExtra extra;
  SubTransactionId subxact;
};
constexpr int kMaxPending = 64;
Pending pending[kMaxPending];
int n_pending = 0;
bool callbacks_registered = false;

// Registers the job's worker in a slot reserved now, inside the committing transaction (an error
// rolls it back, job rows included). False if pkonline.max_workers slots of this database are
// taken: the job stays queued, and a worker that ends starts it.
bool RegisterAtCommit(const Pending& p) {
  WorkerExtra extra = p.extra;
  const slots::Ticket ticket = slots::Reserve(p.job_id);
  if (!ticket.valid()) return false;
  extra.slot = ticket.index;
  extra.slot_generation = ticket.generation;
  char name[BGW_MAXLEN];
  snprintf(name, sizeof name, "pkonline job %lld", static_cast<long long>(p.job_id));
  if (RegisterRaw("pkonline_worker_main", name, p.job_id, extra)) return true;
  slots::Release(ticket);
  ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                  errmsg("could not start a background worker for pkonline job %lld",
                         static_cast<long long>(p.job_id)),
                  errdetail("All max_worker_processes slots are in use."),
                  errhint("Raise max_worker_processes (needs a restart), or start the job later.")));
  return false;
}

extern "C" void StartAtCommit(XactEvent event, void*) {
  if (event == XACT_EVENT_PRE_PREPARE && n_pending > 0) {
    // A prepared transaction may stay undecided for ever: its workers would hold their slots
    // (max_worker_processes too) while they wait for it. Refused; the transaction rolls back.
    ereport(ERROR,
            (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
             errmsg("cannot PREPARE a transaction that started pkonline jobs"),
             errdetail("A job's worker would hold its slot until COMMIT PREPARED or ROLLBACK PREPARED."),
             errhint("Create the job with start => false in the prepared transaction, and call "
                     "pkonline.start(job) after COMMIT PREPARED; or create it outside.")));
  }
  if (event == XACT_EVENT_PRE_COMMIT) {
    const int n = n_pending;
    n_pending = 0;
    int queued = 0;
    for (int i = 0; i < n; i++)
      if (!RegisterAtCommit(pending[i])) queued++;
    if (queued > 0)
      ereport(
          NOTICE,
          (errmsg("%d pkonline job(s) stay queued: pkonline.max_workers jobs run in this database", queued),
           errhint("Each starts when a running one ends, or with pkonline.run_pending().")));
  } else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_COMMIT) {
    n_pending = 0;
  }
}

extern "C" void ForgetAtSubAbort(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void*) {
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    int kept = 0;
    for (int i = 0; i < n_pending; i++)
      if (pending[i].subxact != sub) pending[kept++] = pending[i];
    n_pending = kept;
  } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
    for (int i = 0; i < n_pending; i++)
      if (pending[i].subxact == sub) pending[i].subxact = parent;
  }
}

// Queues the job's worker for this transaction's commit; false if it cannot take more.
bool StartAtCommitOf(int64_t job_id, const WorkerExtra& extra) {
  for (int i = 0; i < n_pending; i++)
    if (pending[i].job_id == job_id) return true;
  if (n_pending >= kMaxPending) return false;
  if (!callbacks_registered) {
    Call([]() {
      RegisterXactCallback(StartAtCommit, nullptr);
      RegisterSubXactCallback(ForgetAtSubAbort, nullptr);
    });
    callbacks_registered = true;
  }
  pending[n_pending++] = {job_id, extra, Call([]() { return GetCurrentSubTransactionId(); })};
  return true;
}

int PendingOthers(int64_t job_id) {
  int n = 0;
  for (int i = 0; i < n_pending; i++)
    if (pending[i].job_id != job_id) n++;
  return n;
}

}  // namespace

bool StartJob(int64_t job_id, const Target& target) {
  // (the slot itself is reserved at commit, atomically: RegisterAtCommit)
  if (slots::InUse() + PendingOthers(job_id) >= guc::max_workers) return false;
  return StartAtCommitOf(job_id, WorkerExtra{target.db, target.run_as, target.wait_xid});
}

int StartPending(unsigned only_role) {
  auto r = pg::Query(
      "SELECT j.id, j.run_as::oid FROM pkonline.jobs j "
      // (a queued job whose claim is held has a worker already: one that waits for the job's row)
      "WHERE j.state IN ('queued', 'running', 'waiting', 'cancelling') AND NOT " +
          pg::Internal("_worker_alive") +
          "(j.id) "
          "AND ($1::oid = 0 OR pg_catalog.pg_has_role($1::oid, j.owner, 'USAGE')) "
          "ORDER BY j.state = 'waiting', j.id",  // jobs waiting for their run window last
      {pg::V(static_cast<int64_t>(only_role))}, true);
  int started = 0;
  for (const auto& row : r.rows) {
    Target t;
    t.db = MyDatabaseId;
    t.run_as = static_cast<unsigned>(pg::AsInt(row[1]));
    if (!StartJob(pg::AsInt(row[0]), t)) break;
    started++;
  }
  return started;
}

bool StartDatabaseScan(unsigned db) {
  WorkerExtra extra{db, 0, 0};
  return Call([&]() { return RegisterRaw("pkonline_scan_main", "pkonline database scan", 0, extra); });
}

}  // namespace pkonline::worker
