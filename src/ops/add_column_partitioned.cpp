// add_column on a partitioned table, partition by partition.
//
// A value that is not volatile: one brief step on the parent (every partition gets the column and
// the value in the catalog). Otherwise: ADD COLUMN on the parent (every partition gets it) + DEFAULT
// + the fill trigger (cloned onto every partition) -> backfill each partition in ctid batches ->
// catch up every partition -> with NOT NULL, each partition's CHECK NOT VALID + VALIDATE -> finish:
// SET NOT NULL on the parent, proved by every partition's check (no scan), the helpers dropped.
// A UNIQUE column is refused (a partitioned table's unique key must contain its partition key).
#include "pkonline/ops/add_column.hpp"
#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/leaf_keys.hpp"
#include "pkonline/ops/partitions.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops::add_col {

using pg::Exec;
using pg::Ident;

namespace {

AddColumnPlan Plan(const jobs::Job& job) { return AddColumnPlan::Load(job); }

LeafFill Fill(const jobs::Job& job) {
  const AddColumnPlan plan = Plan(job);
  return FillLeaves(job, plan.column, "(" + plan.fill_sql + ")", plan.not_null);
}

// The last transaction's work besides NOT NULL: the DEFAULT once more on the whole tree (a table
// attached during the job kept its own, or none), the trigger and its function dropped.
void DropTriggerAndFunction(const jobs::Job& job) {
  const AddColumnPlan plan = Plan(job);
  const std::string t = TableSql(job);
  if (plan.set_default)
    Exec("ALTER TABLE " + t + " ALTER COLUMN " + ColumnSql(job, plan.column) + " SET DEFAULT (" +
         plan.fill_sql + ")");
  Exec("DROP TRIGGER IF EXISTS " + Ident(FillName(job)) + " ON " + t);
  DropFunctionIfOurs(job, "fill");
}

void CatchUpLeaves(Context& ctx) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + IdText(job) + ": fill trigger on update", [&]() {
    LockTree(job, TableSql(job), "SHARE ROW EXCLUSIVE");
    Exec(FillTriggerSql(FillName(job), TableSql(job), ColumnSql(job, Plan(job).column),
                        HelperSql(job, "fill") + "()", true));
  });
  const int64_t filled = SweepLeaves(ctx, Fill(job));
  ctx.Event("info",
            Fmt("catch-up pass filled %1% rows written without a value while the backfill ran", filled));
}

void Finish(Context& ctx) {
  const auto& job = ctx.job();
  const AddColumnPlan plan = Plan(job);
  if (plan.not_null) {
    SetNotNullOnTree(ctx, plan.column, Fill(job), [&]() { DropTriggerAndFunction(job); });
    return;
  }
  // Nullable: nothing checks the partitions at the end, so one attached after the catch-up is
  // filled here first (rounds, until the tree, locked, has none left unfilled).
  constexpr int kRounds = 5;
  for (int round = 1;; round++) {
    std::vector<unsigned> todo;
    ctx.Txn("pkonline: partitions not filled", [&]() { todo = UnsweptLeaves(ctx); });
    if (!todo.empty()) SweepLeaves(ctx, Fill(job), todo);
    ctx.WaitPoint("finish");
    bool missing = false;
    ctx.Ddl("pkonline job " + IdText(job) + ": finish", [&]() {
      LockTree(job, TableSql(job), "ACCESS EXCLUSIVE");
      missing = !UnsweptLeaves(ctx).empty();
      if (!missing) DropTriggerAndFunction(job);
    });
    if (!missing) break;
    if (round >= kRounds)
      Fail(sqlstate::kObjectNotInState,
           Fmt("partitions of %1% kept appearing while job %2% finished", job.table_name, job.id), "",
           Fmt("pkonline.resume(%1%) tries again.", job.id));
  }
  CleanDepartedLeaves(ctx, {plan.column});
}

const char* kTreeBrief =
    "ACCESS EXCLUSIVE on the table and every partition, catalog only (milliseconds), under "
    "pkonline.lock_timeout with retries";

}  // namespace

std::vector<Step> PartitionedSteps(const jobs::Job& job) {
  const AddColumnPlan plan = Plan(job);
  const std::string& col = plan.column;
  if (plan.mode == FillMode::kCatalog)
    return {{"add_column",
             "on the partitioned table: ADD COLUMN " + col + " " + plan.column_type + " DEFAULT " +
                 plan.fill + (plan.not_null ? " NOT NULL" : "") +
                 (plan.set_default ? "" : ", then DROP DEFAULT") +
                 ": the value is not volatile, so every partition keeps it once in the catalog and no row is "
                 "rewritten",
             kTreeBrief, AddColumn, UndoAddColumn, true}};
  std::vector<Step> steps;
  steps.push_back({"add_column",
                   "on the partitioned table: ADD COLUMN " + col + " " + plan.column_type +
                       " (nullable; every partition gets it)" +
                       (plan.set_default ? ", DEFAULT " + plan.fill + " for new rows" : "") +
                       ", a BEFORE INSERT trigger (cloned onto every partition) filling it when NULL",
                   kTreeBrief, AddColumn, [](Context& ctx) {
                     // detached partitions keep the column: the job's check goes from them
                     CleanDepartedLeaves(ctx, {Plan(ctx.job()).column});
                     UndoAddColumn(ctx);
                   }});
  steps.push_back(
      {"backfill",
       "partition by partition: UPDATE … SET " + col + " = " + plan.fill +
           " by ranges of heap blocks, one transaction per batch; partitions created meanwhile too",
       "ROW EXCLUSIVE on one partition; row locks of one batch only (about pkonline.batch_time)",
       [](Context& ctx) { BackfillLeaves(ctx, Fill(ctx.job())); }, nullptr});
  steps.push_back(
      {"catch_up",
       "the fill trigger fills on UPDATE too; one more pass over every partition fills rows written "
       "without a value during the backfill",
       "SHARE ROW EXCLUSIVE on the table and every partition for the trigger (milliseconds, with "
       "retries); then as the backfill",
       CatchUpLeaves, nullptr});
  if (plan.not_null)
    steps.push_back(
        {"partition_checks",
         "each partition's CHECK (" + col +
             " IS NOT NULL) NOT VALID, then VALIDATE (rows still "
             "without a value are filled first)",
         "per partition: ACCESS EXCLUSIVE catalog only (milliseconds) for the check; SHARE UPDATE "
         "EXCLUSIVE for VALIDATE (reads and writes continue)",
         [](Context& ctx) { LeafNotNullChecks(ctx, Plan(ctx.job()).column, Fill(ctx.job())); }, nullptr});
  steps.push_back(
      {"finish",
       std::string(plan.not_null ? "SET NOT NULL on the partitioned table (every partition's validated "
                                   "check spares its scan), drop the checks, "
                                 : "") +
           "drop the trigger",
       kTreeBrief, Finish, nullptr, true});
  return steps;
}

}  // namespace pkonline::ops::add_col
