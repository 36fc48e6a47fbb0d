// The step loop of one job, run by its worker after it has claimed the job.
#pragma once

#include <cstdint>

#include "pkonline/pg/bridge.hpp"

namespace pkonline::jobs {

class Operation;
// Runs (or cancels) the job, an `op`, to its end or to a pause; records failures in the job row.
void RunJob(int64_t job_id, const Operation& op);

// Marks the job failed with the error, and logs it as an event.
void RecordFailure(int64_t job_id, const PgError& error);

struct Job;
// The work runs as pkonline.jobs.run_as (the table's owner when the job was created) and for the
// role that created the job. Fails (42501) if the table has changed hands since, or (`creator_too`:
// not when undoing) the creator is no longer a member of that role (it could no longer do the work
// itself). Locks the table ACCESS SHARE first (an owner change needs ACCESS EXCLUSIVE), so the
// answer holds for the transaction.
void RequireStillAllowed(const Job& job, bool creator_too);

// Thrown when this worker no longer holds its job's claim and another worker has taken it (the
// claim was released by code the job ran, e.g. pg_advisory_unlock_all()): this worker leaves the
// job to the other, recording nothing.
struct ClaimLost {};

// Thrown when a job waiting for its run window gives its worker to a queued job: the job stays
// 'waiting' without a worker, and a worker slot that frees later starts it again (queued jobs
// first: worker/start.cpp).
struct YieldSlot {};

}  // namespace pkonline::jobs
