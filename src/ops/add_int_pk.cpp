// add_int_pk: give a table without a primary key an integer PK column, online.
//
// Steps: add column + sequence default + fill trigger (brief) -> backfill in ctid batches ->
// CHECK (col IS NOT NULL) NOT VALID (brief) -> VALIDATE (scan, DML continues) ->
// CREATE UNIQUE INDEX CONCURRENTLY -> attach the PK USING INDEX, drop the helpers, identity (brief).
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/add_int_pk.hpp"

#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/partitions.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops {

using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;

namespace {
std::string CheckName(const jobs::Job& job) { return HelperName(job, "not_null"); }
AddIntPkPlan Plan(const jobs::Job& job) { return AddIntPkPlan::Load(job); }
}  // namespace

namespace int_pk {

std::string FillName(const jobs::Job& job) { return HelperName(job, "fill"); }
std::string SeqSql(const jobs::Job& job) { return HelperSql(job, "seq"); }

// Is the table's primary key the one this job attaches (its name, on its columns)?
bool HasOurPk(const jobs::Job& job) {
  return !Query(
              "SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid AND c.contype = 'p' "
              "AND c.conname = $2 AND c.conkey = (SELECT pg_catalog.array_agg(a.attnum ORDER BY u.ord) "
              "FROM pg_catalog.jsonb_array_elements_text($3::pg_catalog.jsonb) WITH ORDINALITY u(name, ord) "
              "JOIN pg_catalog.pg_attribute a ON a.attrelid = $1::oid AND a.attname = u.name "
              "AND NOT a.attisdropped)",
              {V(RelidText(job)), V(Plan(job).pk_name), V(Json::Strings(Plan(job).KeyColumns()).ToText())},
              true)
              .empty();
}

// The column this job added, whatever it is called now: the one its sequence is owned by
// (falling back to the name, once the sequence is gone). Empty if there is none.
std::string OurColumn(const jobs::Job& job) {
  auto r = Query(
      "SELECT a.attname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attribute a "
      "ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
      "WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = pg_catalog.to_regclass($2) "
      "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1::oid "
      "AND d.deptype = 'a' AND NOT a.attisdropped",
      {V(RelidText(job)), V(SeqSql(job))}, true);
  if (!r.empty()) return *r.scalar();
  const std::string named = Plan(job).column;
  return ColumnExists(job, named) ? named : std::string();
}

// Whoever may write the table (or one of its partitions) may draw ids from the job's sequence: its default
// and the fill trigger call nextval() with the writer's rights (an identity column, at the end, needs no
// grant).
void GrantSequenceToWriters(const jobs::Job& job) {
  auto r = Query(
      "SELECT DISTINCT a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a "
      "WHERE (c.oid = $1::oid OR c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1::oid))) "
      "AND a.privilege_type IN ('INSERT', 'UPDATE') "
      "UNION SELECT DISTINCT a.grantee FROM pg_catalog.pg_attribute t, pg_catalog.aclexplode(t.attacl) a "
      "WHERE (t.attrelid = $1::oid OR t.attrelid IN (SELECT relid FROM "
      "pg_catalog.pg_partition_tree($1::oid))) "
      "AND a.privilege_type IN ('INSERT', 'UPDATE')",
      {V(RelidText(job))}, true);
  for (const auto& row : r.rows) {
    const std::string grantee = *row[0];
    std::string role = "PUBLIC";
    if (grantee != "0") {
      auto name = Query("SELECT rolname FROM pg_catalog.pg_roles WHERE oid = $1::oid", {V(grantee)}, true);
      if (name.empty()) continue;
      role = Ident(*name.scalar());
    }
    Exec("GRANT USAGE ON SEQUENCE " + SeqSql(job) + " TO " + role);
  }
}

void AddColumnWithSequence(Context& ctx) {
  const auto& job = ctx.job();
  const AddIntPkPlan plan = Plan(job);
  const std::string& col = plan.column;
  const std::string& type = plan.column_type;  // one of smallint, integer, bigint (checked by the API)
  const std::string t = TableSql(job);
  const std::string c = Ident(col);
  Exec("ALTER TABLE " + t + " ADD COLUMN " + c + " " + type);
  Exec("CREATE SEQUENCE " + SeqSql(job) + " AS " + type);
  Exec("ALTER SEQUENCE " + SeqSql(job) + " OWNED BY " + t + "." + c);
  GrantSequenceToWriters(job);
  // What the C fill triggers check their arguments against (src/pg/capture.cpp).
  ctx.Remember(fact::kSeqOid, Json::Number(SequenceOid(job)));
  ctx.Remember(fact::kColumnAttnum, Json::Number(ColumnAttnum(job, col)));
  Exec("ALTER TABLE " + t + " ALTER COLUMN " + c + " SET DEFAULT pg_catalog.nextval(" +
       pg::Literal(SeqSql(job)) + "::pg_catalog.regclass)");
}

// The fill trigger's function: pkonline_internal._fill_nextval (C, src/pg/capture.cpp) with the column's
// attnum and the sequence's OID.
std::string FillCall(const jobs::Job& job) {
  const std::string col = Plan(job).column;
  const int attnum = ColumnAttnum(job, col);
  if (attnum <= 0) Fail(sqlstate::kUndefinedColumn, Fmt("column \"%1%\" of job %2% not found", col, job.id));
  return pg::Internal("_fill_nextval") + "(" + pg::Literal(std::to_string(attnum)) + ", " +
         pg::Literal(std::to_string(SequenceOid(job))) + ")";
}

int64_t SequenceOid(const jobs::Job& job) {
  return pg::AsInt(
      Query("SELECT " + pg::Literal(SeqSql(job)) + "::pg_catalog.regclass::pg_catalog.oid", {}, true)
          .scalar());
}

// The sequence's last act, with the table locked: the column becomes an identity continuing
// from it, or the sequence takes a name of PostgreSQL's own pattern.
void FinishSequence(const jobs::Job& job) {
  const AddIntPkPlan plan = Plan(job);
  const std::string& col = plan.column;
  const std::string t = TableSql(job);
  const std::string c = ColumnSql(job, col);
  auto rel = pg::LookupRelation(job.relid);
  if (plan.identity) {
    // Every value handed out so far is below the next one; the table is locked, so none race.
    const std::string next =
        *Query("SELECT pg_catalog.nextval(" + pg::Literal(SeqSql(job)) + "::pg_catalog.regclass)").scalar();
    Exec("ALTER TABLE " + t + " ALTER COLUMN " + c + " DROP DEFAULT");
    Exec("DROP SEQUENCE " + SeqSql(job));
    const std::string seq = pg::ChooseName(rel->name, col, "seq", rel->nsp_oid, false);
    Exec("ALTER TABLE " + t + " ALTER COLUMN " + c + " ADD GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME " +
         pg::Qualified(rel->schema, seq) + " START WITH " + next + ")");
  } else {
    const std::string seq = pg::ChooseName(rel->name, col, "seq", rel->nsp_oid, false);
    Exec("ALTER SEQUENCE " + SeqSql(job) + " RENAME TO " + Ident(seq));
  }
}

void UndoColumnAndHelpers(Context& ctx, const std::vector<std::string>& triggers) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + IdText(job) + ": undo add column", [&]() {
    if (TableExists(job)) {
      const std::string t = TableSql(job);
      if (HasOurPk(job))
        Fail(sqlstate::kObjectNotInState,
             "the primary key of " + t + " is attached already; nothing to undo");
      LockTree(job, t, "ACCESS EXCLUSIVE");  // a partitioned table: every partition, within one lock_timeout
      for (const auto& trigger : triggers) Exec("DROP TRIGGER IF EXISTS " + Ident(trigger) + " ON " + t);
      // Tables that left a partitioned table during the job keep the column, its ids and its
      // DEFAULT, which names the sequence (dropped with the column it is owned by): the DEFAULTs
      // go first (on the owner's tables).
      auto r = Query(
          "SELECT pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', "
          "c.oid::pg_catalog.regclass, "
          "a.attname) FROM pg_catalog.pg_depend d "
          "JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass "
          " AND d.objid = ad.oid "
          "JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum "
          "JOIN pg_catalog.pg_class c ON c.oid = ad.adrelid "
          "WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
          "AND d.refobjid = pg_catalog.to_regclass($1) AND c.relowner = $2::oid AND c.oid <> $3::oid "
          "AND c.oid NOT IN (SELECT relid FROM pg_catalog.pg_partition_tree($3::oid))",
          {V(SeqSql(job)), V(static_cast<int64_t>(job.run_as)), V(static_cast<int64_t>(job.relid))}, false);
      for (const auto& row : r.rows) Exec(*row[0]);
      const std::string column = OurColumn(job);
      if (!column.empty()) Exec("ALTER TABLE " + t + " DROP COLUMN " + Ident(column));
    }
    DropSequenceIfOurs(job, "seq");
  });
}

}  // namespace int_pk

namespace {

using namespace int_pk;

void AddColumn(Context& ctx) {
  const auto& job = ctx.job();
  const std::string col = Plan(job).column;
  ctx.Ddl("pkonline job " + IdText(job) + ": add column", [&]() {
    const std::string t = TableSql(job);
    if (ColumnExists(job, col)) return;  // done before a crash: this step is one transaction
    const std::string c = Ident(col);
    AddColumnWithSequence(ctx);
    CreateJobTrigger(ctx, FillTriggerSql(FillName(job), t, c, FillCall(job), false));
  });
}

void UndoAddColumn(Context& ctx) { UndoColumnAndHelpers(ctx, {FillName(ctx.job())}); }

std::vector<std::string> PkColumns(const jobs::Job& job) { return {Plan(job).column}; }
std::function<bool()> Attached(const jobs::Job& job) {
  return [&job]() { return HasOurPk(job); };
}

void Validate(Context& ctx) {
  ValidateCheck(ctx, CheckName(ctx.job()), [&ctx]() {
    ctx.Event("info", "rows without a value found by VALIDATE; sweeping the table again");
    const int64_t filled = Sweep(ctx, Plan(ctx.job()).column, "DEFAULT");
    ctx.Event("info", "sweep filled " + std::to_string(filled) + " rows");
    return true;
  });
}

void Attach(Context& ctx) {
  const auto& job = ctx.job();
  const AddIntPkPlan plan = Plan(job);
  const std::string& col = plan.column;
  ctx.WaitPoint("attach");
  ctx.Ddl("pkonline job " + IdText(job) + ": attach primary key", [&]() {
    const std::string t = TableSql(job);
    if (HasOurPk(job)) return;  // committed before a crash: this step is one transaction
    RequireNoOtherPk(job);
    const std::string c = ColumnSql(job, col);
    const std::string pk = Ident(plan.pk_name);
    Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + pk + " PRIMARY KEY USING INDEX " + pk);
    Exec("ALTER TABLE " + t + " DROP CONSTRAINT IF EXISTS " + Ident(CheckName(job)));
    Exec("DROP TRIGGER IF EXISTS " + Ident(FillName(job)) + " ON " + t);
    FinishSequence(job);
  });
  ctx.WaitPoint("attach_committed");
}

class AddIntPk final : public Operation {
 public:
  std::vector<Step> Steps(const jobs::Job& job) const override {
    const AddIntPkPlan plan = Plan(job);
    if (plan.method == IntPkMethod::kCopy) return CopySteps(job);
    if (plan.partitioned) return PartitionedSteps(job);
    const std::string& col = plan.column;
    return {
        {"add_column",
         "ADD COLUMN " + col + " " + plan.column_type +
             " (nullable), a sequence as its DEFAULT, "
             "a BEFORE INSERT trigger filling it when NULL",
         "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries", AddColumn,
         UndoAddColumn},
        {"backfill", "UPDATE … SET " + col + " = DEFAULT by ranges of heap blocks, one transaction per batch",
         "ROW EXCLUSIVE; row locks of one batch only (about pkonline.batch_time)",
         [col](Context& ctx) { Backfill(ctx, col, "DEFAULT"); }, nullptr},
        {"catch_up",
         "the fill trigger fills on UPDATE too; one more pass fills rows written without a value during the "
         "backfill",
         "SHARE ROW EXCLUSIVE for the trigger (milliseconds, under pkonline.lock_timeout with retries); then "
         "as "
         "the backfill, writing only the rows still without a value",
         [col](Context& ctx) {
           CatchUp(
               ctx, FillName(ctx.job()), [&ctx]() { return FillCall(ctx.job()); }, col, "DEFAULT", false);
         },
         nullptr},
        {"add_check", "ADD CONSTRAINT … CHECK (" + col + " IS NOT NULL) NOT VALID",
         "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries",
         [col](Context& ctx) { AddNotNullCheck(ctx, CheckName(ctx.job()), col); },
         [](Context& ctx) { DropCheck(ctx, CheckName(ctx.job())); }},
        {"validate", "VALIDATE CONSTRAINT (sweeps again if it still finds a NULL)",
         "SHARE UPDATE EXCLUSIVE for one scan: reads and writes continue", Validate, nullptr},
        {"create_index", "CREATE UNIQUE INDEX CONCURRENTLY " + plan.pk_name + " (" + col + ")",
         "SHARE UPDATE EXCLUSIVE: reads and writes continue; waits for older transactions",
         [](Context& ctx) {
           BuildUniqueIndex(ctx, Plan(ctx.job()).pk_name, PkColumns(ctx.job()), Attached(ctx.job()));
         },
         [](Context& ctx) {
           DropUniqueIndex(ctx, Plan(ctx.job()).pk_name, PkColumns(ctx.job()), Attached(ctx.job()));
         }},
        {"attach",
         "ADD PRIMARY KEY USING INDEX, drop the check and trigger" +
             std::string(plan.identity ? ", make the column GENERATED BY DEFAULT AS IDENTITY" : ""),
         "ACCESS EXCLUSIVE, catalog only: the validated check spares the NOT NULL scan", Attach, nullptr,
         true},
    };
  }
  jobs::BatchCode Batches(const jobs::Job& job) const override {
    // In place, the batches set the column to its DEFAULT, nextval() of the job's own sequence.
    return Plan(job).method == IntPkMethod::kCopy ? jobs::BatchCode::kOwnCopyOnly
                                                  : jobs::BatchCode::kBuiltinsOnly;
  }
};

}  // namespace

std::unique_ptr<Operation> MakeAddIntPk() { return std::make_unique<AddIntPk>(); }

}  // namespace pkonline::ops
