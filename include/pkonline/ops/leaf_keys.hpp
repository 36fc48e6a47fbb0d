// A partitioned table's primary key without a scan or an index build under a strong lock:
// PostgreSQL attaches a partition's existing primary key to the parent's new one (ALTER TABLE
// parent ADD PRIMARY KEY builds nothing then), so every leaf gets its own first, each in brief
// steps: CHECK (key columns IS NOT NULL) NOT VALID, VALIDATE (SHARE UPDATE EXCLUSIVE: DML goes
// on), CREATE UNIQUE INDEX CONCURRENTLY, then SET NOT NULL (proved by the check, no scan) and
// ADD PRIMARY KEY USING INDEX (catalog only), the check dropped.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/operation.hpp"

namespace pkonline::ops {

struct LeafKeySpec {
  std::vector<std::string> columns;  // the key, by name
  // How the job fills its column in a leaf: run again over a leaf whose VALIDATE still finds a
  // row without a value. None when the job fills nothing (set_primary_key): a NULL fails the job.
  std::optional<LeafFill> fill;
};

// Gives every leaf now in the tree that lacks it its primary key on spec.columns; idempotent
// (each part checks the catalog first). A leaf that leaves the table meanwhile is skipped.
void LeafKeys(Context& ctx, const LeafKeySpec& spec);

// Undo (before the parent's key): on every partition the job gave a check (in the tree or detached
// since, if still the owner's), the keys it made are dropped, the key columns it made NOT NULL are
// nullable again, its check and index go.
void UndoLeafKeys(Context& ctx, const std::vector<std::string>& columns);

// The parent's key: LeafKeys for partitions still without theirs, then, the tree locked (with
// pkonline.lock_timeout shared among its tables), ALTER TABLE parent ADD PRIMARY KEY, which
// attaches every partition's key and builds nothing; a partition that appeared without its key
// meanwhile gets it first, outside the lock. `also` runs in the same transaction after it. Then
// CleanDepartedLeaves. Done already when the parent has the key `pk_name` on spec.columns.
void AttachParentKey(Context& ctx, const LeafKeySpec& spec, const std::string& pk_name,
                     const std::function<void()>& also);
bool ParentHasKey(const jobs::Job& job, const std::string& name, const std::vector<std::string>& columns);

// add_column's NOT NULL on a partitioned table: each partition's CHECK (column IS NOT NULL) NOT
// VALID + VALIDATE (a row without a value is filled by `fill` and VALIDATE tried again); then,
// the tree locked, SET NOT NULL on the parent, which every partition's validated check proves
// without a scan, the checks dropped; `also` in the same transaction. A partition that appeared
// without its check meanwhile gets it first, outside the lock.
void LeafNotNullChecks(Context& ctx, const std::string& column, const LeafFill& fill);
void SetNotNullOnTree(Context& ctx, const std::string& column, const LeafFill& fill,
                      const std::function<void()>& also);

// The leaves now in the tree without a primary key on `columns`.
std::vector<unsigned> LeavesWithoutKey(const jobs::Job& job, const std::vector<std::string>& columns);

// Partitions the job gave a check or an index and that have left the table since (detached):
// the job's check and its index not made a key yet are dropped from them (never a key: that is
// the table's own now).
void CleanDepartedLeaves(Context& ctx, const std::vector<std::string>& columns);

}  // namespace pkonline::ops
