// What every operation names in its SQL (see include/pkonline/ops/job_sql.hpp).
#include "pkonline/ops/job_sql.hpp"

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops {

using pg::V;

std::string IdText(const jobs::Job& job) { return std::to_string(job.id); }
std::string RelidText(const jobs::Job& job) { return std::to_string(job.relid); }

std::string TableSql(const jobs::Job& job) {
  auto rel = pg::LookupRelation(job.relid);
  if (!rel)
    Fail(sqlstate::kUndefinedTable,
         "table " + job.table_name + " (oid " + std::to_string(job.relid) + ") no longer exists",
         "It was dropped while job " + std::to_string(job.id) + " ran.",
         "Cancel the job with pkonline.cancel(" + std::to_string(job.id) + ") to clean up what it created.");
  return pg::Qualified(rel->schema, rel->name);
}

std::string TableSqlOf(const jobs::Job& job, unsigned relid) {
  if (relid == job.relid || relid == 0) return TableSql(job);
  auto r = pg::Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relowner = $2::oid, "
      "c.relowner::pg_catalog.regrole::pg_catalog.text FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid",
      {V(static_cast<int64_t>(relid)), V(static_cast<int64_t>(job.run_as))}, false);
  if (r.empty())
    Fail(sqlstate::kUndefinedTable,
         Fmt("table with OID %1%, which references %2%, was dropped while job %3% ran", relid, job.table_name,
             job.id),
         "", Fmt("pkonline.cancel(%1%) undoes what the job created.", job.id));
  if (!pg::AsBool(r.rows[0][1]))
    Fail(
        sqlstate::kInsufficientPrivilege,
        Fmt("table %1% changed owner (now %2%) while job %3% ran", *r.rows[0][0], r.rows[0][2].value_or("?"),
            job.id),
        "The job works as the owner of every table it changes, the owner of " + job.table_name + ".",
        Fmt("Give the table back to that role, then pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id));
  return *r.rows[0][0];
}

std::string ColumnSql(const jobs::Job& job, const std::string& column, unsigned relid) {
  if (relid == 0) relid = job.relid;
  auto r = pg::Query(
      "SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 "
      "AND NOT attisdropped",
      {V(static_cast<int64_t>(relid)), V(column)}, true);
  if (r.empty())
    Fail(sqlstate::kUndefinedColumn,
         Fmt("column \"%1%\" of table %2% no longer exists", column, TableSqlOf(job, relid)),
         Fmt("It was renamed or dropped while job %1% ran.", job.id),
         Fmt("Rename it back and pkonline.resume(%1%), or pkonline.cancel(%1%) to undo the job.", job.id));
  return pg::Ident(column);
}

std::string ColumnList(const jobs::Job& job, const std::vector<std::string>& columns) {
  std::string out;
  for (const auto& c : columns) out += (out.empty() ? "" : ", ") + ColumnSql(job, c);
  return out;
}

int64_t HeapBlocks(const jobs::Job& job) {
  return pg::AsInt(pg::Query("SELECT pg_catalog.pg_relation_size($1::oid) / "
                             "pg_catalog.current_setting('block_size')::bigint",
                             {V(RelidText(job))}, true)
                       .scalar());
}

void RequireNoOtherPk(const jobs::Job& job) {
  auto other =
      pg::Query("SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND contype = 'p'",
                {V(RelidText(job))}, true);
  if (!other.empty())
    Fail(sqlstate::kInvalidTableDefinition,
         Fmt("table %1% got a primary key (%2%) while job %3% ran", TableSql(job), *other.scalar(), job.id),
         "", Fmt("pkonline.cancel(%1%) undoes what the job created.", job.id));
}

}  // namespace pkonline::ops
