// convert_pk_to_bigint: an integer primary key, and every integer column of a foreign key
// referencing it, made bigint online (the shadow-column method).
//
// Steps: add a bigint shadow column beside each converted column, kept equal to it by a row
// trigger (brief, all tables at once) -> backfill the shadows in ctid batches, table by table ->
// CHECK (shadow IS NOT NULL) NOT VALID where the column is NOT NULL (brief) -> VALIDATE (scan,
// DML continues) -> every index containing a converted column built again concurrently on the
// shadow -> swap (brief, one transaction over every table, ACCESS EXCLUSIVE in OID order): the
// foreign keys dropped, each old column dropped and its shadow renamed to its name, NOT NULL
// from the validated check, default / identity / sequence moved and the sequence made bigint,
// the new indexes renamed and the key (and unique constraints) attached USING INDEX, comment,
// grants, statistics target and replica identity kept, the foreign keys re-added NOT VALID, the
// triggers dropped -> the foreign keys validated (SHARE UPDATE EXCLUSIVE: DML continues).
#include "pkonline/ops/convert_pk.hpp"

#include <algorithm>
#include <optional>
#include <set>

#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/convert_pk_parts.hpp"
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/column_default.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/pg/user_code.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops {

using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;

std::string OtherUses(unsigned key_relid, unsigned relid, const std::string& column) {
  auto r = Query(
      "SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) FROM "
      "pg_catalog.pg_depend d "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
      "WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1::oid "
      "AND a.attname = $2 AND d.deptype IN ('n', 'a') "
      "AND NOT (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND (SELECT relkind FROM "
      "pg_catalog.pg_class WHERE oid = d.objid) IN ('i', 'S')) "
      "AND NOT (d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND (SELECT adnum FROM "
      "pg_catalog.pg_attrdef WHERE oid = d.objid) = a.attnum) "
      "AND NOT (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND EXISTS (SELECT 1 FROM "
      "pg_catalog.pg_constraint c WHERE c.oid = d.objid AND (c.contype = 'p' OR (c.contype = 'u' AND NOT "
      "c.condeferrable) OR (c.contype = 'f' AND c.confrelid = $3::oid) "
      "OR (c.contype = 'c' AND c.conname LIKE 'pkonline\\_%')))) "
      "AND NOT (d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND EXISTS (SELECT 1 FROM "
      "pg_catalog.pg_trigger t WHERE t.oid = d.objid AND t.tgname LIKE '~pkonline\\_%')) "
      "ORDER BY 1",
      {V(static_cast<int64_t>(relid)), V(column), V(static_cast<int64_t>(key_relid))}, false);
  std::string list;
  for (const auto& row : r.rows) list += (list.empty() ? "" : "; ") + row[0].value_or("?");
  return list;
}

namespace convert {

ConvertPkPlan Plan(const jobs::Job& job) { return ConvertPkPlan::Load(job); }
std::string N(size_t i) { return std::to_string(i); }
// The job's helpers, per target i: the shadow column, its trigger (and the trigger's function),
// its NOT NULL check; per index replaced: the index built on the shadows.
std::string Shadow(const jobs::Job& job, size_t i) { return HelperName(job, "big" + N(i)); }
// The sync trigger must fire after every other BEFORE ROW trigger (they fire in name order, and one
// that changes the column after the copy was made would leave the two apart): "~" sorts after
// letters and digits. add_columns refuses a table with a trigger that would still fire later.
std::string SyncName(const jobs::Job& job, size_t i) { return "~" + HelperName(job, "sync" + N(i)); }
std::string CheckName(const jobs::Job& job, size_t i) { return HelperName(job, "nn" + N(i)); }
std::string NewIndexName(const jobs::Job& job, const std::string& old_oid) {
  return HelperName(job, "ix" + old_oid);
}

// The current name of a table the job touches; fails if it was dropped, or (for a table other
// than the job's own, whose owner the runner checks) if its owner is no longer the role the job
// works as.
std::string TableOf(const jobs::Job& job, unsigned relid) { return TableSqlOf(job, relid); }

// A column of a table, by name; "" if there is none.
int Attnum(unsigned relid, const std::string& column) {
  return static_cast<int>(pg::AsInt(Query("SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = "
                                          "$1::oid AND attname = $2 AND NOT attisdropped",
                                          {V(static_cast<int64_t>(relid)), V(column)}, false)
                                        .scalar(),
                                    0));
}

// The shadow column of target i, found by the attnum recorded when it was added: its name, or ""
// if the job has not added it (or it is gone).
std::string ShadowColumn(Context& ctx, const Target& t, size_t i) {
  const Json attnum = ctx.Recall(fact::kShadowAttnumPrefix + N(i));
  if (attnum.is_null()) return "";
  return Query(
             "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attnum = $2::int2 "
             "AND NOT attisdropped",
             {V(static_cast<int64_t>(t.relid)), V(attnum.AsInt())}, false)
      .scalar()
      .value_or("");
}

std::vector<unsigned> TargetTables(const ConvertPkPlan& plan) {
  std::set<unsigned> relids;
  for (const auto& t : plan.targets) relids.insert(t.relid);
  return {relids.begin(), relids.end()};
}

// ACCESS EXCLUSIVE on every table, in OID order (every job and the swap take them so).
void LockAll(const jobs::Job& job, const std::vector<unsigned>& relids) {
  std::vector<unsigned> sorted = relids;
  std::sort(sorted.begin(), sorted.end());
  for (unsigned relid : sorted) Exec("LOCK TABLE " + TableOf(job, relid) + " IN ACCESS EXCLUSIVE MODE");
}

// After the swap the key's shadow carries the key's name: nothing before it can be undone (a
// cancel that raced the swap must never drop what is now the key).
void RequireNotSwapped(Context& ctx, const ConvertPkPlan& plan) {
  if (!pg::LookupRelation(plan.targets[0].relid)) return;
  if (ShadowColumn(ctx, plan.targets[0], 0) == plan.targets[0].column)
    Fail(sqlstate::kObjectNotInState,
         Fmt("the swap of job %1% is done: %2%.%3% is bigint already; nothing to undo", ctx.job().id,
             plan.targets[0].table, Ident(plan.targets[0].column)),
         "", Fmt("pkonline.resume(%1%) finishes the job.", ctx.job().id));
}

// Row triggers that fire BEFORE INSERT or UPDATE after the job's sync trigger would change a row
// after its bigint copy was made.
void RequireSyncFiresLast(const jobs::Job& job, const Target& t, size_t i) {
  auto r = Query(
      "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(tgname), ', ' ORDER BY tgname) FROM "
      "pg_catalog.pg_trigger WHERE tgrelid = $1::oid AND NOT tgisinternal AND tgenabled <> 'D' "
      "AND (tgtype & 2) = 2 AND (tgtype & 1) = 1 AND (tgtype & 20) <> 0 "
      "AND tgname::pg_catalog.text COLLATE \"C\" > $2 COLLATE \"C\" AND tgname NOT LIKE '~pkonline\\_%'",
      {V(static_cast<int64_t>(t.relid)), V(SyncName(job, i))}, false);
  if (r.empty() || !r.scalar()) return;
  Fail(sqlstate::kFeatureNotSupported,
       Fmt("table %1% has BEFORE ROW triggers that fire after the job's (%2%)", t.table, *r.scalar()),
       "Triggers fire in name order; one that fires after the job's could change " + Ident(t.column) +
           " after its bigint copy was made.",
       "Rename them so that they sort before \"~\", then pkonline.resume the job; or pkonline.cancel it.");
}

// --- add_columns --------------------------------------------------------------------------------
void AddColumns(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": add bigint columns", [&]() {
    LockAll(job, TargetTables(plan));
    if (!ctx.Recall(fact::kShadowAttnumPrefix + N(0)).is_null())
      return;  // done: this step is one transaction
    for (size_t i = 0; i < plan.targets.size(); i++) {
      const Target& t = plan.targets[i];
      const std::string table = TableOf(job, t.relid);
      if (Attnum(t.relid, t.column) == 0)
        Fail(sqlstate::kUndefinedColumn, Fmt("column \"%1%\" of %2% no longer exists", t.column, table), "",
             Fmt("pkonline.cancel(%1%).", job.id));
      RequireSyncFiresLast(job, t, i);
      const std::string shadow = Ident(Shadow(job, i));
      Exec("ALTER TABLE " + table + " ADD COLUMN " + shadow + " bigint");
      ctx.Remember(fact::kShadowAttnumPrefix + N(i), Json::Number(Attnum(t.relid, Shadow(job, i))));
      // Every row version written from now on carries its value in the shadow too (also writes
      // made with session_replication_role = replica: ENABLE ALWAYS). pkonline_internal._sync_bigint (C,
      // src/pg/capture.cpp) finds the two columns from the job's records.
      CreateJobTrigger(ctx, "CREATE TRIGGER " + Ident(SyncName(job, i)) + " BEFORE INSERT OR UPDATE ON " +
                                table + " FOR EACH ROW EXECUTE FUNCTION " + pg::Internal("_sync_bigint") +
                                "(" + pg::Literal(IdText(job)) + ", " + pg::Literal(N(i)) + ")");
      Exec("ALTER TABLE " + table + " ENABLE ALWAYS TRIGGER " + Ident(SyncName(job, i)));
    }
  });
}

void UndoAddColumns(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": undo bigint columns", [&]() {
    RequireNotSwapped(ctx, plan);
    for (size_t i = 0; i < plan.targets.size(); i++) {
      const Target& t = plan.targets[i];
      if (!pg::LookupRelation(t.relid)) continue;
      const std::string table = TableOf(job, t.relid);
      Exec("DROP TRIGGER IF EXISTS " + Ident(SyncName(job, i)) + " ON " + table);
      const std::string shadow = ShadowColumn(ctx, t, i);
      if (!shadow.empty()) Exec("ALTER TABLE " + table + " DROP COLUMN " + Ident(shadow));
    }
  });
}

// --- backfill -----------------------------------------------------------------------------------
void Backfill(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  std::vector<TableWalk> walks;
  for (size_t i = 0; i < plan.targets.size(); i++) {
    const Target& t = plan.targets[i];
    TableWalk w;
    w.relid = t.relid;
    w.name = t.table + "." + Ident(t.column);
    w.table_sql = [&job, relid = t.relid]() { return TableOf(job, relid); };
    w.sql = [&job, &ctx, t, i]() {
      const std::string shadow = ShadowColumn(ctx, t, i);
      if (shadow.empty())
        Fail(sqlstate::kUndefinedColumn, Fmt("the bigint column of job %1% is gone", job.id));
      const std::string col = Ident(t.column), big = Ident(shadow);
      if (Attnum(t.relid, t.column) == 0)
        Fail(sqlstate::kUndefinedColumn, Fmt("column \"%1%\" of %2% no longer exists", t.column, t.table));
      return "UPDATE " + TableOf(job, t.relid) + " SET " + big + " = " + col +
             " WHERE ctid >= $1::pg_catalog.tid AND ctid < $2::pg_catalog.tid AND " + big +
             " IS DISTINCT FROM " + col;
    };
    walks.push_back(std::move(w));
  }
  BackfillTables(ctx, walks);
}

// --- NOT NULL checks -------------------------------------------------------------------------------
bool HasCheck(unsigned relid, const std::string& name, bool* validated = nullptr) {
  auto r =
      Query("SELECT convalidated FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = $2",
            {V(static_cast<int64_t>(relid)), V(name)}, false);
  if (r.empty()) return false;
  if (validated) *validated = pg::AsBool(r.scalar());
  return true;
}

void AddChecks(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": add checks not valid", [&]() {
    for (size_t i = 0; i < plan.targets.size(); i++) {
      const Target& t = plan.targets[i];
      if (!t.not_null || HasCheck(t.relid, CheckName(job, i))) continue;
      const std::string shadow = ShadowColumn(ctx, t, i);
      if (shadow.empty())
        Fail(sqlstate::kUndefinedColumn, Fmt("the bigint column of job %1% is gone", job.id));
      Exec("ALTER TABLE " + TableOf(job, t.relid) + " ADD CONSTRAINT " + Ident(CheckName(job, i)) +
           " CHECK (" + Ident(shadow) + " IS NOT NULL) NOT VALID");
    }
  });
}

void DropChecks(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": drop checks", [&]() {
    RequireNotSwapped(ctx, plan);
    for (size_t i = 0; i < plan.targets.size(); i++) {
      const Target& t = plan.targets[i];
      if (t.not_null && pg::LookupRelation(t.relid))
        Exec("ALTER TABLE " + TableOf(job, t.relid) + " DROP CONSTRAINT IF EXISTS " +
             Ident(CheckName(job, i)));
    }
  });
}

void ValidateChecks(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  for (size_t i = 0; i < plan.targets.size(); i++) {
    const Target& t = plan.targets[i];
    if (!t.not_null) continue;
    ctx.Txn("pkonline job " + IdText(job) + ": validate " + CheckName(job, i), [&]() {
      bool validated = false;
      if (!HasCheck(t.relid, CheckName(job, i), &validated))
        Fail(sqlstate::kUndefinedObject, Fmt("constraint %1% of %2% was dropped", CheckName(job, i), t.table),
             "", Fmt("pkonline.cancel(%1%), then start again.", job.id));
      if (!validated)
        Exec("ALTER TABLE " + TableOf(job, t.relid) + " VALIDATE CONSTRAINT " + Ident(CheckName(job, i)));
    });
  }
}

// --- indexes -------------------------------------------------------------------------------------
// An index of one of the job's tables that contains converted columns (as a key or INCLUDE
// column, in an expression or in its predicate: PostgreSQL records a dependency on each).
std::vector<OldIndex> IndexesToRebuild(const ConvertPkPlan& plan) {
  std::vector<OldIndex> out;
  for (size_t i = 0; i < plan.targets.size(); i++) {
    const Target& t = plan.targets[i];
    // A key or INCLUDE column is in indkey; a column in an expression or the predicate has a
    // dependency of the index's own (a constraint's index depends on its constraint instead).
    auto r = Query(
        "WITH col AS (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 "
        "AND NOT attisdropped) "
        "SELECT i.indexrelid::pg_catalog.text FROM pg_catalog.pg_index i, col "
        "WHERE i.indrelid = $1::oid AND col.attnum = ANY (i.indkey::pg_catalog.int2[]) "
        "UNION SELECT d.objid::pg_catalog.text FROM pg_catalog.pg_depend d "
        "JOIN pg_catalog.pg_class c ON c.oid = d.objid AND c.relkind = 'i', col "
        "WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
        "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1::oid "
        "AND d.refobjsubid = col.attnum ORDER BY 1",
        {V(static_cast<int64_t>(t.relid)), V(t.column)}, false);
    for (const auto& row : r.rows) {
      auto same = std::find_if(out.begin(), out.end(), [&](const OldIndex& x) { return x.oid == *row[0]; });
      if (same == out.end())
        out.push_back({*row[0], t.relid, {i}});
      else
        same->targets.push_back(i);
    }
  }
  return out;
}

// The index the job built for `old`, if it is there: its OID (0 if none) and whether it is valid.
// Known by the OID recorded once it was built; before that by its name, on this table only (only
// the table's owner, whom the job works as, can have made an index on it).
unsigned BuiltIndex(Context& ctx, const OldIndex& old, bool* valid) {
  const Json recorded = ctx.Recall(fact::kTwinIndexPrefix + old.oid);
  auto r = recorded.is_null()
               ? Query(
                     "SELECT c.oid, i.indisvalid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON "
                     "i.indexrelid = c.oid WHERE c.relname = $1 AND i.indrelid = $2::oid",
                     {V(NewIndexName(ctx.job(), old.oid)), V(static_cast<int64_t>(old.relid))}, false)
               : Query(
                     "SELECT c.oid, i.indisvalid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON "
                     "i.indexrelid = c.oid WHERE c.oid = $1::oid AND i.indrelid = $2::oid",
                     {V(recorded.AsInt()), V(static_cast<int64_t>(old.relid))}, false);
  if (r.empty()) return 0;
  *valid = pg::AsBool(r.rows[0][1]);
  return static_cast<unsigned>(pg::AsInt(r.rows[0][0]));
}

// An index built again on the bigint column resolves its functions, operators, operator classes
// and collations anew (for bigint operands): one a user made could be replaced by another role's
// overload, run by every later writer. Only built-in ones are carried over (the build checks
// what the new definition resolved to as well: pg::RequireBuiltInIndexStmt).
// An operator class written out for a converted column (one that is not the default for integer)
// takes integer only: built again on bigint the index would fail, after the backfill.
std::string NonDefaultOpclass(const ConvertPkPlan& plan, const OldIndex& old) {
  for (size_t i : old.targets) {
    auto r = Query(
        "SELECT 'operator class ' || opc.opcname || ' of column ' || pg_catalog.quote_ident($3) FROM "
        "pg_catalog.pg_index i, pg_catalog.generate_series(0, i.indnkeyatts - 1) k, pg_catalog.pg_opclass "
        "opc "
        "WHERE i.indexrelid = $1::oid AND i.indkey[k] = (SELECT attnum FROM pg_catalog.pg_attribute WHERE "
        "attrelid = $2::oid AND attname = $3 AND NOT attisdropped) AND opc.oid = i.indclass[k] AND NOT "
        "opc.opcdefault LIMIT 1",
        {V(old.oid), V(static_cast<int64_t>(old.relid)), V(plan.targets[i].column)}, false);
    if (!r.empty()) return *r.scalar() + ", which is not the default and takes integer only";
  }
  return "";
}

std::string NotCarried(const ConvertPkPlan& plan, const OldIndex& old) {
  const std::string what = pg::IndexNotBuiltIn(static_cast<unsigned>(std::stoul(old.oid)));
  return what.empty() ? NonDefaultOpclass(plan, old) : what + ", which is not built in";
}

void RequireBuiltInIndex(const jobs::Job& job, const ConvertPkPlan& plan, const OldIndex& old) {
  const std::string index_oid = old.oid;
  const std::string what = NotCarried(plan, old);
  if (what.empty()) return;
  Fail(sqlstate::kFeatureNotSupported,
       Fmt("index %1% uses %2%, which is not built in",
           *Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text", {V(index_oid)}, true).scalar(),
           what),
       "Built again on a bigint column, the index would look its functions, operators, operator classes and "
       "collations up anew, and could find another role's.",
       Fmt("Drop the index for the time of the job and create it again afterwards; pkonline.cancel(%1%).",
           job.id));
}

void BuildIndexes(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  std::vector<OldIndex> olds;
  ctx.Txn("pkonline job " + IdText(job) + ": indexes to build", [&]() { olds = IndexesToRebuild(plan); });
  for (const auto& old : olds) {
    ctx.CheckControl();
    bool valid = false;
    unsigned built = 0;
    std::string definition, index_sql;
    std::vector<std::pair<std::string, std::string>> renames;
    ctx.Txn("pkonline job " + IdText(job) + ": check index", [&]() {
      built = BuiltIndex(ctx, old, &valid);
      if (built != 0)
        index_sql = *Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text",
                           {V(static_cast<int64_t>(built))}, true)
                         .scalar();
      if (built != 0 && valid) {
        ctx.Remember(fact::kTwinIndexPrefix + old.oid, Json::Number(built));
        return;
      }
      TableOf(job, old.relid);
      const auto def = Query("SELECT pg_catalog.pg_get_indexdef($1::oid)", {V(old.oid)}, false).scalar();
      if (!def) return;  // dropped meanwhile: nothing to build
      RequireBuiltInIndex(job, plan, old);
      definition = *def;
      for (size_t i : old.targets) {
        const std::string shadow = ShadowColumn(ctx, plan.targets[i], i);
        if (shadow.empty())
          Fail(sqlstate::kUndefinedColumn, Fmt("the bigint column of job %1% is gone", job.id));
        renames.emplace_back(plan.targets[i].column, shadow);
      }
    });
    if ((built != 0 && valid) || definition.empty()) continue;
    ctx.WaitPoint("create_index");
    if (built != 0) {
      ctx.Event("info", "dropping INVALID index " + index_sql + " left by an interrupted build");
      ctx.TopLevel("DROP INDEX CONCURRENTLY IF EXISTS " + index_sql);
    }
    ctx.TopLevelIndexLike(definition, renames, NewIndexName(job, old.oid));
    ctx.Txn("pkonline job " + IdText(job) + ": record index", [&]() {
      const unsigned made = BuiltIndex(ctx, old, &valid);
      if (made == 0 || !valid)
        Fail(sqlstate::kInternal, Fmt("pkonline: the index %1% of job %2% was not found after its build",
                                      NewIndexName(job, old.oid), job.id));
      ctx.Remember(fact::kTwinIndexPrefix + old.oid, Json::Number(made));
    });
  }
}

void DropIndexes(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  std::vector<std::string> drop;
  ctx.Txn("pkonline job " + IdText(job) + ": indexes to drop", [&]() {
    RequireNotSwapped(ctx, plan);
    for (const auto& old : IndexesToRebuild(plan)) {
      bool valid = false;
      const unsigned built = BuiltIndex(ctx, old, &valid);
      if (built != 0)
        drop.push_back(*Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text",
                              {V(static_cast<int64_t>(built))}, true)
                            .scalar());
    }
  });
  for (const auto& index : drop) ctx.TopLevel("DROP INDEX CONCURRENTLY IF EXISTS " + index);
}

// --- the swap ------------------------------------------------------------------------------------
// Foreign keys referencing the key column.
std::vector<ForeignKey> ReferencingKeys(const jobs::Job& job, const std::string& key_column) {
  auto r = Query(
      "SELECT c.conrelid, pg_catalog.format('%I.%I', n.nspname, rc.relname), c.conname, "
      "pg_catalog.pg_get_constraintdef(c.oid), c.convalidated FROM pg_catalog.pg_constraint c "
      "JOIN pg_catalog.pg_class rc ON rc.oid = c.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = "
      "rc.relnamespace "
      "WHERE c.contype = 'f' AND c.confrelid = $1::oid AND c.confkey = ARRAY[(SELECT attnum FROM "
      "pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 AND NOT attisdropped)]::int2[] "
      "ORDER BY c.oid",
      {V(RelidText(job)), V(key_column)}, false);
  std::vector<ForeignKey> out;
  for (const auto& row : r.rows)
    out.push_back({static_cast<unsigned>(pg::AsInt(row[0])), *row[1], *row[2], *row[3], pg::AsBool(row[4])});
  return out;
}

// What a column carries besides its values, read before it is dropped and given to its shadow.
struct ColumnExtras {
  std::string default_tree;      // the DEFAULT expression (not an identity), analysed (adbin)
  char identity = 0;             // 'a' ALWAYS, 'd' BY DEFAULT, 0 none
  std::string sequence;          // the sequence of its identity or of a serial-like DEFAULT it owns
  std::string default_sequence;  // the sequence its DEFAULT draws from (owned or not)
  std::string comment;           // null: none
  bool has_comment = false;
  int stattarget = -1;
  std::vector<std::string> grants;  // GRANT statements' texts, "<privilege> (col) ... TO <role>"
};

ColumnExtras ReadExtras(unsigned relid, const std::string& table, const std::string& column) {
  ColumnExtras x;
  auto r = Query(
      "SELECT d.adbin::pg_catalog.text, a.attidentity::pg_catalog.text, "
      "pg_catalog.pg_get_serial_sequence($3, a.attname), pg_catalog.col_description(a.attrelid, a.attnum), "
      "a.attstattarget FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = "
      "a.attrelid "
      "AND d.adnum = a.attnum WHERE a.attrelid = $1::oid AND a.attname = $2 AND NOT a.attisdropped",
      {V(static_cast<int64_t>(relid)), V(column), V(table)}, false);
  const auto& row = r.rows.at(0);
  x.identity = row[1] && !row[1]->empty() ? (*row[1])[0] : 0;
  if (!x.identity) x.default_tree = row[0].value_or("");
  x.sequence = row[2].value_or("");
  x.has_comment = row[3].has_value();
  x.comment = row[3].value_or("");
  x.stattarget = static_cast<int>(pg::AsInt(row[4], -1));
  if (!x.identity)
    x.default_sequence =
        Query(
            "SELECT pg_catalog.format('%I.%I', n.nspname, s.relname) FROM pg_catalog.pg_attrdef d "
            "JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass "
            "AND dep.objid = d.oid AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
            "JOIN pg_catalog.pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S' "
            "JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace "
            "WHERE d.adrelid = $1::oid AND d.adnum = (SELECT attnum FROM pg_catalog.pg_attribute WHERE "
            "attrelid = "
            "$1::oid AND attname = $2) LIMIT 1",
            {V(static_cast<int64_t>(relid)), V(column)}, false)
            .scalar()
            .value_or("");
  auto g = Query(
      "SELECT a.privilege_type || ' (' || pg_catalog.quote_ident($2) || ') ON ' || $3 || ' TO ' || "
      "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END || "
      "CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END "
      "FROM pg_catalog.pg_attribute t, pg_catalog.aclexplode(t.attacl) a "
      "LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee "
      "WHERE t.attrelid = $1::oid AND t.attname = $2 AND NOT t.attisdropped",
      {V(static_cast<int64_t>(relid)), V(column), V(table)}, false);
  for (const auto& row2 : g.rows) x.grants.push_back(*row2[0]);
  return x;
}

// The replaced indexes of one table: (old name, new index's current name, constraint type of the
// old one: 'p', 'u' or none).
// An index of a table the swap replaces: its name, the new index's current name, the constraint
// it backs ('p' or 'u', and its name), whether it is the replica identity.
struct Replaced {
  std::string old_name, new_sql;
  char contype = 0;
  std::string conname;
  bool replica_identity = false;
  bool clustered = false;
  std::optional<std::string> comment;
};

std::vector<Replaced> ReplacedIndexes(Context& ctx, const std::vector<OldIndex>& olds, unsigned relid) {
  std::vector<Replaced> out;
  for (const auto& old : olds) {
    if (old.relid != relid) continue;
    auto r = Query(
        "SELECT c.relname, con.contype::pg_catalog.text, con.conname, i.indisreplident, i.indisclustered, "
        "pg_catalog.obj_description(c.oid, 'pg_class') "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid "
        "LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = c.oid AND con.contype IN ('p', 'u') "
        "AND con.conrelid = i.indrelid WHERE c.oid = $1::oid",
        {V(old.oid)}, false);
    if (r.empty()) continue;  // dropped meanwhile: nothing to replace
    bool valid = false;
    const unsigned built = BuiltIndex(ctx, old, &valid);
    if (built == 0 || !valid)
      Fail(SqlState("55000"),
           Fmt("index %1% of %2% has no bigint twin built by job %3%", *r.rows[0][0],
               TableOf(ctx.job(), relid), ctx.job().id),
           "It was created or built again while the job ran.",
           Fmt("pkonline.resume(%1%) builds it, then swaps.", ctx.job().id));
    const auto& row = r.rows[0];
    out.push_back({*row[0],
                   *Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text",
                          {V(static_cast<int64_t>(built))}, false)
                        .scalar(),
                   row[1] ? (*row[1])[0] : char(0), row[2].value_or(""), pg::AsBool(row[3]),
                   pg::AsBool(row[4]), row[5]});
  }
  return out;
}

// One table's part of the swap (the table locked ACCESS EXCLUSIVE, the foreign keys referencing the
// key dropped): each converted column of it replaced by its bigint twin, with all it carries.
void SwapTable(Context& ctx, const ConvertPkPlan& plan, unsigned relid, const std::vector<OldIndex>& olds) {
  const auto& job = ctx.job();
  const std::string table = TableOf(job, relid);
  struct Column {
    size_t i;
    std::string col, big;
    bool not_null;
    ColumnExtras x;
    std::string next_identity, identity_options;
  };
  std::vector<Column> cols;
  for (size_t i = 0; i < plan.targets.size(); i++) {
    const Target& t = plan.targets[i];
    if (t.relid != relid) continue;
    const std::string shadow = ShadowColumn(ctx, t, i);
    if (shadow.empty()) Fail(sqlstate::kUndefinedColumn, Fmt("the bigint column of job %1% is gone", job.id));
    if (Attnum(relid, t.column) == 0)
      Fail(sqlstate::kUndefinedColumn, Fmt("column \"%1%\" of %2% no longer exists", t.column, table), "",
           Fmt("pkonline.cancel(%1%).", job.id));
    // Added while the job ran, these would go with the column: refused again, under the lock.
    const std::string others = OtherUses(plan.targets[0].relid, relid, t.column);
    if (!others.empty())
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("column %1% of %2% is now used by: %3%", Ident(t.column), table, others),
           "They were created while the job ran; the swap would drop them with the column.",
           Fmt("Drop them, pkonline.resume(%1%), and create them again afterwards; or pkonline.cancel(%1%).",
               job.id));
    const bool not_null = pg::AsBool(Query("SELECT attnotnull FROM pg_catalog.pg_attribute WHERE attrelid = "
                                           "$1::oid AND attname = $2 AND NOT attisdropped",
                                           {V(static_cast<int64_t>(relid)), V(t.column)}, false)
                                         .scalar());
    cols.push_back({i, t.column, shadow, not_null, ReadExtras(relid, table, t.column), "", ""});
  }
  const std::vector<Replaced> replaced = ReplacedIndexes(ctx, olds, relid);
  for (auto& c : cols) {
    if (c.x.identity) {
      auto s = Query(
          "SELECT pg_catalog.nextval($1::pg_catalog.regclass), seqincrement, seqcache, seqmin, seqcycle FROM "
          "pg_catalog.pg_sequence WHERE seqrelid = $1::pg_catalog.regclass",
          {V(c.x.sequence)});
      c.next_identity = *s.rows[0][0];
      c.identity_options = " INCREMENT BY " + *s.rows[0][1] + " CACHE " + *s.rows[0][2] + " MINVALUE " +
                           *s.rows[0][3] + (pg::AsBool(s.rows[0][4]) ? " CYCLE" : "");
    } else if (!c.x.sequence.empty()) {
      // A serial's sequence (owned by the column) would go with it: it moves to the bigint one.
      Exec("ALTER SEQUENCE " + c.x.sequence + " OWNED BY " + table + "." + Ident(c.big));
    }
  }
  // The old columns go, with their indexes and constraints; the bigint ones take their names.
  for (const auto& c : cols) Exec("ALTER TABLE " + table + " DROP COLUMN " + Ident(c.col));
  for (const auto& c : cols) {
    Exec("ALTER TABLE " + table + " RENAME COLUMN " + Ident(c.big) + " TO " + Ident(c.col));
    pg::RenameIndexColumns(relid, c.big, c.col);
    const bool checked = HasCheck(relid, CheckName(job, c.i));
    if (c.not_null) Exec("ALTER TABLE " + table + " ALTER COLUMN " + Ident(c.col) + " SET NOT NULL");
    if (checked) Exec("ALTER TABLE " + table + " DROP CONSTRAINT " + Ident(CheckName(job, c.i)));
  }
  for (const auto& r : replaced)
    if (r.new_sql != r.old_name) Exec("ALTER INDEX " + r.new_sql + " RENAME TO " + Ident(r.old_name));
  for (const auto& r : replaced) {
    if (r.contype == 'p')
      Exec("ALTER TABLE " + table + " ADD CONSTRAINT " + Ident(r.conname) + " PRIMARY KEY USING INDEX " +
           Ident(r.old_name));
    else if (r.contype == 'u')
      Exec("ALTER TABLE " + table + " ADD CONSTRAINT " + Ident(r.conname) + " UNIQUE USING INDEX " +
           Ident(r.old_name));
    if (r.replica_identity)
      Exec("ALTER TABLE " + table + " REPLICA IDENTITY USING INDEX " + Ident(r.old_name));
    if (r.clustered) Exec("ALTER TABLE " + table + " CLUSTER ON " + Ident(r.old_name));
    if (r.comment)
      Exec("COMMENT ON INDEX " + pg::Qualified(pg::LookupRelation(relid)->schema, r.old_name) + " IS " +
           pg::Literal(*r.comment));
  }
  for (const auto& c : cols) {
    const std::string col = Ident(c.col);
    if (c.x.identity) {
      Exec("ALTER TABLE " + table + " ALTER COLUMN " + col + " ADD GENERATED " +
           (c.x.identity == 'a' ? "ALWAYS" : "BY DEFAULT") + " AS IDENTITY (SEQUENCE NAME " + c.x.sequence +
           " START WITH " + c.next_identity + c.identity_options + ")");
    } else if (!c.x.default_tree.empty()) {
      // The same expression, by OID (pg/column_default.hpp): never its text parsed again.
      pg::CarryDefault(relid, c.col, c.x.default_tree);
      // Its sequence (a serial's, or any it draws from) stops at 2^31-1 if it is an integer one.
      if (!c.x.default_sequence.empty()) Exec("ALTER SEQUENCE " + c.x.default_sequence + " AS bigint");
    }
    if (c.x.has_comment) Exec("COMMENT ON COLUMN " + table + "." + col + " IS " + pg::Literal(c.x.comment));
    if (c.x.stattarget >= 0)
      Exec("ALTER TABLE " + table + " ALTER COLUMN " + col + " SET STATISTICS " +
           std::to_string(c.x.stattarget));
    for (const auto& g : c.x.grants) Exec("GRANT " + g);
    Exec("DROP TRIGGER IF EXISTS " + Ident(SyncName(job, c.i)) + " ON " + table);
  }
}

// The planner's statistics for the bigint columns, gathered before the swap (each holds the same
// values as its column): the swap keeps them with the column, so no plan goes wrong for want of
// them once the key is bigint (a query on a column without statistics may pick a plan that reads
// the whole table). Returns whether every column was analysed; one whose lock (SHARE UPDATE
// EXCLUSIVE, held by a VACUUM or an index build) is not had in pkonline.lock_timeout is left, with
// an event, to the ANALYZE after the swap.
bool AnalyzeShadows(Context& ctx, const ConvertPkPlan& plan) {
  const auto& job = ctx.job();
  bool all = true;
  for (size_t i = 0; i < plan.targets.size(); i++) {
    const Target& t = plan.targets[i];
    try {
      ctx.TryOnce("pkonline job " + IdText(job) + ": analyze", [&]() {
        const std::string table = TableOf(job, t.relid), shadow = ShadowColumn(ctx, t, i);
        if (shadow.empty() || shadow == t.column) return;
        const int64_t target = pg::AsInt(
            Query(
                "SELECT attstattarget FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2",
                {V(static_cast<int64_t>(t.relid)), V(t.column)}, false)
                .scalar(),
            -1);
        if (target >= 0)
          Exec("ALTER TABLE " + table + " ALTER COLUMN " + Ident(shadow) + " SET STATISTICS " +
               std::to_string(target));
        Exec("ANALYZE " + table + " (" + Ident(shadow) + ")");
      });
    } catch (const PgError& e) {
      if (e.sqlstate() != sqlstate::kLockNotAvailable) throw;
      ctx.Event("info", "ANALYZE of the bigint column of " + t.table + " before the swap skipped (" +
                            e.message() + "): it runs after the swap");
      all = false;
    }
  }
  return all;
}

void AnalyzeAfterSwap(Context& ctx, const ConvertPkPlan& plan) {
  for (unsigned relid : TargetTables(plan)) {
    std::string columns;
    for (const auto& t : plan.targets)
      if (t.relid == relid) columns += (columns.empty() ? "" : ", ") + Ident(t.column);
    try {
      ctx.TryOnce("pkonline job " + IdText(ctx.job()) + ": analyze",
                  [&]() { Exec("ANALYZE " + TableOf(ctx.job(), relid) + " (" + columns + ")"); });
    } catch (const PgError& e) {
      if (e.sqlstate() != sqlstate::kLockNotAvailable) throw;
      ctx.Event("info", "ANALYZE skipped (" + e.message() + "); autovacuum will analyze the table");
    }
  }
}

std::vector<unsigned> AllTables(const ConvertPkPlan& plan) {
  std::vector<unsigned> tables = plan.tables;
  for (unsigned relid : TargetTables(plan))
    if (std::find(tables.begin(), tables.end(), relid) == tables.end()) tables.push_back(relid);
  return tables;
}

void SwapColumns(Context& ctx, const ConvertPkPlan& plan, const std::vector<unsigned>& tables) {
  const auto& job = ctx.job();
  // The column swap (DROP COLUMN, RENAME) would reach an inheritance child made meanwhile, whose
  // rows the job never filled: its key would be lost.
  for (unsigned relid : TargetTables(plan)) {
    auto r = Query(
        "SELECT pg_catalog.string_agg(x::pg_catalog.regclass::pg_catalog.text, ', ') FROM (SELECT inhrelid "
        "AS x "
        "FROM pg_catalog.pg_inherits WHERE inhparent = $1::oid UNION SELECT inhparent FROM "
        "pg_catalog.pg_inherits "
        "WHERE inhrelid = $1::oid) i",
        {V(static_cast<int64_t>(relid))}, false);
    if (r.scalar())
      Fail(SqlState("55000"),
           Fmt("table %1% got an inheritance child or parent while job %2% ran: %3%", TableOf(job, relid),
               job.id, *r.scalar()),
           "The swap would drop and rename its columns there too, where the job filled nothing.",
           Fmt("ALTER TABLE … NO INHERIT, pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id));
  }
  const std::vector<ForeignKey> fks = ReferencingKeys(job, plan.targets[0].column);
  for (const auto& fk : fks)
    if (std::find(tables.begin(), tables.end(), fk.relid) == tables.end())
      Fail(SqlState("55000"),
           Fmt("foreign key %1% on %2% was added while job %3% ran", fk.name, fk.table, job.id),
           "The job did not lock that table, nor check it; it converts only the tables it found at its "
           "start.",
           Fmt("Drop that foreign key, pkonline.resume(%1%), and add it again afterwards; or "
               "pkonline.cancel(%1%).",
               job.id));
  const std::vector<OldIndex> olds = IndexesToRebuild(plan);
  for (const auto& fk : fks) Exec("ALTER TABLE " + fk.table + " DROP CONSTRAINT " + Ident(fk.name));
  for (unsigned relid : TargetTables(plan)) SwapTable(ctx, plan, relid, olds);
  std::vector<MovedForeignKey> moved;
  for (const auto& fk : fks) {
    Exec("ALTER TABLE " + fk.table + " ADD CONSTRAINT " + Ident(fk.name) + " " + fk.definition +
         (fk.validated ? " NOT VALID" : ""));
    if (fk.validated) moved.push_back({fk.table, fk.name});
  }
  ctx.Remember(fact::kMovedFks, SaveMovedForeignKeys(moved));
}

void Swap(Context& ctx) {
  const auto& job = ctx.job();
  const ConvertPkPlan plan = Plan(job);
  bool swapped = false;
  ctx.Txn("pkonline job " + IdText(job) + ": check",
          [&]() { swapped = ShadowColumn(ctx, plan.targets[0], 0) == plan.targets[0].column; });
  if (swapped) return;  // committed before a crash
  // An index created or built again while the job ran gets its twin now (concurrently).
  BuildIndexes(ctx);
  const bool analyzed = AnalyzeShadows(ctx, plan);
  ctx.WaitPoint("swap");
  ctx.Ddl("pkonline job " + IdText(job) + ": swap to bigint", [&]() {
    const std::vector<unsigned> tables = AllTables(plan);
    LockAll(job, tables);
    // Done before a crash? The key's shadow is gone (renamed to the key's name, bigint).
    if (ShadowColumn(ctx, plan.targets[0], 0) == plan.targets[0].column) return;
    SwapColumns(ctx, plan, tables);
    ctx.WaitPointHere("swap_locked");  // every change made, none committed (tests crash here)
  });
  ctx.WaitPoint("swap_committed");
  if (!analyzed) AnalyzeAfterSwap(ctx, plan);
}

const char* kBrief =
    "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries";

class ConvertPk final : public Operation {
 public:
  std::vector<unsigned> Tables(const jobs::Job& job) const override { return Plan(job).tables; }
  std::vector<Step> Steps(const jobs::Job& job) const override {
    const ConvertPkPlan plan = Plan(job);
    if (plan.copy) return CopySteps(job);
    std::string columns, not_null, tables;
    for (const auto& t : plan.targets) {
      columns += (columns.empty() ? "" : ", ") + t.table + "." + Ident(t.column);
      if (t.not_null) not_null += (not_null.empty() ? "" : ", ") + t.table + "." + Ident(t.column);
    }
    std::vector<Step> steps;
    steps.push_back(
        {"add_columns",
         "ADD COLUMN … bigint beside " + columns + ", each kept equal to it by a row trigger (ENABLE ALWAYS)",
         kBrief + std::string(" (every table at once, in OID order)"), AddColumns, UndoAddColumns});
    steps.push_back({"backfill", "UPDATE … SET <bigint> = <column> by ranges of heap blocks, table by table",
                     "ROW EXCLUSIVE; row locks of one batch only (about pkonline.batch_time)", Backfill,
                     nullptr});
    if (!not_null.empty()) {
      steps.push_back({"add_checks",
                       "ADD CONSTRAINT … CHECK (<bigint> IS NOT NULL) NOT VALID for " + not_null, kBrief,
                       AddChecks, DropChecks});
      steps.push_back({"validate", "VALIDATE CONSTRAINT (each)",
                       "SHARE UPDATE EXCLUSIVE for one scan of each table: reads and writes continue",
                       ValidateChecks, nullptr});
    }
    steps.push_back({"create_indexes",
                     "CREATE INDEX CONCURRENTLY, on the bigint columns, of every index containing " + columns,
                     "SHARE UPDATE EXCLUSIVE: reads and writes continue; waits for older transactions",
                     BuildIndexes, DropIndexes});
    steps.push_back({"swap",
                     "drop the foreign keys referencing the key, drop each old column and give its name to "
                     "the bigint one, "
                     "SET NOT NULL, move DEFAULT / identity / sequence (AS bigint), rename the new indexes, "
                     "ADD PRIMARY KEY " +
                         plan.pk_name + " USING INDEX, re-add the foreign keys NOT VALID, drop the triggers",
                     "ACCESS EXCLUSIVE on every table, in OID order, catalog only (milliseconds), under "
                     "pkonline.lock_timeout with retries",
                     Swap, nullptr, true});
    steps.push_back({"validate_fks", "VALIDATE the foreign keys re-added (none if there are none)",
                     "SHARE UPDATE EXCLUSIVE on each referencing table: reads and writes continue",
                     ValidateForeignKeys, nullptr});
    return steps;
  }
};

}  // namespace convert

std::unique_ptr<Operation> MakeConvertPk() { return std::make_unique<convert::ConvertPk>(); }

std::string IndexesNotBuiltIn(const ConvertPkPlan& plan) {
  using convert::IndexesToRebuild;
  using convert::NotCarried;
  std::string list;
  for (const auto& old : IndexesToRebuild(plan)) {
    const std::string what = NotCarried(plan, old);
    if (!what.empty())
      list += (list.empty() ? "" : "; ") +
              *Query("SELECT $1::oid::pg_catalog.regclass::pg_catalog.text", {V(old.oid)}, true).scalar() +
              " uses " + what;
  }
  return list;
}

}  // namespace pkonline::ops
