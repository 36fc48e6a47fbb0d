// Starting job workers: one dynamic background worker per job.
#pragma once

#include <cstdint>

namespace pkonline::worker {

// Who the worker connects as and works as, and the transaction it must wait for.
struct Target {
  unsigned db = 0;
  unsigned login_role = 0;  // connects as this (must have LOGIN)
  unsigned exec_role = 0;   // then works as this
  uint32_t wait_xid = 0;    // the creating transaction: the job runs only after it ends
};

// Starts the job's worker unless pkonline.max_workers jobs already run in this database
// (then the job stays queued and the next finishing worker starts it). Returns whether a
// worker was registered. Fails with a max_worker_processes hint when no slot is free.
bool StartJob(int64_t job_id, const Target& target);

// Starts workers for queued jobs and for running jobs whose worker died, in this database;
// only jobs `only_role` may manage (0: all). Returns how many were started.
int StartPending(unsigned only_role);

// Registers the per-database scan worker used by the launcher (preload mode).
bool StartDatabaseScan(unsigned db);

}  // namespace pkonline::worker
