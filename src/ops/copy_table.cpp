// The copy method's copy of the table and its helpers, known by the OIDs the job recorded (see
// include/pkonline/ops/copy_method.hpp, add_int_pk_copy.cpp and add_column_copy.cpp).
#include "pkonline/ops/copy_method.hpp"

#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/add_int_pk.hpp"
#include "pkonline/ops/backfill.hpp"
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

std::string FactOf(const Of& t, const std::string& key) {
  return t.relid == 0 ? key : key + "@" + std::to_string(t.relid);
}
unsigned RelidOf(const jobs::Job& job, const Of& t) { return t.relid == 0 ? job.relid : t.relid; }
std::string TableOf(const jobs::Job& job, const Of& t) { return TableSqlOf(job, RelidOf(job, t)); }
std::string HelperOf(const Of& t, const std::string& suffix) {
  return t.relid == 0 ? suffix : suffix + "_" + std::to_string(t.relid);
}

CopySpec SpecOf(const jobs::Job& job, const Of& t) {
  CopySpec s;
  if (job.operation == AddColumnPlan::kOperation) {
    const AddColumnPlan plan = AddColumnPlan::Load(job);
    s.key = plan.key_column;
    s.column = plan.column;
    s.type = plan.column_type;
    s.fill = "(" + plan.fill_sql + ")";
    s.not_null = plan.not_null;
    s.unique = plan.unique;
    s.key_is_column = false;
    return s;
  }
  if (job.operation == ConvertPkPlan::kOperation) {
    const ConvertPkPlan plan = ConvertPkPlan::Load(job);
    const unsigned relid = RelidOf(job, t);
    for (size_t n = 0; n < plan.tables.size() && n < plan.copy_keys.size(); n++)
      if (plan.tables[n] == relid) s.key = plan.copy_keys[n];
    for (size_t i = 0; i < plan.targets.size(); i++) {
      if (plan.targets[i].relid != relid) continue;
      s.column = HelperName(job, "big" + std::to_string(i));  // convert_pk.cpp's shadow of target i
      s.fill = Ident(plan.targets[i].column);
      s.not_null = plan.targets[i].not_null;
      s.nulled = plan.targets[i].column;  // the copy is as large as the rewrite's table
      if (s.key == s.nulled) s.copy_key = s.column;
    }
    if (s.key.empty() || s.column.empty())
      Fail(sqlstate::kInternal, Fmt("pkonline: job %1% has no copy of table %2%", job.id, relid));
    s.type = "bigint";
    s.unique = false;  // its indexes are built again on it (convert_pk_copy.cpp)
    s.key_is_column = false;
    s.overwrite = true;
    return s;
  }
  const AddIntPkPlan plan = AddIntPkPlan::Load(job);
  s.key = s.column = plan.column;
  s.type = plan.column_type;
  return s;
}

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
  const Json v = ctx.Recall(key);
  return v.is_null() ? 0 : static_cast<unsigned>(v.AsInt());
}

void Record(Context& ctx, const std::string& key, const std::string& name_sql) {
  const auto& job = ctx.job();
  const unsigned oid = RegclassOid(name_sql);  // created just now by this transaction: the name is ours
  if (oid == 0)
    Fail(sqlstate::kInternal, Fmt("pkonline: the helper %1% of job %2% was not found", name_sql, job.id));
  ctx.Remember(key, Json::Number(oid));
}

unsigned CopyOid(Context& ctx, const Of& t) { return RecordedOid(ctx, FactOf(t, fact::kCopyOid)); }

// The helper recorded under `key`, locked for the rest of the transaction (no DROP, no RENAME)
// and checked: still there, of its kind, owned by the table's owner, an index on the copy for an
// index. Its qualified name, for SQL run in this transaction; "" if the job has not created it,
// or (`strict` false) if it is no longer the job's own.
std::string Helper(Context& ctx, const std::string& key, bool strict, const Of& t) {
  const auto& job = ctx.job();
  const unsigned oid = RecordedOid(ctx, key);
  if (oid == 0) return "";
  pg::LockShared(oid);
  // (a copy or a log that others were granted rights on is no longer the job's own)
  auto r = Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::pg_catalog.text, "
      "c.relowner = t.relowner AND NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(c.relacl) a "
      "WHERE a.grantee <> c.relowner), i.indrelid FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_class t ON t.oid = "
      "$2::oid "
      "LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid WHERE c.oid = $1::oid",
      {V(static_cast<int64_t>(oid)), V(RelidText(job))}, false);  // sees what this transaction made
  const bool is_copy = key == FactOf(t, fact::kCopyOid), is_log = key == FactOf(t, fact::kLogOid);
  const bool index = !is_copy && !is_log;
  bool ok = !r.empty() && pg::AsBool(r.rows[0][2]) && *r.rows[0][1] == (index ? "i" : "r");
  if (ok && index) ok = r.rows[0][3] && static_cast<unsigned>(pg::AsInt(r.rows[0][3])) == CopyOid(ctx, t);
  if (ok) return *r.rows[0][0];
  if (!strict) return "";
  const std::string what = is_copy ? "copy" : is_log ? "change log" : "index on the copy";
  Fail(sqlstate::kObjectNotInState,
       Fmt("the %1% of job %2% is gone or is no longer the job's own", what, job.id),
       Fmt("The job knows its helpers by the OIDs it recorded when it created them (relation %1%).", oid),
       Fmt("pkonline.cancel(%1%) undoes the job; then start it again.", job.id));
}

std::string CopySql(Context& ctx, const Of& t) { return Helper(ctx, FactOf(t, fact::kCopyOid), true, t); }
std::string LogSql(Context& ctx, const Of& t) { return Helper(ctx, FactOf(t, fact::kLogOid), true, t); }

std::string Relfilenode(const jobs::Job& job, const Of& t) {
  return Query("SELECT pg_catalog.pg_relation_filenode($1::oid)::pg_catalog.text",
               {V(static_cast<int64_t>(RelidOf(job, t)))}, true)
      .scalar()
      .value_or("");
}

// Rows of the table must stay where they were when the job began (their position is their id).
void RequireSameStorage(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  const Json was = ctx.Recall(FactOf(t, fact::kRelfilenode));
  if (!was.is_null() && Relfilenode(job, t) != was.AsString())
    Fail(sqlstate::kObjectNotInState,
         Fmt("table %1% was rewritten while job %2% ran", TableOf(job, t), job.id),
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

Columns LiveColumns(const jobs::Job& job, unsigned copy_oid, const Of& t) {
  const CopySpec spec = SpecOf(job, t);
  const std::string column = ColumnSql(job, spec.column, RelidOf(job, t));  // fails cleanly if it was renamed
  const std::string fill = spec.fill.empty() ? pg::Internal("_tid_key") + "(ctid)::" + spec.type : spec.fill;
  const std::string copied = spec.overwrite ? fill : "COALESCE(" + column + ", " + fill + ")";
  // Every row version add_int_pk's log names has its id; add_column's may have no value yet.
  const std::string replayed = spec.fill.empty() ? column : copied;
  auto r = Query(
      "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c.attname), ', ' ORDER BY t.attnum), "
      "pg_catalog.string_agg(CASE WHEN t.attname = $3 THEN $4 WHEN t.attname = $6 THEN 'NULL' "
      "ELSE pg_catalog.quote_ident(t.attname) END, ', ' ORDER BY t.attnum), "
      "pg_catalog.string_agg(CASE WHEN t.attname = $3 THEN $5 WHEN t.attname = $6 THEN 'NULL' "
      "ELSE pg_catalog.quote_ident(t.attname) END, ', ' ORDER BY t.attnum) "
      "FROM pg_catalog.pg_attribute t JOIN pg_catalog.pg_attribute c ON c.attnum = t.attnum "
      "AND c.attrelid = $2::oid WHERE t.attrelid = $1::oid AND t.attnum > 0 AND NOT t.attisdropped",
      {V(static_cast<int64_t>(RelidOf(job, t))), V(static_cast<int64_t>(copy_oid)), V(spec.column), V(copied),
       V(replayed), V(spec.nulled)},
      true);
  return {r.rows[0][0].value_or(""), r.rows[0][1].value_or(""), r.rows[0][2].value_or("")};
}

void OwnerOnly(const std::string& name_sql) {
  // Default privileges may have granted others rights on what the owner creates: a helper is the
  // job's alone (its rows are the table's, whatever the table's grants, policies and column grants).
  auto r = Query(
      "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(g.rolname) END "
      "FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a "
      "LEFT JOIN pg_catalog.pg_roles g ON g.oid = a.grantee "
      "WHERE c.oid = pg_catalog.to_regclass($1) AND a.grantee <> c.relowner",
      {V(name_sql)}, false);
  for (const auto& row : r.rows) Exec("REVOKE ALL ON " + name_sql + " FROM " + *row[0]);
}

// CREATE TABLE for the twin: every column at its position, dropped ones as placeholders dropped
// again; the new column NOT NULL; the table's persistence, storage options and tablespace.
void CreateCopy(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  const CopySpec spec = SpecOf(job, t);
  const pg::Value relid = V(static_cast<int64_t>(RelidOf(job, t)));
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
      {relid}, true);
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
    if (*row[1] == spec.column && spec.not_null) defs += " NOT NULL";
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
      {relid}, true);
  const auto& r = rel.rows[0];
  std::string with = "autovacuum_enabled = false";  // its only reader is this job
  if (r[1]) with = *r[1] + ", " + with;
  const std::string name = HelperSql(job, HelperOf(t, "copy"));
  Exec(std::string("CREATE ") + (*r[0] == "u" ? "UNLOGGED " : "") + "TABLE " + name + " (" + defs +
       ") WITH (" + with + ")" + (r[2] ? " TABLESPACE " + Ident(*r[2]) : ""));
  Record(ctx, FactOf(t, fact::kCopyOid), name);
  if (!drops.empty()) Exec("ALTER TABLE " + CopySql(ctx, t) + drops);
  if (!storage.empty()) Exec("ALTER TABLE " + CopySql(ctx, t) + storage);
  OwnerOnly(name);
  // Only the job writes the copy: its swap trusts every row to have come through the job.
  const std::string guard = Ident(HelperName(job, "guard"));
  CreateJobTrigger(ctx, "CREATE TRIGGER " + guard + " BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON " +
                            name + " FOR EACH STATEMENT EXECUTE FUNCTION " + pg::Internal("_copy_guard") +
                            "()");
  Exec("ALTER TABLE " + name + " ENABLE ALWAYS TRIGGER " + guard);
  auto g = Query(
      "SELECT oid, xmin::pg_catalog.text FROM pg_catalog.pg_trigger WHERE tgrelid = $1::oid AND tgname = $2",
      {V(static_cast<int64_t>(CopyOid(ctx, t))), V(HelperName(job, "guard"))}, false);
  ctx.Remember(FactOf(t, fact::kCopyFilenode),
               Json::String(Query("SELECT pg_catalog.pg_relation_filenode($1::oid)::pg_catalog.text",
                                  {V(static_cast<int64_t>(CopyOid(ctx, t)))}, false)
                                .scalar()
                                .value_or("")));
  ctx.Remember(FactOf(t, fact::kCopyGuard), Json::Number(pg::AsInt(g.rows.at(0)[0])));
  ctx.Remember(FactOf(t, fact::kCopyGuardXmin), Json::String(*g.rows.at(0)[1]));
}

std::string CopyBatchSql(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  const unsigned copy = CopyOid(ctx, t);
  const std::string copy_sql = CopySql(ctx, t);
  if (copy == 0) Fail(sqlstate::kUndefinedTable, Fmt("the copy of job %1% is gone", job.id));
  const Columns c = LiveColumns(job, copy, t);
  return "INSERT INTO " + copy_sql + " (" + c.twin + ") SELECT " + c.copied + " FROM ONLY " +
         TableOf(job, t) + " WHERE ctid >= $1::pg_catalog.tid AND ctid < $2::pg_catalog.tid";
}

// The indexes of the table: (oid, valid) of each.
std::vector<std::pair<std::string, bool>> TableIndexes(const jobs::Job& job, const Of& t) {
  std::vector<std::pair<std::string, bool>> out;
  auto r = Query(
      "SELECT indexrelid::pg_catalog.text, indisvalid AND indisready AND indislive FROM pg_catalog.pg_index "
      "WHERE indrelid = $1::oid ORDER BY indexrelid",
      {V(static_cast<int64_t>(RelidOf(job, t)))}, true);
  for (const auto& row : r.rows) out.emplace_back(*row[0], pg::AsBool(row[1]));
  return out;
}

void RequireValidIndexes(const jobs::Job& job, const Of& t) {
  for (const auto& [oid, valid] : TableIndexes(job, t))
    if (!valid)
      Fail(sqlstate::kObjectNotInState,
           Fmt("index %1% of table %2% is not valid",
               *Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text", {V(oid)}, true).scalar(),
               TableOf(job, t)),
           "A failed CREATE INDEX CONCURRENTLY leaves an invalid index; the copy method cannot rebuild it.",
           "DROP INDEX it or REINDEX it, then pkonline.resume(" + IdText(job) + ").");
}

// Builds, on the twin, each index of the table that has no twin yet, and the column's unique index.
// An index built again on the copy on another column (fact::kBigTwinPrefix) has no twin: it goes
// with its column at the swap. The key's index has one all the same: a replay round finds the
// copy's rows by it.
bool Replaced(Context& ctx, const std::string& oid, const Of& t) {
  if (ctx.Recall(fact::kBigTwinPrefix + oid).is_null()) return false;
  const CopySpec spec = SpecOf(ctx.job(), t);
  if (spec.CopyKey() != spec.key) return true;  // the copy's rows are found by the bigint column's index
  const Json key = ctx.Recall(FactOf(t, fact::kKeyIndex));
  return key.is_null() || std::to_string(key.AsInt()) != oid;
}

void EnsureTwins(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  std::vector<std::pair<std::string, bool>> indexes;
  unsigned copy = 0;
  ctx.Txn("pkonline: list indexes", [&]() {
    RequireValidIndexes(job, t);
    indexes = TableIndexes(job, t);
    copy = CopyOid(ctx, t);
  });
  for (const auto& entry : indexes) {
    const std::string& oid = entry.first;
    ctx.CheckControl();
    ctx.Txn("pkonline job " + IdText(job) + ": build index on the copy", [&]() {
      if (Replaced(ctx, oid, t)) return;
      if (!Helper(ctx, fact::kTwinIndexPrefix + oid, true, t).empty()) return;
      if (Query("SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = $1::oid", {V(oid)}, true).empty())
        return;
      CopySql(ctx, t);  // the copy is still the job's own
      const unsigned twin =
          pg::CreateIndexLike(copy, static_cast<unsigned>(std::stoul(oid)), Twin(job, oid), true);
      ctx.Remember(fact::kTwinIndexPrefix + oid, Json::Number(twin));
    });
  }
  const CopySpec spec = SpecOf(job, t);
  if (!spec.unique) return;
  ctx.Txn("pkonline job " + IdText(job) + ": build the column's unique index on the copy", [&]() {
    if (!Helper(ctx, fact::kTwinPk).empty()) return;
    Exec("CREATE UNIQUE INDEX " + Ident(PkTwin(job)) + " ON " + CopySql(ctx) + " (" + Ident(spec.column) +
         ")");
    Record(ctx, fact::kTwinPk, HelperSql(job, "pk"));
  });
}

void RecordLogTrigger(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  auto r = Query(
      "SELECT oid, xmin::pg_catalog.text FROM pg_catalog.pg_trigger WHERE tgrelid = $1::oid AND tgname = $2",
      {V(static_cast<int64_t>(RelidOf(job, t))), V(LogTrigger(job))},
      false);  // sees the CREATE TRIGGER just made
  if (r.empty())
    Fail(sqlstate::kInternal, Fmt("pkonline: the change log trigger of job %1% was not found", job.id));
  ctx.Remember(FactOf(t, fact::kLogTrigger), Json::Number(pg::AsInt(r.rows[0][0])));
  ctx.Remember(FactOf(t, fact::kLogTriggerXmin), Json::String(*r.rows[0][1]));
}

void RequireLogTrigger(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  const Json oid = ctx.Recall(FactOf(t, fact::kLogTrigger)),
             xmin = ctx.Recall(FactOf(t, fact::kLogTriggerXmin));
  const pg::Value relid = V(static_cast<int64_t>(RelidOf(job, t)));
  bool ok;
  if (oid.is_null()) {
    ok = !Query(
              "SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1::oid AND tgname = $2 AND tgenabled = "
              "'A'",
              {relid, V(LogTrigger(job))}, true)
              .empty();
  } else {
    ok = !Query(
              "SELECT 1 FROM pg_catalog.pg_trigger WHERE oid = $1::oid AND tgrelid = $2::oid AND tgenabled = "
              "'A' "
              "AND xmin::pg_catalog.text = $3",
              {V(oid.AsInt()), relid, V(xmin.is_null() ? "" : xmin.AsString())}, true)
              .empty();
  }
  if (!ok)
    Fail(sqlstate::kObjectNotInState,
         Fmt("the change log trigger of job %1% on %2% was disabled, altered or dropped while the job ran",
             job.id, TableOf(job, t)),
         "Rows written while it did not fire are in no log: the copy would lose them.",
         Fmt("pkonline.cancel(%1%) undoes the job; then start it again and leave its trigger as it is.",
             job.id));
}

void RequireSourceAsCopied(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  const std::string table = TableOf(job, t);
  // Locked first: a change to the table's row security (ACCESS EXCLUSIVE) is then either seen here
  // or made after this transaction.
  Exec("LOCK TABLE " + table + " IN ACCESS SHARE MODE");
  auto r = Query("SELECT relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = $1::oid",
                 {V(static_cast<int64_t>(RelidOf(job, t)))}, false);
  if (!r.empty() && pg::AsBool(r.scalar()))
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("table %1% was given FORCE ROW LEVEL SECURITY while job %2% ran", table, job.id),
         "The job, working as the table's owner, would copy only the rows the policies let it see.",
         Fmt("ALTER TABLE %1% NO FORCE ROW LEVEL SECURITY, then pkonline.resume(%2%); or "
             "pkonline.cancel(%2%).",
             table, job.id));
}

void RequireCopyAsMade(Context& ctx, unsigned copy, const Of& t) {
  const auto& job = ctx.job();
  const CopySpec spec = SpecOf(job, t);
  // Its only trigger is the guard the job made (jobs made before the guard: none), unchanged and
  // enabled ALWAYS (any ALTER of it makes a new row version).
  const Json guard = ctx.Recall(FactOf(t, fact::kCopyGuard)),
             guard_xmin = ctx.Recall(FactOf(t, fact::kCopyGuardXmin));
  // Nor rewritten (ALTER … TYPE … USING, SET TABLESPACE, VACUUM FULL, CLUSTER): no DML trigger
  // fires for a rewrite, and the job never rewrites its copy.
  const Json filenode = ctx.Recall(FactOf(t, fact::kCopyFilenode));
  auto r = Query(
      "SELECT c.relpersistence = t.relpersistence AND NOT c.relhasrules AND NOT c.relrowsecurity "
      "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid AND NOT (g.oid = "
      "$5::oid "
      "AND g.xmin::pg_catalog.text = $6 AND g.tgenabled = 'A')) "
      "AND ($5::oid = 0 OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid AND g.oid = "
      "$5::oid)) "
      "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid) "
      "AND NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(c.relacl) a WHERE a.grantee <> c.relowner) "
      "AND ($7 = '' OR pg_catalog.pg_relation_filenode(c.oid)::pg_catalog.text = $7) "
      "AND (NOT $3::boolean OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid "
      "AND a.attname = $4 AND a.attnotnull)) "
      "FROM pg_catalog.pg_class c, pg_catalog.pg_class t WHERE c.oid = $1::oid AND t.oid = $2::oid",
      {V(static_cast<int64_t>(copy)), V(static_cast<int64_t>(RelidOf(job, t))),
       V(spec.not_null ? "true" : "false"), V(spec.column), V(guard.is_null() ? int64_t{0} : guard.AsInt()),
       V(guard_xmin.is_null() ? "" : guard_xmin.AsString()),
       V(filenode.is_null() ? "" : filenode.AsString())},
      true);
  if (r.empty() || !pg::AsBool(r.scalar()))
    Fail(sqlstate::kObjectNotInState, Fmt("the copy of job %1% was altered while the job ran", job.id),
         "Its storage, persistence, NOT NULL column, grants, rules, triggers (its guard among them) or "
         "policies are no longer those the job gave it.",
         Fmt("pkonline.cancel(%1%) undoes the job; then start it again.", job.id));
}

std::string FreeIndexName(Context& ctx, const std::string& wanted, const std::string& column,
                          const std::string& label) {
  const auto& job = ctx.job();
  auto r = Query(
      "SELECT c.relnamespace, c.relname, EXISTS (SELECT 1 FROM pg_catalog.pg_class x WHERE x.relnamespace = "
      "c.relnamespace AND x.relname = $2) OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE "
      "k.conrelid = c.oid AND k.conname = $2) FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
      {V(RelidText(job)), V(wanted)}, true);
  if (r.empty() || !pg::AsBool(r.rows[0][2])) return wanted;
  const std::string name =
      pg::ChooseName(*r.rows[0][1], column, label, static_cast<unsigned>(pg::AsInt(r.rows[0][0])), true);
  ctx.EventHere("info", Fmt("the name %1% was taken meanwhile: the index and its constraint are named %2%",
                            pg::Ident(wanted), pg::Ident(name)));
  return name;
}

void RequireKeyIndex(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  const Json index = ctx.Recall(FactOf(t, fact::kKeyIndex)), attnum = ctx.Recall(FactOf(t, fact::kKeyAttnum));
  const bool ok =
      !index.is_null() && !attnum.is_null() &&
      !Query(
           "SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = $1::oid AND indrelid = $2::oid AND "
           "indisprimary AND indisvalid AND indisready AND indnkeyatts = 1 AND indkey[0] = $3::int2",
           {V(index.AsInt()), V(static_cast<int64_t>(RelidOf(job, t))), V(attnum.AsInt())}, true)
           .empty();
  if (!ok)
    Fail(sqlstate::kObjectNotInState,
         Fmt("the primary key of %1% changed while job %2% ran", TableOf(job, t), job.id),
         "The copy method finds the copy's row of each row written during the job by that key.",
         Fmt("pkonline.cancel(%1%) undoes the job; then start it again.", job.id));
}

std::string KeyTwin(Context& ctx, const Of& t) {
  const CopySpec spec = SpecOf(ctx.job(), t);
  if (spec.key_is_column) return Helper(ctx, fact::kTwinPk);
  const Json index = ctx.Recall(FactOf(t, fact::kKeyIndex));
  if (index.is_null()) return "";
  // the key's index built again on the bigint column (convert_pk_to_bigint's key table), or its twin
  const char* prefix = spec.CopyKey() != spec.key ? fact::kBigTwinPrefix : fact::kTwinIndexPrefix;
  return Helper(ctx, prefix + std::to_string(index.AsInt()), true, t);
}

}  // namespace pkonline::ops::copy
