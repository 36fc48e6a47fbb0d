// A partitioned table as a job sees it: its tree (pg_partition_tree), the leaves that hold its
// rows, and the columns its primary key must contain. A leaf is worked on only while it is still
// in the tree and still an ordinary table of the job's owner.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "pkonline/jobs/job.hpp"

namespace pkonline::ops {

// The partitions that hold rows (relkind 'r' or 'f'), in OID order, as the tree is now.
std::vector<unsigned> Leaves(const jobs::Job& job);

// The leaf's current qualified, quoted name; nullopt once it has left the job's table (detached
// or dropped). Fails, saying what to do, when it is no longer what the job checked up front (a
// partition attached meanwhile may not be): it changed owner (the job works as the table's
// owner), is not an ordinary table, has FORCE ROW LEVEL SECURITY, is below a level partitioned
// by an expression, or its owner may not create in its schema.
std::optional<std::string> LeafSql(const jobs::Job& job, unsigned leaf);
// The partition key columns of the levels above the leaf that `key` lacks (a subtree attached
// meanwhile may be partitioned by other columns).
std::vector<std::string> UncoveredKeyColumns(const jobs::Job& job, unsigned leaf,
                                             const std::vector<std::string>& key);

// Inside a brief DDL's transaction: `mode` on the table and then on every partition, one by one,
// all within one pkonline.lock_timeout (each lock waits for what is left of it), so that the
// locks already held, which writers queue behind, are held no longer than that before the attempt
// gives up (55P03) and is retried. A table that is not partitioned: that table alone.
void LockTree(const jobs::Job& job, const std::string& table_sql, const std::string& mode);

// Heap blocks and estimated rows of one table.
int64_t Blocks(unsigned relid);
int64_t RowsEstimate(unsigned relid);

// The partition key columns of every level of the tree under `relid`, root first, each once.
// `expression` is set when some level partitions by an expression (no primary key can hold it).
std::vector<std::string> PartitionKeyColumns(unsigned relid, bool* expression);

}  // namespace pkonline::ops
