// set_primary_key on a partitioned table: the key's columns must contain the partition key
// columns of every level (the API refuses them otherwise), and the table has no key yet.
//
// Steps: preflight (NULLs, duplicates: reads) -> each partition's own key (leaf_keys.cpp: check
// NOT VALID, VALIDATE, CREATE UNIQUE INDEX CONCURRENTLY, SET NOT NULL, PRIMARY KEY USING INDEX)
// -> ADD PRIMARY KEY on the parent, which attaches them (catalog only).
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/leaf_keys.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/set_primary_key.hpp"

namespace pkonline::ops::set_pk {

namespace {
SetPrimaryKeyPlan Plan(const jobs::Job& job) { return SetPrimaryKeyPlan::Load(job); }
LeafKeySpec KeySpec(const jobs::Job& job) { return {Plan(job).columns, std::nullopt}; }
}  // namespace

std::vector<Step> PartitionedSteps(const jobs::Job& job) {
  const SetPrimaryKeyPlan plan = Plan(job);
  const std::string cols = QuotedList(plan.columns);
  return {
      {"preflight",
       "count NULLs and duplicates of (" + cols +
           "), with samples; the job fails here, changing nothing, if "
           "there are any",
       "ACCESS SHARE only: reads (nobody waits for it)", Preflight, nullptr},
      {"partition_keys",
       "each partition's own PRIMARY KEY (" + cols +
           "): CHECK (… IS NOT NULL) NOT VALID, VALIDATE, CREATE UNIQUE INDEX CONCURRENTLY, SET NOT NULL "
           "(proved by the check), ADD PRIMARY KEY USING INDEX",
       "per partition: ACCESS EXCLUSIVE catalog only (milliseconds) for the check and the key; SHARE UPDATE "
       "EXCLUSIVE for VALIDATE and the index build (reads and writes continue)",
       [](Context& ctx) { LeafKeys(ctx, KeySpec(ctx.job())); },
       [](Context& ctx) { UndoLeafKeys(ctx, Plan(ctx.job()).columns); }},
      {"attach",
       "ADD PRIMARY KEY (" + cols +
           ") on the partitioned table, which attaches every partition's key (no index "
           "built, no scan)",
       "ACCESS EXCLUSIVE on the table and every partition, catalog only (milliseconds)",
       [](Context& ctx) { AttachParentKey(ctx, KeySpec(ctx.job()), Plan(ctx.job()).pk_name, nullptr); },
       nullptr, true},
  };
}

}  // namespace pkonline::ops::set_pk
