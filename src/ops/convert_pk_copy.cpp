// convert_pk_to_bigint, copy method: the key's table and every table whose foreign key column it
// converts written once more, each into a twin whose bigint column holds the converted one,
// instead of every row written again in place (see add_int_pk_copy.cpp for the method; the copy,
// its indexes, the catch-up and the cleanup are the shared steps, copy_steps.cpp).
//
// The shape keeps the swap catalog-only: the bigint column is added to the table empty (catalog
// only), filled in the twin, the storages swapped, and then the in-place method's swap runs as it
// does there: the old column dropped (catalog only), the bigint one renamed to its name, with the
// key, identity or DEFAULT and its sequence, comment, grants and statistics target carried over.
// Each table has its own change log, keyed by its row identity: the key itself for the key's
// table, its own one-column integer primary key for a referencing table.
//  1. add_columns (brief, every table at once): ADD COLUMN <bigint> beside each converted column
//     (nullable, catalog only), each table's change log and its row trigger (ENABLE ALWAYS).
//  2-4. copy (table by table under one cursor; the bigint column = the converted one),
//     build_indexes (each index containing a converted column built again on the bigint one),
//     catch_up (rounds over every table's log).
//  5. swap (brief, every table ACCESS EXCLUSIVE in OID order): the last rounds, the storages of
//     each table and its indexes swapped with its copy's; NOT NULL from the catalog; the bigint
//     indexes attached to the tables; then the in-place method's swap of the columns (the foreign
//     keys dropped and re-added NOT VALID).
//  6. validate_fks, 7. cleanup: the old storages and the logs dropped, ANALYZE.
// For now each table has one column to convert (no self-reference, no two foreign keys from one
// table), and an index containing one no expression or predicate (the API refuses them).
#include "pkonline/ops/convert_pk_parts.hpp"

#include "pkonline/ops/copy_method.hpp"
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops::convert {

using copy::Of;
using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;

namespace {

// The tables copied: the key's (the job's own), then each other table with a column to convert.
std::vector<Of> Copies(const ConvertPkPlan& plan) {
  std::vector<Of> out{Of{}};
  for (unsigned relid : TargetTables(plan))
    if (relid != plan.targets[0].relid) out.push_back(Of{relid});
  return out;
}

Of CopyOf(const ConvertPkPlan& plan, unsigned relid) {
  return relid == plan.targets[0].relid ? Of{} : Of{relid};
}

// The row identity of table t's change log, and the target (its converted column) of the table.
std::string CopyKey(const jobs::Job& job, const ConvertPkPlan& plan, const Of& t) {
  const unsigned relid = copy::RelidOf(job, t);
  for (size_t n = 0; n < plan.tables.size() && n < plan.copy_keys.size(); n++)
    if (plan.tables[n] == relid) return plan.copy_keys[n];
  return "";
}
size_t TargetOf(const ConvertPkPlan& plan, unsigned relid) {
  for (size_t i = 0; i < plan.targets.size(); i++)
    if (plan.targets[i].relid == relid) return i;
  Fail(sqlstate::kInternal, Fmt("pkonline: table %1% has no column to convert", relid));
}

// One brief transaction per table (its writers wait for one table's catalog changes only): the
// bigint column beside its converted one, its change log and trigger. Nothing joins the tables
// before the swap: each copy follows its own table.
void AddColumnsStep(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  for (const Of& t : Copies(plan)) {
    ctx.Ddl("pkonline job " + IdText(job) + ": add a bigint column and its table's change log", [&]() {
      const unsigned relid = copy::RelidOf(job, t);
      const std::string table = copy::TableOf(job, t);
      Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
      if (!ctx.Recall(copy::FactOf(t, fact::kLogOid)).is_null()) return;  // done: one transaction each
      const size_t i = TargetOf(plan, relid);
      const Target& target = plan.targets[i];
      if (Attnum(relid, target.column) == 0)
        Fail(sqlstate::kUndefinedColumn, Fmt("column \"%1%\" of %2% no longer exists", target.column, table),
             "", Fmt("pkonline.cancel(%1%).", job.id));
      Exec("ALTER TABLE " + table + " ADD COLUMN " + Ident(Shadow(job, i)) + " bigint");
      ctx.Remember(std::string(fact::kShadowAttnumPrefix) + std::to_string(i),
                   Json::Number(Attnum(relid, Shadow(job, i))));
      const std::string key = CopyKey(job, plan, t);
      const auto [index, attnum] = copy::PrimaryKeyOn(job, key, t);
      if (index == 0)
        Fail(sqlstate::kObjectNotInState,
             Fmt("the primary key of %1% is no longer one integer column %2%", table, Ident(key)),
             "The copy method finds each written row by it.", Fmt("pkonline.cancel(%1%).", job.id));
      ctx.Remember(copy::FactOf(t, fact::kKeyIndex), Json::Number(index));
      ctx.Remember(copy::FactOf(t, fact::kKeyAttnum), Json::Number(attnum));
      copy::CreateChangeLog(ctx, attnum, t);
    });
  }
}

void UndoAddColumnsStep(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": drop the bigint columns and the change logs", [&]() {
    RequireNotSwapped(ctx, plan);
    for (const Of& t : Copies(plan)) copy::DropChangeLog(ctx, t);
    for (size_t i = 0; i < plan.targets.size(); i++) {
      const Target& t = plan.targets[i];
      if (!pg::LookupRelation(t.relid)) continue;
      const std::string shadow = ShadowColumn(ctx, t, i);
      if (!shadow.empty()) Exec("ALTER TABLE " + TableOf(job, t.relid) + " DROP COLUMN " + Ident(shadow));
    }
  });
}

bool Swapped(Context& ctx, const ConvertPkPlan& plan) {
  return ShadowColumn(ctx, plan.targets[0], 0) == plan.targets[0].column;
}

// Each index that contains a converted column, built on its table's copy with that column
// replaced by the bigint one, unless it has been: same kind, column order and direction,
// INCLUDE, options and tablespace. The old index gets no twin (it goes with its column at the
// swap), but for the key of a table's change log, whose twin finds the copy's rows.
void BuildBigTwins(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  std::vector<OldIndex> olds;
  ctx.Txn("pkonline job " + IdText(job) + ": indexes to build again",
          [&]() { olds = IndexesToRebuild(plan); });
  for (const auto& old : olds) {
    ctx.CheckControl();
    const Of t = CopyOf(plan, old.relid);
    const size_t i = TargetOf(plan, old.relid);
    ctx.Txn("pkonline job " + IdText(job) + ": build an index again on the copy", [&]() {
      const std::string key = fact::kBigTwinPrefix + old.oid;
      if (!copy::Helper(ctx, key, true, t).empty()) return;
      auto r = Query(
          "SELECT indexrelid::pg_catalog.regclass::pg_catalog.text, indexprs IS NOT NULL OR indpred IS NOT "
          "NULL "
          "FROM pg_catalog.pg_index WHERE indexrelid = $1::oid",
          {V(old.oid)}, false);
      if (r.empty()) return;  // dropped meanwhile
      // (created while the job ran: the API refuses them at the start)
      if (pg::AsBool(r.rows[0][1]))
        Fail(sqlstate::kFeatureNotSupported,
             Fmt("index %1% on %2% contains %3% and has an expression or a predicate; it was created while "
                 "job "
                 "%4% ran",
                 *r.rows[0][0], TableOf(job, old.relid), Ident(plan.targets[i].column), job.id),
             "The copy method builds again on the bigint column indexes of plain columns only.",
             Fmt("Drop that index, pkonline.resume(%1%), and create it again afterwards; or "
                 "pkonline.cancel(%1%).",
                 job.id));
      copy::CopySql(ctx, t);  // the copy is still the job's own
      const std::string name = HelperName(job, "bx" + old.oid);
      pg::CreateIndexLike(copy::CopyOid(ctx, t), static_cast<unsigned>(std::stoul(old.oid)), name, true,
                          plan.targets[i].column, Shadow(job, i));
      copy::Record(ctx, key, HelperSql(job, "bx" + old.oid));
    });
  }
}

void CopyStep(Context& ctx) { copy::CopyTablesStep(ctx, Copies(Plan(ctx.job()))); }
void UndoCopyStep(Context& ctx) { copy::UndoCopies(ctx, Copies(Plan(ctx.job()))); }

void BuildIndexesStep(Context& ctx) {
  const std::vector<Of> copies = Copies(Plan(ctx.job()));
  int64_t applied = 0;
  for (const Of& t : copies) applied += copy::ReplayRound(ctx, t);
  ctx.Event("info", Fmt("%1% logged changes applied to the copies", applied));
  BuildBigTwins(ctx);
  for (const Of& t : copies) copy::EnsureTwins(ctx, t);
}

void CatchUpStep(Context& ctx) { copy::CatchUpStep(ctx, Copies(Plan(ctx.job()))); }

// Under the swap's lock: each index containing a converted column and its bigint version on the
// copy (one created since BuildBigTwins ran has none: the job fails, and resume builds it).
struct BigTwin {
  std::string oid;
  unsigned relid, twin;
};
std::vector<BigTwin> BigTwins(Context& ctx, const ConvertPkPlan& plan, const std::vector<OldIndex>& olds) {
  const auto& job = ctx.job();
  std::vector<BigTwin> out;
  for (const auto& old : olds) {
    const std::string key = fact::kBigTwinPrefix + old.oid;
    const unsigned twin =
        copy::Helper(ctx, key, true, CopyOf(plan, old.relid)).empty() ? 0 : copy::RecordedOid(ctx, key);
    if (twin == 0)
      Fail(SqlState("55000"),
           Fmt("index %1% on %2% has no bigint version on the copy of job %3%",
               *Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text", {V(old.oid)}, true).scalar(),
               TableOf(job, old.relid), job.id),
           "It was created while the job was about to swap.",
           Fmt("pkonline.resume(%1%) builds it on the copy, then swaps.", job.id));
    out.push_back({old.oid, old.relid, twin});
  }
  return out;
}

// In the swap's transaction, every table locked: the last rounds, and each table's storage and
// its indexes' swapped with its copy's; the converted columns' NOT NULL set from the catalog
// (every row came through the copy's NOT NULL column); each bigint index made on its table with
// the copy's storage (the in-place swap finds it under the old index's OID, and gives it the old
// one's name and constraint); the change logs' triggers dropped. Returns the changes applied.
int64_t SwapStorages(Context& ctx, const ConvertPkPlan& plan) {
  const auto& job = ctx.job();
  const std::vector<OldIndex> olds = IndexesToRebuild(plan);
  std::vector<unsigned> copies;
  for (const Of& t : Copies(plan)) copies.push_back(copy::LockForSwap(ctx, t));
  const std::vector<BigTwin> twins = BigTwins(ctx, plan, olds);
  int64_t last = 0;
  size_t k = 0;
  for (const Of& t : Copies(plan)) {
    last += copy::SwapWithCopy(ctx, copies[k], t);
    pg::SwapStatistics(copy::RelidOf(job, t), copies[k++]);
  }
  for (size_t i = 0; i < plan.targets.size(); i++) {
    const Target& t = plan.targets[i];
    if (t.not_null) pg::SetNotNullTrusted(t.relid, Attnum(t.relid, ShadowColumn(ctx, t, i)));
  }
  for (const auto& b : twins) {
    const unsigned made = pg::CreateIndexLike(b.relid, b.twin, HelperName(job, "big" + b.oid), false);
    pg::SwapStorage(made, b.twin);
    ctx.Remember(fact::kTwinIndexPrefix + b.oid, Json::Number(made));
  }
  // (each checked by its table's last round)
  for (const Of& t : Copies(plan))
    Exec("DROP TRIGGER " + Ident(copy::LogTrigger(job)) + " ON " + copy::TableOf(job, t));
  return last;
}

void SwapStep(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  bool done = false;
  ctx.Txn("pkonline job " + IdText(job) + ": check", [&]() { done = Swapped(ctx, plan); });
  if (done) return;  // committed before a crash: this step is one transaction
  const std::string activity = "pkonline job " + IdText(job) + ": swap storage, convert to bigint";
  BuildBigTwins(ctx);  // an index created meanwhile
  copy::BeforeSwap(ctx, activity, Copies(plan));
  // The planner's statistics, gathered on the copies and swapped with the storages: no plan goes
  // wrong for want of them once the key is bigint (without them a query on the key may read the
  // whole table; the clients of the bench waited seconds until the ANALYZE after the swap).
  for (const Of& t : Copies(plan))
    if (!copy::AnalyzeCopy(ctx, t))
      ctx.Txn("pkonline job " + IdText(job) + ": record",
              [&]() { ctx.Remember(copy::FactOf(t, fact::kAnalyzeAfter), Json::Bool(true)); });
  ctx.Ddl(activity, [&]() {
    if (Swapped(ctx, plan)) return;
    const std::vector<unsigned> tables = AllTables(plan);
    LockAll(job, tables);
    const int64_t last = SwapStorages(ctx, plan);
    SwapColumns(ctx, plan, tables);
    ctx.EventHere("info", Fmt("storages swapped; %1% last changes applied under the lock", last));
    ctx.WaitPointHere("swap_locked");  // every change made, none committed (tests crash here)
  });
  ctx.WaitPoint("swap_committed");
}

void CleanupStep(Context& ctx) {
  const std::vector<Of> copies = Copies(Plan(ctx.job()));
  ctx.Ddl("pkonline job " + IdText(ctx.job()) + ": drop the old storages", [&]() {
    for (const Of& t : copies) copy::DropHelpers(ctx, t);
  });
  for (const Of& t : copies) {
    bool after = false;
    ctx.Txn("pkonline: check",
            [&]() { after = !ctx.Recall(copy::FactOf(t, fact::kAnalyzeAfter)).is_null(); });
    if (after) copy::AnalyzeTable(ctx, t);
  }
}

}  // namespace

std::vector<Step> CopySteps(const jobs::Job& job) {
  const ConvertPkPlan plan = Plan(job);
  std::string columns;
  for (const auto& t : plan.targets)
    columns += (columns.empty() ? "" : ", ") + t.table + "." + Ident(t.column);
  const char* brief =
      "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries";
  return {
      {"add_columns",
       "ADD COLUMN … bigint beside " + columns +
           " (nullable, left empty); for each table a change log and a row trigger logging the key of every "
           "row written (ENABLE ALWAYS)",
       brief + std::string(" (each table in its own transaction)"), AddColumnsStep, UndoAddColumnsStep},
      {"copy",
       "for each table, CREATE TABLE " + HelperName(job, "copy") +
           "… with the same columns; INSERT … SELECT by ranges of heap blocks, the bigint column = the "
           "converted one, one transaction per batch",
       "ACCESS SHARE: reads and writes continue", CopyStep, UndoCopyStep},
      {"build_indexes",
       "apply the change logs; CREATE INDEX on the copies for each index of the tables, those containing " +
           columns + " (" + plan.pk_name + " too) on the bigint columns",
       "none on the tables (the copies are the job's own)", BuildIndexesStep, nullptr},
      {"catch_up", "apply the change logs to the copies in rounds until little is left", "none on the tables",
       CatchUpStep, nullptr},
      {"swap",
       "apply the last changes, swap the storage of each table and of its indexes with its copy's, SET NOT "
       "NULL (every row came through the copy's NOT NULL column); drop the foreign keys referencing the key, "
       "drop each old column and give its name to the bigint one, move DEFAULT / identity / sequence (AS "
       "bigint), comment, grants, statistics target, ADD PRIMARY KEY " +
           plan.pk_name + " USING INDEX, re-add the foreign keys NOT VALID",
       "ACCESS EXCLUSIVE on every table, in OID order, catalog only plus the last changes (milliseconds), "
       "under pkonline.lock_timeout with retries",
       SwapStep, nullptr, true},
      {"validate_fks", "VALIDATE the foreign keys re-added (none if there are none)",
       "SHARE UPDATE EXCLUSIVE on each referencing table: reads and writes continue", ValidateForeignKeys,
       nullptr},
      {"cleanup", "DROP the copies (now holding the old storages) and the change logs; ANALYZE the tables",
       "SHARE UPDATE EXCLUSIVE for ANALYZE's sample (skipped if it cannot have it within "
       "pkonline.lock_timeout)",
       CleanupStep, nullptr},
  };
}

}  // namespace pkonline::ops::convert
