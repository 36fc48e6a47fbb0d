// Up-front checks of API arguments: bad input gets a clear error and changes nothing.
#include "pkonline/api/checks.hpp"
#include "pkonline/ops/plans.hpp"

#include "pkonline/jobs/store.hpp"
#include "pkonline/pg/bridge.hpp"
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

TableInfo RequireOwnedPlainTable(unsigned relid) {
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
  if (kind == "p")
    Fail(sqlstate::kFeatureNotSupported, "\"" + t.qualified + "\" is a partitioned table",
         "pkonline does not support partitioned tables yet.",
         "A primary key on a partitioned table must include the partition key; add it by hand.");
  if (kind != "r") {
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
  if (AsBool(row[14]))
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

}  // namespace pkonline::api
