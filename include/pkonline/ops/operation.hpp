// What an operation is: a plain list of idempotent steps, each with a lock it takes, how to run it
// and how to undo it. The runner (jobs/runner) owns the loop; operations only write steps.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pkonline/jobs/job.hpp"

namespace pkonline::ops {

class Context;

struct Step {
  std::string name;    // e.g. "backfill"
  std::string action;  // what it runs, for steps(job)
  std::string lock;    // the lock it takes and for how long, for steps(job)
  std::function<void(Context&)> run;   // idempotent: safe to run again after a crash
  std::function<void(Context&)> undo;  // idempotent; empty if nothing to undo
  // The point of no return: from this step on, cancel refuses (the change is being made final).
  // One step of each plan is marked so.
  bool final = false;
};

class Operation {
 public:
  virtual ~Operation() = default;
  virtual std::vector<Step> Steps(const jobs::Job& job) const = 0;
};

// The step number (from 1) of the plan's point of no return: its step marked `final`.
int PointOfNoReturn(const std::vector<Step>& steps);

std::unique_ptr<Operation> MakeOperation(const std::string& name);

// Services the runner gives steps.
class Context {
 public:
  virtual ~Context() = default;
  virtual const jobs::Job& job() const = 0;
  // One short transaction, working as the job's role.
  virtual void Txn(const std::string& activity, const std::function<void()>& fn) = 0;
  // One short transaction in which every statement sees the same snapshot (REPEATABLE READ).
  virtual void Snapshot(const std::string& activity, const std::function<void()>& fn) = 0;
  // One backfill batch's transaction. Unless the job says otherwise (backfill_fires_triggers), row
  // triggers do not fire for its UPDATE (session_replication_role = replica for this transaction):
  // the batch sets only the new column, so neither the job's fill trigger nor the table's own
  // triggers (an updated_at trigger, say) have anything to do.
  virtual void Batch(const std::string& activity, const std::function<void()>& fn) = 0;
  // A brief DDL transaction under pkonline.lock_timeout, retried with backoff and jitter.
  virtual void Ddl(const std::string& activity, const std::function<void()>& fn) = 0;
  // A statement that must run outside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM).
  virtual void TopLevel(const std::string& sql) = 0;
  // An audit event (inside or outside a transaction).
  virtual void Event(const std::string& kind, const std::string& message, const std::string& detail_json = "") = 0;
  // Between units of work: honour pause/cancel requests (throws StopRequested) and interrupts.
  virtual void CheckControl() = 0;
  // Testing hook: block while a test holds the named wait point.
  virtual void WaitPoint(const std::string& name) = 0;
  virtual void Sleep(long ms) = 0;
};

// Thrown by CheckControl when the job was asked to pause or cancel.
struct StopRequested {
  bool cancel;
};

}  // namespace pkonline::ops
