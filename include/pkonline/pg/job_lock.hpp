// The lock a job's worker holds while it runs the job: a session-level lock of a kind no SQL
// function can take (pg_locks shows it as a 'userlock'), so no other session can hold a job's
// claim and freeze it, nor pose as its worker to be signalled by pause() and cancel().
#pragma once

#include <cstdint>

namespace pkonline::pg {

// Claim the job for this session; false if another session holds the claim.
bool ClaimJob(int64_t job_id);
// Does this session still hold the job's claim?
bool HoldsJob(int64_t job_id);
// Give the claim back.
void ReleaseJob(int64_t job_id);
// The pid of the session that holds the job's claim now, 0 if none (reads the lock table; no
// transaction needed, so it can run at commit).
int JobHolderPid(int64_t job_id);
// The same without the error bridge, for transaction callbacks (called from C: an error there is
// raised as PostgreSQL's, never as a C++ exception).
int JobHolderPidRaw(int64_t job_id);

}  // namespace pkonline::pg
