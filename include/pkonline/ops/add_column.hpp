// The add_column operation's step list.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pkonline/ops/operation.hpp"

namespace pkonline::ops {
std::unique_ptr<Operation> MakeAddColumn();

namespace add_col {
// Shared by both step lists (add_column.cpp).
std::string FillName(const jobs::Job& job);  // the fill trigger (and its function's suffix)
void AddColumn(Context& ctx);                // the column, its DEFAULT, the fill trigger (brief)
void UndoAddColumn(Context& ctx);
// The copy method (add_column_copy.cpp).
std::vector<Step> CopySteps(const jobs::Job& job);
// On a partitioned table (add_column_partitioned.cpp).
std::vector<Step> PartitionedSteps(const jobs::Job& job);
}  // namespace add_col
}  // namespace pkonline::ops
