// The copy method's change log: writes to the table while the copy is made, replayed onto the copy
// in rounds (see add_int_pk_copy.cpp for the method).
#include "pkonline/ops/copy_method.hpp"

#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/add_int_pk.hpp"
#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops::copy {

using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;

// One replay round's statements (the caller's transaction gives them one snapshot, or holds the
// table ACCESS EXCLUSIVE). Returns the number of log rows applied.
int64_t ApplyLog(Context& ctx, const Of& t) {
  const auto& job = ctx.job();
  RequireSameStorage(ctx, t);
  const unsigned copy = CopyOid(ctx, t);
  if (copy == 0) Fail(sqlstate::kUndefinedTable, Fmt("the copy of job %1% is gone", job.id));
  const std::string copy_sql = CopySql(ctx, t);
  const Columns c = LiveColumns(job, copy, t);
  const CopySpec spec = SpecOf(job, t);
  if (!spec.key_is_column) RequireKeyIndex(ctx, t);
  RequireLogTrigger(ctx, t);
  RequireCopyAsMade(ctx, copy, t);
  RequireSourceAsCopied(ctx, t);
  const std::string table = TableOf(job, t);
  const std::string id = ColumnSql(job, spec.key, RelidOf(job, t));
  const std::string twin_id = Ident(spec.CopyKey());
  const std::string log = LogSql(ctx, t);
  try {
    const pg::CopyWriteScope writes;
    // The log is never analysed: the plans are spelled out. With the copy's key index, the ids
    // as an array (an index scan per id); before it exists, a hash join over one scan. The new
    // versions by TID, each checked against a hashed list of the ids.
    const std::string ids = "SELECT old_id FROM " + log +
                            " WHERE old_id IS NOT NULL UNION SELECT new_id FROM " + log +
                            " WHERE new_id IS NOT NULL";
    if (!KeyTwin(ctx, t).empty())
      Exec("DELETE FROM " + copy_sql + " WHERE " + twin_id + " OPERATOR(pg_catalog.=) ANY (ARRAY(" + ids +
           "))");
    else
      Exec("DELETE FROM " + copy_sql + " WHERE " + twin_id + " IN (" + ids + ")");
    Exec("INSERT INTO " + copy_sql + " (" + c.twin + ") SELECT " + c.replayed + " FROM ONLY " + table +
         " WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT tid FROM " + log +
         " WHERE tid IS NOT NULL)) AND " + id + " IN (SELECT new_id FROM " + log +
         " WHERE new_id IS NOT NULL)");
  } catch (const PgError& e) {
    if (e.sqlstate() != SqlState("23505")) throw;
    if (spec.key_is_column)
      Fail(e.sqlstate(),
           Fmt("rows with the same %1% were written to %2% while job %3% ran", id, table, job.id),
           e.message(), Fmt("Only the job sets %1%. pkonline.cancel(%2%) undoes the job.", id, job.id));
    Fail(e.sqlstate(),
         Fmt("rows written to %1% while job %2% ran have the same value of %3%", table, job.id,
             Ident(spec.column)),
         e.message(),
         Fmt("pkonline.cancel(%1%) removes the column; a fill that gives each row its own value "
             "can be unique.",
             job.id));
  }
  return static_cast<int64_t>(Exec("DELETE FROM " + log));
}

int64_t ReplayRound(Context& ctx, const Of& t) {
  int64_t applied = 0;
  ctx.Snapshot("pkonline job " + IdText(ctx.job()) + ": apply the change log to the copy",
               [&]() { applied = ApplyLog(ctx, t); });
  return applied;
}

}  // namespace pkonline::ops::copy
