// Storage-level primitives for the copy-and-swap method. Each runs inside the caller's
// transaction (the table and its copy locked ACCESS EXCLUSIVE by the caller where it says so)
// and turns a PostgreSQL error into a PgError.
#pragma once

#include <cstdint>

#include <string>

namespace pkonline::pg {

// Exchanges the physical storage of two relations of the same kind: relfilenode, tablespace,
// size statistics and (for tables) freeze horizons, and the TOAST tables by link (with their
// dependencies and names), so that TOAST pointers inside the moved rows stay valid. Both must
// be locked ACCESS EXCLUSIVE. Predicate locks on the tables become relation-level first.
void SwapStorage(unsigned a, unsigned b);

// Exchanges the planner's column statistics (pg_statistic) of two relations with the same columns
// at the same positions, after SwapStorage: the copy was analysed, and the table gets its figures
// in the same transaction (no plan goes wrong for want of them once the table is the copy).
void SwapStatistics(unsigned a, unsigned b);

// Creates index `name` (in the table's schema) on table `relid`, defined like index `model` of a
// table with the same columns at the same positions; not a constraint. With build = false its
// storage is left empty, to be swapped with the model's. Returns the new index's OID. With `from`,
// the model's plain column `from` is column `to` in the new index, with its type's default
// operator class (a model with an expression or a predicate is refused).
unsigned CreateIndexLike(unsigned relid, unsigned model, const std::string& name, bool build,
                         const std::string& from = "", const std::string& to = "");

// Marks column `attnum` of `relid` NOT NULL in the catalog, without a scan: only for a table
// whose every row is known to have a value (the caller holds ACCESS EXCLUSIVE).
// After a column rename, with the table locked ACCESS EXCLUSIVE: the columns of its indexes named
// `from` (the name the column had when they were built) are named `to`, as the table's column.
void RenameIndexColumns(unsigned relid, const std::string& from, const std::string& to);
void SetNotNullTrusted(unsigned relid, int attnum);

// While one is alive, this backend's statements may write the copy method's copies: their guard
// trigger (pkonline_internal._copy_guard, src/pg/capture.cpp) refuses every other write, so that
// only the job's own batches and replay rounds fill a copy that the swap then trusts.
bool CopyWritesAllowed();
class CopyWriteScope {
 public:
  explicit CopyWriteScope(bool on = true);
  ~CopyWriteScope();
  CopyWriteScope(const CopyWriteScope&) = delete;
  CopyWriteScope& operator=(const CopyWriteScope&) = delete;

 private:
  bool on_;
};

// ACCESS SHARE on a relation known by OID, for the rest of the transaction: it can then be
// neither dropped nor renamed, so a name read for it now names it in SQL run later in the
// transaction.
void LockShared(unsigned relid);

// Row versions a heap block can hold (MaxHeapTuplesPerPage: 291 with 8 kB blocks). The copy
// method numbers a row not written during the job by its position, block * this + offset.
extern const int64_t kIdsPerHeapBlock;

}  // namespace pkonline::pg
