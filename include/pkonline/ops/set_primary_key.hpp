// The set_primary_key operation's step list.
#pragma once

#include <memory>

#include "pkonline/ops/operation.hpp"

#include <vector>

namespace pkonline::ops {
std::unique_ptr<Operation> MakeSetPrimaryKey();

namespace set_pk {
// Counts NULLs and duplicates of the new key; fails, changing nothing, if there are any.
void Preflight(Context& ctx);
// On a partitioned table (set_primary_key_partitioned.cpp).
std::vector<Step> PartitionedSteps(const jobs::Job& job);
}  // namespace set_pk
}  // namespace pkonline::ops
