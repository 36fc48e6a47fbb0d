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
// or dropped). Fails when it changed owner (the job works as its owner, the table's owner) or is
// not an ordinary table (a foreign table attached meanwhile).
std::optional<std::string> LeafSql(const jobs::Job& job, unsigned leaf);

// Heap blocks and estimated rows of one table.
int64_t Blocks(unsigned relid);
int64_t RowsEstimate(unsigned relid);

// The partition key columns of every level of the tree under `relid`, root first, each once.
// `expression` is set when some level partitions by an expression (no primary key can hold it).
std::vector<std::string> PartitionKeyColumns(unsigned relid, bool* expression);

}  // namespace pkonline::ops
