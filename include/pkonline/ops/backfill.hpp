// The ctid-range backfill shared by operations that fill a new column in place.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pkonline/ops/operation.hpp"
#include "pkonline/pg/spi.hpp"

namespace pkonline::ops {

// Sets `column` to `value_sql` (SQL text: "DEFAULT", or a checked expression over the row's
// columns) in every row where it is NULL, walking heap blocks [job.cursor_block, end) in batches,
// one transaction per batch with the cursor saved in it. The end block is measured once, when
// the backfill starts, and kept in the job row. With `require_value`, a batch where the value
// comes out NULL fails the job (23502) before anything depends on the column being filled.
void Backfill(Context& ctx, const std::string& column, const std::string& value_sql,
              bool require_value = false);

// The copy-and-swap method's copy: runs `sql` (an INSERT … SELECT over the blocks [$1, $2) of the
// table, tid bounds as text) over the table's heap blocks in the same adaptive, throttled,
// resumable batches as Backfill, without VACUUM. `guard` runs in each batch's transaction first:
// it checks the statement's target and returns its name (a new name plans the statement again).
void CopyBlocks(Context& ctx, const std::function<std::string()>& sql,
                const std::function<std::string()>& guard);
// One table of a walk over several (convert_pk_to_bigint): its UPDATE over the blocks [$1, $2)
// (tid bounds as text), built again after a rename, and its current name.
struct TableWalk {
  unsigned relid;
  std::string name;  // for events
  std::function<std::string()> sql;
  std::function<std::string()> table_sql;
  // Checked in every batch's transaction (default: table_sql); a VACUUM every vacuum_every blocks
  // (a walk that writes another table, as the copy method's, has no dead rows to clear).
  std::function<std::string()> guard;
  bool vacuum = true;
  std::string what = "backfill";
  bool copy_writes = false;  // it writes a copy of the copy method (pg::CopyWriteScope)
};
// Walks the tables one after another in the same adaptive, throttled, resumable batches as
// Backfill (with VACUUM): the job's cursor belongs to the table being walked (fact walk_of), and
// starts again at block 0 for the next.
void BackfillTables(Context& ctx, const std::vector<TableWalk>& walks);

// How a partition's rows are filled: its UPDATE over the blocks [$1, $2), from its current name,
// and the rows a batch's result counts (it may fail the job).
struct LeafFill {
  std::function<std::string(const std::string& leaf_sql)> sql;
  std::function<int64_t(const pg::Result&)> rows;
};
// `column` = `value_sql` where it is NULL; with `require_value`, a value that comes out NULL fails
// the job (23502), as Backfill's.
LeafFill FillLeaves(const jobs::Job& job, const std::string& column, const std::string& value_sql,
                    bool require_value);
// A partitioned table, leaf by leaf, as `fill` says. The leaves are listed again when those listed are done,
// so partitions created or attached meanwhile are walked too; one that leaves the table meanwhile is skipped
// (an event says so). Progress is over the whole tree: the job's cursor is the blocks walked so far (fact
// leaf_base) plus the block in the current leaf (fact walk_of); the leaves done are fact walked.
void BackfillLeaves(Context& ctx, const LeafFill& fill);
// Inside a transaction: the leaf was swept as it is attached now (fact swept: leaf -> its
// attachment); the leaves now in the tree that were not, or were detached and attached again since
// (rows written meanwhile had no trigger to fill them).
void MarkWalked(Context& ctx, unsigned leaf);
void MarkSwept(Context& ctx, unsigned leaf);
std::vector<unsigned> UnsweptLeaves(Context& ctx);
// Walks the leaves (those in `only`, or all) once more, no cursor kept (each leaf walked is marked
// swept); returns rows written.
int64_t SweepLeaves(Context& ctx, const LeafFill& fill, const std::vector<unsigned>& only = {});

// Walks the whole table once more filling any NULL left (no cursor kept); returns rows filled.
int64_t Sweep(Context& ctx, const std::string& column, const std::string& value_sql,
              bool require_value = false);

}  // namespace pkonline::ops
