// The convert_pk_to_bigint operation's step list.
#pragma once

#include <memory>
#include <string>

#include "pkonline/ops/operation.hpp"

namespace pkonline::ops {
std::unique_ptr<Operation> MakeConvertPk();

// What else uses the column, that the swap could not carry over (views, rules, policies,
// triggers naming it, other columns' defaults or generated expressions, CHECK and exclusion
// constraints, foreign keys to other tables than `key_relid`, statistics objects, functions with
// a SQL-standard body): their descriptions, "; "-separated; "" if nothing. The swap's DROP COLUMN
// would take them with it: the API refuses them, and the swap checks again under its locks.
std::string OtherUses(unsigned key_relid, unsigned relid, const std::string& column);

struct ConvertPkPlan;
// The indexes the job would build again that use a function, operator, operator class, collation
// or type that is not built in (looked up anew for bigint operands, another role's overload could
// be picked, or none found), or an operator class for a converted column that is not the default
// (it takes integer only): "<index> uses <what>", "; "-separated; "" if none.
std::string IndexesNotBuiltIn(const ConvertPkPlan& plan);
}  // namespace pkonline::ops
