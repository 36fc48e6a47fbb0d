// The runner: persists "step started", runs the step, persists "step done"; between units of
// work honours pause and cancel; on cancel runs the undo of every step reached, newest first.
#include "pkonline/jobs/runner.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "pkonline/jobs/store.hpp"
#include "pkonline/jobs/pacing.hpp"
#include "pkonline/jobs/step.hpp"
#include "pkonline/jobs/window.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/job_lock.hpp"
#include "pkonline/pg/jsonb.hpp"
#include "pkonline/pg/lock_watch.hpp"
#include "pkonline/pg/lock_waits.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/text.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/txn.hpp"
#include "pkonline/pg/wal.hpp"
#include "pkonline/pg/user_code.hpp"

namespace pkonline::jobs {

namespace {

class RunContext final : public Context {
 public:
  RunContext(Job job, BatchCode batches, bool schema_01)
      : job_(std::move(job)), batches_(batches), schema_01_(schema_01) {}
  // On a 0.1 schema (the library updated, the extension not yet): no step reports, no 'waiting'.
  bool schema_01() const { return schema_01_; }
  bool claim_lost() const { return claim_lost_; }

  const Job& job() const override { return job_; }
  void set_step(const std::string& step) { step_ = step; }

  // The step's report starts now; TakeReport() ends it (and starts the next).
  void StartReport() {
    report_ = {};
    report_start_ = std::chrono::steady_clock::now();
    report_wal_ = pg::WalBytes();
    waited_ms_ = 0;
    pg::lock_watch::Reset();
  }
  store::StepReport TakeReport() {
    store::StepReport r = report_;
    r.busy_ms = std::max(
        0.0,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - report_start_).count() -
            waited_ms_);
    r.wal_bytes = static_cast<int64_t>(pg::WalBytes() - report_wal_);
    const pg::lock_watch::Hold hold = pg::lock_watch::Longest();
    r.lock_mode = hold.mode;
    r.lock_ms = hold.ms;
    r.writes_blocked_ms = std::max(hold.writes_blocked_ms, report_.writes_blocked_ms);
    StartReport();
    return r;
  }

  void Txn(const std::string& activity, const std::function<void()>& fn) override {
    pg::InTransaction(activity, Guarded(fn));
    KeepClaim();
  }

  void Snapshot(const std::string& activity, const std::function<void()>& fn) override {
    pg::TxnOptions opts;
    opts.repeatable_read = true;
    opts.lock_timeout_ms = job_.settings.lock_timeout_ms;
    pg::InTransaction(activity, Guarded(fn), opts);
    KeepClaim();
  }

  void Batch(const std::string& activity, unsigned relid, const std::function<void()>& fn) override {
    pg::TxnOptions opts;
    opts.lock_timeout_ms = job_.settings.lock_timeout_ms;  // on row locks too
    bool fire = false;
    pg::InTransaction(
        activity,
        [&]() {
          RequireStillAllowed(job_, !cancelling_);
          if (QuietTriggers(relid, &fire)) pg::ReplicaRoleForThisTransaction();
          fn();
        },
        opts);
    report_.batches++;
    KeepClaim();
    if (fire && !told_fire_) {
      told_fire_ = true;
      Event(
          "info",
          "the table's own triggers fire for the batches' updates: code a user wrote runs in them (the fill, "
          "or "
          "the table's triggers enabled ALWAYS or REPLICA, rules, or functions in its constraints, indexes "
          "or "
          "generated columns), and replica mode, which would keep the triggers quiet, would also switch off "
          "foreign keys and triggers of other tables for that code",
          "");
    }
  }

  void Ddl(const std::string& activity, const std::function<void()>& fn) override {
    // Not started so near the end of the run window that its retries could run past it.
    AwaitWindowForDdl(activity);
    for (int attempt = 1;; attempt++) {
      // (read again each attempt: pkonline.set_option may change them while the step retries)
      const int timeout = job_.settings.lock_timeout_ms;
      const int max_retries = job_.settings.lock_retries;
      const auto attempt_start = std::chrono::steady_clock::now();
      try {
        // The job's brief DDL is the one to give way: should its lock requests close a cycle
        // with clients (a foreign key's cascade locks tables in the other order), it runs the
        // deadlock check first and is the one aborted, to be retried.
        pg::TxnOptions opts;
        opts.lock_timeout_ms = timeout;
        opts.deadlock_timeout_ms = std::max(10, timeout / 4);
        pg::InTransaction(activity, Guarded(fn), opts);
        KeepClaim();
        return;
      } catch (const PgError& e) {
        const bool retryable =
            e.sqlstate() == sqlstate::kLockNotAvailable || e.sqlstate() == sqlstate::kDeadlock;
        // While its lock request waited in the queue, the table's writers queued behind it.
        if (retryable)
          report_.writes_blocked_ms = std::max(
              report_.writes_blocked_ms,
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - attempt_start)
                  .count());
        if (e.sqlstate() == sqlstate::kQueryCanceled) CheckControl();
        if (!retryable) throw;
        if (attempt > max_retries) {
          throw PgError(e.sqlstate(),
                        Fmt("could not get the lock for \"%1%\" after %2% attempts of %3% ms", activity,
                            attempt, timeout),
                        Fmt("Other sessions held locks on %1% every time.", job_.table_name),
                        Fmt("Find the blockers in pkonline.events (kind 'lock_retry'); then "
                            "pkonline.resume(%1%), after SELECT pkonline.set_option(%1%, 'lock_retries', "
                            "'%2%') or pkonline.set_option(%1%, 'lock_timeout', '%3%ms') if they are only "
                            "busy.",
                            job_.id, std::max(2 * max_retries, 10), std::min(60000, 2 * timeout)));
        }
        const long wait = backoff_.After(attempt);
        RecordLockRetry(activity, attempt, wait);
        Sleep(wait);
        CheckControl();
      }
    }
  }

  void TopLevel(const std::string& sql) override { RunTopLevel(sql, nullptr); }

  void TopLevelIndexLike(const std::string& definition,
                         const std::vector<std::pair<std::string, std::string>>& renames,
                         const std::string& name) override {
    const pg::IndexRewrite rewrite{renames, name};
    RunTopLevel(definition, &rewrite);
  }

  void RunTopLevel(const std::string& sql, const pg::IndexRewrite* rewrite) {
    try {
      pg::InTransaction("pkonline: check owner", [&]() { RequireStillAllowed(job_, !cancelling_); });
      // (VACUUM and CREATE INDEX run the table's code as its owner themselves)
      pg::RunTopLevel(sql, rewrite);
    } catch (const PgError& e) {
      if (e.sqlstate() == sqlstate::kQueryCanceled) CheckControl();
      throw;
    }
    KeepClaim();
  }

  void TryOnce(const std::string& activity, const std::function<void()>& fn) override {
    pg::TxnOptions opts;
    opts.lock_timeout_ms = job_.settings.lock_timeout_ms;
    pg::InTransaction(activity, Guarded(fn), opts);
    KeepClaim();
  }

  void AsExtensionOwner(const std::function<void()>& fn) override { pg::AsRole(store::ExtensionOwner(), fn); }

  void Remember(const std::string& key, const Json& value) override { store::SetOption(job_.id, key, value); }
  Json Recall(const std::string& key) override { return store::OptionNow(job_.id, key); }

  void SetWalkRange(int64_t end_block, int64_t rows_estimate, int64_t cursor) override {
    store::SetBackfillRange(job_.id, end_block, rows_estimate, cursor);
  }
  void SaveCursor(int64_t next_block, int64_t rows_added, int batch_blocks) override {
    store::SaveCursor(job_.id, next_block, rows_added, batch_blocks);
    report_.rows += rows_added;
  }

  void Event(const std::string& kind, const std::string& message, const std::string& detail) override {
    pg::InTransaction("pkonline: event", [&]() { store::Event(job_.id, kind, step_, message, detail); });
  }
  void EventHere(const std::string& kind, const std::string& message) override {
    store::Event(job_.id, kind, step_, message);
  }

  void CheckControl() override { AwaitWindow(0, ""); }

  bool AwaitWindowForDdl(const std::string& what) override {
    const int64_t retries = job_.settings.lock_retries, timeout = job_.settings.lock_timeout_ms;
    return AwaitWindow(static_cast<int>((retries + 1) * (timeout + Backoff::kMaxMs) / 1000), what);
  }

  // Honours pause and cancel requests (throws StopRequested). Then, outside the job's run window
  // — or, with `needed_s`, nearer its end than that — the job waits: state 'waiting', a 'window'
  // event, a look every second; it goes on by itself once the window is open (again). The window
  // is read from the job each time: pkonline.set_run_window changes it for a running job. Undoing
  // a cancelled job does not wait.
  bool AwaitWindow(int needed_s, const std::string& what) {
    bool waiting = false;
    std::chrono::steady_clock::time_point wait_start;
    for (;;) {
      pg::CheckInterrupts();
      KeepClaim();
      Job now;
      int second = 0;
      std::string clock;
      pg::InTransaction("pkonline: check control", [&]() {
        now = store::Load(job_.id);
        auto r = pg::Query("SELECT EXTRACT(epoch FROM LOCALTIME(0))::int, LOCALTIME(0)::pg_catalog.text", {},
                           true);
        second = static_cast<int>(pg::AsInt(r.rows[0][0]));
        clock = r.rows[0][1].value_or("?");
      });
      // What pkonline.set_option changed takes effect from here: the next batch, retry or step.
      job_.settings.TakeTunables(now.settings);
      if (now.cancel_requested && !cancelling_) throw StopRequested{true};
      if (now.pause_requested && !cancelling_) throw StopRequested{false};
      RunWindow window;
      try {
        window = RunWindow::Parse(now.settings.run_window);
      } catch (const std::invalid_argument&) {
        // (checked when it was set) an unreadable window does not stop the job
      }
      // A span shorter than what the step needs lets it start in the span's first half.
      const int need = std::min(needed_s, window.SpanLength(second) / 2);
      if (cancelling_ || (window.Inside(second) && window.SecondsLeft(second) > need)) break;
      if (!waiting) {
        waiting = true;
        wait_start = std::chrono::steady_clock::now();
        const std::string why =
            window.Inside(second)
                ? Fmt("the run window %1% closes in %2% s, sooner than the lock retries of %3% could take "
                      "(%4% s)",
                      now.settings.run_window, window.SecondsLeft(second), what, needed_s)
                : Fmt("outside the run window %1% (server time %2%)", now.settings.run_window, clock);
        const int opens =
            window.Inside(second)
                ? window.SecondsLeft(second) +
                      window.SecondsUntilOpen((second + window.SecondsLeft(second)) % RunWindow::kDay)
                : window.SecondsUntilOpen(second);
        pg::InTransaction("pkonline: waiting for the run window", [&]() {
          if (!schema_01_) store::SetState(job_.id, JobState::kWaiting);
          store::Event(
              job_.id, "window", step_, Fmt("%1%: waiting; it opens in %2% s", why, opens),
              Fmt("{\"run_window\": %1%, \"opens_in_s\": %2%}", JsonString(now.settings.run_window), opens));
        });
      }
      // A shut window is no reason to keep a worker slot that a queued job could use.
      bool give_way = false;
      if (!schema_01_ && !window.Inside(second))
        pg::InTransaction("pkonline: queued jobs", [&]() { give_way = store::OthersQueued(job_.id); });
      if (give_way) {
        pg::InTransaction("pkonline: give way", [&]() {
          store::Event(
              job_.id, "window", step_,
              "its worker gives way to a queued job while the run window is shut; a worker slot that "
              "frees later takes the job up again");
        });
        throw YieldSlot{};
      }
      Sleep(1000);
    }
    if (waiting) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wait_start).count();
      waited_ms_ += ms;
      pg::InTransaction("pkonline: run window open", [&]() {
        if (!schema_01_) store::SetState(job_.id, JobState::kRunning);
        store::Event(job_.id, "window", step_, "the run window is open: going on",
                     Fmt("{\"waited_ms\": %.1f, \"for\": \"the run window\"}", ms));
      });
    }
    return waiting;
  }

  void WaitPoint(const std::string& name) override {
    if (!job_.settings.debug_wait_points) return;
    pg::InTransaction("pkonline: wait point " + name, [&]() { WaitPointHere(name); });
  }

  void WaitPointHere(const std::string& name) override {
    if (!job_.settings.debug_wait_points) return;
    // Held as long as the test holds the point: not given up after the transaction's lock_timeout.
    const std::string timeout = *pg::Query("SELECT pg_catalog.current_setting('lock_timeout')").scalar();
    pg::Query("SELECT pg_catalog.set_config('lock_timeout', '0', true)");
    pg::Query("SELECT pg_catalog.pg_advisory_xact_lock_shared($1::int, pg_catalog.hashtext($2))",
              {pg::V(kAdvisoryClass + 1), pg::V(name)});
    pg::Query("SELECT pg_catalog.set_config('lock_timeout', $1, true)", {pg::V(timeout)});
  }

  void Sleep(long ms) override { pg::SleepMs(ms); }

  void SetWaiting(const std::string& what) override {
    if (schema_01_) return;
    pg::InTransaction("pkonline: waiting", [&]() { store::SetWaiting(job_.id, what); });
  }

  bool cancelling_ = false;

 private:
  std::function<void()> Guarded(const std::function<void()>& fn) {
    return [this, &fn]() {
      RequireStillAllowed(job_, !cancelling_);  // undoing needs only the same owner
      fn();
    };
  }

  // Code the job ran may have released the claim (pg_advisory_unlock_all releases every session
  // lock of its lock method): take it again at once, or, if another worker has it, leave.
  void KeepClaim() {
    RecordLockWaits();
    if (pg::HoldsJob(job_.id)) return;
    if (!pg::ClaimJob(job_.id)) {
      claim_lost_ = true;
      throw ClaimLost{};
    }
  }
  bool claim_lost_ = false;

  // Each lock wait of a second or more that the unit of work just done went through: an event
  // (kind 'wait'), which pkonline.report() sums per step. (A concurrent index build waits for old
  // snapshots with no lock_timeout: this is how that wait is told.)
  void RecordLockWaits() {
    const auto waits = pg::lock_waits::Take();
    if (waits.empty()) return;
    pg::InTransaction("pkonline: lock waits", [&]() {
      for (const auto& w : waits) {
        const std::string why = w.lock.find("virtual transaction") != std::string::npos ? "old snapshots"
                                : w.lock.find(" on transaction ") != std::string::npos  ? "a row lock"
                                                                                        : "a lock";
        store::Event(job_.id, "wait", step_,
                     Fmt("waited %.1f s for %s (%s)%s", w.ms / 1000, why, w.lock,
                         w.holders.empty() ? std::string() : ": " + w.holders),
                     Fmt("{\"waited_ms\": %.1f, \"for\": %s, \"lock\": %s, \"holders\": %s}", w.ms,
                         JsonString(why), JsonString(w.lock), JsonString(w.holders)));
      }
    });
  }

  // May this batch run with session_replication_role = replica, so that the table's own row
  // triggers do not fire for the backfill's updates? Only when no code a user wrote can run in
  // it: replica mode also switches off other tables' foreign keys and triggers (src/pg/user_code).
  // The copy method's batches write only the job's own copy, which has no trigger: never needed.
  // `fire` says the table's triggers fire because user code could run.
  bool QuietTriggers(unsigned relid, bool* fire) {
    if (job_.settings.backfill_fires_triggers || batches_ == BatchCode::kOwnCopyOnly) return false;
    *fire = batches_ == BatchCode::kUserCode || pg::TableRunsUserCode(relid);
    return !*fire;
  }
  bool told_fire_ = false;

  void RecordLockRetry(const std::string& activity, int attempt, long wait_ms) {
    pg::InTransaction("pkonline: lock retry", [&]() {
      auto r = pg::Query(
          "SELECT COALESCE(pg_catalog.jsonb_agg(DISTINCT l.pid), '[]'), "
          "COALESCE(pg_catalog.jsonb_agg(DISTINCT pg_catalog.format('pid %s (role %s)', l.pid, "
          "  COALESCE((SELECT a.usename::pg_catalog.text FROM pg_catalog.pg_stat_activity a WHERE a.pid = "
          "l.pid), "
          "  '?'))), '[]') "
          "FROM pg_catalog.pg_locks l "
          "WHERE l.locktype = 'relation' AND l.relation = $1::oid AND l.granted "
          "AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = "
          "pg_catalog.current_database()) "
          "AND l.pid <> pg_catalog.pg_backend_pid()",
          {pg::V(static_cast<int64_t>(job_.relid))}, true);
      const std::string pids = r.scalar().value_or("[]");
      report_.lock_retries++;
      for (const auto& who : pg::ReadJsonb(r.rows[0][1].value_or("[]")).AsStrings())
        if (report_.blocked_by.size() < 10) report_.blocked_by.push_back(who);
      store::CountLockRetry(job_.id);
      store::Event(job_.id, "lock_retry", step_,
                   Fmt("%1%: lock not granted within %2% ms (attempt %3%), retrying in %4% ms", activity,
                       job_.settings.lock_timeout_ms, attempt, wait_ms),
                   Fmt("{\"blocking_pids\": %1%, \"attempt\": %2%}", pids, attempt));
    });
  }

  Job job_;
  BatchCode batches_;
  bool schema_01_;
  std::string step_;
  Backoff backoff_;
  store::StepReport report_;
  std::chrono::steady_clock::time_point report_start_;
  uint64_t report_wal_ = 0;
  double waited_ms_ = 0;  // of the step's time, waiting for its run window
};

void Undo(RunContext& ctx, const std::vector<Step>& steps, int reached) {
  ctx.cancelling_ = true;
  const int64_t id = ctx.job().id;
  pg::InTransaction("pkonline: cancelling", [&]() {
    store::SetState(id, JobState::kCancelling);
    store::Event(id, "cancel", "", "cancelling: undoing what the job created");
  });
  for (int i = std::min<int>(reached, static_cast<int>(steps.size())); i >= 1; i--) {
    const auto& step = steps[i - 1];
    ctx.set_step(step.name);
    if (step.undo) step.undo(ctx);
    pg::InTransaction("pkonline: step undone", [&]() { store::StepDone(id, i, step.name, "undone"); });
  }
  pg::InTransaction("pkonline: cancelled", [&]() {
    store::MarkFinished(id, JobState::kCancelled);
    store::Event(id, "cancel", "", "job cancelled; the table is as it was before the job");
  });
}

}  // namespace

void RequireStillAllowed(const Job& job, bool creator_too) {
  pg::LockShared(job.relid);
  auto r = pg::Query(
      "SELECT c.relowner <> $2::oid, c.relowner::pg_catalog.regrole::pg_catalog.text, "
      "$2::oid::pg_catalog.regrole::pg_catalog.text, "
      "NOT pg_catalog.pg_has_role($3::oid, $2::oid, 'USAGE'), $3::oid::pg_catalog.regrole::pg_catalog.text "
      "FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
      {pg::V(static_cast<int64_t>(job.relid)), pg::V(static_cast<int64_t>(job.run_as)),
       pg::V(static_cast<int64_t>(job.owner))},
      true);
  if (r.empty()) return;  // the table is gone: the steps say so
  const auto& row = r.rows[0];
  const std::string now = row[1].value_or("?"), was = row[2].value_or("?");
  if (pg::AsBool(row[0]))
    Fail(sqlstate::kInsufficientPrivilege,
         Fmt("table %1% changed owner since job %2% was created", job.table_name, job.id),
         Fmt("The job works as the table's owner when it was created, %1%; the table now belongs to %2%.",
             was, now),
         Fmt("ALTER TABLE %1% OWNER TO %2%, then pkonline.resume(%3%) or pkonline.cancel(%3%).",
             job.table_name, was, job.id));
  if (creator_too && pg::AsBool(row[3]))
    Fail(sqlstate::kInsufficientPrivilege,
         Fmt("role %1%, which created job %2%, is no longer a member of %3%, the owner of table %4%",
             row[4].value_or("?"), job.id, was, job.table_name),
         "The job works as the table's owner for the role that created it.",
         Fmt("GRANT %1% TO %2%, then pkonline.resume(%3%); or pkonline.cancel(%3%) as the table's owner.",
             was, row[4].value_or("?"), job.id));
}

void RecordFailure(int64_t job_id, const PgError& e) {
  pg::InTransaction("pkonline: record failure", [&]() {
    store::MarkFailed(job_id, e.sqlstate_text(), e.message(), e.detail(), e.hint());
    store::Event(job_id, "error", "", e.message(),
                 "{\"sqlstate\": " + JsonString(e.sqlstate_text()) +
                     ", \"detail\": " + JsonString(e.detail()) + ", \"hint\": " + JsonString(e.hint()) + "}");
  });
}

namespace {

// The job resumes by step name: the plan rebuilt from its options must be, step for step, the one
// saved when it was created; else (another version of pkonline, say) it fails and runs nothing.
void RequireSamePlan(const Job& job, const std::vector<Step>& steps) {
  std::vector<std::string> saved;
  pg::InTransaction("pkonline: load plan", [&]() { saved = store::StepNames(job.id); });
  std::string now, was;
  bool same = saved.size() == steps.size();
  for (size_t i = 0; i < std::max(saved.size(), steps.size()); i++) {
    if (i < steps.size()) now += (now.empty() ? "" : ", ") + steps[i].name;
    if (i < saved.size()) was += (was.empty() ? "" : ", ") + saved[i];
    if (same && saved[i] != steps[i].name) same = false;
  }
  if (!same)
    Fail(sqlstate::kObjectNotInState,
         Fmt("the steps of job %1% are not the ones this pkonline runs for it", job.id),
         Fmt("Saved when it was created: %1%. Now: %2%.", was, now),
         "Finish or cancel it with the version of pkonline that created it.");
}

// Runs the steps from the job's current one; returns the stop request that ended it, if any.
enum class Outcome { kDone, kPause, kCancel, kGate, kAgain };

Outcome RunSteps(RunContext& ctx, const std::vector<Step>& steps, const std::vector<unsigned>& tables) {
  const int64_t job_id = ctx.job().id;
  int running = 0;  // the step under way, whose report is saved however the run ends
  struct SaveReport {
    RunContext& ctx;
    const int& step;
    int64_t job;
    ~SaveReport() {
      // (not for a job whose claim another worker took: its figures are that worker's now)
      if (step == 0 || ctx.schema_01() || ctx.claim_lost()) return;
      try {
        store::StepReport r = ctx.TakeReport();
        pg::InTransaction("pkonline: step report", [&]() { store::SaveStepReport(job, step, r); });
      } catch (...) {
        // (never thrown on from a destructor) The report of an interrupted step is lost; the
        // job's own state is not.
      }
    }
  } save{ctx, running, job_id};
  try {
    if (!ctx.schema_01())
      pg::InTransaction("pkonline: size", [&]() {
        store::RecordSizeBefore(job_id, tables);
        store::SetWaiting(job_id, "");  // (what an earlier worker, killed while it held back, left)
      });
    for (int i = ctx.job().step_no; i <= static_cast<int>(steps.size()); i++) {
      const auto& step = steps[i - 1];
      ctx.set_step(step.name);
      ctx.CheckControl();
      // The gate before the point of no return: the DBA runs the final step with complete().
      if (step.final && ctx.job().settings.stop_before_final) throw StopRequested{false, true};
      pg::InTransaction("pkonline: step start", [&]() { store::StepStarted(job_id, i, step.name); });
      ctx.StartReport();
      running = i;
      step.run(ctx);
      const store::StepReport report = ctx.TakeReport();
      pg::InTransaction("pkonline: step done", [&]() {
        if (!ctx.schema_01()) store::SaveStepReport(job_id, i, report);
        store::StepDone(job_id, i, step.name);
      });
      running = 0;
    }
    pg::InTransaction("pkonline: done", [&]() {
      if (!ctx.schema_01()) store::RecordSizeAfter(job_id, tables);
      store::MarkFinished(job_id, JobState::kDone);
      store::Event(job_id, "done", "", "job done");
    });
    return Outcome::kDone;
  } catch (const StopRequested& stop) {
    return stop.cancel ? Outcome::kCancel : stop.gate ? Outcome::kGate : Outcome::kPause;
  } catch (const PgError& e) {
    // A deadlock with another session (DROP EXTENSION taking the job tables one by one, say): the
    // worker looks for deadlocks first and gives way; the job goes on from its saved step (every
    // step may run again).
    if (e.sqlstate() == sqlstate::kDeadlock) return Outcome::kAgain;
    // pause() and cancel() interrupt a worker that waits (on a lock, an old snapshot, a
    // wait point) with a query cancel: see whether that is what happened.
    if (e.sqlstate() != sqlstate::kQueryCanceled) throw;
    Job now;
    pg::InTransaction("pkonline: check control", [&]() { now = store::Load(job_id); });
    if (now.cancel_requested) return Outcome::kCancel;
    if (now.pause_requested) return Outcome::kPause;
    throw;
  }
}

}  // namespace

void RunJob(int64_t job_id, const Operation& op) {
  std::string table_name;
  constexpr int kMaxDeadlocks = 20;
  int deadlocks = 0;
  try {
    for (;;) {
      Job job;
      bool schema_01 = false;
      pg::InTransaction("pkonline: load job", [&]() {
        job = store::Load(job_id);
        schema_01 = store::SchemaIs01();
      });
      table_name = job.table_name;
      {
        try {
          pg::SetWorkerSetting("wal_compression", job.settings.wal_compression);
        } catch (const PgError& e) {
          // Outside any transaction, and a value its check refuses changes nothing: there is no
          // state to roll back; the job goes on with the server's wal_compression.
          pg::InTransaction("pkonline: event", [&]() {
            store::Event(job_id, "info", "", "wal_compression left as it is: " + e.message());
          });
        }
      }
      const auto steps = op.Steps(job);
      RequireSamePlan(job, steps);
      RunContext ctx(job, op.Batches(job), schema_01);
      // A partitioned table's report watches its partitions too (those there when the job starts).
      std::vector<unsigned> tables = op.Tables(job);
      pg::InTransaction("pkonline: partitions", [&]() { tables = pg::WithPartitions(tables); });
      pg::lock_watch::Watch(tables);
      Outcome outcome = job.cancel_requested ? Outcome::kCancel : RunSteps(ctx, steps, tables);
      if (outcome == Outcome::kDone) return;
      if (outcome == Outcome::kAgain) {
        if (++deadlocks > kMaxDeadlocks)
          throw PgError(sqlstate::kDeadlock, "deadlock detected, again and again");
        pg::InTransaction("pkonline: deadlock", [&]() {
          store::Event(job_id, "info", "",
                       "gave way in a deadlock with another session; going on from step " +
                           std::to_string(store::Load(job_id).step_no));
        });
        pg::SleepMs(100 * deadlocks);
        continue;
      }
      Job now;
      pg::InTransaction("pkonline: reload", [&]() { now = store::Load(job_id); });
      if (outcome == Outcome::kGate) {
        const std::string& name = steps[now.step_no - 1].name;
        pg::InTransaction("pkonline: stopped before the final step", [&]() {
          store::SetState(job_id, JobState::kPaused);
          const std::string why =
              Fmt("pkonline.complete(%1%): stopped before its final step, %2%", job_id, name);
          store::SetWaiting(job_id, why);
          store::Event(
              job_id, "pause", name,
              Fmt("job stopped before its final step %1% (%2%), as pkonline.stop_before_final asked: "
                  "SELECT pkonline.complete(%3%) runs it",
                  now.step_no, name, job_id));
        });
        return;
      }
      if (outcome == Outcome::kPause) {
        pg::InTransaction("pkonline: paused", [&]() {
          store::SetState(job_id, JobState::kPaused);
          store::SetWaiting(job_id, "");
          store::ClearPauseRequest(job_id);
          store::Event(job_id, "pause", "", "job paused before step " + std::to_string(now.step_no));
        });
        return;
      }
      if (now.step_no > PointOfNoReturn(steps)) {
        // The change is final already; finish the job instead.
        pg::InTransaction("pkonline: cancel refused", [&]() {
          store::RefuseCancel(job_id);
          store::Event(job_id, "cancel", "", "cancel ignored: the job is past its point of no return");
        });
        continue;
      }
      Undo(ctx, steps, now.step_no);
      return;
    }
  } catch (const std::exception& e) {
    // Any C++ exception fails the job visibly (a PgError with its SQLSTATE; anything else as an
    // internal error) instead of leaving it 'running' with no worker.
    const auto* pg_error = dynamic_cast<const PgError*>(&e);
    const PgError failure =
        pg_error ? *pg_error
                 : PgError(sqlstate::kInternal, std::string("pkonline internal error: ") + e.what());
    try {
      RecordFailure(job_id, failure);
    } catch (const PgError& again) {
      // The job tables are gone (the extension was dropped) or cannot be written: the server log
      // is the only place left to say what happened and what to clean up.
      ServerWarning(Fmt("pkonline job %1% stopped: %2%", job_id, failure.message()),
                    Fmt("Its state could not be recorded: %1%", again.message()),
                    Fmt("If the pkonline extension was dropped, remove the job's helpers by hand: the "
                        "trigger, function, "
                        "sequence and check constraint named pkonline_%1%_* on %2% and in its schema, and "
                        "the new column "
                        "if it is not wanted.",
                        job_id, table_name.empty() ? std::string("its table") : table_name));
    }
  }
}

}  // namespace pkonline::jobs
