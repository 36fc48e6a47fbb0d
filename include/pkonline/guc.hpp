// pkonline.* settings. The job-shaping ones are copied into a job's options when it is created,
// so `SET pkonline.batch_size = …` in the creating session shapes that job.
#pragma once

#include <map>
#include <string>

#include "pkonline/jobs/settings.hpp"

namespace pkonline::guc {

extern int lock_timeout_ms;           // pkonline.lock_timeout
extern int lock_retries;              // pkonline.lock_retries
extern int batch_size;                // pkonline.batch_size (heap blocks, starting size)
extern int batch_time_ms;             // pkonline.batch_time (target per batch; 0 = fixed size)
extern int batch_sleep_ms;            // pkonline.batch_sleep
extern int vacuum_every;              // pkonline.vacuum_every (heap blocks filled between VACUUMs; 0 = never)
extern int max_workers;               // pkonline.max_workers
extern bool debug_wait_points;        // pkonline.debug_wait_points
extern int max_replica_lag_ms;        // pkonline.max_replica_lag (0 = do not wait for standbys)
extern bool backfill_fires_triggers;  // pkonline.backfill_fires_triggers
extern char* wal_compression;         // pkonline.wal_compression (the worker's own wal_compression)
extern char* run_window;              // pkonline.run_window (jobs/window.hpp; "" always)
extern bool stop_before_final;        // pkonline.stop_before_final

void Define();
// The settings that travel with a job: this session's values.
jobs::JobSettings CurrentJobSettings();

}  // namespace pkonline::guc
