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
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/add_int_pk.hpp"
#include "pkonline/ops/backfill.hpp"
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

namespace {

// Ids of rows not written during the job are block * pg::kIdsPerHeapBlock + offset, so the
// sequence starts above blocks * pg::kIdsPerHeapBlock.
// Catch-up replays the change log in rounds until a round applies fewer than kCaughtUpChanges (or
// after kMaxCatchUpRounds); before the swap, up to kPreSwapRounds more while a round still applies
// kPreSwapChanges or more, so that the round under ACCESS EXCLUSIVE is short.
constexpr int64_t kCaughtUpChanges = 1000;
constexpr int kMaxCatchUpRounds = 100;
constexpr int kPreSwapRounds = 20;
constexpr int64_t kPreSwapChanges = 100;

std::string LogTrigger(const jobs::Job& job) { return HelperName(job, "log"); }
std::string PkTwin(const jobs::Job& job) { return HelperName(job, "pk"); }
std::string Twin(const jobs::Job& job, const std::string& index_oid) {
  return HelperName(job, "ix" + index_oid);
}

// OID of a relation named by its qualified SQL name, 0 if there is none.
unsigned RegclassOid(const std::string& qualified) {
  return static_cast<unsigned>(pg::AsInt(
      Query("SELECT pg_catalog.to_regclass($1)::pg_catalog.oid", {V(qualified)}, false).scalar(), 0));
}

// The job's helpers (the copy, its indexes, the change log) are created by the job, under names
// that fail to be created if anything has them already, and their OIDs are recorded in the job's
// options in the same transaction (copy_oid, log_oid, twin_pk, twin_ix_<index oid>). From then on
// they are known by OID only, and checked before each use: a co-tenant who may create objects in
// the schema can neither lend the job an object of its own nor slip one in under a helper's name.
unsigned RecordedOid(Context& ctx, const std::string& key) {
  const std::string v = ctx.Recall(key);
  return v.empty() ? 0 : static_cast<unsigned>(std::stoul(v));
}

void Record(Context& ctx, const std::string& key, const std::string& name_sql) {
  const auto& job = ctx.job();
  const unsigned oid = RegclassOid(name_sql);  // created just now by this transaction: the name is ours
  if (oid == 0)
    Fail(sqlstate::kInternal, Fmt("pkonline: the helper %1% of job %2% was not found", name_sql, job.id));
  ctx.Remember(key, std::to_string(oid));
}

unsigned CopyOid(Context& ctx) { return RecordedOid(ctx, "copy_oid"); }

// The helper recorded under `key`, locked for the rest of the transaction (no DROP, no RENAME)
// and checked: still there, of its kind, owned by the table's owner, an index on the copy for an
// index. Its qualified name, for SQL run in this transaction; "" if the job has not created it,
// or (`strict` false) if it is no longer the job's own.
std::string Helper(Context& ctx, const std::string& key, bool strict = true) {
  const auto& job = ctx.job();
  const unsigned oid = RecordedOid(ctx, key);
  if (oid == 0) return "";
  pg::LockShared(oid);
  auto r = Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::pg_catalog.text, "
      "c.relowner = t.relowner, i.indrelid FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_class t ON t.oid = "
      "$2::oid "
      "LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid WHERE c.oid = $1::oid",
      {V(static_cast<int64_t>(oid)), V(RelidText(job))}, false);  // sees what this transaction made
  const bool index = key != "copy_oid" && key != "log_oid";
  bool ok = !r.empty() && pg::AsBool(r.rows[0][2]) && *r.rows[0][1] == (index ? "i" : "r");
  if (ok && index) ok = r.rows[0][3] && static_cast<unsigned>(pg::AsInt(r.rows[0][3])) == CopyOid(ctx);
  if (ok) return *r.rows[0][0];
  if (!strict) return "";
  const std::string what = key == "copy_oid" ? "copy" : key == "log_oid" ? "change log" : "index on the copy";
  Fail(sqlstate::kObjectNotInState,
       Fmt("the %1% of job %2% is gone or is no longer the job's own", what, job.id),
       Fmt("The job knows its helpers by the OIDs it recorded when it created them (relation %1%).", oid),
       Fmt("pkonline.cancel(%1%) undoes the job; then start it again.", job.id));
}

std::string CopySql(Context& ctx) { return Helper(ctx, "copy_oid"); }
std::string LogSql(Context& ctx) { return Helper(ctx, "log_oid"); }

std::string Relfilenode(const jobs::Job& job) {
  return Query("SELECT pg_catalog.pg_relation_filenode($1::oid)::pg_catalog.text", {V(RelidText(job))}, true)
      .scalar()
      .value_or("");
}

// Rows of the table must stay where they were when the job began (their position is their id).
void RequireSameStorage(Context& ctx) {
  const auto& job = ctx.job();
  const std::string was = ctx.Recall("relfilenode");
  if (!was.empty() && Relfilenode(job) != was)
    Fail(sqlstate::kObjectNotInState, Fmt("table %1% was rewritten while job %2% ran", TableSql(job), job.id),
         "VACUUM FULL, CLUSTER, TRUNCATE or an ALTER TABLE that rewrites moved its rows; the copy no longer "
         "matches.",
         Fmt("pkonline.cancel(%1%) undoes the job; then start it again.", job.id));
}

// Column layout: positions, dropped or not, types and collations.
std::string Layout(unsigned relid) {
  return Query(
             "SELECT pg_catalog.string_agg(attnum || ':' || CASE WHEN attisdropped THEN '-' ELSE "
             "pg_catalog.format_type(atttypid, atttypmod) || ' ' || attcollation END, ',' ORDER BY attnum) "
             "FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attnum > 0",
             {V(static_cast<int64_t>(relid))}, true)
      .scalar()
      .value_or("");
}

// The live columns, as named in the table and in the twin (matched by position); and the
// table's list with the job's column replaced by its value in the copy: the row's own id where
// it has one, its position where it has none.
struct Columns {
  std::string table, twin, table_ids;
};
Columns LiveColumns(const jobs::Job& job, unsigned copy_oid) {
  auto r = Query(
      "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(t.attname), ', ' ORDER BY t.attnum), "
      "pg_catalog.string_agg(pg_catalog.quote_ident(c.attname), ', ' ORDER BY t.attnum), "
      "pg_catalog.string_agg(CASE WHEN t.attname = $3 THEN pg_catalog.format("
      "'COALESCE(%1$I, pkonline._tid_key(ctid)::%2$s)', t.attname, pg_catalog.format_type(t.atttypid, "
      "t.atttypmod)) ELSE pg_catalog.quote_ident(t.attname) END, ', ' ORDER BY t.attnum) "
      "FROM pg_catalog.pg_attribute t JOIN pg_catalog.pg_attribute c ON c.attnum = t.attnum "
      "AND c.attrelid = $2::oid WHERE t.attrelid = $1::oid AND t.attnum > 0 AND NOT t.attisdropped",
      {V(RelidText(job)), V(static_cast<int64_t>(copy_oid)), V(job.Opt("column_name"))}, true);
  return {r.rows[0][0].value_or(""), r.rows[0][1].value_or(""), r.rows[0][2].value_or("")};
}

// CREATE TABLE for the twin: every column at its position, dropped ones as placeholders dropped
// again; the new column NOT NULL; the table's persistence, storage options and tablespace.
void CreateCopy(Context& ctx) {
  const auto& job = ctx.job();
  const std::string col = job.Opt("column_name");
  auto cols = Query(
      "SELECT a.attnum, a.attname, a.attisdropped, pg_catalog.format_type(a.atttypid, a.atttypmod), "
      "CASE WHEN a.attcollation <> 0 AND a.attcollation IS DISTINCT FROM t.typcollation THEN "
      "pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(k.collname) END, "
      "CASE WHEN a.attstorage IS DISTINCT FROM t.typstorage THEN a.attstorage::text END, "
      "a.attcompression::text "
      "FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
      "LEFT JOIN pg_catalog.pg_collation k ON k.oid = a.attcollation "
      "LEFT JOIN pg_catalog.pg_namespace n ON n.oid = k.collnamespace "
      "WHERE a.attrelid = $1::oid AND a.attnum > 0 ORDER BY a.attnum",
      {V(RelidText(job))}, true);
  std::string defs, drops, storage;
  for (const auto& row : cols.rows) {
    if (!defs.empty()) defs += ", ";
    if (pg::AsBool(row[2])) {
      const std::string placeholder = Ident("pkonline_dropped_" + *row[0]);
      defs += placeholder + " pg_catalog.int4";
      drops += (drops.empty() ? " DROP COLUMN " : ", DROP COLUMN ") + placeholder;
      continue;
    }
    const std::string name = Ident(*row[1]);
    defs += name + " " + *row[3];
    if (row[4]) defs += " COLLATE " + *row[4];
    if (row[6] && !row[6]->empty()) defs += std::string(" COMPRESSION ") + (*row[6] == "l" ? "lz4" : "pglz");
    if (*row[1] == col) defs += " NOT NULL";
    if (row[5]) {
      const char s = (*row[5])[0];
      const char* kind = s == 'p' ? "PLAIN" : s == 'e' ? "EXTERNAL" : s == 'm' ? "MAIN" : "EXTENDED";
      storage += (storage.empty() ? " ALTER COLUMN " : ", ALTER COLUMN ") + name + " SET STORAGE " + kind;
    }
  }
  auto rel = Query(
      "SELECT c.relpersistence::text, (SELECT pg_catalog.string_agg(o, ', ') FROM "
      "pg_catalog.unnest(c.reloptions) o "
      "WHERE o NOT LIKE 'autovacuum_enabled=%'), s.spcname "
      "FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_tablespace s ON s.oid = c.reltablespace "
      "WHERE c.oid = $1::oid",
      {V(RelidText(job))}, true);
  const auto& r = rel.rows[0];
  std::string with = "autovacuum_enabled = false";  // its only reader is this job
  if (r[1]) with = *r[1] + ", " + with;
  Exec(std::string("CREATE ") + (*r[0] == "u" ? "UNLOGGED " : "") + "TABLE " + HelperSql(job, "copy") + " (" +
       defs + ") WITH (" + with + ")" + (r[2] ? " TABLESPACE " + Ident(*r[2]) : ""));
  Record(ctx, "copy_oid", HelperSql(job, "copy"));
  if (!drops.empty()) Exec("ALTER TABLE " + CopySql(ctx) + drops);
  if (!storage.empty()) Exec("ALTER TABLE " + CopySql(ctx) + storage);
}

std::string CopyBatchSql(Context& ctx) {
  const auto& job = ctx.job();
  const unsigned copy = CopyOid(ctx);
  const std::string copy_sql = CopySql(ctx);
  if (copy == 0) Fail(sqlstate::kUndefinedTable, Fmt("the copy of job %1% is gone", job.id));
  ColumnSql(job, job.Opt("column_name"));  // fails cleanly if it was renamed
  const Columns c = LiveColumns(job, copy);
  return "INSERT INTO " + copy_sql + " (" + c.twin + ") SELECT " + c.table_ids + " FROM ONLY " +
         TableSql(job) + " WHERE ctid >= $1::pg_catalog.tid AND ctid < $2::pg_catalog.tid";
}

// The indexes of the table: (oid, valid) of each.
std::vector<std::pair<std::string, bool>> TableIndexes(const jobs::Job& job) {
  std::vector<std::pair<std::string, bool>> out;
  auto r = Query(
      "SELECT indexrelid::pg_catalog.text, indisvalid AND indisready AND indislive FROM pg_catalog.pg_index "
      "WHERE indrelid = $1::oid ORDER BY indexrelid",
      {V(RelidText(job))}, true);
  for (const auto& row : r.rows) out.emplace_back(*row[0], pg::AsBool(row[1]));
  return out;
}

void RequireValidIndexes(const jobs::Job& job) {
  for (const auto& [oid, valid] : TableIndexes(job))
    if (!valid)
      Fail(sqlstate::kObjectNotInState,
           Fmt("index %1% of table %2% is not valid",
               *Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text", {V(oid)}, true).scalar(),
               TableSql(job)),
           "A failed CREATE INDEX CONCURRENTLY leaves an invalid index; the copy method cannot rebuild it.",
           "DROP INDEX it or REINDEX it, then pkonline.resume(" + IdText(job) + ").");
}

// Builds, on the twin, each index of the table that has no twin yet, and the key's unique index.
void EnsureTwins(Context& ctx) {
  const auto& job = ctx.job();
  std::vector<std::pair<std::string, bool>> indexes;
  unsigned copy = 0;
  ctx.Txn("pkonline: list indexes", [&]() {
    RequireValidIndexes(job);
    indexes = TableIndexes(job);
    copy = CopyOid(ctx);
  });
  for (const auto& entry : indexes) {
    const std::string& oid = entry.first;
    ctx.CheckControl();
    ctx.Txn("pkonline job " + IdText(job) + ": build index on the copy", [&]() {
      if (!Helper(ctx, "twin_ix_" + oid).empty()) return;
      if (Query("SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = $1::oid", {V(oid)}, true).empty())
        return;
      CopySql(ctx);  // the copy is still the job's own
      const unsigned twin =
          pg::CreateIndexLike(copy, static_cast<unsigned>(std::stoul(oid)), Twin(job, oid), true);
      ctx.Remember("twin_ix_" + oid, std::to_string(twin));
    });
  }
  ctx.Txn("pkonline job " + IdText(job) + ": build the key's index on the copy", [&]() {
    if (!Helper(ctx, "twin_pk").empty()) return;
    const std::string id = Ident(job.Opt("column_name"));
    Exec("CREATE UNIQUE INDEX " + Ident(PkTwin(job)) + " ON " + CopySql(ctx) + " (" + id + ")");
    Record(ctx, "twin_pk", HelperSql(job, "pk"));
  });
}

// One replay round's statements (the caller's transaction gives them one snapshot, or holds the
// table ACCESS EXCLUSIVE). Returns the number of log rows applied.
int64_t ApplyLog(Context& ctx) {
  const auto& job = ctx.job();
  RequireSameStorage(ctx);
  const unsigned copy = CopyOid(ctx);
  if (copy == 0) Fail(sqlstate::kUndefinedTable, Fmt("the copy of job %1% is gone", job.id));
  const std::string copy_sql = CopySql(ctx);
  const Columns c = LiveColumns(job, copy);
  const std::string id = ColumnSql(job, job.Opt("column_name"));
  const std::string twin_id = Ident(job.Opt("column_name"));
  const std::string log = LogSql(ctx);
  try {
    // The log is never analysed: the plans are spelled out. With the copy's key index, the ids
    // as an array (an index scan per id); before it exists, a hash join over one scan. The new
    // versions by TID, each checked against a hashed list of the ids.
    const std::string ids = "SELECT old_id FROM " + log +
                            " WHERE old_id IS NOT NULL UNION SELECT new_id FROM " + log +
                            " WHERE new_id IS NOT NULL";
    if (!Helper(ctx, "twin_pk").empty())
      Exec("DELETE FROM " + copy_sql + " WHERE " + twin_id + " OPERATOR(pg_catalog.=) ANY (ARRAY(" + ids +
           "))");
    else
      Exec("DELETE FROM " + copy_sql + " WHERE " + twin_id + " IN (" + ids + ")");
    Exec("INSERT INTO " + copy_sql + " (" + c.twin + ") SELECT " + c.table + " FROM ONLY " + TableSql(job) +
         " WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT tid FROM " + log +
         " WHERE tid IS NOT NULL)) AND " + id + " IN (SELECT new_id FROM " + log +
         " WHERE new_id IS NOT NULL)");
  } catch (const PgError& e) {
    if (e.sqlstate() != SqlState("23505")) throw;
    Fail(e.sqlstate(),
         Fmt("rows with the same %1% were written to %2% while job %3% ran", id, TableSql(job), job.id),
         e.message(), Fmt("Only the job sets %1%. pkonline.cancel(%2%) undoes the job.", id, job.id));
  }
  return static_cast<int64_t>(Exec("DELETE FROM " + log));
}

int64_t ReplayRound(Context& ctx) {
  int64_t applied = 0;
  ctx.Snapshot("pkonline job " + IdText(ctx.job()) + ": apply the change log to the copy",
               [&]() { applied = ApplyLog(ctx); });
  return applied;
}

// ---------------------------------------------------------------------------------------------
void AddColumnStep(Context& ctx) {
  const auto& job = ctx.job();
  const std::string col = job.Opt("column_name");
  ctx.Ddl("pkonline job " + IdText(job) + ": add column and capture triggers", [&]() {
    const std::string t = TableSql(job);
    if (ColumnExists(job, col)) return;  // done before a crash: this step is one transaction
    AddColumnWithSequence(ctx);
    Exec("CREATE TABLE " + HelperSql(job, "log") + " (old_id bigint, new_id bigint, tid pg_catalog.tid)");
    Record(ctx, "log_oid", HelperSql(job, "log"));
    const int attnum_value = ColumnAttnum(job, col);  // sees the ADD COLUMN above
    if (attnum_value <= 0) Fail(sqlstate::kInternal, "pkonline: the new column was not found");
    const std::string attnum = std::to_string(attnum_value);
    const std::string log_oid = std::to_string(RecordedOid(ctx, "log_oid"));
    CreateJobTrigger(ctx, "CREATE TRIGGER " + Ident(FillName(job)) + " BEFORE INSERT OR UPDATE ON " + t +
                              " FOR EACH ROW EXECUTE FUNCTION pkonline._copy_fill(" + pg::Literal(attnum) +
                              ", " + pg::Literal(SequenceOid(job)) + ")");
    CreateJobTrigger(ctx, "CREATE TRIGGER " + Ident(LogTrigger(job)) +
                              " AFTER INSERT OR UPDATE OR DELETE ON " + t +
                              " FOR EACH ROW EXECUTE FUNCTION pkonline._copy_log(" + pg::Literal(attnum) +
                              ", " + pg::Literal(log_oid) + ")");
    // Also for writes made with session_replication_role = replica (logical replication, restores).
    Exec("ALTER TABLE " + t + " ENABLE ALWAYS TRIGGER " + Ident(FillName(job)) + ", ENABLE ALWAYS TRIGGER " +
         Ident(LogTrigger(job)));
    // Every row there is now lies in these blocks (the table is locked): ids by position stay
    // below the sequence.
    const int64_t blocks = pg::AsInt(Query("SELECT pg_catalog.pg_relation_size($1::oid) / "
                                           "pg_catalog.current_setting('block_size')::bigint",
                                           {V(RelidText(job))}, true)
                                         .scalar());
    if (blocks > 0) {
      auto r = Query("SELECT pg_catalog.setval($1::pg_catalog.regclass, $2::bigint)",
                     {V(SeqSql(job)), V(blocks * pg::kIdsPerHeapBlock)});
      (void)r;
    }
    ctx.Remember("relfilenode", Relfilenode(job));
  });
}

void UndoAddColumnStep(Context& ctx) {
  const auto& job = ctx.job();
  UndoColumnAndHelpers(ctx, {FillName(job), LogTrigger(job)});
  ctx.Txn("pkonline job " + IdText(job) + ": drop the change log", [&]() {
    const std::string log = Helper(ctx, "log_oid", false);  // never anything but the job's own
    if (!log.empty()) Exec("DROP TABLE " + log);
  });
}

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
      ctx, [&ctx]() { return CopyBatchSql(ctx); }, [&ctx]() { return CopySql(ctx); });
}

void UndoCopyStep(Context& ctx) {
  ctx.Txn("pkonline job " + IdText(ctx.job()) + ": drop the copy", [&]() {
    const std::string copy = Helper(ctx, "copy_oid", false);  // never anything but the job's own
    if (!copy.empty()) Exec("DROP TABLE " + copy);
  });
}

void BuildIndexesStep(Context& ctx) {
  // Rows written during the copy may have been copied twice (once where they were, once where
  // they moved): the log names them all, and one round leaves one row per id before the unique
  // indexes are built.
  const int64_t applied = ReplayRound(ctx);
  ctx.Event("info", Fmt("%1% logged changes applied to the copy", applied));
  EnsureTwins(ctx);
}

void CatchUpStep(Context& ctx) {
  for (int round = 1;; round++) {
    ctx.CheckControl();
    const int64_t applied = ReplayRound(ctx);
    if (applied < kCaughtUpChanges || round >= kMaxCatchUpRounds) {
      ctx.Event("info", Fmt("copy caught up after %1% rounds (%2% changes in the last)", round, applied));
      return;
    }
    ctx.Sleep(10);
  }
}

void SwapStep(Context& ctx) {
  const auto& job = ctx.job();
  const std::string col = job.Opt("column_name");
  bool done = false;
  ctx.Txn("pkonline: check", [&]() { done = HasOurPk(job); });
  if (done) return;
  EnsureTwins(ctx);
  // Leave as little as possible for the round under the lock.
  for (int round = 0; round < kPreSwapRounds && ReplayRound(ctx) >= kPreSwapChanges; round++)
    ctx.CheckControl();
  ctx.WaitPoint("swap");
  ctx.Ddl("pkonline job " + IdText(job) + ": swap storage and attach primary key", [&]() {
    const std::string t = TableSql(job);
    if (HasOurPk(job)) return;  // committed before a crash: this step is one transaction
    Exec("LOCK TABLE " + t + " IN ACCESS EXCLUSIVE MODE");
    const unsigned copy = CopyOid(ctx);
    if (copy == 0) Fail(sqlstate::kUndefinedTable, Fmt("the copy of job %1% is gone", job.id));
    Exec("LOCK TABLE " + CopySql(ctx) + " IN ACCESS EXCLUSIVE MODE");
    RequireSameStorage(ctx);
    auto other =
        Query("SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND contype = 'p'",
              {V(RelidText(job))}, true);
    if (!other.empty())
      Fail(sqlstate::kInvalidTableDefinition,
           Fmt("table %1% got a primary key (%2%) while job %3% ran", t, *other.scalar(), job.id), "",
           Fmt("pkonline.cancel(%1%) undoes what the job created.", job.id));
    if (Layout(job.relid) != Layout(copy))
      Fail(sqlstate::kObjectNotInState, Fmt("the columns of %1% changed while job %2% ran", t, job.id),
           "The copy has the columns the table had when the copy began.",
           Fmt("pkonline.cancel(%1%) undoes the job; then start it again.", job.id));
    RequireValidIndexes(job);
    std::vector<std::pair<unsigned, unsigned>> pairs;
    for (const auto& entry : TableIndexes(job)) {
      const unsigned twin =
          Helper(ctx, "twin_ix_" + entry.first).empty() ? 0 : RecordedOid(ctx, "twin_ix_" + entry.first);
      if (twin == 0)
        Fail(SqlState("55000"), Fmt("an index was created on %1% while job %2% was about to swap", t, job.id),
             "", Fmt("pkonline.resume(%1%) builds it on the copy too.", job.id));
      pairs.emplace_back(static_cast<unsigned>(std::stoul(entry.first)), twin);
    }
    const unsigned pk_twin = Helper(ctx, "twin_pk").empty() ? 0 : RecordedOid(ctx, "twin_pk");
    if (pk_twin == 0)
      Fail(sqlstate::kUndefinedObject, Fmt("the key's index on the copy of job %1% is gone", job.id));
    const int64_t last = ApplyLog(ctx);
    for (const auto& [index, twin] : pairs) pg::SwapStorage(index, twin);
    const unsigned pk = pg::CreateIndexLike(job.relid, pk_twin, job.Opt("pk_name"), false);
    pg::SwapStorage(pk, pk_twin);
    pg::SwapStorage(job.relid, copy);
    // Every row now in the table came through the copy's NOT NULL column.
    pg::SetNotNullTrusted(job.relid, ColumnAttnum(job, col));
    const std::string pk_sql = Ident(job.Opt("pk_name"));
    Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + pk_sql + " PRIMARY KEY USING INDEX " + pk_sql);
    Exec("DROP TRIGGER IF EXISTS " + Ident(FillName(job)) + " ON " + t);
    Exec("DROP TRIGGER IF EXISTS " + Ident(LogTrigger(job)) + " ON " + t);
    FinishSequence(job);
    ctx.EventHere("info", Fmt("storage swapped; %1% last changes applied under the lock", last));
  });
  ctx.WaitPoint("swap_committed");
}

void CleanupStep(Context& ctx) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + IdText(job) + ": drop the old storage", [&]() {
    // By OID, and only while they are the job's own (after the swap the copy holds the old storage).
    const std::string copy = Helper(ctx, "copy_oid", false);
    if (!copy.empty()) Exec("DROP TABLE " + copy);
    const std::string log = Helper(ctx, "log_oid", false);
    if (!log.empty()) Exec("DROP TABLE " + log);
  });
  // Fresh statistics for the new storage and the new column (a sample: pg_repack does the same).
  // Its SHARE UPDATE EXCLUSIVE lock may be held by a VACUUM or an index build: then it is left
  // to autovacuum, with an event, rather than wait or fail a job that is done.
  try {
    ctx.TryOnce("pkonline job " + IdText(job) + ": analyze", [&]() { Exec("ANALYZE " + TableSql(job)); });
  } catch (const PgError& e) {
    if (e.sqlstate() != sqlstate::kLockNotAvailable) throw;
    ctx.Event("info", "ANALYZE skipped (" + e.message() + "); autovacuum will analyze the table");
  }
}

}  // namespace

std::vector<Step> CopySteps(const jobs::Job& job) {
  const std::string col = job.Opt("column_name");
  return {
      {"add_column",
       "ADD COLUMN " + col + " " + job.Opt("column_type") +
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
      {"catch_up", "apply the change log to the copy in rounds until little is left", "none on the table",
       CatchUpStep, nullptr},
      {"swap",
       "apply the last changes, swap the storage of the table and of each index with the copy's, "
       "ADD PRIMARY KEY USING INDEX" +
           std::string(job.OptBool("identity") ? ", identity" : ""),
       "ACCESS EXCLUSIVE, catalog only plus the last changes (milliseconds), under pkonline.lock_timeout "
       "with "
       "retries",
       SwapStep, nullptr, true},
      {"cleanup", "DROP the copy (now holding the old storage) and the change log; ANALYZE the table",
       "SHARE UPDATE EXCLUSIVE for ANALYZE's sample (skipped if it cannot have it within "
       "pkonline.lock_timeout)",
       CleanupStep, nullptr},
  };
}

}  // namespace pkonline::ops::int_pk
