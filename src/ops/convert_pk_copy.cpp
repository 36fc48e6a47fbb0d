// convert_pk_to_bigint, copy method: the table written once more, into a twin whose bigint column
// holds the key, instead of every row written again in place (see add_int_pk_copy.cpp for the
// method; the copy, its indexes, the catch-up and the cleanup are the shared steps, copy_steps.cpp).
//
// The shape keeps the swap catalog-only: the bigint column is added to the table empty (catalog
// only), filled in the twin, the storages swapped, and then the in-place method's swap runs as it
// does there: the old column dropped (catalog only), the bigint one renamed to its name, with the
// key, identity or DEFAULT and its sequence, comment, grants and statistics target carried over.
// The row identity of the change log is the key itself (its old integer column).
//  1. add_columns (brief): ADD COLUMN <bigint> (nullable, catalog only), the change log and its
//     row trigger (ENABLE ALWAYS).
//  2-4. copy (the bigint column = the key), build_indexes (and the key's index built again on the
//     bigint column), catch_up.
//  5. swap (brief): the last round, the storages of the table and each index swapped with the
//     copy's; NOT NULL from the catalog; the key's bigint index attached to the table; then the
//     in-place method's swap of the columns.
//  6. cleanup: the old storage and the log dropped, ANALYZE.
// For now the key may have no foreign key referencing it, nor other indexes than its own (the API
// refuses them; the swap checks again under its lock).
#include "pkonline/ops/convert_pk_parts.hpp"

#include "pkonline/ops/copy_method.hpp"
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops::convert {

using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;

namespace {

const std::string kShadow0 = std::string(fact::kShadowAttnumPrefix) + "0";

void AddColumnsStep(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  const Target& key = plan.targets[0];
  ctx.Ddl("pkonline job " + IdText(job) + ": add the bigint column and the change log", [&]() {
    LockAll(job, plan.tables);
    if (!ctx.Recall(kShadow0).is_null()) return;  // done: this step is one transaction
    const auto [index, attnum] = copy::PrimaryKeyOn(job, key.column);
    if (index == 0)
      Fail(
          sqlstate::kObjectNotInState,
          Fmt("the primary key of %1% is no longer one integer column %2%", TableSql(job), Ident(key.column)),
          "", Fmt("pkonline.cancel(%1%).", job.id));
    ctx.Remember(fact::kKeyIndex, Json::Number(index));
    ctx.Remember(fact::kKeyAttnum, Json::Number(attnum));
    Exec("ALTER TABLE " + TableSql(job) + " ADD COLUMN " + Ident(Shadow(job, 0)) + " bigint");
    ctx.Remember(kShadow0, Json::Number(Attnum(job.relid, Shadow(job, 0))));
    copy::CreateChangeLog(ctx, attnum);
  });
}

void UndoAddColumnsStep(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": drop the bigint column and the change log", [&]() {
    RequireNotSwapped(ctx, plan);
    copy::DropChangeLog(ctx);
    if (!TableExists(job)) return;
    const std::string shadow = ShadowColumn(ctx, plan.targets[0], 0);
    if (!shadow.empty()) Exec("ALTER TABLE " + TableSql(job) + " DROP COLUMN " + Ident(shadow));
  });
}

bool Swapped(Context& ctx, const ConvertPkPlan& plan) {
  return ShadowColumn(ctx, plan.targets[0], 0) == plan.targets[0].column;
}

// Under the swap's lock: what the copy method does not carry over yet, if it appeared while the
// job ran (the API refused it at the start).
void RequireOnlyTheKey(Context& ctx, const ConvertPkPlan& plan, const std::vector<OldIndex>& olds) {
  const auto& job = ctx.job();
  const std::string key_index = std::to_string(ctx.Recall(fact::kKeyIndex).AsInt());
  for (const auto& old : olds)
    if (old.oid != key_index)
      Fail(SqlState("55000"),
           Fmt("index %1% on %2% uses %3%; it was created while job %4% ran",
               *Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text", {V(old.oid)}, true).scalar(),
               TableSql(job), Ident(plan.targets[0].column), job.id),
           "The copy method builds again only the primary key's own index on the bigint column.",
           Fmt("Drop that index, pkonline.resume(%1%), and create it again afterwards; or "
               "pkonline.cancel(%1%).",
               job.id));
  for (const auto& fk : ReferencingKeys(job, plan.targets[0].column))
    Fail(SqlState("55000"),
         Fmt("foreign key %1% on %2% was added while job %3% ran", fk.name, fk.table, job.id),
         "The copy method converts a key that no foreign key references.",
         Fmt("Drop that foreign key, pkonline.resume(%1%), and add it again afterwards; or "
             "pkonline.cancel(%1%).",
             job.id));
}

void SwapStep(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  bool done = false;
  ctx.Txn("pkonline job " + IdText(job) + ": check", [&]() { done = Swapped(ctx, plan); });
  if (done) return;  // committed before a crash: this step is one transaction
  const std::string activity = "pkonline job " + IdText(job) + ": swap storage, convert to bigint";
  copy::BeforeSwap(ctx, activity);
  ctx.Ddl(activity, [&]() {
    if (Swapped(ctx, plan)) return;
    const unsigned copy = copy::LockForSwap(ctx);
    const std::vector<OldIndex> olds = IndexesToRebuild(plan);
    RequireOnlyTheKey(ctx, plan, olds);
    const unsigned twin =
        copy::Helper(ctx, fact::kTwinPk).empty() ? 0 : copy::RecordedOid(ctx, fact::kTwinPk);
    if (twin == 0)
      Fail(sqlstate::kUndefinedObject, Fmt("the bigint key's index on the copy of job %1% is gone", job.id));
    const int64_t last = copy::SwapWithCopy(ctx, copy);
    // Every row now in the table came through the copy's NOT NULL bigint column.
    const std::string shadow = ShadowColumn(ctx, plan.targets[0], 0);
    pg::SetNotNullTrusted(job.relid, Attnum(job.relid, shadow));
    // The key's index on the bigint column: its storage is the copy's, its name and constraint the
    // key's once the in-place swap attaches it (it looks for it under the old index's OID).
    for (const auto& old : olds) {
      const unsigned made = pg::CreateIndexLike(job.relid, twin, HelperName(job, "bigpk"), false);
      pg::SwapStorage(made, twin);
      ctx.Remember(fact::kTwinIndexPrefix + old.oid, Json::Number(made));
    }
    Exec("DROP TRIGGER " + Ident(copy::LogTrigger(job)) + " ON " +
         TableSql(job));  // checked by the last round
    SwapTable(ctx, plan, job.relid, olds);
    ctx.EventHere("info", Fmt("storage swapped; %1% last changes applied under the lock", last));
    ctx.WaitPointHere("swap_locked");  // every change made, none committed (tests crash here)
  });
  ctx.WaitPoint("swap_committed");
}

}  // namespace

std::vector<Step> CopySteps(const jobs::Job& job) {
  const ConvertPkPlan plan = Plan(job);
  const Target& key = plan.targets[0];
  const std::string col = key.table + "." + Ident(key.column);
  return {
      {"add_columns",
       "ADD COLUMN … bigint beside " + col +
           " (nullable, left empty), a change log and a row trigger logging the key of every row written "
           "(ENABLE ALWAYS)",
       "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries",
       AddColumnsStep, UndoAddColumnsStep},
      {"copy",
       "CREATE TABLE " + HelperName(job, "copy") +
           " with the same columns; INSERT … SELECT by ranges of heap blocks, the bigint column = " +
           Ident(key.column) + ", one transaction per batch",
       "ACCESS SHARE: reads and writes continue", copy::CopyStep, copy::UndoCopyStep},
      {"build_indexes",
       "apply the change log; CREATE INDEX on the copy for each index of the table, and " + plan.pk_name +
           "'s index again on the bigint column",
       "none on the table (the copy is the job's own)", copy::BuildIndexesStep, nullptr},
      copy::CatchUp(),
      {"swap",
       "apply the last changes, swap the storage of the table and of each index with the copy's, SET NOT "
       "NULL "
       "(every row came through the copy's NOT NULL column); drop the old column and give its name to the "
       "bigint one, move DEFAULT / identity / sequence (AS bigint), comment, grants, statistics target, ADD "
       "PRIMARY KEY " +
           plan.pk_name + " USING INDEX",
       copy::kSwapLock, SwapStep, nullptr, true},
      copy::Cleanup(),
  };
}

}  // namespace pkonline::ops::convert
