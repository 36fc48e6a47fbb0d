// The copy method's pieces, shared by add_int_pk and add_column (add_int_pk_copy.cpp and
// add_column_copy.cpp have the steps): copy_table.cpp, the copy of the table and the helpers known
// by the OIDs the job recorded; change_log.cpp, the replay of the writes made meanwhile onto the copy.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pkonline/jobs/step.hpp"

namespace pkonline::ops::copy {

using jobs::Context;

// Which of the job's tables a copy is of: the job's own (relid 0), or (convert_pk_to_bigint) a
// table whose foreign key references its key. The other table's facts are recorded under
// "<fact>@<its OID>", its helpers named "<suffix>_<its OID>".
struct Of {
  unsigned relid = 0;
};
std::string FactOf(const Of& t, const std::string& key);
unsigned RelidOf(const jobs::Job& job, const Of& t);
std::string TableOf(const jobs::Job& job, const Of& t);  // its current name (TableSqlOf)
std::string HelperOf(const Of& t, const std::string& suffix);

// What a job's copy is: the row identity that the change log records, the job's column and the
// value it takes in the copy.
//  * add_int_pk: the identity is the new id column itself; a row not written during the job has
//    none yet, and takes its position (_tid_key(ctid)); every logged row version has its id.
//  * add_column: the identity is the table's single-column integer primary key; the new column
//    takes COALESCE(column, fill), in the copy and at every replay.
//  * convert_pk_to_bigint: the identity of the key's table is the integer key itself, of each
//    referencing table its own one-column integer primary key; the job's column is the bigint
//    shadow of the table's converted column, which takes that column's value (overwrite).
struct CopySpec {
  std::string key;     // the identity column (same name in the table and the copy)
  std::string column;  // the job's column: NOT NULL in the copy when not_null
  std::string type;    // its type
  std::string fill;    // SQL over the table's row: its value where it has none; "" for the position
  bool not_null = true;
  bool unique = true;         // a unique index on the column is built on the copy (fact::kTwinPk)
  bool key_is_column = true;  // the key's index on the copy is that unique index (add_int_pk)
  bool overwrite = false;     // the column takes the fill, not COALESCE(column, fill)
  // The identity's column in the copy ("" : key): convert_pk_to_bigint's key table finds the copy's
  // rows by the bigint column, which holds the same values.
  std::string copy_key;
  // A column left NULL in the copy (convert_pk_to_bigint: the converted one, dropped at the swap).
  std::string nulled;
  const std::string& CopyKey() const { return copy_key.empty() ? key : copy_key; }
};
// Reads the job's plan only (no query: it may be called outside a transaction).
CopySpec SpecOf(const jobs::Job& job, const Of& t = {});

// Helper names (pkonline_<job>_<suffix>): the log trigger, the key's index on the copy, the
// copy's twin of the table's index `index_oid`.
std::string LogTrigger(const jobs::Job& job);
std::string PkTwin(const jobs::Job& job);
std::string Twin(const jobs::Job& job, const std::string& index_oid);

// OID of a relation named by its qualified SQL name, 0 if there is none.
unsigned RegclassOid(const std::string& qualified);

// The job's helpers (the copy, its indexes, the change log) are created by the job, under names
// that fail to be created if anything has them already, and their OIDs are recorded in the job's
// options in the same transaction (copy_oid, log_oid, twin_pk, twin_ix_<index oid>). From then on
// they are known by OID only, and checked before each use.
unsigned RecordedOid(Context& ctx, const std::string& key);
// Records the OID of the helper this transaction just created under `name_sql`.
void Record(Context& ctx, const std::string& key, const std::string& name_sql);
unsigned CopyOid(Context& ctx, const Of& t = {});
// The helper recorded under `key`, locked for the rest of the transaction (no DROP, no RENAME)
// and checked: still there, of its kind, owned by the table's owner, an index on the copy for an
// index. Its qualified name, for SQL run in this transaction; "" if the job has not created it,
// or (`strict` false) if it is no longer the job's own; else the job fails.
std::string Helper(Context& ctx, const std::string& key, bool strict = true, const Of& t = {});
std::string CopySql(Context& ctx, const Of& t = {});
std::string LogSql(Context& ctx, const Of& t = {});

// Rows of the table must stay where they were when the job began (their position is their id).
std::string Relfilenode(const jobs::Job& job, const Of& t = {});
void RequireSameStorage(Context& ctx, const Of& t = {});
// Column layout: positions, dropped or not, types and collations.
std::string Layout(unsigned relid);

// The live columns, as named in the table and in the twin (matched by position); and the
// table's list with the job's column replaced by its value in the copy, in a batch (copied) and
// at a replay round (replayed).
struct Columns {
  std::string twin, copied, replayed;
};
Columns LiveColumns(const jobs::Job& job, unsigned copy_oid, const Of& t = {});

// Every privilege on a helper table that default privileges gave others, revoked.
void OwnerOnly(const std::string& name_sql);
// CREATE TABLE for the copy: every column at its position, dropped ones as placeholders dropped
// again; the new column NOT NULL; the table's persistence, storage options and tablespace.
void CreateCopy(Context& ctx, const Of& t = {});
// The copy batch: INSERT … SELECT over the blocks [$1, $2) of the table.
std::string CopyBatchSql(Context& ctx, const Of& t = {});
// The indexes of the table: (oid, valid) of each; a job fails on an invalid one.
std::vector<std::pair<std::string, bool>> TableIndexes(const jobs::Job& job, const Of& t = {});
void RequireValidIndexes(const jobs::Job& job, const Of& t = {});
// An index built again on the copy on another column (fact::kBigTwinPrefix) has no twin, and is
// not swapped: it goes with its column. The table's key index keeps its twin all the same.
bool Replaced(Context& ctx, const std::string& oid, const Of& t);
// Builds, on the copy, each index of the table that has no twin yet, and the column's unique index.
void EnsureTwins(Context& ctx, const Of& t = {});
// The change log's trigger: RecordLogTrigger records the one this transaction made; then
// RequireLogTrigger fails the job unless it is still on the table, enabled ALWAYS and never
// altered (a write made while it did not fire is in no log: the copy would lose it). Jobs made by
// 0.5 recorded nothing: their trigger is found by name.
void RecordLogTrigger(Context& ctx, const Of& t = {});
void RequireLogTrigger(Context& ctx, const Of& t = {});
// The copy is as the job made it: the table's persistence, no rules, triggers or policies (they
// could drop or change the rows the job writes into it), its column NOT NULL when it should be.
void RequireCopyAsMade(Context& ctx, unsigned copy, const Of& t = {});
// The table, locked ACCESS SHARE for the rest of the transaction, has no FORCE ROW LEVEL SECURITY
// (set meanwhile, it would hide rows from the job's batches and replay rounds).
void RequireSourceAsCopied(Context& ctx, const Of& t = {});
// The name for an index the swap attaches: `wanted`, or (if a relation in the table's schema or
// a constraint of the table took it meanwhile) a free one like it, with an event.
std::string FreeIndexName(Context& ctx, const std::string& wanted, const std::string& column,
                          const std::string& label);
// add_column: the table's primary key is still the one the job recorded (its index, one column).
void RequireKeyIndex(Context& ctx, const Of& t = {});
// The index on the copy that finds a row by its identity, "" while there is none yet.
std::string KeyTwin(Context& ctx, const Of& t = {});

// One replay round's statements (the caller's transaction gives them one snapshot, or holds the
// table ACCESS EXCLUSIVE). Returns the number of log rows applied.
int64_t ApplyLog(Context& ctx, const Of& t = {});
// One round in a REPEATABLE READ transaction of its own.
int64_t ReplayRound(Context& ctx, const Of& t = {});

// The steps both operations share (copy_steps.cpp).
// copy: CREATE TABLE for the copy, then INSERT … SELECT by ranges of heap blocks; its undo drops it.
void CopyStep(Context& ctx);
void UndoCopyStep(Context& ctx);
// The same over several tables, one after the other under the job's one cursor (BackfillTables).
void CopyTablesStep(Context& ctx, const std::vector<Of>& tables);
void UndoCopies(Context& ctx, const std::vector<Of>& tables);
// build_indexes: one replay round, then the copy's indexes (EnsureTwins).
void BuildIndexesStep(Context& ctx);
// catch_up: replay rounds until little is left.
void CatchUpStep(Context& ctx, const std::vector<Of>& tables = {Of{}});
// The swap's parts: before its transaction, the twins and the last rounds outside the lock (after
// any wait for the run window); in it, the locks and checks (returns the copy's OID), then the last
// round, and the storages of every index and of the table swapped with the copy's (returns the
// changes that round applied).
void BeforeSwap(Context& ctx, const std::string& activity, const std::vector<Of>& tables = {Of{}});
unsigned LockForSwap(Context& ctx, const Of& t = {});
int64_t SwapWithCopy(Context& ctx, unsigned copy, const Of& t = {});
// cleanup: DROP the copy (the old storage now) and the log, by OID; ANALYZE if it can.
void CleanupStep(Context& ctx);
// The copy (the old storage after the swap) and the log of table t dropped, by OID.
void DropHelpers(Context& ctx, const Of& t);
// ANALYZE, unless its lock is not had within pkonline.lock_timeout (an event says so).
void AnalyzeTable(Context& ctx, const Of& t);
// ANALYZE of the copy before the swap, each column with its column's statistics target (the job's
// column with that of `nulled`, whose values it holds): the swap then gives the table the copy's
// figures (pg::SwapStatistics). Returns false when its lock was not had (the table is analysed
// after the swap instead).
bool AnalyzeCopy(Context& ctx, const Of& t);
// The catch_up and cleanup steps as steps(job) shows them; the swap's lock.
jobs::Step CatchUp();
jobs::Step Cleanup();
extern const char* const kSwapLock;

// The table's primary key if it is one integer column named `column`: (its index's OID, the
// column's attnum), or (0, 0).
std::pair<unsigned, int> PrimaryKeyOn(const jobs::Job& job, const std::string& column, const Of& t = {});
// In the transaction that made the column, under the table's lock: the change log, its row
// trigger logging the key (column `key_attnum`) of every row written, ENABLE ALWAYS, and the
// table's storage, all recorded.
void CreateChangeLog(Context& ctx, int key_attnum, const Of& t = {});
// Undoes it: the trigger and the log dropped (the log only while it is the job's own).
void DropChangeLog(Context& ctx, const Of& t = {});

}  // namespace pkonline::ops::copy
