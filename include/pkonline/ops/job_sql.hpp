// What every operation names in its SQL: the job's id and table as text, the table's and a
// column's current quoted names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pkonline/jobs/job.hpp"

namespace pkonline::ops {

// The job's id and its table's OID, as text for SQL and messages.
std::string IdText(const jobs::Job& job);
std::string RelidText(const jobs::Job& job);
// The table's current qualified, quoted name (fails cleanly if it was dropped).
std::string TableSql(const jobs::Job& job);
// The current name of another table the job touches (convert_pk_to_bigint's referencing tables), by
// OID; fails if it was dropped, or if its owner is no longer the role the job works as. The job's
// own table's: TableSql.
std::string TableSqlOf(const jobs::Job& job, unsigned relid);
// The column's quoted name (fails cleanly if it was renamed or dropped); of table `relid` (0: the
// job's own).
std::string ColumnSql(const jobs::Job& job, const std::string& column, unsigned relid = 0);
// The columns' quoted names, comma-separated (each as ColumnSql).
std::string ColumnList(const jobs::Job& job, const std::vector<std::string>& columns);
// Heap blocks in the table now (pg_relation_size / block_size).
int64_t HeapBlocks(const jobs::Job& job);
// Before the job attaches its primary key: none was added meanwhile by someone else (42P16).
void RequireNoOtherPk(const jobs::Job& job);

}  // namespace pkonline::ops
