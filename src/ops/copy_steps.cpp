// The copy method's steps that add_int_pk and add_column share: the copy, the indexes on it, the
// catch-up, the swap's common part and the cleanup (add_int_pk_copy.cpp tells the method whole).
#include "pkonline/ops/copy_method.hpp"

#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops::copy {

using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;

namespace {

// Catch-up replays the change log in rounds until a round applies fewer than kCaughtUpChanges (or
// after kMaxCatchUpRounds); before the swap, up to kPreSwapRounds more while a round still applies
// kPreSwapChanges or more, so that the round under ACCESS EXCLUSIVE is short.
constexpr int64_t kCaughtUpChanges = 1000;
constexpr int kMaxCatchUpRounds = 100;
constexpr int kPreSwapRounds = 20;
constexpr int64_t kPreSwapChanges = 100;

}  // namespace

void CopyStep(Context& ctx) {
  const auto& job = ctx.job();
  ctx.Txn("pkonline job " + IdText(job) + ": create the copy", [&]() {
    RequireSameStorage(ctx);
    auto force = Query("SELECT relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = $1::oid",
                       {V(RelidText(job))}, true);
    if (pg::AsBool(force.scalar()))
      Fail(sqlstate::kFeatureNotSupported, Fmt("table %1% has FORCE ROW LEVEL SECURITY", TableSql(job)),
           "The copy would hold only the rows its owner may see.", "Use method => 'in_place'.");
    if (CopyOid(ctx) != 0) {
      CopySql(ctx);  // still the job's own
      return;
    }
    if (job.cursor_block > 0)
      Fail(sqlstate::kUndefinedTable, Fmt("the copy of job %1% was dropped", job.id), "",
           Fmt("pkonline.cancel(%1%) undoes the job; then start it again.", job.id));
    CreateCopy(ctx);
  });
  CopyBlocks(
      ctx, [&ctx]() { return CopyBatchSql(ctx); },
      [&ctx]() {
        RequireSourceAsCopied(ctx);
        const std::string copy = CopySql(ctx);
        RequireCopyAsMade(ctx, CopyOid(ctx));
        return copy;
      });
}

// The forced row security check and the copy, created unless it was; false if it was dropped.
bool EnsureCopy(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  RequireSameStorage(ctx, t);
  auto force = Query("SELECT relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = $1::oid",
                     {V(static_cast<int64_t>(RelidOf(job, t)))}, true);
  if (pg::AsBool(force.scalar()))
    Fail(sqlstate::kFeatureNotSupported, Fmt("table %1% has FORCE ROW LEVEL SECURITY", TableOf(job, t)),
         "The copy would hold only the rows its owner may see.", "Use method => 'in_place'.");
  if (CopyOid(ctx, t) != 0) {
    CopySql(ctx, t);  // still the job's own
    return true;
  }
  return false;
}

void CopyTablesStep(Context& ctx, const std::vector<Of>& tables) {
  const auto& job = ctx.job();
  std::vector<TableWalk> walks;
  for (const Of& t : tables) {
    ctx.Txn("pkonline job " + IdText(job) + ": create the copy", [&]() {
      if (EnsureCopy(ctx, t)) return;
      if (!ctx.Recall(fact::kWalkOf).is_null())
        Fail(sqlstate::kUndefinedTable, Fmt("a copy of job %1% was dropped", job.id), "",
             Fmt("pkonline.cancel(%1%) undoes the job; then start it again.", job.id));
      CreateCopy(ctx, t);
    });
    TableWalk w;
    w.relid = RelidOf(job, t);
    w.name = job.table_name;
    ctx.Txn("pkonline: name", [&]() { w.name = TableOf(job, t); });
    w.sql = [&ctx, t]() { return CopyBatchSql(ctx, t); };
    w.table_sql = [&job, t]() { return TableOf(job, t); };
    w.guard = [&ctx, t]() {
      RequireSourceAsCopied(ctx, t);
      const std::string copy = CopySql(ctx, t);
      RequireCopyAsMade(ctx, CopyOid(ctx, t), t);
      return copy;
    };
    w.vacuum = false;
    w.what = "copy";
    w.copy_writes = true;
    walks.push_back(std::move(w));
  }
  BackfillTables(ctx, walks);
}

void UndoCopyStep(Context& ctx) { UndoCopies(ctx, {Of{}}); }

void UndoCopies(Context& ctx, const std::vector<Of>& tables) {
  ctx.Txn("pkonline job " + IdText(ctx.job()) + ": drop the copy", [&]() {
    for (const Of& t : tables) {
      // never anything but the job's own
      const std::string copy = Helper(ctx, FactOf(t, fact::kCopyOid), false, t);
      if (!copy.empty()) Exec("DROP TABLE " + copy);
    }
  });
}

void BuildIndexesStep(Context& ctx) {
  // Rows written during the copy may have been copied twice (once where they were, once where
  // they moved): the log names them all, and one round leaves one row per key before the unique
  // indexes are built.
  const int64_t applied = ReplayRound(ctx);
  ctx.Event("info", Fmt("%1% logged changes applied to the copy", applied));
  EnsureTwins(ctx);
}

void CatchUpStep(Context& ctx, const std::vector<Of>& tables) {
  for (int round = 1;; round++) {
    ctx.CheckControl();
    int64_t applied = 0;
    for (const Of& t : tables) applied += ReplayRound(ctx, t);
    if (applied < kCaughtUpChanges || round >= kMaxCatchUpRounds) {
      ctx.Event("info", Fmt("copy caught up after %1% rounds (%2% changes in the last)", round, applied));
      return;
    }
    ctx.Sleep(10);
  }
}

void BeforeSwap(Context& ctx, const std::string& activity, const std::vector<Of>& tables) {
  for (const Of& t : tables) EnsureTwins(ctx, t);
  // Leave as little as possible for the round under the lock — after any wait for the run window,
  // so that what was written meanwhile is replayed before the lock, not under it.
  ctx.WaitPoint("pre_swap");
  do {
    ctx.AwaitWindowForDdl(activity);
    for (int round = 0; round < kPreSwapRounds; round++) {
      int64_t applied = 0;
      for (const Of& t : tables) applied += ReplayRound(ctx, t);
      if (applied < kPreSwapChanges) break;
      ctx.CheckControl();
    }
  } while (ctx.AwaitWindowForDdl(activity));
  ctx.WaitPoint("swap");
}

unsigned LockForSwap(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  const std::string table = TableOf(job, t);
  Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
  const unsigned copy = CopyOid(ctx, t);
  if (copy == 0) Fail(sqlstate::kUndefinedTable, Fmt("the copy of job %1% is gone", job.id));
  Exec("LOCK TABLE " + CopySql(ctx, t) + " IN ACCESS EXCLUSIVE MODE");
  RequireSameStorage(ctx, t);
  if (Layout(RelidOf(job, t)) != Layout(copy))
    Fail(sqlstate::kObjectNotInState, Fmt("the columns of %1% changed while job %2% ran", table, job.id),
         "The copy has the columns the table had when the copy began.",
         Fmt("pkonline.cancel(%1%) undoes the job; then start it again.", job.id));
  RequireValidIndexes(job, t);
  return copy;
}

int64_t SwapWithCopy(Context& ctx, unsigned copy, const Of& t) {
  const auto& job = ctx.job();
  std::vector<std::pair<unsigned, unsigned>> pairs;
  for (const auto& entry : TableIndexes(job, t)) {
    // An index replaced by one on another column (convert_pk_to_bigint) goes with its column in
    // this transaction; its storage is not read meanwhile.
    if (Replaced(ctx, entry.first, t)) continue;
    const std::string key = fact::kTwinIndexPrefix + entry.first;
    const unsigned twin = Helper(ctx, key, true, t).empty() ? 0 : RecordedOid(ctx, key);
    if (twin == 0)
      Fail(SqlState("55000"),
           Fmt("an index was created on %1% while job %2% was about to swap", TableOf(job, t), job.id), "",
           Fmt("pkonline.resume(%1%) builds it on the copy too.", job.id));
    pairs.emplace_back(static_cast<unsigned>(std::stoul(entry.first)), twin);
  }
  const int64_t last = ApplyLog(ctx, t);
  for (const auto& [index, twin] : pairs) pg::SwapStorage(index, twin);
  pg::SwapStorage(RelidOf(job, t), copy);
  return last;
}

const char* const kSwapLock =
    "ACCESS EXCLUSIVE, catalog only plus the last changes (milliseconds), under pkonline.lock_timeout with "
    "retries";

jobs::Step CatchUp() {
  return {"catch_up", "apply the change log to the copy in rounds until little is left", "none on the table",
          [](Context& ctx) { CatchUpStep(ctx); }, nullptr};
}

jobs::Step Cleanup() {
  return {"cleanup", "DROP the copy (now holding the old storage) and the change log; ANALYZE the table",
          "SHARE UPDATE EXCLUSIVE for ANALYZE's sample (skipped if it cannot have it within "
          "pkonline.lock_timeout)",
          CleanupStep, nullptr};
}

std::pair<unsigned, int> PrimaryKeyOn(const jobs::Job& job, const std::string& column, const Of& t) {
  auto r = Query(
      "SELECT i.indexrelid, a.attnum FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a "
      "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] AND a.attname = $2 AND NOT a.attisdropped "
      "AND a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype, "
      "'pg_catalog.int8'::pg_catalog.regtype) "
      "WHERE i.indrelid = $1::oid AND i.indisprimary AND i.indnkeyatts = 1",
      {V(static_cast<int64_t>(RelidOf(job, t))), V(column)}, false);
  if (r.empty()) return {0, 0};
  return {static_cast<unsigned>(pg::AsInt(r.rows[0][0])), static_cast<int>(pg::AsInt(r.rows[0][1]))};
}

void CreateChangeLog(Context& ctx, int key_attnum, const Of& t) {
  const auto& job = ctx.job();
  const std::string table = TableOf(job, t);
  const std::string log = HelperSql(job, HelperOf(t, "log"));
  Exec("CREATE TABLE " + log + " (old_id bigint, new_id bigint, tid pg_catalog.tid)");
  OwnerOnly(log);
  Record(ctx, FactOf(t, fact::kLogOid), log);
  // (src/pg/capture.cpp checks both arguments against the job's records for this table)
  CreateJobTrigger(ctx, "CREATE TRIGGER " + Ident(LogTrigger(job)) + " AFTER INSERT OR UPDATE OR DELETE ON " +
                            table + " FOR EACH ROW EXECUTE FUNCTION " + pg::Internal("_copy_log") + "(" +
                            pg::Literal(std::to_string(key_attnum)) + ", " +
                            pg::Literal(std::to_string(RecordedOid(ctx, FactOf(t, fact::kLogOid)))) + ")");
  // Also for writes made with session_replication_role = replica (logical replication, restores).
  Exec("ALTER TABLE " + table + " ENABLE ALWAYS TRIGGER " + Ident(LogTrigger(job)));
  RecordLogTrigger(ctx, t);
  ctx.Remember(FactOf(t, fact::kRelfilenode), Json::String(Relfilenode(job, t)));
}

void DropChangeLog(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  if (pg::LookupRelation(RelidOf(job, t)))
    Exec("DROP TRIGGER IF EXISTS " + Ident(LogTrigger(job)) + " ON " + TableOf(job, t));
  // never anything but the job's own
  const std::string log = Helper(ctx, FactOf(t, fact::kLogOid), false, t);
  if (!log.empty()) Exec("DROP TABLE " + log);
}

void DropHelpers(Context& ctx, const Of& t) {
  // By OID, and only while they are the job's own (after the swap the copy holds the old storage).
  for (const char* key : {fact::kCopyOid, fact::kLogOid}) {
    const std::string helper = Helper(ctx, FactOf(t, key), false, t);
    if (!helper.empty()) Exec("DROP TABLE " + helper);
  }
}

void AnalyzeTable(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  // Fresh statistics for the new storage and the new column (a sample: pg_repack does the same).
  // Its SHARE UPDATE EXCLUSIVE lock may be held by a VACUUM or an index build: then it is left
  // to autovacuum, with an event, rather than wait or fail a job that is done.
  try {
    ctx.TryOnce("pkonline job " + IdText(job) + ": analyze", [&]() { Exec("ANALYZE " + TableOf(job, t)); });
  } catch (const PgError& e) {
    if (e.sqlstate() != sqlstate::kLockNotAvailable) throw;
    ctx.Event("info", "ANALYZE skipped (" + e.message() + "); autovacuum will analyze the table");
  }
}

bool AnalyzeCopy(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  try {
    ctx.TryOnce("pkonline job " + IdText(job) + ": analyze the copy", [&]() {
      const CopySpec spec = SpecOf(job, t);
      const std::string copy = CopySql(ctx, t);
      auto r = Query(
          "SELECT pg_catalog.quote_ident(a.attname), COALESCE(NULLIF(n.attstattarget, -1), a.attstattarget) "
          "FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attribute n ON n.attrelid = a.attrelid "
          "AND n.attname = $2 AND a.attname = $3 "
          "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped "
          "AND COALESCE(NULLIF(n.attstattarget, -1), a.attstattarget) >= 0",
          {V(static_cast<int64_t>(RelidOf(job, t))), V(spec.nulled), V(spec.column)}, false);
      for (const auto& row : r.rows)
        Exec("ALTER TABLE " + copy + " ALTER COLUMN " + *row[0] + " SET STATISTICS " + *row[1]);
      Exec("ANALYZE " + copy);
    });
  } catch (const PgError& e) {
    if (e.sqlstate() != sqlstate::kLockNotAvailable) throw;
    ctx.Event("info",
              "ANALYZE of the copy skipped (" + e.message() + "): the table is analysed after the swap");
    return false;
  }
  return true;
}

void CleanupStep(Context& ctx) {
  ctx.Ddl("pkonline job " + IdText(ctx.job()) + ": drop the old storage", [&]() { DropHelpers(ctx, Of{}); });
  AnalyzeTable(ctx, Of{});
}

}  // namespace pkonline::ops::copy
