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
// For now the key may have no foreign key referencing it (the API refuses one; the swap checks
// again under its lock), and an index containing it no expression or predicate.
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

std::string KeyIndex(Context& ctx) { return std::to_string(ctx.Recall(fact::kKeyIndex).AsInt()); }

// Each index of the table that contains the key, other than the key's own (whose bigint version
// is the copy's unique index, fact::kTwinPk), built on the copy with the key replaced by the
// bigint column, unless it has been: same kind, columns, INCLUDE, options and tablespace. The old
// index gets no twin (it goes with its column at the swap).
void BuildBigTwins(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  std::vector<OldIndex> olds;
  std::string key_index;
  ctx.Txn("pkonline job " + IdText(job) + ": indexes to build again", [&]() {
    olds = IndexesToRebuild(plan);
    key_index = KeyIndex(ctx);
  });
  for (const auto& old : olds) {
    if (old.oid == key_index) continue;
    ctx.CheckControl();
    ctx.Txn("pkonline job " + IdText(job) + ": build an index again on the copy", [&]() {
      const std::string key = fact::kBigTwinPrefix + old.oid;
      if (!copy::Helper(ctx, key).empty()) return;
      if (Query("SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = $1::oid", {V(old.oid)}, false).empty())
        return;            // dropped meanwhile
      copy::CopySql(ctx);  // the copy is still the job's own
      const std::string name = HelperName(job, "bx" + old.oid);
      pg::CreateIndexLike(copy::CopyOid(ctx), static_cast<unsigned>(std::stoul(old.oid)), name, true,
                          plan.targets[0].column, Shadow(job, 0));
      copy::Record(ctx, key, HelperSql(job, "bx" + old.oid));
    });
  }
}

void BuildIndexesStep(Context& ctx) {
  const int64_t applied = copy::ReplayRound(ctx);
  ctx.Event("info", Fmt("%1% logged changes applied to the copy", applied));
  BuildBigTwins(ctx);
  copy::EnsureTwins(ctx);
}

// Under the swap's lock: every index that contains the key has its bigint version on the copy (one
// created since BuildBigTwins ran has not), and no foreign key references the key (the API
// refused them at the start).
std::vector<std::pair<std::string, unsigned>> BigTwins(Context& ctx, const ConvertPkPlan& plan,
                                                       const std::vector<OldIndex>& olds) {
  const auto& job = ctx.job();
  std::vector<std::pair<std::string, unsigned>> out;
  for (const auto& old : olds) {
    const std::string key = old.oid == KeyIndex(ctx) ? fact::kTwinPk : fact::kBigTwinPrefix + old.oid;
    const unsigned twin = copy::Helper(ctx, key).empty() ? 0 : copy::RecordedOid(ctx, key);
    if (twin == 0)
      Fail(SqlState("55000"),
           Fmt("index %1% on %2% has no bigint version on the copy of job %3%",
               *Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text", {V(old.oid)}, true).scalar(),
               TableSql(job), job.id),
           "It was created while the job was about to swap.",
           Fmt("pkonline.resume(%1%) builds it on the copy, then swaps.", job.id));
    out.emplace_back(old.oid, twin);
  }
  for (const auto& fk : ReferencingKeys(job, plan.targets[0].column))
    Fail(SqlState("55000"),
         Fmt("foreign key %1% on %2% was added while job %3% ran", fk.name, fk.table, job.id),
         "The copy method converts a key that no foreign key references.",
         Fmt("Drop that foreign key, pkonline.resume(%1%), and add it again afterwards; or "
             "pkonline.cancel(%1%).",
             job.id));
  return out;
}

void SwapStep(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  bool done = false;
  ctx.Txn("pkonline job " + IdText(job) + ": check", [&]() { done = Swapped(ctx, plan); });
  if (done) return;  // committed before a crash: this step is one transaction
  const std::string activity = "pkonline job " + IdText(job) + ": swap storage, convert to bigint";
  BuildBigTwins(ctx);  // an index created meanwhile
  copy::BeforeSwap(ctx, activity);
  ctx.Ddl(activity, [&]() {
    if (Swapped(ctx, plan)) return;
    const unsigned copy = copy::LockForSwap(ctx);
    const std::vector<OldIndex> olds = IndexesToRebuild(plan);
    const auto twins = BigTwins(ctx, plan, olds);
    const int64_t last = copy::SwapWithCopy(ctx, copy);
    // Every row now in the table came through the copy's NOT NULL bigint column.
    const std::string shadow = ShadowColumn(ctx, plan.targets[0], 0);
    pg::SetNotNullTrusted(job.relid, Attnum(job.relid, shadow));
    // Each replaced index's bigint version, on the table with the copy's storage; the in-place
    // swap finds it under the old index's OID, and gives it the old one's name and constraint.
    for (const auto& [oid, twin] : twins) {
      const unsigned made = pg::CreateIndexLike(job.relid, twin, HelperName(job, "big" + oid), false);
      pg::SwapStorage(made, twin);
      ctx.Remember(fact::kTwinIndexPrefix + oid, Json::Number(made));
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
       "apply the change log; CREATE INDEX on the copy for each index of the table, those containing " +
           Ident(key.column) + " (" + plan.pk_name + "'s too) on the bigint column",
       "none on the table (the copy is the job's own)", BuildIndexesStep, nullptr},
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
