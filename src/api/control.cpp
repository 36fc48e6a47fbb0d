// Job control from SQL: start, pause, resume, cancel, run_pending (creating a job: create_job.cpp).
#include <csignal>
#include <stdexcept>
#include <vector>

#include "pkonline/api/api.hpp"
#include "pkonline/api/create_job.hpp"
#include "pkonline/jobs/settings.hpp"
#include "pkonline/jobs/store.hpp"
#include "pkonline/jobs/window.hpp"
#include "pkonline/ops/operation.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/job_lock.hpp"
#include "pkonline/pg/setting.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/txn.hpp"
#include "pkonline/text.hpp"
#include "pkonline/worker/start.hpp"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "miscadmin.h"
}

namespace pkonline::api {

using jobs::Job;
namespace store = jobs::store;

namespace {

// Jobs whose workers to interrupt once the transaction that asked them to stop has committed
// (so that they see the request when they look). The worker is looked up just before the commit
// (an error there rolls the request back cleanly), by the job's claim, which only a worker can
// hold: a pid remembered from earlier in the transaction could belong to another process by then.
int64_t pending_signals[16];
int signal_pids[16];
int n_pending_signals = 0;
bool callback_registered = false;
bool locked_a_job = false;  // this transaction locked a job's row (pause, cancel, start, ...)

extern "C" void SignalAtCommit(XactEvent event, void*) {
  if (event == XACT_EVENT_PRE_PREPARE && locked_a_job) {
    // A prepared transaction would keep the job's row locked for as long as it stays undecided:
    // the job's worker would wait for it, holding its slot (found by the second review's helper).
    locked_a_job = false;
    n_pending_signals = 0;
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot PREPARE a transaction that controlled a pkonline job"),
                    errdetail("The job's row would stay locked until COMMIT PREPARED or ROLLBACK PREPARED."),
                    errhint("Call pkonline's job control functions outside the prepared transaction.")));
  }
  if (event == XACT_EVENT_PRE_COMMIT) {
    for (int i = 0; i < n_pending_signals; i++) signal_pids[i] = pg::JobHolderPidRaw(pending_signals[i]);
  } else if (event == XACT_EVENT_COMMIT) {
    for (int i = 0; i < n_pending_signals; i++)
      if (signal_pids[i] > 0 && signal_pids[i] != MyProcPid) kill(signal_pids[i], SIGINT);
  }
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
      event == XACT_EVENT_PRE_PREPARE) {
    n_pending_signals = 0;
    locked_a_job = false;
  }
}

void RegisterCallback() {
  if (callback_registered) return;
  Call([]() { RegisterXactCallback(SignalAtCommit, nullptr); });
  callback_registered = true;
}

void InterruptWorkerAtCommit(int64_t job_id) {
  if (n_pending_signals >= 16) return;
  RegisterCallback();
  pending_signals[n_pending_signals++] = job_id;
}

// The job, locked, if the current role may control it: start and resume (which choose when the
// work runs) only the role that created it and its members; pause and cancel also the table's
// owner and its members (the table is theirs).
enum class Control { kRun, kStop };
Job LoadManaged(int64_t job_id, Control what) {
  RegisterCallback();
  locked_a_job = true;
  Job job = store::LoadForUpdate(job_id);
  auto r = pg::Query(
      "SELECT pg_catalog.pg_has_role($1::oid, 'USAGE'), EXISTS (SELECT 1 FROM pg_catalog.pg_class "
      "WHERE oid = $2::oid AND pg_catalog.pg_has_role(relowner, 'USAGE'))",
      {pg::V(static_cast<int64_t>(job.owner)), pg::V(static_cast<int64_t>(job.relid))}, true);
  const bool creator = pg::AsBool(r.rows[0][0]), table_owner = pg::AsBool(r.rows[0][1]);
  // A role with no part in the job gets the answer status, report() and wait() give it (they
  // show it no such row): the job does not exist, for it.
  if (!creator && !table_owner)
    Fail(sqlstate::kUndefinedObject, "pkonline job " + std::to_string(job_id) + " does not exist");
  const bool ok = creator || what == Control::kStop;
  if (!ok)
    Fail(sqlstate::kInsufficientPrivilege, "permission denied for pkonline job " + std::to_string(job_id),
         what == Control::kRun
             ? "Only the role that created the job, and its members, may start or resume it."
             : "Only the role that created the job, or the table's owner, and their members, may pause or "
               "cancel it.");
  return job;
}

bool Finished(const Job& job) { return jobs::Finished(job.state); }
using jobs::JobState;
using jobs::ToText;

template <typename F>
std::string WithSpi(F&& f) {
  pg::SpiScope spi;
  std::string out = f();
  spi.Close();
  return out;
}

void Privileged(const std::function<void()>& fn) { pg::AsRole(store::ExtensionOwner(), fn); }

// A job restored from a dump is never run here (store::Foreign): only cancel closes it.
void RequireNotRestored(int64_t job_id) {
  if (store::Foreign(job_id))
    Fail(sqlstate::kObjectNotInState,
         Fmt("pkonline job %1% was restored from a dump: it is not resumed on a table that may differ",
             job_id),
         "The job's records name objects by the OIDs they had where it ran.",
         Fmt("pkonline.cancel(%1%) closes it; then run the operation again.", job_id));
}

}  // namespace

std::string Start(int64_t job_id) {
  return WithSpi([&]() -> std::string {
    Job job = LoadManaged(job_id, Control::kRun);
    RequireNotRestored(job_id);
    if (job.state != JobState::kQueued && job.state != JobState::kCreated)
      Fail(sqlstate::kObjectNotInState, Fmt("pkonline job %1% is %2%", job_id, ToText(job.state)), "",
           job.state == JobState::kPaused || job.state == JobState::kFailed
               ? Fmt("Use pkonline.resume(%1%).", job_id)
               : "");
    if (store::WorkerAlive(job_id)) return ToText(job.state);
    Privileged([&]() {
      if (job.state == JobState::kCreated) {
        store::SetState(job_id, JobState::kQueued);
        store::Event(job_id, "start", "", "job started");
      }
    });
    StartOrQueue(job_id);
    return "queued";
  });
}

std::string Pause(int64_t job_id) {
  return WithSpi([&]() -> std::string {
    Job job = LoadManaged(job_id, Control::kStop);
    if (Finished(job) || job.state == JobState::kFailed)
      Fail(sqlstate::kObjectNotInState, "pkonline job " + std::to_string(job_id) + " is " +
                                            ToText(job.state) + "; there is nothing to pause");
    if (job.state == JobState::kCancelling)
      Fail(sqlstate::kObjectNotInState, "pkonline job " + std::to_string(job_id) + " is being cancelled");
    if (job.state == JobState::kPaused) return ToText(job.state);
    if (store::WorkerAlive(job_id)) {
      Privileged([&]() {
        pg::Exec("UPDATE pkonline.jobs SET pause_requested = true WHERE id = $1::bigint", {pg::V(job_id)});
      });
      InterruptWorkerAtCommit(job_id);
      Notice("pkonline job " + std::to_string(job_id) +
                 ": pause requested; the worker stops at its next safe point",
             "CALL pkonline.wait(" + std::to_string(job_id) + ") returns 'paused' once it has stopped.");
      return "pausing";
    }
    Privileged([&]() {
      store::SetState(job_id, JobState::kPaused);
      store::Event(job_id, "pause", "", "job paused before step " + std::to_string(job.step_no));
    });
    return "paused";
  });
}

std::string Resume(int64_t job_id) {
  return WithSpi([&]() -> std::string {
    Job job = LoadManaged(job_id, Control::kRun);
    if (Finished(job))
      Fail(sqlstate::kObjectNotInState,
           "pkonline job " + std::to_string(job_id) + " is " + ToText(job.state));
    RequireNotRestored(job_id);
    if (store::WorkerAlive(job_id)) {
      Privileged([&]() {
        pg::Exec("UPDATE pkonline.jobs SET pause_requested = false WHERE id = $1::bigint", {pg::V(job_id)});
      });
      return ToText(job.state);
    }
    Privileged([&]() {
      pg::Exec(
          "UPDATE pkonline.jobs SET pause_requested = false, updated_at = pg_catalog.now(), "
          "state = CASE WHEN cancel_requested THEN 'cancelling' ELSE 'queued' END WHERE id = $1::bigint",
          {pg::V(job_id)});
      store::Event(job_id, "resume", "", "job resumed at step " + std::to_string(job.step_no));
    });
    StartOrQueue(job_id);
    if (job.settings.stop_before_final && !job.cancel_requested)
      Notice(Fmt("pkonline job %1% stops again before its final step (pkonline.stop_before_final)", job_id),
             Fmt("SELECT pkonline.complete(%1%) runs it.", job_id));
    return job.cancel_requested ? "cancelling" : "queued";
  });
}

std::string SetRunWindow(int64_t job_id, const std::string& window) {
  try {
    jobs::RunWindow::Parse(window);
  } catch (const std::invalid_argument& e) {
    Fail(sqlstate::kInvalidParameter, std::string("invalid run window: ") + e.what(), "",
         "Spans of the day in the server's time zone, e.g. '01:00-05:00' or '22:00-04:00, 12:00-13:00'; '' "
         "for always.");
  }
  return WithSpi([&]() -> std::string {
    Job job = LoadManaged(job_id, Control::kRun);
    if (Finished(job))
      Fail(sqlstate::kObjectNotInState, "pkonline job " + std::to_string(job_id) + " is " + ToText(job.state),
           "Its work is over: a run window no longer matters.");
    store::SetOption(job_id, "run_window", Json::String(window));
    store::Event(job_id, "window", "",
                 window.empty() ? std::string("run window removed: the job may work at any time")
                                : "run window set to " + window);
    return window.empty() ? std::string("always") : window;
  });
}

namespace {

std::string SetStopBeforeFinal(int64_t job_id, bool on) {
  return WithSpi([&]() -> std::string {
    Job job = LoadManaged(job_id, Control::kRun);
    if (Finished(job))
      Fail(sqlstate::kObjectNotInState, "pkonline job " + std::to_string(job_id) + " is " + ToText(job.state),
           "Its work is over: its settings no longer matter.");
    store::SetOption(job_id, "stop_before_final", Json::Bool(on));
    store::Event(
        job_id, "option", "",
        on ? std::string("stop_before_final set: the job stops before its final step")
           : std::string("stop_before_final unset: the job runs its final step when it comes to it"));
    return std::string(on ? "on" : "off");
  });
}

}  // namespace

std::string Complete(int64_t job_id) {
  SetStopBeforeFinal(job_id, false);
  const std::string state = Resume(job_id);
  Notice(Fmt("pkonline job %1%: its final step runs as soon as the job comes to it", job_id),
         Fmt("CALL pkonline.wait(%1%) returns 'done' when it is.", job_id));
  return state;
}

std::string SetOption(int64_t job_id, const std::string& name, const std::string& value) {
  const std::string bare = name.rfind("pkonline.", 0) == 0 ? name.substr(9) : name;
  if (bare == "run_window") return SetRunWindow(job_id, value);
  if (bare == "stop_before_final")
    return SetStopBeforeFinal(job_id, pg::ParseBool(value, "pkonline.stop_before_final"));
  const jobs::Tunable* t = jobs::FindTunable(bare);
  if (t == nullptr)
    Fail(sqlstate::kInvalidParameter, Fmt("\"%1%\" is not a setting that can be changed on a job", name),
         "batch_size, vacuum_every, wal_compression, backfill_fires_triggers and debug_wait_points stay as "
         "the job was created with them.",
         "One of: " + jobs::TunableNames() + ".");
  const int parsed = pg::ParseSetting(value,
                                      t->unit == jobs::Tunable::Unit::kMs   ? "ms"
                                      : t->unit == jobs::Tunable::Unit::kKb ? "kB"
                                                                            : "",
                                      Fmt("pkonline.%1%", t->name), t->min, t->max);
  return WithSpi([&]() -> std::string {
    Job job = LoadManaged(job_id, Control::kRun);
    if (Finished(job))
      Fail(sqlstate::kObjectNotInState, "pkonline job " + std::to_string(job_id) + " is " + ToText(job.state),
           "Its work is over: its settings no longer matter.");
    const int was = job.settings.*(t->field);
    const std::string unit = t->unit == jobs::Tunable::Unit::kMs   ? "ms"
                             : t->unit == jobs::Tunable::Unit::kKb ? "kB"
                                                                   : "";
    store::SetOption(job_id, t->key, Json::Number(parsed));
    store::Event(job_id, "option", "",
                 Fmt("%1% set to %2%%3% (was %4%%3%): the job takes it at its next batch or retry", t->name,
                     parsed, unit, was));
    return std::to_string(parsed) + unit;
  });
}

std::string Cancel(int64_t job_id) {
  return WithSpi([&]() -> std::string {
    Job job = LoadManaged(job_id, Control::kStop);
    if (job.state == JobState::kCancelled) return ToText(job.state);
    if (job.state != JobState::kDone && store::Foreign(job_id)) {
      // Its records name other objects here: nothing is undone, the job is closed.
      Privileged([&]() {
        store::MarkFinished(job_id, JobState::kCancelled);
        store::Event(
            job_id, "cancel", "",
            Fmt("job closed without undo: it was restored from a dump; what it had made on %1% came with "
                "the dump (a column, triggers, a sequence, constraints or indexes named pkonline_%2%_* or "
                "~pkonline_%2%_*): drop them by hand",
                job.table_name, job_id));
      });
      Notice(Fmt("pkonline job %1% closed: restored from a dump, nothing undone", job_id),
             Fmt("Drop what it had made on %1% by hand (names pkonline_%2%_* and ~pkonline_%2%_*).",
                 job.table_name, job_id),
             true);
      return "cancelled";
    }
    if (job.state == JobState::kCancelling && store::WorkerAlive(job_id))
      return ToText(job.state);  // already undoing
    auto op = ops::MakeOperation(job.operation);
    const int ponr = ops::PointOfNoReturn(op->Steps(job));
    // (The job's steps are read as the extension's owner: the table's owner may cancel a job
    // that another role created, whose rows it does not see.)
    bool final_step_started = false, any_step_started = false;
    Privileged([&]() {
      final_step_started = pg::AsBool(pg::Query("SELECT state IN ('running', 'done') FROM pkonline.job_steps "
                                                "WHERE job_id = $1::bigint AND step_no = $2::int",
                                                {pg::V(job_id), pg::V(ponr)}, true)
                                          .scalar());
      any_step_started =
          !pg::Query("SELECT 1 FROM pkonline.job_steps WHERE job_id = $1::bigint AND state <> 'pending'",
                     {pg::V(job_id)}, true)
               .empty();
    });
    const bool final_started =
        job.state == JobState::kDone || job.step_no > ponr || (job.step_no == ponr && final_step_started);
    if (final_started)
      Fail(sqlstate::kObjectNotInState,
           "pkonline job " + std::to_string(job_id) + " is past its point of no return",
           job.state == JobState::kDone
               ? "The job is done: its change is in place."
               : "The job is making its change final (step " + std::to_string(job.step_no) + ").",
           job.state == JobState::kDone ? "Undo it with ALTER TABLE if it is not wanted."
                                        : "Wait for it to finish.");
    const bool untouched = !store::WorkerAlive(job_id) && !any_step_started;
    if (untouched) {  // no step ever ran: nothing to undo
      Privileged([&]() {
        store::MarkFinished(job_id, JobState::kCancelled);
        store::Event(job_id, "cancel", "", "job cancelled before it changed anything");
      });
      return "cancelled";
    }
    Privileged([&]() {
      pg::Exec(
          "UPDATE pkonline.jobs SET cancel_requested = true, pause_requested = false, state = 'cancelling', "
          "updated_at = pg_catalog.now() "
          "WHERE id = $1::bigint",
          {pg::V(job_id)});
      store::Event(job_id, "cancel", "", "cancel requested");
    });
    if (store::WorkerAlive(job_id)) {
      InterruptWorkerAtCommit(job_id);
    } else {
      StartOrQueue(job_id);
    }
    Notice("pkonline job " + std::to_string(job_id) + ": cancelling; its worker undoes what the job created",
           "CALL pkonline.wait(" + std::to_string(job_id) + ") returns 'cancelled' when it is done.");
    return "cancelling";
  });
}

std::string Forget(int64_t job_id) {
  return WithSpi([&]() {
    const Job job = LoadManaged(job_id, Control::kRun);  // the creator (and its members) only
    if (job.state != JobState::kDone && job.state != JobState::kCancelled)
      Fail(sqlstate::kObjectNotInState,
           Fmt("pkonline job %1% is %2%: only done and cancelled jobs can be forgotten", job_id,
               ToText(job.state)),
           "", job.state == JobState::kFailed ? Fmt("pkonline.cancel(%1%) first.", job_id) : "");
    Privileged([&]() { store::Forget(job_id); });
    return std::string("forgotten");
  });
}

int64_t ForgetOlder(const std::string& older_than) {
  pg::SpiScope spi;
  const unsigned me = GetUserId();
  int64_t n = 0;
  Privileged([&]() { n = store::ForgetFinished(me, older_than); });
  spi.Close();
  return n;
}

int RunPending() {
  pg::SpiScope spi;
  const unsigned me = GetUserId();
  int n = 0;
  Privileged([&]() { n = worker::StartPending(me); });
  spi.Close();
  return n;
}

}  // namespace pkonline::api
