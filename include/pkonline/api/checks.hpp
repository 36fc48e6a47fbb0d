// Argument checks shared by the operations' API functions: each failure is a clear ERROR with a
// SQLSTATE and a hint, raised before anything is written.
#pragma once

#include <optional>

#include <string>
#include <vector>

namespace pkonline::api {

struct TableInfo {
  unsigned relid = 0;
  std::string schema, name, qualified;  // qualified: quoted schema.name
  unsigned nsp_oid = 0;
  unsigned owner = 0;  // the table's owner: the job's work runs as this role
  double reltuples = 0;
  bool partitioned = false;
};

void RequirePrimary();
// A plain, permanent user table, with no inheritance parent or child, that belongs to no
// extension, which the caller owns (or is a member of the owning role, or a superuser), in a
// schema where the table's owner may create the job's helper objects.
// With `partitioned_ok`, a partitioned table too (not a partition): then RequirePartitionTree.
TableInfo RequireOwnedPlainTable(unsigned relid, bool partitioned_ok = false);
// Every partition below a partitioned table is an ordinary table of the same owner, without FORCE
// ROW LEVEL SECURITY, in a schema where the owner may create (the partition's key index); with
// `for_key` (a job that makes a primary key) also without a primary key of its own and no level
// partitioning by a collation or operator class other than the column's default; no level
// partitions by an expression. Returns the partition key columns of every level.
std::vector<std::string> RequirePartitionTree(const TableInfo& t, bool for_key = true);
// Each of the key's columns (those that exist already) has a type with a default btree operator
// class.
void RequireKeyTypes(const TableInfo& t, const std::vector<std::string>& columns);
// No FORCE ROW LEVEL SECURITY: the work, done as the table's owner, would see only the rows the
// policies let it see (for the operations that write every row).
void RequireNoForcedRls(const TableInfo& t, const std::string& hint);
void RequireNoPrimaryKey(const TableInfo& t);
// What the copy method cannot do, refused before anything changes: a published table, invalid
// indexes, an exclusion constraint, too little disk for a second copy of the table, its indexes
// and `new_index` (inheritance and FORCE ROW LEVEL SECURITY are refused for every method).
void RequireCopyable(const TableInfo& t, const std::string& new_index);
void RequireColumnFree(const TableInfo& t, const std::string& column);
void RequireNoActiveJob(const TableInfo& t);
// A valid unique btree index, owned by no constraint, on exactly these columns (attnums as
// int2vector text, "3 1"), with default opclasses and order: set_primary_key makes it the key
// instead of building one. Its name, or nothing.
std::optional<std::string> ReusableKeyIndex(unsigned relid, const std::string& attnums);

}  // namespace pkonline::api
