// What an operation is to the runner: a plain list of idempotent steps, each with the lock it
// takes, how to run it and how to undo it, and the Context through which a step reaches its job —
// the only way it does. The runner (jobs/runner) owns the loop and implements Context; operations
// (ops/) only write steps.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pkonline/jobs/job.hpp"

namespace pkonline::jobs {

class Context;

struct Step {
  std::string name;                    // e.g. "backfill"; a job resumes by it
  std::string action;                  // what it runs, for steps(job)
  std::string lock;                    // the lock it takes and for how long, for steps(job)
  std::function<void(Context&)> run;   // idempotent: safe to run again after a crash
  std::function<void(Context&)> undo;  // idempotent; empty if nothing to undo
  // The point of no return: from this step on, cancel refuses (the change is being made final).
  // One step of each plan is marked so.
  bool final = false;
};

// What a batch's statement may run besides the table's own triggers and constraints. The runner
// keeps the table's row triggers quiet in a batch only when no code a user wrote can run there.
enum class BatchCode {
  kBuiltinsOnly,  // the value comes from built-ins only (nextval, a checked expression)
  kUserCode,      // the value may run code a user wrote: the table's triggers fire
  kOwnCopyOnly,   // the batches write only the job's own copy, which has no trigger
};

class Operation {
 public:
  virtual ~Operation() = default;
  virtual std::vector<Step> Steps(const Job& job) const = 0;
  virtual BatchCode Batches(const Job&) const { return BatchCode::kBuiltinsOnly; }
  // Every table the job changes (its report watches their locks and sizes).
  virtual std::vector<unsigned> Tables(const Job& job) const { return {job.relid}; }
};

// The step number (from 1) of the plan's point of no return: its step marked `final`.
int PointOfNoReturn(const std::vector<Step>& steps);

// Services the runner gives steps.
class Context {
 public:
  virtual ~Context() = default;
  virtual const Job& job() const = 0;
  // One short transaction, working as the table's owner.
  virtual void Txn(const std::string& activity, const std::function<void()>& fn) = 0;
  // One short transaction in which every statement sees the same snapshot (REPEATABLE READ).
  virtual void Snapshot(const std::string& activity, const std::function<void()>& fn) = 0;
  // One backfill batch's transaction, writing the table `relid`. Where no code a user wrote can
  // run in it (and unless the job says otherwise, backfill_fires_triggers), row triggers do not
  // fire for its UPDATE (session_replication_role = replica for this transaction): the batch sets
  // only the new column.
  virtual void Batch(const std::string& activity, unsigned relid, const std::function<void()>& fn) = 0;
  // A brief DDL transaction under pkonline.lock_timeout, retried with backoff and jitter. It does
  // not start when the job's run window closes sooner than its retries could take: it waits.
  // AwaitWindowForDdl is that wait alone, for a step to take before its own preparations
  // (returns whether it waited).
  virtual bool AwaitWindowForDdl(const std::string& activity) = 0;
  virtual void Ddl(const std::string& activity, const std::function<void()>& fn) = 0;
  // One transaction under pkonline.lock_timeout, tried once: a lock not granted in time ends it
  // with 55P03, for the step to decide.
  virtual void TryOnce(const std::string& activity, const std::function<void()>& fn) = 0;
  // A statement that must run outside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM).
  virtual void TopLevel(const std::string& sql) = 0;
  // CREATE INDEX CONCURRENTLY `name`, like the index `definition` (pg_get_indexdef's text) with
  // every reference to a renamed column (old, new) naming the new one (rewritten in the parse tree).
  virtual void TopLevelIndexLike(const std::string& definition,
                                 const std::vector<std::pair<std::string, std::string>>& renames,
                                 const std::string& name) = 0;
  // Inside one of the transactions above: fn runs as the extension's owner (pkonline's own
  // triggers, other sessions' statistics), with search_path pinned.
  virtual void AsExtensionOwner(const std::function<void()>& fn) = 0;
  // Inside a transaction: a fact the step learned (the OID of a helper it made), kept in the
  // job's options under a key of ops/plans.hpp's fact:: and committed with the transaction;
  // Recall reads it back (null if unset).
  virtual void Remember(const std::string& key, const Json& value) = 0;
  virtual Json Recall(const std::string& key) = 0;
  // Inside a walk's transaction: where the walk over heap blocks ends (measured when it starts;
  // the cursor goes back to block `cursor`, 0 unless a walk over leaves goes on), and how far it
  // got, committed with the batch.
  virtual void SetWalkRange(int64_t end_block, int64_t rows_estimate, int64_t cursor = 0) = 0;
  virtual void SaveCursor(int64_t next_block, int64_t rows_added, int batch_blocks) = 0;
  // An audit event in a transaction of its own; EventHere, inside the current transaction.
  virtual void Event(const std::string& kind, const std::string& message,
                     const std::string& detail_json = "") = 0;
  virtual void EventHere(const std::string& kind, const std::string& message) = 0;
  // Between units of work: honour pause/cancel requests (throws StopRequested) and interrupts.
  virtual void CheckControl() = 0;
  // Testing hook: block while a test holds the named wait point; WaitPointHere, inside the
  // current transaction (with the locks it holds: a crash there rolls it back).
  virtual void WaitPoint(const std::string& name) = 0;
  virtual void WaitPointHere(const std::string& name) = 0;
  virtual void Sleep(long ms) = 0;
  // What the job waits for while its worker holds back by itself (a throttle), for
  // pkonline.status.waiting_for; "" when it goes on. (Lock and snapshot waits are seen from outside.)
  virtual void SetWaiting(const std::string& what) {}
};

// Thrown by CheckControl when the job was asked to pause or cancel.
struct StopRequested {
  bool cancel;
  bool gate = false;  // a pause before the final step (pkonline.stop_before_final)
};

}  // namespace pkonline::jobs
