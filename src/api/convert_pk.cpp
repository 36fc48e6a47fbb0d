// pkonline.convert_pk_to_bigint(): every check up front (the key, the foreign keys referencing
// it, what else uses the columns), then a job row with its plan, then (optionally) a worker.
#include <algorithm>
#include <vector>

#include "pkonline/api/api.hpp"
#include "pkonline/api/checks.hpp"
#include "pkonline/api/create_job.hpp"
#include "pkonline/ops/convert_pk.hpp"
#include "pkonline/ops/convert_pk_parts.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/pg/user_code.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::api {

using pg::AsBool;
using pg::AsInt;
using pg::V;

namespace {

struct Key {
  std::string name, column, type;
  int attnum = 0;
  unsigned index = 0;
};

Key RequireIntegerKey(const TableInfo& t) {
  auto r = pg::Query(
      "SELECT c.conname, pg_catalog.array_length(c.conkey, 1), a.attname, pg_catalog.format_type(a.atttypid, "
      "NULL), a.attnum, c.conindid, c.condeferrable FROM pg_catalog.pg_constraint c "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
      "WHERE c.conrelid = $1::oid AND c.contype = 'p'",
      {V(static_cast<int64_t>(t.relid))}, true);
  if (r.empty())
    Fail(sqlstate::kInvalidParameter, Fmt("table %1% has no primary key", t.qualified), "",
         "Use pkonline.add_int_pk to give it a bigint one.");
  const auto& row = r.rows[0];
  Key k{*row[0], *row[2], *row[3], static_cast<int>(AsInt(row[4])), static_cast<unsigned>(AsInt(row[5]))};
  if (AsInt(row[1]) != 1)
    Fail(sqlstate::kInvalidParameter,
         Fmt("the primary key %1% of %2% has several columns", k.name, t.qualified),
         "convert_pk_to_bigint converts a primary key of one smallint or integer column.");
  if (k.type == "bigint")
    Fail(sqlstate::kInvalidParameter,
         Fmt("the primary key %1% of %2% is bigint already", k.name, t.qualified), "Nothing to do.");
  if (k.type != "integer" && k.type != "smallint")
    Fail(sqlstate::kInvalidParameter,
         Fmt("the primary key %1% of %2% is of type %3%, not smallint or integer", k.name, t.qualified,
             k.type));
  if (AsBool(row[6]))
    Fail(sqlstate::kFeatureNotSupported, Fmt("the primary key %1% of %2% is deferrable", k.name, t.qualified),
         "A deferrable key cannot be attached USING INDEX.");
  return k;
}

struct Referencing {
  unsigned relid;
  std::string table, name, column, type;
  bool not_null;
};

// Every foreign key referencing the table: it must reference the key column, from a plain table
// the caller and the key table's owner own (the job works as that owner and re-adds the key).
std::vector<Referencing> RequireReferencingKeys(const TableInfo& t, const Key& key) {
  auto r = pg::Query(
      "SELECT c.conrelid, pg_catalog.format('%I.%I', n.nspname, rc.relname), c.conname, "
      "c.confkey = ARRAY[$2::int2] AND c.conindid = $3::oid, rc.relkind::pg_catalog.text, "
      "rc.relowner = $4::oid AND pg_catalog.pg_has_role(rc.relowner, 'USAGE'), "
      "rc.relowner::pg_catalog.regrole::pg_catalog.text, a.attname, "
      "pg_catalog.format_type(a.atttypid, NULL), a.attnotnull, pg_catalog.array_length(c.conkey, 1), "
      "rc.relhassubclass OR rc.relispartition OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid "
      "= "
      "rc.oid), rc.relforcerowsecurity "
      "FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class rc ON rc.oid = c.conrelid "
      "JOIN pg_catalog.pg_namespace n ON n.oid = rc.relnamespace "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
      "WHERE c.contype = 'f' AND c.confrelid = $1::oid ORDER BY c.oid",
      {V(static_cast<int64_t>(t.relid)), V(key.attnum), V(static_cast<int64_t>(key.index)),
       V(static_cast<int64_t>(t.owner))},
      true);
  std::vector<Referencing> out;
  std::vector<std::string> not_owned;
  for (const auto& row : r.rows) {
    const std::string table = *row[1], name = *row[2];
    if (!AsBool(row[3]) || AsInt(row[10]) != 1)
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("foreign key %1% on %2% references other columns of %3% than its primary key", name, table,
               t.qualified),
           "convert_pk_to_bigint moves only the foreign keys that reference the key.",
           "Drop that foreign key, or convert by hand.");
    if (*row[4] != "r")
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("foreign key %1% is on %2%, which is not a plain table", name, table),
           "pkonline does not change partitioned tables yet.");
    if (AsBool(row[11]))
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("foreign key %1% is on %2%, which has inheritance children or parents, or is a partition",
               name, table),
           "Its column's bigint twin would reach the other tables of the hierarchy, which the job does not "
           "fill.",
           "Convert by hand.");
    if (AsBool(row[12]))
      Fail(sqlstate::kFeatureNotSupported, Fmt("table %1% has FORCE ROW LEVEL SECURITY", table),
           "The job, working as the table's owner, would see and fill only the rows the policies let it see.",
           "ALTER TABLE … NO FORCE ROW LEVEL SECURITY while the job runs.");
    if (!AsBool(row[5])) not_owned.push_back(table + " (owner " + row[6].value_or("?") + ")");
    out.push_back({static_cast<unsigned>(AsInt(row[0])), table, name, *row[7], *row[8], AsBool(row[9])});
  }
  if (!not_owned.empty()) {
    std::string list;
    for (const auto& x : not_owned) list += (list.empty() ? "" : ", ") + x;
    Fail(sqlstate::kInsufficientPrivilege,
         Fmt("tables referencing %1% are not yours: %2%", t.qualified, list),
         "The job drops and re-adds their foreign keys (and converts their columns) as the owner of " +
             t.qualified + "; it must own them, and so must you.",
         "ALTER TABLE … OWNER TO the key table's owner, or drop those foreign keys first.");
  }
  return out;
}

void RequireNothingElseUses(unsigned key_relid, unsigned relid, const std::string& table,
                            const std::string& column) {
  const std::string list = ops::OtherUses(key_relid, relid, column);
  if (list.empty()) return;
  Fail(sqlstate::kFeatureNotSupported,
       Fmt("column %1% of %2% is used by: %3%", pg::Ident(column), table, list),
       "convert_pk_to_bigint replaces the column by a new one; it carries over indexes, the primary key, "
       "unique "
       "constraints, foreign keys, default, identity, comment, grants and statistics target, nothing else.",
       "Drop those objects for the time of the job and create them again afterwards.");
}

// The sequence a converted column's DEFAULT draws from becomes AS bigint in the swap, done as the
// table's owner: it must be that role's.
void RequireOwnSequence(const TableInfo& t, unsigned relid, const std::string& table,
                        const std::string& column) {
  auto r = pg::Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, s.relname), s.relowner = $3::oid FROM "
      "pg_catalog.pg_attrdef d "
      "JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass "
      "AND dep.objid = d.oid AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
      "JOIN pg_catalog.pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S' "
      "JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace "
      "WHERE d.adrelid = $1::oid AND d.adnum = (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = "
      "$1::oid AND attname = $2)",
      {V(static_cast<int64_t>(relid)), V(column), V(static_cast<int64_t>(t.owner))}, true);
  for (const auto& row : r.rows)
    if (!AsBool(row[1]))
      Fail(sqlstate::kInsufficientPrivilege,
           Fmt("the sequence %1% of column %2% of %3% belongs to another role than the table", *row[0],
               pg::Ident(column), table),
           "The job makes it AS bigint as the owner of " + t.qualified + ".",
           "ALTER SEQUENCE " + *row[0] + " OWNER TO the table's owner.");
}

void RequireNoPublication(unsigned relid, const std::string& table) {
  auto r = pg::Query(
      "SELECT pg_catalog.string_agg(p.pubname, ', ' ORDER BY p.pubname) FROM pg_catalog.pg_publication p "
      "WHERE p.puballtables OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr WHERE pr.prpubid = "
      "p.oid "
      "AND pr.prrelid = $1::oid) OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace pn "
      "JOIN pg_catalog.pg_class c ON c.relnamespace = pn.pnnspid WHERE pn.pnpubid = p.oid AND c.oid = "
      "$1::oid)",
      {V(static_cast<int64_t>(relid))}, true);
  if (r.empty() || !r.scalar()) return;
  Fail(sqlstate::kFeatureNotSupported, Fmt("table %1% is published (%2%)", table, *r.scalar()),
       "Subscribers would receive the new bigint column under the old name while their tables still have "
       "integer: their apply fails, or the values overflow there first.",
       "Convert the column on the subscribers first (they accept bigint values into bigint columns), then "
       "ALTER PUBLICATION … DROP TABLE for the job's time and add the table again afterwards.");
}

void RequireNoJobOn(unsigned relid, const std::string& table) {
  TableInfo other;
  other.relid = relid;
  other.qualified = table;
  RequireNoActiveJob(other);
}

// The copy method: each table with a column to convert needs a row identity for its change log
// (the key's table has its key; a referencing table, its own one-column integer primary key), one
// column to convert only, and indexes on it of plain columns only. Fills plan.copy_keys.
void RequireCopyable(const TableInfo& t, const Key& key, ops::ConvertPkPlan& plan) {
  const std::string in_place = "Use method => 'in_place' (the default), which converts it.";
  plan.copy_keys.assign(plan.tables.size(), "");
  for (size_t n = 0; n < plan.tables.size(); n++) {
    const unsigned relid = plan.tables[n];
    const auto target = std::find_if(plan.targets.begin(), plan.targets.end(),
                                     [&](const ops::ConvertPkPlan::Target& x) { return x.relid == relid; });
    if (target == plan.targets.end()) continue;  // its foreign key is only dropped and re-added
    const auto more = std::count_if(plan.targets.begin(), plan.targets.end(),
                                    [&](const ops::ConvertPkPlan::Target& x) { return x.relid == relid; });
    if (more > 1)
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("the copy method of convert_pk_to_bigint cannot convert %1% yet: table %2% has %3% columns to "
               "convert",
               t.qualified, target->table, more),
           "It converts one column per table (a table that references its own key, or references the key "
           "twice, has more).",
           in_place);
    if (n == 0) {
      plan.copy_keys[n] = key.column;
      continue;
    }
    auto r = pg::Query(
        "SELECT a.attname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = "
        "i.indrelid "
        "AND a.attnum = i.indkey[0] AND NOT a.attisdropped AND a.atttypid IN "
        "('pg_catalog.int2'::pg_catalog.regtype, "
        "'pg_catalog.int4'::pg_catalog.regtype, 'pg_catalog.int8'::pg_catalog.regtype) "
        "WHERE i.indrelid = $1::oid AND i.indisprimary AND i.indnkeyatts = 1",
        {V(static_cast<int64_t>(relid))}, true);
    if (r.empty())
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("the copy method of convert_pk_to_bigint needs a primary key of one smallint, integer or "
               "bigint "
               "column on %1%, which references %2%",
               target->table, t.qualified),
           "It finds the copy's row of each row written to that table during the job by its key.", in_place);
    plan.copy_keys[n] = *r.scalar();
  }
  for (const auto& old : ops::convert::IndexesToRebuild(plan)) {
    auto r = pg::Query(
        "SELECT indexrelid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_index WHERE indexrelid = "
        "$1::oid AND (indexprs IS NOT NULL OR indpred IS NOT NULL)",
        {V(old.oid)}, true);
    if (!r.empty())
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("the copy method of convert_pk_to_bigint cannot convert %1% yet: index %2% contains a column "
               "to "
               "convert and has an expression or a predicate",
               t.qualified, *r.scalar()),
           "It builds again on the bigint columns indexes of plain columns only.",
           in_place + " Or drop that index for the time of the job and create it again afterwards.");
  }
  for (const auto& target : plan.targets) {
    TableInfo each = t;
    each.relid = target.relid;
    each.qualified = target.table;
    RequireCopyable(each, "the indexes containing the converted column, on the bigint column");
  }
}

}  // namespace

int64_t ConvertPkToBigint(const ConvertPkArgs& a) {
  pg::SpiScope spi;
  RequirePrimary();
  if (a.method != "in_place" && a.method != "copy")
    Fail(sqlstate::kInvalidParameter, "method must be 'in_place' or 'copy'", "",
         "'in_place' (the default) writes every row again where it is; 'copy' writes the table once more, "
         "into a twin swapped in at the end.");
  TableInfo t = RequireOwnedPlainTable(a.relid);
  RequireNoForcedRls(t, "ALTER TABLE ... NO FORCE ROW LEVEL SECURITY while the job runs.");
  const Key key = RequireIntegerKey(t);
  const std::vector<Referencing> refs = RequireReferencingKeys(t, key);

  ops::ConvertPkPlan plan;
  plan.schema = t.schema;
  plan.pk_name = key.name;
  plan.referencing = a.referencing;
  plan.copy = a.method == "copy";
  plan.targets.push_back({t.relid, t.qualified, key.column, true});
  plan.tables.push_back(t.relid);
  for (const auto& ref : refs) {
    if (std::find(plan.tables.begin(), plan.tables.end(), ref.relid) == plan.tables.end())
      plan.tables.push_back(ref.relid);
    if (a.referencing && (ref.type == "integer" || ref.type == "smallint"))
      plan.targets.push_back({ref.relid, ref.table, ref.column, ref.not_null});
  }
  for (const auto& target : plan.targets) {
    RequireNothingElseUses(t.relid, target.relid, target.table, target.column);
    RequireOwnSequence(t, target.relid, target.table, target.column);
  }
  const std::string not_built_in = ops::IndexesNotBuiltIn(plan);
  if (!not_built_in.empty())
    Fail(sqlstate::kFeatureNotSupported,
         "indexes on the columns to convert cannot be built again on bigint as they are: " + not_built_in,
         "Built again on bigint columns, they would look their functions, operators, operator classes and "
         "collations up anew: another role's could be found, or none.",
         "Drop those indexes for the time of the job and create them again afterwards.");
  for (size_t i = 0; i < plan.tables.size(); i++) {
    const std::string name =
        i == 0 ? t.qualified : std::find_if(refs.begin(), refs.end(), [&](const Referencing& r) {
                                 return r.relid == plan.tables[i];
                               })->table;
    RequireNoPublication(plan.tables[i], name);
    RequireNoJobOn(plan.tables[i], name);
  }
  if (plan.copy) RequireCopyable(t, key, plan);

  if (a.dry_run) return 0;
  const int64_t id = CreateJob(t, plan.kOperation, plan.Save(), a.start);
  spi.Close();
  std::string also;
  for (size_t i = 1; i < plan.targets.size(); i++)
    also += (also.empty() ? "" : ", ") + plan.targets[i].table + "." + pg::Ident(plan.targets[i].column);
  Announce(id,
           Fmt("convert_pk_to_bigint on %1%, primary key %2% (%3% %4% -> bigint)%5%%6%", t.qualified,
               key.name, pg::Ident(key.column), key.type, also.empty() ? std::string() : ", and " + also,
               plan.copy ? ", copied once into a twin table, then swapped in (copy method)" : ""),
           a.start);
  return id;
}

}  // namespace pkonline::api
