// Each leaf partition's primary key (see include/pkonline/ops/leaf_keys.hpp).
#include "pkonline/ops/leaf_keys.hpp"

#include <algorithm>

#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/job_sql.hpp"
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
std::string IndexName(const jobs::Job& job, unsigned leaf) {
  return HelperName(job, "key_" + std::to_string(leaf));
}

// The attnums of `columns` in table `relid`, in order, as an int2[] expression over $1 (relid)
// and $2 (the names, a jsonb array).
constexpr char kKeyAttnums[] =
    "(SELECT pg_catalog.array_agg(a.attnum ORDER BY u.ord) "
    " FROM pg_catalog.jsonb_array_elements_text($2::pg_catalog.jsonb) WITH ORDINALITY u(name, ord) "
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = $1::oid AND a.attname = u.name AND NOT a.attisdropped)";

// 'k' the leaf has its key, 'o' another primary key, '-' none.
char KeyState(unsigned leaf, const std::vector<std::string>& columns, std::string* other) {
  auto r = Query(std::string("SELECT conname::pg_catalog.text, conkey = ") + kKeyAttnums +
                     " FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND contype = 'p'",
                 {V(static_cast<int64_t>(leaf)), V(Json::Strings(columns).ToText())}, false);
  if (r.empty()) return '-';
  if (pg::AsBool(r.rows[0][1])) return 'k';
  *other = *r.rows[0][0];
  return 'o';
}

bool LeafCheck(unsigned leaf, const std::string& check, bool* validated) {
  auto r =
      Query("SELECT convalidated FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = $2",
            {V(static_cast<int64_t>(leaf)), V(check)}, false);
  if (r.empty()) return false;
  *validated = pg::AsBool(r.scalar());
  return true;
}

std::string NotNullCondition(const std::vector<std::string>& columns) {
  std::string out;
  for (const auto& c : columns) out += (out.empty() ? "" : " AND ") + Ident(c) + " IS NOT NULL";
  return out;
}

// Adds the leaf to the fact's array of leaf OIDs (in the current transaction).
void RememberLeaf(Context& ctx, const char* fact_key, unsigned leaf) {
  Json leaves = ctx.Recall(fact_key);
  if (leaves.is_null()) leaves = Json::Array();
  for (const Json& k : leaves.Items())
    if (k.AsInt() == static_cast<int64_t>(leaf)) return;
  leaves.Push(Json::Number(static_cast<int64_t>(leaf)));
  ctx.Remember(fact_key, leaves);
}

// A table the job worked on, by OID, while it is an ordinary table of the job's owner (never
// another role's), and with `departed`, only once it has left the job's table: its qualified name
// and its quoted schema.
struct OwnedTable {
  std::string sql, schema;
};
std::optional<OwnedTable> Owned(const jobs::Job& job, unsigned relid, bool departed) {
  auto r = Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), pg_catalog.quote_ident(n.nspname) "
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.oid = $1::oid AND c.relowner = $3::oid AND c.relkind = 'r' "
      "AND (NOT $4::pg_catalog.bool OR c.oid NOT IN (SELECT relid FROM "
      "pg_catalog.pg_partition_tree($2::oid)))",
      {V(static_cast<int64_t>(relid)), V(static_cast<int64_t>(job.relid)),
       V(static_cast<int64_t>(job.run_as)), V(std::string(departed ? "true" : "false"))},
      false);
  if (r.empty()) return std::nullopt;
  return OwnedTable{*r.rows[0][0], *r.rows[0][1]};
}

std::vector<unsigned> RecalledLeaves(Context& ctx, const char* fact_key) {
  std::vector<unsigned> out;
  const Json leaves = ctx.Recall(fact_key);
  if (!leaves.is_null())
    for (const Json& k : leaves.Items()) out.push_back(static_cast<unsigned>(k.AsInt()));
  return out;
}

// VALIDATE the leaf's check; a row still without the job's value is filled (a sweep of the leaf)
// and VALIDATE tried again; a key column that is NULL fails the job with what to do.
void ValidateLeaf(Context& ctx, unsigned leaf, const LeafKeySpec& spec) {
  const auto& job = ctx.job();
  for (int attempt = 1;; attempt++) {
    std::string name;
    try {
      ctx.Txn("pkonline job " + IdText(job) + ": validate partition", [&]() {
        auto s = LeafSql(job, leaf);
        bool validated = false;
        if (!s) return;
        name = *s;
        if (!LeafCheck(leaf, CheckName(job), &validated))
          Fail(sqlstate::kUndefinedObject,
               Fmt("constraint %1% of partition %2% was dropped while job %3% ran", CheckName(job), name,
                   job.id),
               "Without it, SET NOT NULL would scan the partition under ACCESS EXCLUSIVE.",
               Fmt("pkonline.resume(%1%) adds it again.", job.id));
        if (validated) return;
        Exec("ALTER TABLE " + name + " VALIDATE CONSTRAINT " + Ident(CheckName(job)));
      });
      return;
    } catch (const PgError& e) {
      if (e.sqlstate() != sqlstate::kCheckViolation) throw;
      if (attempt >= 3 || !spec.fill)
        Fail(SqlState("23502"),
             Fmt("partition %1% still has rows where one of (%2%) is NULL", name, QuotedList(spec.columns)),
             "These columns are to be NOT NULL; the job fills only its own column.",
             Fmt("UPDATE or DELETE those rows, then pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id));
      ctx.Event("info",
                "rows without a value found in partition " + name + " by VALIDATE; sweeping it again");
      SweepLeaves(ctx, *spec.fill, {leaf});
    }
  }
}

// CHECK (columns IS NOT NULL) NOT VALID on the leaf (brief), then VALIDATE (SHARE UPDATE EXCLUSIVE).
void CheckOneLeaf(Context& ctx, unsigned leaf, const LeafKeySpec& spec) {
  const auto& job = ctx.job();
  const std::string check = CheckName(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": partition check not valid", [&]() {
    bool validated = false;
    auto s = LeafSql(job, leaf);
    if (!s || LeafCheck(leaf, check, &validated)) return;
    Exec("ALTER TABLE " + *s + " ADD CONSTRAINT " + Ident(check) + " CHECK (" +
         NotNullCondition(spec.columns) + ") NOT VALID");
    RememberLeaf(ctx, fact::kLeavesKeyed, leaf);
  });
  ValidateLeaf(ctx, leaf, spec);
}

void KeyOneLeaf(Context& ctx, unsigned leaf, const LeafKeySpec& spec) {
  const auto& job = ctx.job();
  const std::string check = CheckName(job), index = IndexName(job, leaf);
  const std::string what = "pkonline job " + IdText(job) + ": partition key";
  char state = '-';
  std::string other, name;
  ctx.Txn(what, [&]() {
    auto s = LeafSql(job, leaf);
    if (!s) {
      state = 'g';
      return;
    }
    name = *s;
    state = KeyState(leaf, spec.columns, &other);
    const std::vector<std::string> uncovered = UncoveredKeyColumns(job, leaf, spec.columns);
    if (state != 'k' && !uncovered.empty())
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("partition %1% of %2% is below a level partitioned by %3%, which the key (%4%) lacks", name,
               job.table_name, QuotedList(uncovered), QuotedList(spec.columns)),
           "A partitioned table's primary key must contain the partition key columns of every level.",
           Fmt("DETACH it, then pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id));
  });
  if (state == 'g' || state == 'k') return;
  if (state == 'o')
    Fail(sqlstate::kInvalidTableDefinition,
         Fmt("partition %1% got a primary key (%2%) of its own while job %3% ran", name, other, job.id),
         "A partition's primary key must be the parent's key on the same columns.",
         Fmt("ALTER TABLE %1% DROP CONSTRAINT %2%, then pkonline.resume(%3%); or pkonline.cancel(%3%).", name,
             Ident(other), job.id));
  CheckOneLeaf(ctx, leaf, spec);
  char index_state = 'n';
  std::string index_sql;
  ctx.Txn(what + ": check index", [&]() {
    auto s = LeafSql(job, leaf);
    if (!s) {
      index_state = 'g';
      return;
    }
    name = *s;
    index_state = UniqueIndexStateOn(leaf, index, spec.columns);
    auto rel = pg::LookupRelation(leaf);
    index_sql = pg::Qualified(rel->schema, index);
  });
  if (index_state == 'g') return;
  if (index_state == 'f')
    Fail(sqlstate::kDuplicateObject,
         Fmt("an index named %1% was created by someone else while job %2% ran", index, job.id),
         "pkonline names a partition's key index after the job and the partition.",
         Fmt("Rename or drop that index, then pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id));
  if (index_state != 'v') {
    ctx.WaitPoint("create_index");
    if (index_state == 'i') {
      ctx.Event("info", "dropping INVALID index " + index + " of partition " + name +
                            " left by an interrupted build");
      ctx.TopLevel("DROP INDEX CONCURRENTLY IF EXISTS " + index_sql);
    }
    std::string list;
    for (const auto& c : spec.columns) list += (list.empty() ? "" : ", ") + Ident(c);
    ctx.TopLevel("CREATE UNIQUE INDEX CONCURRENTLY " + Ident(index) + " ON " + name + " (" + list + ")");
  }
  ctx.Ddl(what + ": attach", [&]() {
    auto s = LeafSql(job, leaf);
    if (!s || KeyState(leaf, spec.columns, &other) == 'k') return;
    if (UniqueIndexStateOn(leaf, index, spec.columns) != 'v')
      Fail(sqlstate::kUndefinedObject, Fmt("the key index %1% of partition %2% is gone", index, *s), "",
           Fmt("pkonline.resume(%1%) builds it again.", job.id));
    // The key columns that were nullable (a cancel makes them so again), then NOT NULL for all.
    auto nullable = Query(
        "SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::oid "
        "AND NOT a.attnotnull AND NOT a.attisdropped AND a.attname::pg_catalog.text IN "
        "(SELECT pg_catalog.jsonb_array_elements_text($2::pg_catalog.jsonb))",
        {V(static_cast<int64_t>(leaf)), V(Json::Strings(spec.columns).ToText())}, false);
    Json made = ctx.Recall(fact::kLeafNotNull);
    if (made.is_null()) made = Json::Object();
    std::vector<std::string> cols;
    for (const auto& row : nullable.rows) cols.push_back(*row[0]);
    made.Set(std::to_string(leaf), Json::Strings(cols));
    ctx.Remember(fact::kLeafNotNull, made);
    std::string set;
    for (const auto& c : spec.columns)
      set += (set.empty() ? "" : ", ") + ("ALTER COLUMN " + Ident(c) + " SET NOT NULL");
    Exec("ALTER TABLE " + *s + " " + set);  // proved by the validated check: no scan
    auto rel = pg::LookupRelation(leaf);
    const std::string pk = pg::ChooseName(rel->name, "", "pkey", rel->nsp_oid, true);
    Exec("ALTER TABLE " + *s + " ADD CONSTRAINT " + Ident(pk) + " PRIMARY KEY USING INDEX " + Ident(index));
    RememberLeaf(ctx, fact::kLeafPks, leaf);
    Exec("ALTER TABLE " + *s + " DROP CONSTRAINT IF EXISTS " + Ident(check));
  });
}

}  // namespace

std::vector<unsigned> LeavesWithoutKey(const jobs::Job& job, const std::vector<std::string>& columns) {
  std::string sql = kKeyAttnums;
  for (size_t at = sql.find("$1::oid"); at != std::string::npos; at = sql.find("$1::oid"))
    sql.replace(at, 7, "t.relid");
  auto r = Query(
      "SELECT t.relid::pg_catalog.oid::pg_catalog.int8 FROM pg_catalog.pg_partition_tree($1::oid) t "
      "WHERE t.isleaf AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = t.relid "
      "AND c.contype = 'p' AND c.conkey = " +
          sql + ") ORDER BY 1",
      {V(static_cast<int64_t>(job.relid)), V(Json::Strings(columns).ToText())}, false);
  std::vector<unsigned> out;
  for (const auto& row : r.rows) out.push_back(static_cast<unsigned>(pg::AsInt(row[0])));
  return out;
}

// Runs `work` on each leaf; a partition dropped or detached between two of its steps is skipped,
// not a failure.
void EachLeaf(Context& ctx, const std::vector<unsigned>& leaves, const std::function<void(unsigned)>& work) {
  for (unsigned leaf : leaves) {
    try {
      work(leaf);
    } catch (const PgError& e) {
      bool gone = false;
      ctx.Txn("pkonline: partition", [&]() { gone = !LeafSql(ctx.job(), leaf); });
      if (!gone) throw;
      ctx.Event("info", Fmt("partition with OID %1% left the table during the job; skipped", leaf));
    }
  }
}

void LeafKeys(Context& ctx, const LeafKeySpec& spec) {
  std::vector<unsigned> todo;
  ctx.Txn("pkonline: partitions without a key", [&]() { todo = LeavesWithoutKey(ctx.job(), spec.columns); });
  EachLeaf(ctx, todo, [&](unsigned leaf) { KeyOneLeaf(ctx, leaf, spec); });
}

std::vector<unsigned> LeavesWithoutNotNull(const jobs::Job& job, const std::string& column) {
  auto r = Query(
      "SELECT t.relid::pg_catalog.oid::pg_catalog.int8 FROM pg_catalog.pg_partition_tree($1::oid) t "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = t.relid AND a.attname = $2 AND NOT a.attisdropped "
      "WHERE t.isleaf AND NOT a.attnotnull AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c "
      "WHERE c.conrelid = t.relid AND c.conname = $3 AND c.convalidated) ORDER BY 1",
      {V(static_cast<int64_t>(job.relid)), V(column), V(CheckName(job))}, false);
  std::vector<unsigned> out;
  for (const auto& row : r.rows) out.push_back(static_cast<unsigned>(pg::AsInt(row[0])));
  return out;
}

void LeafNotNullChecks(Context& ctx, const std::string& column, const LeafFill& fill) {
  std::vector<unsigned> todo;
  ctx.Txn("pkonline: partitions without a check", [&]() { todo = LeavesWithoutNotNull(ctx.job(), column); });
  const LeafKeySpec spec{{column}, fill};
  EachLeaf(ctx, todo, [&](unsigned leaf) { CheckOneLeaf(ctx, leaf, spec); });
}

void SetNotNullOnTree(Context& ctx, const std::string& column, const LeafFill& fill,
                      const std::function<void()>& also) {
  const auto& job = ctx.job();
  constexpr int kRounds = 5;
  for (int round = 1;; round++) {
    LeafNotNullChecks(ctx, column, fill);
    ctx.WaitPoint("finish");
    std::vector<unsigned> missing;
    ctx.Ddl("pkonline job " + IdText(job) + ": finish", [&]() {
      const std::string t = TableSql(job);
      LockTree(job, t, "ACCESS EXCLUSIVE");
      missing = LeavesWithoutNotNull(job, column);
      if (!missing.empty()) return;  // a partition created meanwhile: its check first, outside this lock
      // Every partition's validated check proves it: PostgreSQL scans none of them.
      Exec("ALTER TABLE " + t + " ALTER COLUMN " + ColumnSql(job, column) + " SET NOT NULL");
      if (also) also();
    });
    if (missing.empty()) break;
    if (round >= kRounds)
      Fail(sqlstate::kObjectNotInState,
           Fmt("partitions of %1% kept appearing without a check while job %2% finished", job.table_name,
               job.id),
           "", Fmt("pkonline.resume(%1%) tries again.", job.id));
    ctx.Event("info", Fmt("%1% partition(s) appeared without a check before the finish; checking them first",
                          missing.size()));
  }
  // The checks go afterwards, one partition per brief transaction (harmless once NOT NULL is set;
  // a crash before they are gone runs this step again, which finds NOT NULL set and drops them).
  std::vector<unsigned> leaves;
  ctx.Txn("pkonline: partitions", [&]() { leaves = Leaves(job); });
  EachLeaf(ctx, leaves, [&](unsigned leaf) {
    ctx.Ddl("pkonline job " + IdText(job) + ": drop partition check", [&]() {
      bool validated = false;
      auto name = LeafSql(job, leaf);
      if (name && LeafCheck(leaf, CheckName(job), &validated))
        Exec("ALTER TABLE " + *name + " DROP CONSTRAINT " + Ident(CheckName(job)));
    });
  });
  CleanDepartedLeaves(ctx, {column});
}

void UndoLeafKeys(Context& ctx, const std::vector<std::string>& columns) {
  const auto& job = ctx.job();
  std::vector<unsigned> leaves;
  ctx.Txn("pkonline: partitions", [&]() { leaves = RecalledLeaves(ctx, fact::kLeavesKeyed); });
  // One partition per brief transaction: no lock is held while the next one is waited for.
  for (unsigned leaf : leaves) {
    std::string index;
    ctx.Ddl("pkonline job " + IdText(job) + ": undo partition key", [&]() {
      index.clear();
      const auto owned = Owned(job, leaf, false);  // in the tree or detached since
      if (!owned) return;
      const std::string& table = owned->sql;
      const std::vector<unsigned> pks = RecalledLeaves(ctx, fact::kLeafPks);
      std::string other;
      if (std::find(pks.begin(), pks.end(), leaf) != pks.end() && KeyState(leaf, columns, &other) == 'k') {
        auto pk =
            Query("SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND contype = 'p'",
                  {V(static_cast<int64_t>(leaf))}, false);
        Exec("ALTER TABLE " + table + " DROP CONSTRAINT " + Ident(*pk.scalar()));
      }
      bool validated = false;
      if (LeafCheck(leaf, CheckName(job), &validated))
        Exec("ALTER TABLE " + table + " DROP CONSTRAINT " + Ident(CheckName(job)));
      const Json not_null = ctx.Recall(fact::kLeafNotNull);
      const Json* cols = not_null.is_null() ? nullptr : not_null.Find(std::to_string(leaf));
      if (cols)
        for (const auto& c : cols->AsStrings())
          if (!Query("SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 "
                     "AND attnotnull AND NOT attisdropped",
                     {V(static_cast<int64_t>(leaf)), V(c)}, false)
                   .empty())
            Exec("ALTER TABLE " + table + " ALTER COLUMN " + Ident(c) + " DROP NOT NULL");
      const char state = UniqueIndexStateOn(leaf, IndexName(job, leaf), columns);
      if (state == 'v' || state == 'i') index = owned->schema + "." + Ident(IndexName(job, leaf));
    });
    if (!index.empty()) ctx.TopLevel("DROP INDEX CONCURRENTLY IF EXISTS " + index);
  }
}

void CleanDepartedLeaves(Context& ctx, const std::vector<std::string>& columns) {
  const auto& job = ctx.job();
  std::vector<std::pair<std::string, std::string>> drops;  // (table, index)
  ctx.Ddl("pkonline job " + IdText(job) + ": departed partitions", [&]() {
    drops.clear();
    for (unsigned leaf : RecalledLeaves(ctx, fact::kLeavesKeyed)) {
      const auto owned = Owned(job, leaf, true);
      if (!owned) continue;
      bool validated = false;
      if (LeafCheck(leaf, CheckName(job), &validated))
        Exec("ALTER TABLE " + owned->sql + " DROP CONSTRAINT " + Ident(CheckName(job)));
      const char state = UniqueIndexStateOn(leaf, IndexName(job, leaf), columns);
      if (state == 'v' || state == 'i')
        drops.push_back({owned->sql, owned->schema + "." + Ident(IndexName(job, leaf))});
    }
  });
  for (const auto& d : drops) {
    ctx.TopLevel("DROP INDEX CONCURRENTLY IF EXISTS " + d.second);
    ctx.Event("info",
              "removed the job's key index from " + d.first + ", which left the table during the job");
  }
}

bool ParentHasKey(const jobs::Job& job, const std::string& name, const std::vector<std::string>& columns) {
  std::string sql = kKeyAttnums;
  return !Query(
              "SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND contype = 'p' AND conname "
              "= $3 "
              "AND conkey = " +
                  sql,
              {V(static_cast<int64_t>(job.relid)), V(Json::Strings(columns).ToText()), V(name)}, true)
              .empty();
}

void AttachParentKey(Context& ctx, const LeafKeySpec& spec, const std::string& pk_name,
                     const std::function<void()>& also) {
  const auto& job = ctx.job();
  constexpr int kRounds = 5;
  for (int round = 1;; round++) {
    LeafKeys(ctx, spec);
    ctx.WaitPoint("attach");
    std::vector<unsigned> missing;
    ctx.Ddl("pkonline job " + IdText(job) + ": attach primary key", [&]() {
      const std::string t = TableSql(job);
      if (ParentHasKey(job, pk_name, spec.columns)) return;  // committed before a crash: one transaction
      RequireNoOtherPk(job);
      // The whole tree: no partition comes or goes until the key is there.
      LockTree(job, t, "ACCESS EXCLUSIVE");
      missing = LeavesWithoutKey(job, spec.columns);
      if (!missing.empty()) return;  // a partition created meanwhile: its key first, outside this lock
      // Every leaf has its key on these columns: PostgreSQL attaches them, builds nothing.
      Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + Ident(pk_name) + " PRIMARY KEY (" +
           ColumnList(job, spec.columns) + ")");
      if (also) also();
    });
    if (missing.empty()) break;
    if (round >= kRounds)
      Fail(sqlstate::kObjectNotInState,
           Fmt("partitions of %1% kept appearing without a key while job %2% attached its own",
               job.table_name, job.id),
           "", Fmt("pkonline.resume(%1%) tries again.", job.id));
    ctx.Event("info", Fmt("%1% partition(s) appeared without a key before the attach; giving them one first",
                          missing.size()));
  }
  ctx.WaitPoint("attach_committed");
  CleanDepartedLeaves(ctx, spec.columns);
}

}  // namespace pkonline::ops
