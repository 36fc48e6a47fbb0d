// Registration of dynamic background workers for jobs.
#include "pkonline/worker/start.hpp"

#include <cstring>
#include <string>

#include "pkonline/guc.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/worker/extra.hpp"

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
}

namespace pkonline::worker {

namespace {

bool Register(const char* function, const char* name, int64_t job_id, const WorkerExtra& extra) {
  return Call([&]() {
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
  });
}

}  // namespace

bool StartJob(int64_t job_id, const Target& target) {
  const int64_t running = pg::AsInt(
      pg::Query("SELECT count(*) FROM pkonline.jobs j WHERE j.id <> $1::bigint AND pkonline._worker_alive(j.id)",
                {pg::V(job_id)}, true)
          .scalar());
  if (running >= guc::max_workers) return false;
  WorkerExtra extra{target.db, target.login_role, target.exec_role, target.wait_xid};
  const std::string name = "pkonline job " + std::to_string(job_id);
  if (!Register("pkonline_worker_main", name.c_str(), job_id, extra))
    Fail(sqlstate::kConfigLimit, "could not start a background worker for pkonline job " + std::to_string(job_id),
         "All max_worker_processes slots are in use.",
         "Raise max_worker_processes (needs a restart), or run pkonline.start(" + std::to_string(job_id) +
             ") later.");
  return true;
}

int StartPending(unsigned only_role) {
  auto r = pg::Query(
      "SELECT j.id, j.login_role::oid, j.owner::oid FROM pkonline.jobs j "
      "WHERE (j.state = 'queued' OR (j.state IN ('running', 'cancelling') AND NOT pkonline._worker_alive(j.id))) "
      "AND ($1::oid = 0 OR pg_catalog.pg_has_role($1::oid, j.owner, 'USAGE')) ORDER BY j.id",
      {pg::V(static_cast<int64_t>(only_role))}, true);
  int started = 0;
  for (const auto& row : r.rows) {
    Target t;
    t.db = MyDatabaseId;
    t.login_role = static_cast<unsigned>(pg::AsInt(row[1]));
    t.exec_role = static_cast<unsigned>(pg::AsInt(row[2]));
    if (!StartJob(pg::AsInt(row[0]), t)) break;
    started++;
  }
  return started;
}

bool StartDatabaseScan(unsigned db) {
  WorkerExtra extra{db, 0, 0, 0};
  return Register("pkonline_scan_main", "pkonline database scan", 0, extra);
}

}  // namespace pkonline::worker
