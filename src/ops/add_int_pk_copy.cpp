// add_int_pk, copy method: write the table once more, ids filled, instead of updating every row
// where it is (which leaves a dead version of every row behind, non-HOT, logged twice).
//
// Steps:
//  1. add_column (brief): ADD COLUMN (nullable, catalog only), its sequence as DEFAULT, a change
//     log table, and two row triggers on the table, ENABLE ALWAYS: BEFORE INSERT OR UPDATE gives
//     every new row version its id, AFTER INSERT OR UPDATE OR DELETE logs (old id, new id, tid)
//     — see src/pg/capture.cpp. Rows not written since keep a NULL id: theirs is their position.
//  2. copy: a twin table with the same columns at the same positions (dropped ones too), filled
//     by INSERT … SELECT over ranges of heap blocks, one short transaction per batch, id =
//     COALESCE(id, _tid_key(ctid)).
//  3. build_indexes: one replay round (below), then every index of the table, and the unique
//     index on the new column, built on the twin with a plain CREATE INDEX (nobody else uses it).
//  4. catch_up: replay rounds until little is left. A round, in one REPEATABLE READ snapshot:
//     delete the twin's rows of every id in the log, insert the table's visible row versions
//     named by the log, delete those log rows. The twin then equals the table as of that
//     snapshot, so its unique indexes hold after every round.
//  5. swap (brief, the point of no return): ACCESS EXCLUSIVE on the table, the last replay
//     round, checks (same storage, same columns, every index has its twin), then the storages
//     of the table and of each index are swapped with the twin's, the key's index is created
//     empty and given the twin's built one, NOT NULL is set from the catalog (every row came
//     through the twin's NOT NULL column), the primary key attached, the triggers dropped.
//  6. cleanup: the twin (now holding the old storage) and the log are dropped.
#include "pkonline/ops/copy_method.hpp"
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/add_int_pk.hpp"
#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops::int_pk {

using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;
using namespace copy;

namespace {

// ---------------------------------------------------------------------------------------------
void AddColumnStep(Context& ctx) {
  const auto& job = ctx.job();
  const std::string col = AddIntPkPlan::Load(job).column;
  ctx.Ddl("pkonline job " + IdText(job) + ": add column and capture triggers", [&]() {
    const std::string t = TableSql(job);
    if (ColumnExists(job, col)) return;  // done before a crash: this step is one transaction
    AddColumnWithSequence(ctx);
    Exec("CREATE TABLE " + HelperSql(job, "log") + " (old_id bigint, new_id bigint, tid pg_catalog.tid)");
    Record(ctx, fact::kLogOid, HelperSql(job, "log"));
    const int attnum_value = ColumnAttnum(job, col);  // sees the ADD COLUMN above
    if (attnum_value <= 0) Fail(sqlstate::kInternal, "pkonline: the new column was not found");
    const std::string attnum = std::to_string(attnum_value);
    const std::string log_oid = std::to_string(RecordedOid(ctx, fact::kLogOid));
    CreateJobTrigger(ctx, "CREATE TRIGGER " + Ident(FillName(job)) + " BEFORE INSERT OR UPDATE ON " + t +
                              " FOR EACH ROW EXECUTE FUNCTION " + pg::Internal("_copy_fill") + "(" +
                              pg::Literal(attnum) + ", " + pg::Literal(std::to_string(SequenceOid(job))) +
                              ")");
    CreateJobTrigger(ctx, "CREATE TRIGGER " + Ident(LogTrigger(job)) +
                              " AFTER INSERT OR UPDATE OR DELETE ON " + t +
                              " FOR EACH ROW EXECUTE FUNCTION " + pg::Internal("_copy_log") + "(" +
                              pg::Literal(attnum) + ", " + pg::Literal(log_oid) + ")");
    // Also for writes made with session_replication_role = replica (logical replication, restores).
    Exec("ALTER TABLE " + t + " ENABLE ALWAYS TRIGGER " + Ident(FillName(job)) + ", ENABLE ALWAYS TRIGGER " +
         Ident(LogTrigger(job)));
    RecordLogTrigger(ctx);
    // Every row there is now lies in these blocks (the table is locked): ids by position stay
    // below the sequence.
    const int64_t blocks = HeapBlocks(job);
    if (blocks > 0) {
      auto r = Query("SELECT pg_catalog.setval($1::pg_catalog.regclass, $2::bigint)",
                     {V(SeqSql(job)), V(blocks * pg::kIdsPerHeapBlock)});
      (void)r;
    }
    ctx.Remember(fact::kRelfilenode, Json::String(Relfilenode(job)));
  });
}

void UndoAddColumnStep(Context& ctx) {
  const auto& job = ctx.job();
  UndoColumnAndHelpers(ctx, {FillName(job), LogTrigger(job)});
  ctx.Txn("pkonline job " + IdText(job) + ": drop the change log", [&]() {
    const std::string log = Helper(ctx, fact::kLogOid, false);  // never anything but the job's own
    if (!log.empty()) Exec("DROP TABLE " + log);
  });
}

void SwapStep(Context& ctx) {
  const auto& job = ctx.job();
  const AddIntPkPlan plan = AddIntPkPlan::Load(job);
  bool done = false;
  ctx.Txn("pkonline: check", [&]() { done = HasOurPk(job); });
  if (done) return;
  const std::string activity = "pkonline job " + IdText(job) + ": swap storage and attach primary key";
  BeforeSwap(ctx, activity);
  ctx.Ddl(activity, [&]() {
    const std::string t = TableSql(job);
    if (HasOurPk(job)) return;  // committed before a crash: this step is one transaction
    const unsigned copy = LockForSwap(ctx);
    RequireNoOtherPk(job);
    const unsigned pk_twin = Helper(ctx, fact::kTwinPk).empty() ? 0 : RecordedOid(ctx, fact::kTwinPk);
    if (pk_twin == 0)
      Fail(sqlstate::kUndefinedObject, Fmt("the key's index on the copy of job %1% is gone", job.id));
    const int64_t last = SwapWithCopy(ctx, copy);
    const unsigned pk = pg::CreateIndexLike(job.relid, pk_twin, plan.pk_name, false);
    pg::SwapStorage(pk, pk_twin);
    // Every row now in the table came through the copy's NOT NULL column.
    pg::SetNotNullTrusted(job.relid, ColumnAttnum(job, plan.column));
    const std::string pk_sql = Ident(plan.pk_name);
    Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + pk_sql + " PRIMARY KEY USING INDEX " + pk_sql);
    Exec("DROP TRIGGER IF EXISTS " + Ident(FillName(job)) + " ON " + t);
    Exec("DROP TRIGGER IF EXISTS " + Ident(LogTrigger(job)) + " ON " + t);
    FinishSequence(job);
    ctx.EventHere("info", Fmt("storage swapped; %1% last changes applied under the lock", last));
  });
  ctx.WaitPoint("swap_committed");
}

}  // namespace

std::vector<Step> CopySteps(const jobs::Job& job) {
  const AddIntPkPlan plan = AddIntPkPlan::Load(job);
  const std::string& col = plan.column;
  return {
      {"add_column",
       "ADD COLUMN " + col + " " + plan.column_type +
           " (nullable), a sequence as its DEFAULT, a change log, "
           "row triggers that give new row versions their id and log every change (ENABLE ALWAYS)",
       "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries",
       AddColumnStep, UndoAddColumnStep},
      {"copy",
       "CREATE TABLE " + HelperName(job, "copy") +
           " with the same columns; INSERT … SELECT by ranges of "
           "heap blocks, ids filled, one transaction per batch",
       "ACCESS SHARE: reads and writes continue", CopyStep, UndoCopyStep},
      {"build_indexes",
       "apply the change log; CREATE INDEX on the copy for each index of the table, and "
       "CREATE UNIQUE INDEX (" +
           col + ") on it",
       "none on the table (the copy is the job's own)", BuildIndexesStep, nullptr},
      CatchUp(),
      {"swap",
       "apply the last changes, swap the storage of the table and of each index with the copy's, "
       "ADD PRIMARY KEY USING INDEX" +
           std::string(plan.identity ? ", identity" : ""),
       kSwapLock, SwapStep, nullptr, true},
      Cleanup(),
  };
}

}  // namespace pkonline::ops::int_pk
