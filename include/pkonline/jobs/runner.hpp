// The step loop of one job, run by its worker after it has claimed the job.
#pragma once

#include <cstdint>

#include "pkonline/pg/bridge.hpp"

namespace pkonline::jobs {

// Runs (or cancels) the job to its end or to a pause; records failures in the job row.
void RunJob(int64_t job_id);

// Marks the job failed with the error, and logs it as an event.
void RecordFailure(int64_t job_id, const PgError& error);

}  // namespace pkonline::jobs
