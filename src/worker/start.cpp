// Registration of dynamic background workers for jobs, at commit.
#include "pkonline/worker/start.hpp"

#include <cstring>
#include <string>

#include "pkonline/guc.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/worker/extra.hpp"

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

extern "C" void StartAtCommit(XactEvent event, void*) {
  // (A prepared transaction's workers start at PREPARE and wait for COMMIT PREPARED: each waits
  // for its creating transaction, and finds no job if it was rolled back.)
  if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE) {
    // Still inside the transaction: an error here rolls it back, job rows included.
    const int n = n_pending;
    n_pending = 0;
    for (int i = 0; i < n; i++) {
      char name[BGW_MAXLEN];
      snprintf(name, sizeof name, "pkonline job %lld", static_cast<long long>(pending[i].job_id));
      if (!RegisterRaw("pkonline_worker_main", name, pending[i].job_id, pending[i].extra))
        ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                        errmsg("could not start a background worker for pkonline job %lld",
                               static_cast<long long>(pending[i].job_id)),
                        errdetail("All max_worker_processes slots are in use."),
                        errhint("Raise max_worker_processes (needs a restart), or start the job later.")));
    }
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
  const int64_t running = pg::AsInt(
      pg::Query(
          "SELECT count(*) FROM pkonline.jobs j WHERE j.id <> $1::bigint AND pkonline._worker_alive(j.id)",
          {pg::V(job_id)}, true)
          .scalar());
  if (running + PendingOthers(job_id) >= guc::max_workers) return false;
  return StartAtCommitOf(job_id, WorkerExtra{target.db, target.run_as, target.wait_xid});
}

int StartPending(unsigned only_role) {
  auto r = pg::Query(
      "SELECT j.id, j.run_as::oid FROM pkonline.jobs j "
      "WHERE (j.state = 'queued' OR (j.state IN ('running', 'waiting', 'cancelling') AND NOT "
      "pkonline._worker_alive(j.id))) "
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
