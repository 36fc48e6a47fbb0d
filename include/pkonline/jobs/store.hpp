// The job store: reads and writes of pkonline.jobs, pkonline.job_steps and pkonline.events.
// Every function runs inside the caller's transaction (SPI connected) and does its writes as
// the extension's owner, so users never need write access to the job tables.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "pkonline/jobs/job.hpp"

namespace pkonline::jobs::store {

unsigned ExtensionOwner();

// The version of pkonline's SQL objects in this database. The library is 0.2 and also runs jobs
// on a 0.1 schema (the package upgraded, ALTER EXTENSION pkonline UPDATE not yet run), without
// what only 0.2's objects hold: step reports, the 'waiting' state, job origins.
bool SchemaIs01();
// A job restored from a dump of another database or cluster (0.2: its origin is not this one):
// pkonline never acts on it — its records name objects by OIDs they had there.
bool Foreign(int64_t job_id);

struct StepPlan {
  std::string name, action, lock;
};
// Inserts a queued job with its options and its plan of steps; returns its id.
int64_t Create(unsigned relid, const std::string& table_name, const std::string& operation,
               const Json& options, unsigned owner, unsigned run_as, JobState state);
void SavePlan(int64_t job_id, const std::vector<StepPlan>& plan);
// The names of the job's steps, as saved with its plan, in order.
std::vector<std::string> StepNames(int64_t job_id);

// Does the job's row exist (for whichever role created it)?
bool Exists(int64_t job_id);
Job Load(int64_t job_id);
// The job row with a FOR UPDATE lock (used by the API to change a job's state).
Job LoadForUpdate(int64_t job_id);

void SetState(int64_t job_id, JobState state);
void MarkRunning(int64_t job_id, int pid);
void MarkFinished(int64_t job_id, JobState state);
void MarkFailed(int64_t job_id, const std::string& sqlstate, const std::string& message,
                const std::string& detail, const std::string& hint);
// The pause request has been honoured.
void ClearPauseRequest(int64_t job_id);
// A cancel that came past the point of no return: the request is dropped and the job runs on.
void RefuseCancel(int64_t job_id);

void StepStarted(int64_t job_id, int step_no, const std::string& step);
void StepDone(int64_t job_id, int step_no, const std::string& step, const std::string& state = "done");

// What a step did while this worker ran it (pkonline.report), added to what earlier runs of the
// step recorded: the longest lock hold is kept if longer.
struct StepReport {
  double busy_ms = 0;  // the step's own running time
  int64_t batches = 0, rows = 0;
  int64_t wal_bytes = 0;  // WAL the worker wrote
  int lock_retries = 0;
  std::vector<std::string> blocked_by;  // "pid 123 (role alice)"
  std::string lock_mode;                // the strongest lock above ROW EXCLUSIVE in the longest hold
  double lock_ms = 0;
  double writes_blocked_ms = 0;  // the longest hold of a lock that blocks writes (SHARE or stronger)
};
void SaveStepReport(int64_t job_id, int step_no, const StepReport& report);
// The total size (pg_total_relation_size) of the job's tables before its first step, and once
// it is done.
void RecordSizeBefore(int64_t job_id, const std::vector<unsigned>& tables);
void RecordSizeAfter(int64_t job_id, const std::vector<unsigned>& tables);

void SetBackfillRange(int64_t job_id, int64_t end_block, int64_t rows_estimate, int64_t cursor);
void SaveCursor(int64_t job_id, int64_t next_block, int64_t rows_added, int batch_blocks);
void CountLockRetry(int64_t job_id);
// Are other jobs of this database queued (waiting for a worker slot)?
bool OthersQueued(int64_t job_id);
// Records a fact a step learned (e.g. the attnum of the column it added) in the job's options,
// in the step's own transaction; OptionNow reads it back (null if unset).
void SetOption(int64_t job_id, const std::string& key, const Json& value);
Json OptionNow(int64_t job_id, const std::string& key);

// An audit row; detail is a JSON object text (or empty).
// A 'wait' event when a queued job waited more than a second for its worker (before MarkRunning).
void NoteQueueWait(int64_t job_id);
// jobs.waiting_for (0.5): what the worker holds back for, or "" (NULL). Nothing on an older schema.
void SetWaiting(int64_t job_id, const std::string& what);
void Event(int64_t job_id, const std::string& kind, const std::string& step, const std::string& message,
           const std::string& detail_json = "");

// History (as the extension's owner): one done or cancelled job's records removed (steps and events
// go with it); those `role` may manage (pg_has_role USAGE on their creator) finished longer ago than
// `older_than` (interval text), and how many.
void Forget(int64_t job_id);
int64_t ForgetFinished(unsigned role, const std::string& older_than);

// Does a live worker hold this job's claim (pg/job_lock.hpp)?
bool WorkerAlive(int64_t job_id);
// Claim the job for this session; false if another worker holds it.
bool Claim(int64_t job_id);
// Give the claim back (the job's worker is about to exit).
void Release(int64_t job_id);

}  // namespace pkonline::jobs::store
