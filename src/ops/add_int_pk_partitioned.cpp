// add_int_pk on a partitioned table, in place, leaf by leaf.
//
// Steps: ADD COLUMN on the parent (reaches every partition, catalog only) + the sequence as its
// DEFAULT + the fill trigger on the parent (cloned onto every partition, later ones too) ->
// backfill each leaf in ctid batches -> catch up every leaf -> each leaf's own primary key
// (leaf_keys.cpp: check NOT VALID, VALIDATE, CREATE UNIQUE INDEX CONCURRENTLY, SET NOT NULL, PRIMARY
// KEY USING INDEX) -> ADD PRIMARY KEY on the parent, which attaches the leaves' keys (catalog only).
#include "pkonline/ops/add_int_pk.hpp"
#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/leaf_keys.hpp"
#include "pkonline/ops/partitions.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops::int_pk {

using pg::Exec;
using pg::Ident;

namespace {

AddIntPkPlan Plan(const jobs::Job& job) { return AddIntPkPlan::Load(job); }

// A leaf's batch: the job's column from the job's sequence (not the leaf's DEFAULT: a table
// attached during the job keeps its own).
LeafFill Fill(const jobs::Job& job) {
  return FillLeaves(job, Plan(job).column,
                    "pg_catalog.nextval(" + pg::Literal(SeqSql(job)) + "::pg_catalog.regclass)", false);
}

LeafKeySpec KeySpec(const jobs::Job& job) { return {Plan(job).KeyColumns(), Fill(job)}; }

// Before anything changes: no row has a NULL in a key column the job does not fill (the key
// makes them NOT NULL). Read through the parent, so that only the partitions that can hold a NULL
// there (default, hash, list partitions with NULL) are read.
void Preflight(Context& ctx) {
  const auto& job = ctx.job();
  const AddIntPkPlan plan = Plan(job);
  ctx.Txn("pkonline job " + IdText(job) + ": preflight", [&]() {
    for (const auto& c : plan.KeyColumns()) {
      if (c == plan.column) continue;
      const std::string col = ColumnSql(job, c);
      if (pg::AsBool(
              pg::Query("SELECT EXISTS (SELECT 1 FROM " + TableSql(job) + " WHERE " + col + " IS NULL)")
                  .scalar()))
        Fail(SqlState("23502"),
             Fmt("rows of %1% have a NULL in column \"%2%\", which is to be part of the primary key",
                 job.table_name, c),
             "The columns of a primary key are NOT NULL.",
             Fmt("UPDATE or DELETE those rows, then pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id));
    }
  });
}

void AddColumn(Context& ctx) {
  const auto& job = ctx.job();
  const std::string col = Plan(job).column;
  ctx.Ddl("pkonline job " + IdText(job) + ": add column", [&]() {
    if (ColumnExists(job, col)) return;  // done before a crash: this step is one transaction
    LockTree(job, TableSql(job), "ACCESS EXCLUSIVE");
    AddColumnWithSequence(ctx);
    CreateJobTrigger(ctx, FillTriggerSql(FillName(job), TableSql(job), Ident(col), FillCall(job), false));
  });
}

void CatchUpLeaves(Context& ctx) {
  const auto& job = ctx.job();
  const std::string col = Plan(job).column;
  ctx.Ddl("pkonline job " + IdText(job) + ": fill trigger on update", [&]() {
    LockTree(job, TableSql(job), "SHARE ROW EXCLUSIVE");
    CreateJobTrigger(ctx,
                     FillTriggerSql(FillName(job), TableSql(job), ColumnSql(job, col), FillCall(job), true));
  });
  const int64_t filled = SweepLeaves(ctx, Fill(job));
  ctx.Event("info",
            Fmt("catch-up pass filled %1% rows written without a value while the backfill ran", filled));
}

void Attach(Context& ctx) {
  const auto& job = ctx.job();
  const AddIntPkPlan plan = Plan(job);
  AttachParentKey(ctx, KeySpec(job), plan.pk_name, [&]() {
    const std::string t = TableSql(job);
    Exec("DROP TRIGGER IF EXISTS " + Ident(FillName(job)) + " ON " + t);
    // Again on the whole tree: a table attached during the job kept its own DEFAULT (or none).
    Exec("ALTER TABLE " + t + " ALTER COLUMN " + ColumnSql(job, plan.column) +
         " SET DEFAULT pg_catalog.nextval(" + pg::Literal(SeqSql(job)) + "::pg_catalog.regclass)");
    FinishSequence(job);
  });
}

}  // namespace

std::vector<Step> PartitionedSteps(const jobs::Job& job) {
  const AddIntPkPlan plan = Plan(job);
  const std::string& col = plan.column;
  const std::string key = QuotedList(plan.KeyColumns());
  return {
      {"preflight", "no row has a NULL in a key column (" + key + ")",
       "ACCESS SHARE: reads the partitions that can hold a NULL there", Preflight, nullptr},
      {"add_column",
       "on the partitioned table: ADD COLUMN " + col + " " + plan.column_type +
           " (nullable; every partition gets it), a sequence as its DEFAULT, a BEFORE INSERT trigger "
           "(cloned onto every partition) filling it when NULL",
       "ACCESS EXCLUSIVE on the table and every partition, catalog only (milliseconds), under "
       "pkonline.lock_timeout with retries",
       AddColumn, [](Context& ctx) { UndoColumnAndHelpers(ctx, {FillName(ctx.job())}); }},
      {"backfill",
       "partition by partition: UPDATE … SET " + col +
           " = nextval(…) by ranges of heap blocks, one "
           "transaction per batch; partitions created meanwhile too",
       "ROW EXCLUSIVE on one partition; row locks of one batch only (about pkonline.batch_time)",
       [](Context& ctx) { BackfillLeaves(ctx, Fill(ctx.job())); }, nullptr},
      {"catch_up",
       "the fill trigger fills on UPDATE too; one more pass over every partition fills rows written without "
       "a value during the backfill",
       "SHARE ROW EXCLUSIVE on the table and every partition for the trigger (milliseconds, under "
       "pkonline.lock_timeout with retries); then as the backfill",
       CatchUpLeaves, nullptr},
      {"partition_keys",
       "each partition's own PRIMARY KEY (" + key +
           "): CHECK (… IS NOT NULL) NOT VALID, VALIDATE, CREATE UNIQUE INDEX CONCURRENTLY, SET NOT NULL "
           "(proved by the check), ADD PRIMARY KEY USING INDEX",
       "per partition: ACCESS EXCLUSIVE catalog only (milliseconds) for the check and the key; SHARE UPDATE "
       "EXCLUSIVE for VALIDATE and the index build (reads and writes continue)",
       [](Context& ctx) { LeafKeys(ctx, KeySpec(ctx.job())); },
       [](Context& ctx) { UndoLeafKeys(ctx, Plan(ctx.job()).KeyColumns()); }},
      {"attach",
       "ADD PRIMARY KEY (" + key +
           ") on the partitioned table, which attaches every partition's key (no index built, no scan); "
           "drop the trigger",
       "ACCESS EXCLUSIVE on the table and every partition, catalog only (milliseconds)", Attach, nullptr,
       true},
  };
}

}  // namespace pkonline::ops::int_pk
