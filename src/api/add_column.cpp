// pkonline.add_column(): checks (the fill expression is parsed, analysed and type-checked here,
// as the caller), then a job row with its plan, then (optionally) a worker.
#include "pkonline/api/api.hpp"
#include "pkonline/api/checks.hpp"
#include "pkonline/api/create_job.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/expr.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/user_code.hpp"
#include "pkonline/text.hpp"

namespace pkonline::api {

namespace {

// The copy method finds, for each row written during the job, its row in the copy by the table's
// primary key, which its change log records: a single column of smallint, integer or bigint.
std::string RequireCopyKey(const TableInfo& t) {
  const std::string in_place = "Use method => 'in_place', which fills the rows where they are.";
  auto r = pg::Query(
      "SELECT i.indnkeyatts, a.attname, a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, "
      "'pg_catalog.int4'::pg_catalog.regtype, 'pg_catalog.int8'::pg_catalog.regtype) "
      "FROM pg_catalog.pg_index i LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid "
      "AND a.attnum = i.indkey[0] WHERE i.indrelid = $1::oid AND i.indisprimary",
      {pg::V(static_cast<int64_t>(t.relid))}, true);
  if (r.empty())
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("the copy method of add_column needs a primary key on %1%", t.qualified),
         "It finds the copy's row of each row written during the job by the key.",
         in_place + " pkonline.add_int_pk() gives the table a key first.");
  if (pg::AsInt(r.rows[0][0]) != 1 || !pg::AsBool(r.rows[0][2]))
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("the copy method of add_column needs a primary key of one smallint, integer or bigint column; "
             "%1%'s is not",
             t.qualified),
         "Its change log records each written row's key as a bigint.", in_place);
  return *r.rows[0][1];
}

}  // namespace

int64_t AddColumn(const AddColumnArgs& a) {
  pg::SpiScope spi;
  RequirePrimary();
  TableInfo t = RequireOwnedPlainTable(a.relid, true);
  if (t.partitioned) {
    RequirePartitionTree(t, false);
    if (a.unique)
      Fail(
          sqlstate::kFeatureNotSupported,
          Fmt("is_unique does not work on partitioned table %1%", t.qualified),
          "A unique constraint on a partitioned table must contain its partition key columns; one on the new "
          "column alone cannot exist.",
          "Use is_unique => false; a unique index per partition can be built by hand.");
  }
  RequireColumnFree(t, a.column_name);
  RequireNoForcedRls(t, "ALTER TABLE ... NO FORCE ROW LEVEL SECURITY while the job runs.");
  if (a.method != "in_place" && a.method != "copy")
    Fail(sqlstate::kInvalidParameter, "method must be 'in_place' or 'copy'", "",
         "'in_place' (the default) fills the rows where they are; 'copy' writes the table once more, filled, "
         "and swaps it in.");
  if (a.method == "copy" && t.partitioned)
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("the copy method does not work on partitioned table %1%", t.qualified), "",
         "Use method => 'in_place' (the default): it works partition by partition.");
  const pg::CheckedExpr fill = pg::CheckRowExpression(a.relid, a.fill, a.column_type, a.search_path);
  // The fill is stored as text and parsed again by the worker and by every writer's trigger.
  const std::string shadow = pg::NameOthersCouldShadow(fill.tree, t.owner);
  if (!shadow.empty())
    Fail(
        sqlstate::kFeatureNotSupported, "fill uses a name another role could redefine: " + shadow,
        "The fill is parsed again where it runs (the backfill, the column's trigger and DEFAULT): another "
        "role's overload or cast could then be found, and run with the rights of whoever writes the row.",
        "Use functions, operators and types that are built in, or that are in a schema that only the table's "
        "owner (or a superuser) owns and may create in.");
  if (t.partitioned && fill.whole_row)
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("fill refers to the whole row of partitioned table %1%", t.qualified),
         "A partition's row may have its columns in another order than the partitioned table's.",
         "Name the columns the value is computed from.");
  // A domain with constraints makes PostgreSQL rewrite the table (every partition) under ACCESS
  // EXCLUSIVE when the column is added: refused (its base type and a CHECK constraint do the same
  // online).
  if (pg::AsBool(pg::Query("WITH RECURSIVE d(oid) AS (SELECT $1::oid UNION ALL SELECT t.typbasetype FROM "
                           "pg_catalog.pg_type t "
                           "JOIN d ON t.oid = d.oid WHERE t.typtype = 'd') "
                           "SELECT EXISTS (SELECT 1 FROM d JOIN pg_catalog.pg_type t ON t.oid = d.oid WHERE "
                           "t.typtype = 'd' "
                           "AND (t.typnotnull OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE "
                           "c.contypid = t.oid)))",
                           {pg::V(static_cast<int64_t>(a.column_type))}, true)
                     .scalar()))
    Fail(sqlstate::kFeatureNotSupported, Fmt("column_type %1% is a domain with constraints", fill.type),
         "PostgreSQL rewrites the whole table under ACCESS EXCLUSIVE to add a column of such a domain.",
         "Use the domain's base type; not_null => true and a CHECK constraint (NOT VALID, then VALIDATE) "
         "give the "
         "same rules online.");
  if (a.unique && !pg::HasBtreeOpclass(a.column_type))
    Fail(sqlstate::kFeatureNotSupported, Fmt("type %1% has no default btree operator class", fill.type),
         "A unique constraint needs one.", "Use is_unique => false, or another column_type.");
  RequireNoActiveJob(t);

  const bool catalog_only = fill.default_ok() && !fill.is_volatile;
  // Nothing to copy when no row is written: the catalog-only change is the same for both methods.
  const bool copy = a.method == "copy" && !catalog_only;
  std::string key_column;
  if (copy) {
    key_column = RequireCopyKey(t);
    RequireCopyable(t, a.unique ? "the new column's unique index" : "nothing more");
  }
  const bool set_default = a.set_default && fill.default_ok();
  const bool not_null = a.not_null.value_or(true);
  // The job's end must not break the application's INSERTs unless the DBA asked for that end.
  if (!a.not_null && !set_default)
    Fail(sqlstate::kInvalidParameter,
         Fmt("add_column would make every INSERT that does not set column %1% fail once the job ends",
             pg::Ident(a.column_name)),
         !fill.default_ok()
             ? Fmt("fill refers to %1%, so it cannot be the column's DEFAULT, and the column would be "
                   "NOT NULL.",
                   fill.has_subquery ? "a subquery" : "the row's columns")
             : std::string("With set_default => false the column has no DEFAULT, and it would be NOT NULL."),
         "Say which end you want: not_null => false (rows inserted later get NULL unless they set the "
         "column), or "
         "not_null => true (INSERTs must set it: change the application first).");
  ops::AddColumnPlan plan;
  plan.schema = t.schema;
  plan.column = a.column_name;
  plan.column_type = fill.type;
  plan.fill = a.fill;
  plan.fill_sql = fill.sql;
  plan.fill_row_sql = fill.row_sql;
  plan.fill_runs_user_code = fill.runs_user_code;
  plan.mode = catalog_only ? ops::FillMode::kCatalog : ops::FillMode::kBackfill;
  plan.not_null = not_null;
  plan.unique = a.unique;
  plan.set_default = set_default;
  plan.partitioned = t.partitioned;
  plan.copy = copy;
  plan.key_column = key_column;
  if (a.unique) plan.unique_name = pg::ChooseName(t.name, a.column_name, "key", t.nsp_oid, true);

  if (a.dry_run) return 0;
  const int64_t id = CreateJob(t, plan.kOperation, plan.Save(), a.start);
  spi.Close();
  if (a.set_default && !fill.default_ok())
    Notice(Fmt("fill refers to %1%, so it cannot be the column's DEFAULT: rows inserted after the job must "
               "supply %2% themselves%3%",
               fill.has_subquery ? "a subquery" : "the row's columns", a.column_name,
               not_null ? " (the column will be NOT NULL)" : ""),
           copy ? "Until the job ends, rows written have no value in the table; the copy has theirs."
                : "Until the job ends, its trigger fills the column for every row written.",
           true);
  Announce(id,
           Fmt("add_column on %1%, column %2% %3%%4%%5%, %6%", t.qualified, a.column_name, fill.type,
               not_null ? " NOT NULL" : "", a.unique ? " UNIQUE" : "",
               catalog_only ? std::string("the value is not volatile: a catalog-only change, no row is "
                                          "rewritten") +
                                  (a.method == "copy" ? " (method => 'copy' has nothing to copy)" : "")
               : t.partitioned ? std::string("filled in batches, partition by partition")
               : copy          ? "copied once into a twin table, filled, then swapped in (copy method, key " +
                            pg::Ident(key_column) + ")"
                      : std::string("filled in batches")),
           a.start);
  return id;
}

}  // namespace pkonline::api
