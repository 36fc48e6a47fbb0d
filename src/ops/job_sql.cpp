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

std::string ColumnSql(const jobs::Job& job, const std::string& column) {
  auto r = pg::Query(
      "SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 "
      "AND NOT attisdropped",
      {V(static_cast<int64_t>(job.relid)), V(column)}, true);
  if (r.empty())
    Fail(sqlstate::kUndefinedColumn,
         Fmt("column \"%1%\" of table %2% no longer exists", column, TableSql(job)),
         Fmt("It was renamed or dropped while job %1% ran.", job.id),
         Fmt("Rename it back and pkonline.resume(%1%), or pkonline.cancel(%1%) to undo the job.", job.id));
  return pg::Ident(column);
}

}  // namespace pkonline::ops
