// add_column, copy method: the table written once more, into a twin whose new column is filled,
// instead of a new version of every row where it is (see add_int_pk_copy.cpp for the method; the
// copy, its indexes, the catch-up and the cleanup are the same steps, copy_steps.cpp).
//
// The row identity is the table's primary key (one integer column): the change log records the
// key of each row written during the job (old and new), and a replay round gives the copy the
// table's current version of those rows, its column COALESCE(column, fill).
//  1. add_column (brief): ADD COLUMN (nullable, catalog only), the fill as its DEFAULT, the change
//     log and its row trigger (ENABLE ALWAYS).
//  2-4. copy, build_indexes (and the new column's unique index), catch_up.
//  5. swap (brief): the last round, the storages of the table and each index swapped with the
//     copy's; NOT NULL from the catalog (every row came through the copy's NOT NULL column); the
//     unique constraint attached; the trigger dropped.
//  6. cleanup: the old storage and the log dropped, ANALYZE.
#include "pkonline/ops/add_column.hpp"
#include "pkonline/ops/copy_method.hpp"
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops::add_col {

using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;
using namespace copy;

namespace {

AddColumnPlan Plan(const jobs::Job& job) { return AddColumnPlan::Load(job); }

void AddColumnStep(Context& ctx) {
  AddColumn(ctx);  // the column and its DEFAULT, as in place (no fill trigger: the copy fills)
  const auto& job = ctx.job();
  const AddColumnPlan plan = Plan(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": change log and its trigger", [&]() {
    if (!ctx.Recall(fact::kLogOid).is_null()) return;  // committed before a crash: one transaction
    const std::string t = TableSql(job);
    Exec("LOCK TABLE " + t + " IN SHARE ROW EXCLUSIVE MODE");
    const auto [index, attnum] = PrimaryKeyOn(job, plan.key_column);
    if (index == 0)
      Fail(sqlstate::kObjectNotInState,
           Fmt("the primary key of %1% is no longer one integer column %2%", t, Ident(plan.key_column)),
           "The copy method finds each written row by it.",
           Fmt("pkonline.cancel(%1%) removes the column; then use method => 'in_place'.", job.id));
    ctx.Remember(fact::kKeyIndex, Json::Number(index));
    ctx.Remember(fact::kKeyAttnum, Json::Number(attnum));
    CreateChangeLog(ctx, attnum);
  });
}

void UndoAddColumnStep(Context& ctx) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + IdText(job) + ": drop the change log's trigger", [&]() { DropChangeLog(ctx); });
  UndoAddColumn(ctx);
}

// After the swap the copy holds the storage the table had when the job began.
bool Swapped(Context& ctx) {
  const Json was = ctx.Recall(fact::kRelfilenode);
  const unsigned copy = CopyOid(ctx);
  if (was.is_null() || copy == 0) return false;
  auto r = Query("SELECT pg_catalog.pg_relation_filenode($1::oid)::pg_catalog.text",
                 {V(static_cast<int64_t>(copy))}, true);
  return !r.empty() && r.scalar().value_or("") == was.AsString();
}

void SwapStep(Context& ctx) {
  const auto& job = ctx.job();
  const AddColumnPlan plan = Plan(job);
  bool done = false;
  ctx.Txn("pkonline: check", [&]() { done = Swapped(ctx); });
  if (done) return;
  const std::string activity = "pkonline job " + IdText(job) + ": swap storage";
  BeforeSwap(ctx, activity);
  ctx.Ddl(activity, [&]() {
    if (Swapped(ctx)) return;  // committed before a crash: this step is one transaction
    const std::string t = TableSql(job);
    const unsigned copy = LockForSwap(ctx);
    const unsigned uq_twin =
        plan.unique && !Helper(ctx, fact::kTwinPk).empty() ? RecordedOid(ctx, fact::kTwinPk) : 0;
    if (plan.unique && uq_twin == 0)
      Fail(sqlstate::kUndefinedObject, Fmt("the unique index on the copy of job %1% is gone", job.id));
    const int64_t last = SwapWithCopy(ctx, copy);
    const int attnum = ColumnAttnum(job, plan.column);
    // Every row now in the table came through the copy's NOT NULL column.
    if (plan.not_null) pg::SetNotNullTrusted(job.relid, attnum);
    if (plan.unique) {
      const std::string name = FreeIndexName(ctx, plan.unique_name, plan.column, "key");
      const unsigned uq = pg::CreateIndexLike(job.relid, uq_twin, name, false);
      pg::SwapStorage(uq, uq_twin);
      const std::string uq_sql = Ident(name);
      Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + uq_sql + " UNIQUE USING INDEX " + uq_sql);
    }
    Exec("DROP TRIGGER " + Ident(LogTrigger(job)) + " ON " + t);  // (checked by the last round)
    ctx.EventHere("info", Fmt("storage swapped; %1% last changes applied under the lock", last));
  });
  ctx.WaitPoint("swap_committed");
}

}  // namespace

std::vector<Step> CopySteps(const jobs::Job& job) {
  const AddColumnPlan plan = Plan(job);
  const std::string& col = plan.column;
  const char* brief =
      "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries";
  std::vector<Step> steps = {
      {"add_column",
       "ADD COLUMN " + col + " " + plan.column_type + " (nullable)" +
           (plan.set_default ? ", DEFAULT " + plan.fill + " for new rows" : "") +
           ", a change log and a row trigger logging the key of every row written (ENABLE ALWAYS)",
       brief, AddColumnStep, UndoAddColumnStep},
      {"copy",
       "CREATE TABLE " + HelperName(job, "copy") +
           " with the same columns; INSERT … SELECT by ranges of heap "
           "blocks, " +
           col + " = COALESCE(" + col + ", " + plan.fill + "), one transaction per batch",
       "ACCESS SHARE: reads and writes continue", CopyStep, UndoCopyStep},
      {"build_indexes",
       "apply the change log; CREATE INDEX on the copy for each index of the table" +
           (plan.unique ? ", and CREATE UNIQUE INDEX (" + col + ") on it" : std::string()),
       "none on the table (the copy is the job's own)", BuildIndexesStep, nullptr},
      CatchUp(),
      {"swap",
       "apply the last changes, swap the storage of the table and of each index with the copy's" +
           std::string(plan.not_null ? ", SET NOT NULL (every row came through the copy's NOT NULL column)"
                                     : "") +
           (plan.unique ? ", ADD CONSTRAINT " + plan.unique_name + " UNIQUE USING INDEX" : std::string()),
       kSwapLock, SwapStep, nullptr, true},
      Cleanup(),
  };
  return steps;
}

}  // namespace pkonline::ops::add_col
