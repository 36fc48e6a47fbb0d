// Starting job workers: one dynamic background worker per job.
#pragma once

#include <cstdint>

namespace pkonline::worker {

// Whom the worker works as, and the transaction it must wait for.
struct Target {
  unsigned db = 0;
  unsigned run_as = 0;  // the work runs as this role (the table's owner), in a security-restricted operation
  uint32_t wait_xid = 0;  // the creating transaction: the job runs only after it ends
};

// Starts the job's worker, when this transaction commits, unless pkonline.max_workers jobs
// already run in this database or are to be started by this transaction (then the job stays
// queued and the next finishing worker starts it). Returns whether a worker is to be started.
// A transaction (or subtransaction) that rolls back starts none; the commit fails with a
// max_worker_processes hint when no slot is free.
bool StartJob(int64_t job_id, const Target& target);

// Starts workers for queued jobs and for running jobs whose worker died, in this database;
// only jobs `only_role` may manage (0: all). Returns how many were started.
int StartPending(unsigned only_role);

// Registers the per-database scan worker used by the launcher (preload mode).
bool StartDatabaseScan(unsigned db);

}  // namespace pkonline::worker
