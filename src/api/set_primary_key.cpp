// pkonline.set_primary_key(): checks, then a job row with its plan, then (optionally) a worker.
#include <algorithm>
#include <optional>
#include <set>

#include "pkonline/api/api.hpp"
#include "pkonline/api/checks.hpp"
#include "pkonline/api/create_job.hpp"
#include "pkonline/json.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/expr.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::api {

using pg::AsBool;
using pg::V;

namespace {

using ops::QuotedList;

struct OldKey {
  std::string name, index_oid;
  std::vector<std::string> columns;
};

std::optional<OldKey> CurrentPk(const TableInfo& t) {
  auto r = pg::Query(
      "SELECT c.conname, c.conindid, a.attname FROM pg_catalog.pg_constraint c, "
      "pg_catalog.unnest(c.conkey) WITH ORDINALITY k(attnum, n) "
      "JOIN pg_catalog.pg_attribute a ON a.attnum = k.attnum "
      "WHERE c.conrelid = $1::oid AND c.contype = 'p' AND a.attrelid = $1::oid ORDER BY k.n",
      {V(static_cast<int64_t>(t.relid))}, true);
  if (r.empty()) return std::nullopt;
  OldKey key{*r.rows[0][0], *r.rows[0][1], {}};
  for (const auto& row : r.rows) key.columns.push_back(*row[2]);
  return key;
}

// The new key's columns: each exists, is a user column, named once, and its type can be a key.
// Returns the ones that are nullable now, and the attnums as int2vector text ("3 1").
struct KeyColumns {
  std::vector<std::string> nullable;
  std::string attnums;
};
KeyColumns RequireKeyColumns(const TableInfo& t, const std::vector<std::string>& columns) {
  std::set<std::string> seen;
  KeyColumns out;
  for (const auto& c : columns) {
    if (!seen.insert(c).second) Fail(SqlState("42701"), Fmt("column \"%1%\" appears twice in columns", c));
    auto r = pg::Query(
        "SELECT attnum, attnotnull, atttypid, pg_catalog.format_type(atttypid, atttypmod) "
        "FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 AND NOT attisdropped",
        {V(static_cast<int64_t>(t.relid)), V(c)}, true);
    if (r.empty())
      Fail(sqlstate::kUndefinedColumn, Fmt("column \"%1%\" of relation %2% does not exist", c, t.qualified));
    if (pg::AsInt(r.rows[0][0]) < 0)
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("\"%1%\" is a system column: it cannot be part of a primary key", c));
    if (!pg::HasBtreeOpclass(static_cast<unsigned>(pg::AsInt(r.rows[0][2]))))
      Fail(SqlState("42804"),
           Fmt("column \"%1%\" is of type %2%, which has no default btree operator class", c, *r.rows[0][3]),
           "A primary key needs values that sort and compare for equality.",
           "Key on another column, or on a cast of this one stored in a new column (pkonline.add_column).");
    if (!AsBool(r.rows[0][1])) out.nullable.push_back(c);
    out.attnums += (out.attnums.empty() ? "" : " ") + *r.rows[0][0];
  }
  return out;
}

// old_pk => 'drop' must leave no foreign key without its key and the table with a replica identity.
void RequireOldKeyDroppable(const TableInfo& t, const OldKey& old) {
  auto fk = pg::Query(
      "SELECT c.conname, c.conrelid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_constraint c "
      "WHERE c.contype = 'f' AND c.confrelid = $1::oid AND c.conindid = $2::oid LIMIT 1",
      {V(static_cast<int64_t>(t.relid)), V(old.index_oid)}, true);
  if (!fk.empty())
    Fail(SqlState("2BP01"),
         Fmt("foreign key %1% on %2% references the primary key %3% of %4%", *fk.rows[0][0], *fk.rows[0][1],
             old.name, t.qualified),
         "old_pk => 'drop' would leave it nothing to reference.",
         "Use old_pk => 'unique' (the default): the old key stays as a unique constraint and foreign keys "
         "move "
         "to it.");
  auto ident = pg::Query(
      "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = $2::oid "
      "WHERE c.oid = $1::oid AND c.relreplident = 'i' AND i.indisreplident",
      {V(static_cast<int64_t>(t.relid)), V(old.index_oid)}, true);
  if (!ident.empty())
    Fail(sqlstate::kObjectNotInState,
         Fmt("the replica identity of %1% is the index of its primary key %2%", t.qualified, old.name),
         "old_pk => 'drop' would leave the table without a replica identity.",
         "Use old_pk => 'unique' (the identity moves to the kept unique key), or ALTER TABLE … REPLICA "
         "IDENTITY "
         "first.");
}

// The swap moves every foreign key on the old key: ALTER TABLE on each referencing table, as
// the table's owner, who must own those tables too — the very role, not one it is a member of:
// re-adding and validating a foreign key plans a query on the referencing table, which runs code
// its owner chose (an index predicate's function) with the job's rights (the review of 0.5: a
// role with REFERENCES on a superuser's table became superuser).
void RequireForeignKeysMovable(const TableInfo& t, const OldKey& old, const std::string& what) {
  // PostgreSQL 15 cannot add a foreign key NOT VALID on a partitioned table: re-added, it would
  // scan every partition under the swap's locks.
  auto part = pg::Query(
      "SELECT c.conname, c.conrelid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_constraint c "
      "JOIN pg_catalog.pg_class r ON r.oid = c.conrelid "
      "WHERE c.contype = 'f' AND c.confrelid = $1::oid AND c.conindid = $2::oid AND r.relkind = 'p' LIMIT 1",
      {V(static_cast<int64_t>(t.relid)), V(old.index_oid)}, true);
  if (!part.empty())
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("foreign key %1% on the partitioned table %2% references the %3% %4% of %5%", *part.rows[0][0],
             *part.rows[0][1], what, old.name, t.qualified),
         "PostgreSQL 15 cannot add a foreign key NOT VALID on a partitioned table: moved in the swap, it "
         "would "
         "be checked against every row under the swap's locks.",
         std::string("Drop that foreign key for the job's duration and add it again after (writes to the "
                     "partitions wait while it is validated)") +
             (what == "primary key" ? "." : "; or leave replace_unique out (the constraint stays)."));
  auto fk = pg::Query(
      "SELECT c.conname, c.conrelid::pg_catalog.regclass::pg_catalog.text, "
      "r.relowner::pg_catalog.regrole::pg_catalog.text "
      "FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid "
      "WHERE c.contype = 'f' AND c.confrelid = $1::oid AND c.conindid = $2::oid "
      "AND r.relowner <> $3::oid LIMIT 1",
      {V(static_cast<int64_t>(t.relid)), V(old.index_oid), V(static_cast<int64_t>(t.owner))}, true);
  if (!fk.empty())
    Fail(
        sqlstate::kInsufficientPrivilege,
        Fmt("foreign key %1% on %2% references the %3% %4% of %5%, and %2% belongs to %6%", *fk.rows[0][0],
            *fk.rows[0][1], what, old.name, t.qualified, *fk.rows[0][2]),
        "The job moves the foreign keys on the " + what + " with ALTER TABLE, as the owner of " +
            t.qualified + ", who does not own " + *fk.rows[0][1] + ".",
        "Have the same role own both tables (ALTER TABLE … OWNER TO), or drop that foreign key for the job's "
        "duration and add it again after.");
}

// replace_unique: the UNIQUE constraint on the key's columns (in any order: it is then exactly
// as strict), which the swap drops. Refused if there is none, or if it is DEFERRABLE (the primary
// key would not be: writes that pass today would fail).
OldKey ReplacedUnique(const TableInfo& t, const std::vector<std::string>& columns) {
  auto r = pg::Query(
      "SELECT c.conname, c.conindid, c.condeferrable, (SELECT pg_catalog.array_agg(a.attname ORDER BY k.n) "
      "  FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(attnum, n) JOIN pg_catalog.pg_attribute a "
      "  ON a.attrelid = c.conrelid AND a.attnum = k.attnum)::pg_catalog.text "
      "FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid AND c.contype = 'u' "
      "AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attname::pg_catalog.text) "
      "     FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)) "
      "  = (SELECT pg_catalog.array_agg(x ORDER BY x) FROM "
      "pg_catalog.jsonb_array_elements_text($2::pg_catalog.jsonb) "
      "     x) "
      "ORDER BY c.conname LIMIT 1",
      {V(static_cast<int64_t>(t.relid)), V(Json::Strings(columns).ToText())}, true);
  if (r.empty())
    Fail(sqlstate::kUndefinedObject,
         Fmt("%1% has no UNIQUE constraint on (%2%) to replace", t.qualified, QuotedList(columns)),
         "replace_unique => true drops the UNIQUE constraint the new primary key makes redundant.",
         "Leave replace_unique out; a unique index owned by no constraint is reused by itself.");
  OldKey key{*r.rows[0][0], *r.rows[0][1], {}};
  if (AsBool(r.rows[0][2]))
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("UNIQUE constraint %1% of %2% is DEFERRABLE", key.name, t.qualified),
         "A primary key that replaced it would be checked at once: writes that pass today could fail.",
         "Leave replace_unique out (the constraint stays beside the key).");
  return key;
}

}  // namespace

// A partitioned table: the key must contain the partition key columns of every level, and the
// table has none yet (moving a partitioned table's key is not done yet).
int64_t PartitionedKey(const TableInfo& t, const SetPrimaryKeyArgs& a, bool has_pk, pg::SpiScope& spi) {
  if (a.replace_unique)
    Fail(sqlstate::kFeatureNotSupported, Fmt("%1% is a partitioned table", t.qualified),
         "replace_unique works on an ordinary table only.", "Leave replace_unique out.");
  if (has_pk)
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("%1% is a partitioned table that has a primary key", t.qualified),
         "set_primary_key moves the key of an ordinary table only; on a partitioned one it adds a key where "
         "there is none.",
         "");
  const std::vector<std::string> part = RequirePartitionTree(t);
  std::vector<std::string> lacking;
  for (const auto& c : part)
    if (std::find(a.columns.begin(), a.columns.end(), c) == a.columns.end()) lacking.push_back(c);
  if (!lacking.empty())
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("the key (%1%) lacks partition key column(s) %2% of %3%", QuotedList(a.columns),
             QuotedList(lacking), t.qualified),
         "PostgreSQL requires a partitioned table's primary key to contain every partition key column.",
         "Add them to columns.");
  RequireNoActiveJob(t);
  ops::SetPrimaryKeyPlan plan;
  plan.schema = t.schema;
  plan.columns = a.columns;
  plan.old_pk = ops::OldPk::kDrop;
  plan.partitioned = true;
  plan.pk_name = pg::ChooseName(t.name, "", "pkey", t.nsp_oid, true);
  if (a.dry_run) return 0;
  const int64_t id = CreateJob(t, plan.kOperation, plan.Save(), a.start);
  spi.Close();
  Announce(id,
           Fmt("set_primary_key on %1%, primary key %2% (%3%): partition by partition, then the partitioned "
               "table's, which attaches them",
               t.qualified, plan.pk_name, QuotedList(a.columns)),
           a.start);
  return id;
}

int64_t SetPrimaryKey(const SetPrimaryKeyArgs& a) {
  pg::SpiScope spi;
  RequirePrimary();
  if (a.old_pk != "unique" && a.old_pk != "drop")
    Fail(sqlstate::kInvalidParameter, "old_pk must be 'unique' or 'drop', not '" + a.old_pk + "'",
         "'unique' keeps a replaced primary key as a unique constraint (foreign keys move to it); 'drop' "
         "drops it.");
  if (a.columns.empty())
    Fail(sqlstate::kInvalidParameter, "columns must name at least one column", "",
         "For example ARRAY['account_id']");
  if (a.columns.size() > 32) Fail(SqlState("54011"), "a primary key has at most 32 columns");
  TableInfo t = RequireOwnedPlainTable(a.relid, true);

  const KeyColumns key = RequireKeyColumns(t, a.columns);

  auto old = CurrentPk(t);
  if (t.partitioned) return PartitionedKey(t, a, old.has_value(), spi);
  if (old && old->columns == a.columns)
    Fail(sqlstate::kInvalidTableDefinition,
         Fmt("(%1%) is already the primary key of %2% (%3%)", QuotedList(a.columns), t.qualified, old->name),
         "", "Nothing to do.");
  if (old && a.old_pk == "drop") RequireOldKeyDroppable(t, *old);
  if (old) RequireForeignKeysMovable(t, *old, "primary key");
  std::optional<OldKey> replaced;
  if (a.replace_unique) {
    replaced = ReplacedUnique(t, a.columns);
    RequireForeignKeysMovable(t, *replaced, "UNIQUE constraint");
  }
  RequireNoActiveJob(t);

  const std::optional<std::string> reuse = ReusableKeyIndex(t.relid, key.attnums);

  ops::SetPrimaryKeyPlan plan;
  plan.schema = t.schema;
  plan.columns = a.columns;
  plan.nullable = key.nullable;
  plan.old_pk = a.old_pk == "unique" ? ops::OldPk::kUnique : ops::OldPk::kDrop;
  if (old) plan.old = ops::SetPrimaryKeyPlan::Key{old->name, old->columns};
  plan.reuse_index = reuse;
  if (replaced) plan.replaced_unique = ops::SetPrimaryKeyPlan::Key{replaced->name, a.columns};

  if (a.dry_run) return 0;
  const int64_t id = CreateJob(t, plan.kOperation, plan.Save(), a.start);
  spi.Close();
  Announce(id,
           Fmt("set_primary_key on %1%, primary key (%2%)%3%%4%", t.qualified, QuotedList(a.columns),
               old ? Fmt(", replacing %1% (%2%)%3%", old->name, QuotedList(old->columns),
                         a.old_pk == "unique" ? ", kept as a unique constraint" : ", dropped")
                   : std::string(),
               (reuse ? ", reusing index " + *reuse : std::string()) +
                   (replaced ? ", replacing UNIQUE constraint " + replaced->name : std::string())),
           a.start);
  return id;
}

}  // namespace pkonline::api
