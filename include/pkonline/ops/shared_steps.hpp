// Step bodies shared by operations: helper-object names, a CHECK (col IS NOT NULL) NOT VALID +
// VALIDATE pair, and a unique index built concurrently. Each is idempotent and checks the
// catalog before acting, so a step can run again after a crash.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "pkonline/ops/operation.hpp"

namespace pkonline::ops {

// "pkonline_<job>_<suffix>_<tag>": the job's helper objects, named from its id and a tag of eight
// hex digits from the job's secret (jobs::kHelperKey), so that nobody can take a helper's name
// before the job makes it (a co-tenant of a shared schema squatted them: every job there failed).
// Jobs made before 0.4 have no secret: "pkonline_<job>_<suffix>".
std::string HelperName(const jobs::Job& job, const std::string& suffix);
// The helper qualified by the schema it lives in (the table's schema at creation).
std::string HelperSql(const jobs::Job& job, const std::string& suffix);

// Drop the job's helper sequence / trigger function (pkonline_<job>_<suffix>, no arguments) if it
// is there and belongs to the table's owner (whom the job works as): an object someone else
// made under a helper's name is never the job's to drop.
void DropSequenceIfOurs(const jobs::Job& job, const std::string& suffix);
void DropFunctionIfOurs(const jobs::Job& job, const std::string& suffix);

bool TableExists(const jobs::Job& job);
bool ColumnExists(const jobs::Job& job, const std::string& column);
// The column's attnum (0 if there is none); sees a column added earlier in the same transaction.
int ColumnAttnum(const jobs::Job& job, const std::string& column);

// --- the fill trigger -------------------------------------------------------------------------
// While the backfill runs, the job's fill trigger is BEFORE INSERT only: a BEFORE UPDATE row
// trigger would make every UPDATE of the backfill lock its row first (one more WAL record per
// row, about 15 % of the backfill's WAL and time). INSERTs need it (an explicit NULL); UPDATEs of
// rows not filled yet may move them behind the backfill's cursor, so:
// function_call: the trigger function with its arguments, e.g. "s.pkonline_7_fill()".
std::string FillTriggerSql(const std::string& trigger, const std::string& table_sql,
                           const std::string& column_sql, const std::string& function_call, bool on_update);
// CREATE TRIGGER for a job's trigger, as the extension's owner: pkonline's C trigger functions
// are executable by nobody else (src/pg/capture.cpp checks the trigger against the job, too).
void CreateJobTrigger(Context& ctx, const std::string& sql);
// catch_up: the trigger now fills on UPDATE too (brief DDL), then one more pass over the table
// (reads, mostly) fills the rows written without a value while the backfill ran. Afterwards no
// row can be left without a value.
void CatchUp(Context& ctx, const std::string& trigger, const std::function<std::string()>& function_call,
             const std::string& column, const std::string& value_sql, bool require_value);

// --- CHECK (column IS NOT NULL) NOT VALID, then VALIDATE -------------------------------------
// Does the check exist (and is it validated)?
bool CheckExists(const jobs::Job& job, const std::string& check, bool* validated = nullptr);
void AddNotNullCheck(Context& ctx, const std::string& check, const std::string& column);
void DropCheck(Context& ctx, const std::string& check);  // undo: drops it if present
// VALIDATE CONSTRAINT. When rows still lack a value, `on_nulls` runs and may return true to have
// VALIDATE tried again (up to three times); if it returns false the check violation is raised.
void ValidateCheck(Context& ctx, const std::string& check, const std::function<bool()>& on_nulls);

// --- a unique index built concurrently ------------------------------------------------------
// State of the index `name` in the table's schema: 'v' valid, 'i' invalid, 'n' none,
// 'f' the name is taken by an index that is not a plain unique index on exactly `columns`.
char UniqueIndexState(const jobs::Job& job, const std::string& name, const std::vector<std::string>& columns);
// The same for the index `name` in the schema of table `relid` (a partition).
char UniqueIndexStateOn(unsigned relid, const std::string& name, const std::vector<std::string>& columns);
std::string IndexSql(const jobs::Job& job, const std::string& name);  // qualified
// CREATE UNIQUE INDEX CONCURRENTLY, dropping an INVALID leftover first; skipped when the index
// is valid already or `attached()` says it became a constraint.
void BuildUniqueIndex(Context& ctx, const std::string& name, const std::vector<std::string>& columns,
                      const std::function<bool()>& attached);
// Undo: DROP INDEX CONCURRENTLY, unless it is attached as a constraint already.
void DropUniqueIndex(Context& ctx, const std::string& name, const std::vector<std::string>& columns,
                     const std::function<bool()>& attached);

// --- foreign keys moved by a swap --------------------------------------------------------------
// The foreign keys the swap re-added NOT VALID (fact moved_fks): VALIDATE each, reading its
// table under SHARE UPDATE EXCLUSIVE (DML continues); one gone or valid already is skipped.
void ValidateForeignKeys(Context& ctx);

}  // namespace pkonline::ops
