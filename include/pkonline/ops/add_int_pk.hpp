// The add_int_pk operation: two methods, one step list each.
//  * in_place (add_int_pk.cpp): backfill the new column row by row where the rows are.
//  * in place on a partitioned table (add_int_pk_partitioned.cpp): leaf by leaf.
//  * copy (add_int_pk_copy.cpp): copy the rows, ids filled, into a twin table with the same
//    columns, keep it in step through a change log, build its indexes, swap the storages.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pkonline/ops/operation.hpp"

namespace pkonline::ops {

std::unique_ptr<Operation> MakeAddIntPk();

namespace int_pk {
// Shared by both methods (add_int_pk.cpp).
std::string FillName(const jobs::Job& job);
std::string SeqSql(const jobs::Job& job);
bool HasOurPk(const jobs::Job& job);
std::string OurColumn(const jobs::Job& job);
// ADD COLUMN, its sequence (owned by it, USAGE for the table's writers) as its DEFAULT.
void AddColumnWithSequence(Context& ctx);
int64_t SequenceOid(const jobs::Job& job);
std::string FillCall(const jobs::Job& job);
// With the table locked, after the key is attached: identity, or the sequence renamed.
void FinishSequence(const jobs::Job& job);
// Undo of add_column (brief DDL): drops `triggers` from the table, the column, and the sequence
// (if it is the table owner's). Refused once the primary key is attached.
void UndoColumnAndHelpers(Context& ctx, const std::vector<std::string>& triggers);

// The copy method (add_int_pk_copy.cpp).
std::vector<Step> CopySteps(const jobs::Job& job);
// In place on a partitioned table (add_int_pk_partitioned.cpp).
std::vector<Step> PartitionedSteps(const jobs::Job& job);
}  // namespace int_pk

}  // namespace pkonline::ops
