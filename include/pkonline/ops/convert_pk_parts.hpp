// convert_pk_to_bigint's parts that both its methods use: the in-place method (convert_pk.cpp)
// and the copy method (convert_pk_copy.cpp), which adds the same bigint shadow column but fills it
// in a twin of the table, and then ends with the same catalog swap.
#pragma once

#include <string>
#include <vector>

#include "pkonline/jobs/step.hpp"
#include "pkonline/ops/operation.hpp"
#include "pkonline/ops/plans.hpp"

namespace pkonline::ops::convert {

using jobs::Context;
using Target = ConvertPkPlan::Target;

ConvertPkPlan Plan(const jobs::Job& job);
// The shadow column of target i: its name as created, and (found by the attnum recorded when it
// was added) its name now, "" if the job has not added it or it is gone.
std::string Shadow(const jobs::Job& job, size_t i);
std::string ShadowColumn(Context& ctx, const Target& t, size_t i);
// The current name of a table the job touches (fails if dropped, or no longer the job's owner's).
std::string TableOf(const jobs::Job& job, unsigned relid);
// A column's attnum by name; 0 if there is none.
int Attnum(unsigned relid, const std::string& column);
std::vector<unsigned> TargetTables(const ConvertPkPlan& plan);
// ACCESS EXCLUSIVE on every table, in OID order.
void LockAll(const jobs::Job& job, const std::vector<unsigned>& relids);
// Fails once the swap is done (nothing before it can be undone).
void RequireNotSwapped(Context& ctx, const ConvertPkPlan& plan);

// An index of one of the job's tables that contains converted columns.
struct OldIndex {
  std::string oid;
  unsigned relid;
  std::vector<size_t> targets;  // the converted columns it contains
};
std::vector<OldIndex> IndexesToRebuild(const ConvertPkPlan& plan);

struct ForeignKey {
  unsigned relid;
  std::string table, name, definition;
  bool validated;
};
// Foreign keys referencing the key column.
std::vector<ForeignKey> ReferencingKeys(const jobs::Job& job, const std::string& key_column);

// One table's part of the swap, the table locked ACCESS EXCLUSIVE: each converted column dropped
// and its shadow renamed to its name, with everything the column carried; the bigint twin of each
// of `olds` (recorded under fact::kTwinIndexPrefix + its OID, an index of the table) renamed and
// attached as the old one was.
void SwapTable(Context& ctx, const ConvertPkPlan& plan, unsigned relid, const std::vector<OldIndex>& olds);

// Every table the job touches: the plan's (the key's, those whose foreign keys reference it) and
// those it converts.
std::vector<unsigned> AllTables(const ConvertPkPlan& plan);
// In the swap's transaction, every table locked ACCESS EXCLUSIVE: the foreign keys referencing the
// key dropped (one added meanwhile on a table the job does not know fails it), SwapTable for each
// table with a column to convert, the foreign keys re-added NOT VALID and recorded for
// validate_fks.
void SwapColumns(Context& ctx, const ConvertPkPlan& plan, const std::vector<unsigned>& tables);

// The copy method's steps (convert_pk_copy.cpp).
std::vector<Step> CopySteps(const jobs::Job& job);

}  // namespace pkonline::ops::convert
