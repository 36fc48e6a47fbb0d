// Up-front checks of API arguments: bad input gets a clear error and changes nothing.
#include "pkonline/api/checks.hpp"
#include "pkonline/api/check_findings.hpp"
#include "pkonline/pg/disk.hpp"
#include "pkonline/ops/partitions.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/pg/quote.hpp"

#include "pkonline/jobs/store.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/expr.hpp"
#include "pkonline/text.hpp"
#include "pkonline/pg/txn.hpp"
#include "pkonline/pg/spi.hpp"

extern "C" {
#include "postgres.h"
#include "access/xlog.h"
}

namespace pkonline::api {

using pg::AsBool;
using pg::V;

void RequirePrimary() {
  if (Call([]() { return RecoveryInProgress(); }))
    Fail(SqlState("25006"), "pkonline jobs cannot run on a standby", "", "Run it on the primary server.");
}

TableInfo RequireOwnedPlainTable(unsigned relid, bool partitioned_ok) {
  auto r = pg::Query(
      "SELECT c.relkind::text, c.relpersistence::text, n.nspname, c.relname, c.relnamespace, "
      "pg_catalog.pg_has_role(c.relowner, 'USAGE'), "
      "pg_catalog.has_schema_privilege(c.relowner, c.relnamespace, 'CREATE'), c.relispartition, c.reloftype "
      "<> 0, "
      "n.nspname IN ('pg_catalog', 'information_schema', 'pg_toast') OR c.oid < 16384, "
      "pg_catalog.format('%I.%I', n.nspname, c.relname), c.reltuples, c.relowner, "
      "(SELECT e.extname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid "
      " WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid "
      " AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'), "
      "c.relhassubclass OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid = c.oid) "
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.oid = $1::oid",
      {V(static_cast<int64_t>(relid))}, true);
  if (r.empty())
    Fail(sqlstate::kUndefinedTable, "table with OID " + std::to_string(relid) + " does not exist");
  const auto& row = r.rows[0];
  TableInfo t;
  t.relid = relid;
  t.schema = *row[2];
  t.name = *row[3];
  t.nsp_oid = static_cast<unsigned>(pg::AsInt(row[4]));
  t.qualified = *row[10];
  t.reltuples = std::stod(row[11].value_or("0"));
  t.owner = static_cast<unsigned>(pg::AsInt(row[12]));
  const std::string kind = *row[0];
  if (AsBool(row[9]))
    Fail(sqlstate::kInsufficientPrivilege, "\"" + t.qualified + "\" is a system catalog",
         "pkonline changes user tables only.");
  t.partitioned = kind == "p";
  if (t.partitioned && !partitioned_ok)
    Fail(sqlstate::kFeatureNotSupported, "\"" + t.qualified + "\" is a partitioned table",
         "convert_pk_to_bigint does not support partitioned tables yet; add_int_pk, add_column and "
         "set_primary_key do.",
         "A primary key on a partitioned table must include the partition key columns; add it by hand.");
  if (kind != "r" && kind != "p") {
    const std::string what = kind == "v"                  ? "a view"
                             : kind == "m"                ? "a materialized view"
                             : kind == "f"                ? "a foreign table"
                             : kind == "S"                ? "a sequence"
                             : kind == "i" || kind == "I" ? "an index"
                             : kind == "c"                ? "a composite type"
                                                          : "not a table";
    Fail(sqlstate::kWrongObjectType, "\"" + t.qualified + "\" is " + what, "",
         "pkonline works on ordinary tables only.");
  }
  if (*row[1] == "t")
    Fail(sqlstate::kFeatureNotSupported, "\"" + t.qualified + "\" is a temporary table",
         "A background worker cannot see another session's temporary tables.",
         "Temporary tables are private to your session: ALTER TABLE it directly.");
  if (AsBool(row[7]))
    Fail(sqlstate::kFeatureNotSupported, "\"" + t.qualified + "\" is a partition",
         "Columns of a partition are defined by its partitioned table.");
  if (AsBool(row[8]))
    Fail(sqlstate::kWrongObjectType, "\"" + t.qualified + "\" is a typed table",
         "Its columns come from its composite type.");
  if (row[13])
    Fail(sqlstate::kInsufficientPrivilege,
         "\"" + t.qualified + "\" belongs to extension \"" + *row[13] + "\"",
         "pkonline changes user tables only; an extension's tables are its own.");
  if (AsBool(row[14]) && !t.partitioned)
    Fail(
        sqlstate::kFeatureNotSupported, "table " + t.qualified + " has inheritance children or parents",
        "A column added to a parent reaches its children, but the job fills and checks one table's own rows: "
        "the children would be left with a column they cannot fill.",
        "Add the column to each table of the hierarchy by hand.");
  if (!AsBool(row[5]))
    Fail(sqlstate::kInsufficientPrivilege, "must be owner of table " + t.qualified,
         "Only the table's owner, or a member of the owning role, may run pkonline jobs on it.",
         "Run it as the table's owner.");
  if (!AsBool(row[6]))
    Fail(sqlstate::kInsufficientPrivilege,
         "the owner of table " + t.qualified + " may not create objects in schema " + t.schema,
         "The job runs as the table's owner and creates its helpers (sequence, trigger function) in the "
         "table's schema.",
         "GRANT CREATE ON SCHEMA to the table's owner for the duration of the job.");
  return t;
}

std::vector<std::string> RequirePartitionTree(const TableInfo& t, bool for_key) {
  const pg::Value relid = V(static_cast<int64_t>(t.relid));
  auto r = pg::Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::pg_catalog.text, "
      "c.relowner = $2::oid, c.relforcerowsecurity, "
      "pg_catalog.has_schema_privilege(c.relowner, c.relnamespace, 'CREATE'), "
      "(SELECT conname::pg_catalog.text FROM pg_catalog.pg_constraint WHERE conrelid = c.oid AND contype = "
      "'p') "
      "FROM pg_catalog.pg_partition_tree($1::oid) p JOIN pg_catalog.pg_class c ON c.oid = p.relid "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE p.level > 0 ORDER BY p.level, c.oid",
      {relid, V(static_cast<int64_t>(t.owner))}, true);
  for (const auto& row : r.rows) {
    const std::string& name = *row[0];
    if (*row[1] == "f")
      Fail(sqlstate::kFeatureNotSupported, Fmt("partition %1% of %2% is a foreign table", name, t.qualified),
           "A primary key cannot be built on a foreign table, so the partitioned table cannot have one.",
           "DETACH it for the job, or add the key by hand.");
    if (!AsBool(row[2]))
      Fail(sqlstate::kInsufficientPrivilege,
           Fmt("partition %1% of %2% has another owner than the partitioned table", name, t.qualified),
           "The job works as the partitioned table's owner, on partitions that role owns.",
           "ALTER TABLE ... OWNER TO the partitioned table's owner for the job.");
    if (AsBool(row[3]))
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("partition %1% of %2% has FORCE ROW LEVEL SECURITY", name, t.qualified),
           "The job works as the table's owner, who would see and fill only the rows its policies allow.",
           "ALTER TABLE ... NO FORCE ROW LEVEL SECURITY while the job runs.");
    if (!AsBool(row[4]))
      Fail(sqlstate::kInsufficientPrivilege,
           Fmt("the owner of partition %1% of %2% may not create objects in its schema", name, t.qualified),
           "The job builds each partition's key index in the partition's schema.",
           "GRANT CREATE ON that schema to the table's owner for the duration of the job.");
    if (!for_key) continue;  // what follows matters for a key only
    if (row[5])
      Fail(sqlstate::kInvalidTableDefinition,
           Fmt("partition %1% of %2% has a primary key of its own (%3%)", name, t.qualified, *row[5]),
           "A partition's primary key must be the partitioned table's key on the same columns.",
           Fmt("ALTER TABLE %1% DROP CONSTRAINT %2% first (a unique index can keep its uniqueness).", name,
               pg::Ident(*row[5])));
  }
  bool expression = false;
  std::vector<std::string> key = ops::PartitionKeyColumns(t.relid, &expression);
  if (expression)
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("table %1% (or one of its partitioned partitions) is partitioned by an expression", t.qualified),
         "The primary key of a partitioned table must contain its partition key, and a key holds columns "
         "only; pkonline works on trees partitioned by columns.",
         "");
  if (!for_key) return key;
  // A key's unique index compares with the column's default btree operator class and collation:
  // PostgreSQL refuses the parent's key when a level partitions by another one, and that would be
  // found only at the attach, after every partition got its key.
  auto odd = pg::Query(
      "SELECT pg_catalog.format('%s (%I)', t.relid::pg_catalog.regclass, a.attname) "
      "FROM pg_catalog.pg_partition_tree($1::oid) t JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = "
      "t.relid "
      "CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(p.partattrs::pg_catalog.int2[]), "
      "  pg_catalog.unnest(p.partclass::pg_catalog.oid[]), "
      "pg_catalog.unnest(p.partcollation::pg_catalog.oid[])) "
      "  k(attnum, opclass, coll) "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = t.relid AND a.attnum = k.attnum "
      "JOIN pg_catalog.pg_opclass o ON o.oid = k.opclass "
      "WHERE (k.coll <> 0 AND k.coll <> a.attcollation) OR NOT o.opcdefault LIMIT 1",
      {V(static_cast<int64_t>(t.relid))}, true);
  if (!odd.empty())
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("%1% partitions by a collation or operator class that is not the column's default",
             *odd.scalar()),
         "A primary key's index compares with the column's own collation and default operator class; "
         "PostgreSQL refuses a key on a partitioned table whose partition key compares otherwise.",
         "");
  return key;
}

void RequireKeyTypes(const TableInfo& t, const std::vector<std::string>& columns) {
  for (const auto& c : columns) {
    auto r = pg::Query(
        "SELECT atttypid, pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute "
        "WHERE attrelid = $1::oid AND attname = $2 AND NOT attisdropped",
        {V(static_cast<int64_t>(t.relid)), V(c)}, true);
    if (r.empty()) continue;  // the new column: an integer
    if (!pg::HasBtreeOpclass(static_cast<unsigned>(pg::AsInt(r.rows[0][0]))))
      Fail(sqlstate::kFeatureNotSupported,
           Fmt("column \"%1%\" of %2% is of type %3%, which has no default btree operator class", c,
               t.qualified, *r.rows[0][1]),
           "A primary key needs one for each of its columns.", "");
  }
}

void RequireNoForcedRls(const TableInfo& t, const std::string& hint) {
  if (AsBool(pg::Query("SELECT relforcerowsecurity FROM pg_catalog.pg_class WHERE oid = $1::oid",
                       {V(static_cast<int64_t>(t.relid))}, true)
                 .scalar()))
    Fail(sqlstate::kFeatureNotSupported, "table " + t.qualified + " has FORCE ROW LEVEL SECURITY",
         "The job works as the table's owner, who would see and fill only the rows its policies allow.",
         hint);
}

void RequireNoPrimaryKey(const TableInfo& t) {
  auto r = pg::Query(
      "SELECT conname, pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
      "WHERE conrelid = $1::oid AND contype = 'p'",
      {V(static_cast<int64_t>(t.relid))}, true);
  if (!r.empty())
    Fail(sqlstate::kInvalidTableDefinition, Fmt("table %1% already has a primary key", t.qualified),
         Fmt("Constraint %1%: %2%.", r.rows[0][0].value_or(""), r.rows[0][1].value_or("")),
         "add_int_pk adds a primary key to a table that has none.");
}

void RequireColumnFree(const TableInfo& t, const std::string& column) {
  if (column.empty()) Fail(sqlstate::kInvalidParameter, "column_name must not be empty");
  auto r = pg::Query(
      "SELECT attnum < 0 FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 "
      "AND NOT attisdropped",
      {V(static_cast<int64_t>(t.relid)), V(column)}, true);
  if (!r.empty())
    Fail(sqlstate::kDuplicateColumn,
         Fmt("column \"%1%\" of relation %2% already exists%3%", column, t.qualified,
             AsBool(r.scalar()) ? " (a system column)" : ""),
         "", "Choose another name with column_name => '...'.");
}

void RequireNoActiveJob(const TableInfo& t) {
  pg::Result r;
  pg::AsRole(jobs::store::ExtensionOwner(), [&]() {  // jobs of every role count
    r = pg::Query(
        "SELECT id, state FROM pkonline.jobs WHERE (relid = $1::oid OR options -> $2 @> "
        "pg_catalog.jsonb_build_array($1::bigint)) AND state NOT IN ('done', 'cancelled') ORDER BY id",
        {V(static_cast<int64_t>(t.relid)), V(std::string(ops::kTouchedTablesKey))}, true);
  });
  if (!r.empty())
    Fail(sqlstate::kObjectInUse,
         Fmt("table %1% already has pkonline job %2% (%3%)", t.qualified, *r.rows[0][0], *r.rows[0][1]), "",
         Fmt("Wait for it, or finish it with pkonline.resume(%1%) or pkonline.cancel(%1%).", *r.rows[0][0]));
}

// A valid unique btree index on exactly these columns (attnums) that no constraint owns can be
// the key; its name, or nothing.
std::optional<std::string> ReusableKeyIndex(unsigned relid, const std::string& attnums) {
  auto reuse = pg::Query(
      "SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
      "WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid AND i.indisready AND i.indimmediate "
      "AND NOT i.indisprimary AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = i.indnatts "
      "AND i.indkey::pg_catalog.text = $2 AND c.relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = "
      "'btree') "
      "AND i.indoption::pg_catalog.text = pg_catalog.array_to_string(pg_catalog.array_fill(0, "
      "ARRAY[i.indnatts]), ' ') "
      "AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(i.indclass) x(opc) JOIN pg_catalog.pg_opclass o "
      "  ON o.oid = x.opc WHERE NOT o.opcdefault) "
      "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid) "
      "ORDER BY c.relname LIMIT 1",
      {pg::V(static_cast<int64_t>(relid)), pg::V(attnums)}, true);
  return reuse.empty() ? std::nullopt : reuse.scalar();
}

void RequireCopyable(const TableInfo& t, const std::string& new_index) {
  const pg::Value relid = pg::V(static_cast<int64_t>(t.relid));
  auto r = pg::Query(
      "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication p WHERE p.puballtables) OR "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel WHERE prrelid = c.oid) OR "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace WHERE pnnspid = c.relnamespace), "
      "(SELECT pg_catalog.string_agg(i.indexrelid::pg_catalog.regclass::pg_catalog.text, ', ') FROM "
      "pg_catalog.pg_index i "
      "WHERE i.indrelid = c.oid AND NOT (i.indisvalid AND i.indisready AND i.indislive)), "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = c.oid AND contype = 'x') "
      "FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
      {relid}, true);
  const auto& row = r.rows[0];
  const std::string in_place = "method => 'in_place' works on it.";
  if (pg::AsBool(row[0]))
    Fail(sqlstate::kFeatureNotSupported, Fmt("table %1% is published for logical replication", t.qualified),
         "The copy's rows would be published as writes to another table, and the swap not at all.", in_place);
  if (row[1])
    Fail(sqlstate::kObjectNotInState, Fmt("table %1% has invalid indexes: %2%", t.qualified, *row[1]),
         "A failed CREATE INDEX CONCURRENTLY leaves an invalid index; the copy method cannot rebuild it.",
         "DROP INDEX or REINDEX it first.");
  if (pg::AsBool(row[2]))
    Fail(sqlstate::kFeatureNotSupported, Fmt("table %1% has an exclusion constraint", t.qualified), "",
         in_place);
  const pg::FreeSpace free = pg::FreeSpaceFor(t.relid);
  const double needed = CopyMethodBytes(t.relid);
  if (free.bytes && needed > static_cast<double>(*free.bytes))
    Fail(SqlState("53100"), Fmt("not enough disk space for the copy of %1%", t.qualified),
         Fmt("The copy method needs about %1% MB (the table, its indexes and %2%, once more), more than the "
             "file system of the table's tablespace has free.",
             static_cast<int64_t>(needed / 1048576), new_index),
         "Free disk space, or use method => 'in_place', which rewrites the rows where they are.");
}

}  // namespace pkonline::api
