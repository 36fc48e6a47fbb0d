// add_column: a new column filled with an expression per row, online.
//
// When the fill can be a DEFAULT and is not volatile, PostgreSQL adds the column without touching
// a row (the value is stored once in the catalog): one brief step does it all. Otherwise:
// add the nullable column (+ DEFAULT for new rows) and a fill trigger (brief) -> backfill in ctid
// batches -> CHECK (col IS NOT NULL) NOT VALID (brief) -> VALIDATE (scan, DML continues) ->
// unique index built concurrently -> finish: SET NOT NULL (the validated check spares the scan),
// UNIQUE USING INDEX, drop the helpers (brief).
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/add_column.hpp"

#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/partitions.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops {

using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;

namespace {

AddColumnPlan Plan(const jobs::Job& job) { return AddColumnPlan::Load(job); }
std::string Col(const jobs::Job& job) { return Plan(job).column; }

std::string CheckName(const jobs::Job& job) { return HelperName(job, "not_null"); }

// The column this job added, whatever it is called now (found by the attnum the add_column step
// recorded in its own transaction); empty if the job has not added it or it was dropped.
std::string OurColumn(Context& ctx) {
  const auto& job = ctx.job();
  const Json attnum = ctx.Recall(fact::kAttnum);
  if (attnum.is_null()) return "";
  auto r = Query(
      "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attnum = $2::int2 "
      "AND NOT attisdropped",
      {V(static_cast<int64_t>(job.relid)), V(attnum.AsInt())}, true);
  return r.empty() ? "" : *r.scalar();
}

// Is the unique constraint the job attaches in place (on its column)?
bool UniqueAttached(const jobs::Job& job) {
  return !Query(
              "SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid AND c.contype = 'u' "
              "AND c.conname = $2 AND c.conkey = ARRAY[(SELECT attnum FROM pg_catalog.pg_attribute "
              "WHERE attrelid = $1::oid AND attname = $3 AND NOT attisdropped)]",
              {V(static_cast<int64_t>(job.relid)), V(Plan(job).unique_name), V(Col(job))}, true)
              .empty();
}

}  // namespace

std::string add_col::FillName(const jobs::Job& job) { return HelperName(job, "fill"); }

void add_col::AddColumn(Context& ctx) {
  const auto& job = ctx.job();
  const AddColumnPlan plan = Plan(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": add column", [&]() {
    const std::string t = TableSql(job);
    if (!OurColumn(ctx).empty()) return;  // committed before a crash: this step is one transaction
    if (ColumnExists(job, plan.column))
      Fail(sqlstate::kDuplicateColumn,
           Fmt("column \"%1%\" of %2% was created by someone else before job %3% could add it", plan.column,
               t, job.id),
           "", Fmt("Drop or rename that column and pkonline.resume(%1%), or pkonline.cancel(%1%).", job.id));
    const std::string c = Ident(plan.column);
    const std::string fill = "(" + plan.fill_sql + ")";
    if (plan.partitioned) LockTree(job, t, "ACCESS EXCLUSIVE");  // it reaches every partition
    if (plan.mode == FillMode::kCatalog) {
      // A non-volatile value is computed once and kept in the catalog: no row is written.
      Exec("ALTER TABLE " + t + " ADD COLUMN " + c + " " + plan.column_type + " DEFAULT " + fill +
           (plan.not_null ? " NOT NULL" : ""));
      if (!plan.set_default) Exec("ALTER TABLE " + t + " ALTER COLUMN " + c + " DROP DEFAULT");
    } else {
      Exec("ALTER TABLE " + t + " ADD COLUMN " + c + " " + plan.column_type);
      if (plan.set_default) Exec("ALTER TABLE " + t + " ALTER COLUMN " + c + " SET DEFAULT " + fill);
    }
    if (plan.mode != FillMode::kCatalog && !plan.copy) {  // the copy method fills in its copy
      // Rows written while the job runs get their value from this trigger (it runs with the
      // writer's rights, like any default).
      const std::string body = "#variable_conflict use_column\nBEGIN NEW." + c + " := (" + plan.fill_row_sql +
                               "); RETURN NEW; END";
      // search_path pinned: the body's names outside pg_catalog are qualified already, and
      // nothing in it may resolve through the path of whoever writes the table later.
      Exec("CREATE FUNCTION " + HelperSql(job, "fill") +
           "() RETURNS trigger LANGUAGE plpgsql "
           "SET search_path = pg_catalog, pg_temp AS " +
           pg::Literal(body));
      Exec(FillTriggerSql(FillName(job), t, c, HelperSql(job, "fill") + "()", false));
    }
    // Not read-only: the query must see the column this transaction just added.
    const auto attnum =
        Query("SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2",
              {V(static_cast<int64_t>(job.relid)), V(plan.column)})
            .scalar();
    if (!attnum)
      Fail(sqlstate::kInternal, "column \"" + plan.column + "\" not found right after it was added");
    ctx.Remember(fact::kAttnum, Json::Number(pg::AsInt(attnum)));
  });
}

void add_col::UndoAddColumn(Context& ctx) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + IdText(job) + ": undo add column", [&]() {
    if (TableExists(job)) {
      const std::string t = TableSql(job);
      if (Plan(job).unique && UniqueAttached(job))
        Fail(sqlstate::kObjectNotInState,
             "the unique constraint of " + t + " is attached already; nothing to undo");
      LockTree(job, t, "ACCESS EXCLUSIVE");  // a partitioned table: every partition, within one lock_timeout
      Exec("DROP TRIGGER IF EXISTS " + Ident(FillName(job)) + " ON " + t);
      const std::string column = OurColumn(ctx);
      if (!column.empty()) Exec("ALTER TABLE " + t + " DROP COLUMN " + Ident(column));
    }
    DropFunctionIfOurs(job, "fill");
  });
}

namespace {

using add_col::AddColumn;
using add_col::FillName;
using add_col::UndoAddColumn;

void Validate(Context& ctx) {
  const auto& job = ctx.job();
  const AddColumnPlan plan = Plan(job);
  ValidateCheck(ctx, CheckName(job), [&]() {
    ctx.Event("info", "rows without a value found by VALIDATE; filling them");
    int64_t filled = 0;
    try {
      filled = Sweep(ctx, plan.column, "(" + plan.fill_sql + ")", true);
    } catch (const PgError& e) {
      if (e.sqlstate() != sqlstate::kCheckViolation) throw;
      // The check refuses the NULL the fill gave for a row written while the job ran.
      Fail(SqlState("23502"),
           Fmt("the value for column \"%1%\" is NULL in rows of %2% written while job %3% ran, but the "
               "column is "
               "to be NOT NULL",
               plan.column, job.table_name, job.id),
           "fill: " + plan.fill,
           Fmt("pkonline.cancel(%1%) removes the column; then use a fill that is never NULL (COALESCE) or "
               "not_null => false.",
               job.id));
    }
    ctx.Event("info", "sweep filled " + std::to_string(filled) + " rows");
    return filled > 0;
  });
}

void Finish(Context& ctx) {
  const auto& job = ctx.job();
  const AddColumnPlan plan = Plan(job);
  ctx.WaitPoint("finish");
  ctx.Ddl("pkonline job " + IdText(job) + ": finish", [&]() {
    const std::string t = TableSql(job);
    const std::string c = ColumnSql(job, plan.column);
    if (plan.mode == FillMode::kBackfill && plan.not_null) {
      // Proven by the validated check: no scan under the lock.
      Exec("ALTER TABLE " + t + " ALTER COLUMN " + c + " SET NOT NULL");
      Exec("ALTER TABLE " + t + " DROP CONSTRAINT IF EXISTS " + Ident(CheckName(job)));
    }
    if (plan.unique && !UniqueAttached(job)) {
      const std::string uq = Ident(plan.unique_name);
      Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + uq + " UNIQUE USING INDEX " + uq);
    }
    Exec("DROP TRIGGER IF EXISTS " + Ident(FillName(job)) + " ON " + t);
    DropFunctionIfOurs(job, "fill");
  });
}

const char* kBrief =
    "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries";

class AddColumnOp final : public Operation {
 public:
  std::vector<Step> Steps(const jobs::Job& job) const override {
    const AddColumnPlan plan = Plan(job);
    if (plan.partitioned) return add_col::PartitionedSteps(job);
    if (plan.copy) return add_col::CopySteps(job);
    const std::string& col = plan.column;
    const bool catalog = plan.mode == FillMode::kCatalog;
    std::vector<Step> steps;
    if (catalog) {
      steps.push_back(
          {"add_column",
           "ADD COLUMN " + col + " " + plan.column_type + " DEFAULT " + plan.fill +
               (plan.not_null ? " NOT NULL" : "") + (plan.set_default ? "" : ", then DROP DEFAULT") +
               ": the value is not volatile, so it is stored once in the catalog and no row is rewritten",
           kBrief, AddColumn, UndoAddColumn});
    } else {
      steps.push_back({"add_column",
                       "ADD COLUMN " + col + " " + plan.column_type + " (nullable)" +
                           (plan.set_default ? ", DEFAULT " + plan.fill + " for new rows" : "") +
                           ", a BEFORE INSERT trigger filling it when NULL",
                       kBrief, AddColumn, UndoAddColumn});
      const std::string value = "(" + plan.fill_sql + ")";
      const bool not_null = plan.not_null;
      steps.push_back(
          {"backfill",
           "UPDATE … SET " + col + " = " + plan.fill + " by ranges of heap blocks, one transaction per batch",
           "ROW EXCLUSIVE; row locks of one batch only (about pkonline.batch_time)",
           [col, value, not_null](Context& ctx) { Backfill(ctx, col, value, not_null); }, nullptr});
      steps.push_back(
          {"catch_up",
           "the fill trigger fills on UPDATE too; one more pass fills rows written without a value "
           "during the backfill",
           "SHARE ROW EXCLUSIVE for the trigger (milliseconds, under pkonline.lock_timeout with retries); "
           "then as the backfill, writing only the rows still without a value",
           [col, value, not_null](Context& ctx) {
             const auto& j = ctx.job();
             CatchUp(
                 ctx, FillName(j), [&j]() { return HelperSql(j, "fill") + "()"; }, col, value, not_null);
           },
           nullptr});
      if (not_null) {
        steps.push_back({"add_check", "ADD CONSTRAINT … CHECK (" + col + " IS NOT NULL) NOT VALID", kBrief,
                         [col](Context& ctx) { AddNotNullCheck(ctx, CheckName(ctx.job()), col); },
                         [](Context& ctx) { DropCheck(ctx, CheckName(ctx.job())); }});
        steps.push_back({"validate", "VALIDATE CONSTRAINT (fills rows still NULL, if any are found)",
                         "SHARE UPDATE EXCLUSIVE for one scan: reads and writes continue", Validate,
                         nullptr});
      }
    }
    if (plan.unique) {
      const std::string name = plan.unique_name;
      const std::vector<std::string> columns{col};
      steps.push_back({"create_index", "CREATE UNIQUE INDEX CONCURRENTLY " + name + " (" + col + ")",
                       "SHARE UPDATE EXCLUSIVE: reads and writes continue; waits for older transactions",
                       [name, columns](Context& ctx) {
                         const auto& j = ctx.job();
                         BuildUniqueIndex(ctx, name, columns, [&j]() { return UniqueAttached(j); });
                       },
                       [name, columns](Context& ctx) {
                         const auto& j = ctx.job();
                         DropUniqueIndex(ctx, name, columns, [&j]() { return UniqueAttached(j); });
                       }});
    }
    if (!catalog || plan.unique) {
      std::string what;
      if (!catalog && plan.not_null)
        what += "SET NOT NULL (the validated check spares the scan), drop the check, ";
      if (plan.unique) what += "ADD CONSTRAINT " + plan.unique_name + " UNIQUE USING INDEX, ";
      what += catalog ? "done" : "drop the trigger";
      steps.push_back({"finish", what,
                       "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout", Finish,
                       nullptr});
    }
    steps.back().final = true;  // the last step makes the change final
    return steps;
  }
  jobs::BatchCode Batches(const jobs::Job& job) const override {
    return Plan(job).fill_runs_user_code ? jobs::BatchCode::kUserCode : jobs::BatchCode::kBuiltinsOnly;
  }
};

}  // namespace

std::unique_ptr<Operation> MakeAddColumn() { return std::make_unique<AddColumnOp>(); }

}  // namespace pkonline::ops
