// pkonline's C row triggers (the copy method's two, the in-place fill trigger) and the copy
// method's row key, with the checks that only a job's own triggers may use them.
//
// Every row version of the table carries, or can be given, the id it will have in the copy:
//  * rows that existed when the job began and were not written since have a NULL id: their id is
//    their position, _tid_key(ctid) = block * MaxHeapTuplesPerPage + offset (such a row never
//    moves: an UPDATE makes a new version, and a rewrite changes the relfilenode, which the job
//    watches);
//  * every row version written since gets its id from the fill trigger: the sequence for an
//    INSERT, the old version's id (or position) for an UPDATE.
// The log trigger records, for each change, the id it touched (old and new) and where the new
// version lives, so the job can bring the copy's rows for those ids up to date.
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/storage.hpp"

extern "C" {
#include "postgres.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PGDLLEXPORT Datum pkonline_tid_key(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum pkonline_copy_fill(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum pkonline_copy_log(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum pkonline_fill_nextval(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum pkonline_sync_bigint(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(pkonline_sync_bigint);
PG_FUNCTION_INFO_V1(pkonline_tid_key);
PG_FUNCTION_INFO_V1(pkonline_copy_fill);
PG_FUNCTION_INFO_V1(pkonline_copy_log);
PGDLLEXPORT Datum pkonline_copy_guard(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(pkonline_copy_guard);
PG_FUNCTION_INFO_V1(pkonline_fill_nextval);
}

namespace pkonline::pg {
const int64_t kIdsPerHeapBlock = MaxHeapTuplesPerPage;
}  // namespace pkonline::pg

namespace {

int64 TidKey(ItemPointer tid) {
  return static_cast<int64>(ItemPointerGetBlockNumberNoCheck(tid)) * MaxHeapTuplesPerPage +
         ItemPointerGetOffsetNumberNoCheck(tid);
}

// The id column's value as int64 (it is smallint, integer or bigint).
int64 IdValue(Datum d, Oid type) {
  switch (type) {
    case INT2OID:
      return DatumGetInt16(d);
    case INT4OID:
      return DatumGetInt32(d);
    default:
      return DatumGetInt64(d);
  }
}

Datum IdDatum(int64 v, Oid type) {
  switch (type) {
    case INT2OID:
      if (v > PG_INT16_MAX)
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("pkonline: id %lld out of range for smallint", (long long)v)));
      return Int16GetDatum(static_cast<int16>(v));
    case INT4OID:
      if (v > PG_INT32_MAX)
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("pkonline: id %lld out of range for integer", (long long)v)));
      return Int32GetDatum(static_cast<int32>(v));
    default:
      return Int64GetDatum(v);
  }
}

// Triggers this backend has found to be the ones a job made: (trigger, table, the column's number
// in the job's table, OID) and the column's number in the trigger's table.
struct Verified {
  Oid tgoid;
  Oid relid;
  AttrNumber attnum;
  Oid target;
  AttrNumber local;
};
constexpr int kVerifiedSlots = 32;
Verified verified[kVerifiedSlots];
int next_verified = 0;

// Runs a look-up in pkonline.jobs as the bootstrap superuser (the writer may not see the job),
// inside a security-restricted operation with a pinned search_path; the first row's first
// `nout` columns (int4 or int2) go to `out`. Returns whether there was a row.
bool LookUpJob(const char* fn, const char* sql, int nargs, Oid* types, Datum* values, int nout, int* out) {
  Oid saved_user;
  int saved_ctx;
  GetUserIdAndSecContext(&saved_user, &saved_ctx);
  SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
                         saved_ctx | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  const int nest = NewGUCNestLevel();
  (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                          true, 0, false);
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "%s: SPI_connect failed", fn);
  // A fresh snapshot: a writer's REPEATABLE READ transaction older than the job's records must
  // still find them (the trigger it fires is newer than its snapshot too).
  PushActiveSnapshot(GetLatestSnapshot());
  const int rc = SPI_execute_with_args(sql, nargs, types, values, nullptr, true, 1);
  const bool found = rc == SPI_OK_SELECT && SPI_processed == 1;
  for (int i = 0; found && i < nout; i++) {
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull);
    out[i] = isnull ? 0 : DatumGetInt32(d);
  }
  SPI_finish();
  PopActiveSnapshot();
  AtEOXact_GUC(true, nest);
  SetUserIdAndSecContext(saved_user, saved_ctx);
  return found;
}

[[noreturn]] void NotAJobTrigger(TriggerData* td, const char* fn) {
  ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                  errmsg("%s: trigger \"%s\" on \"%s\" was not made by a pkonline job", fn,
                         td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation)),
                  errdetail("Only a running pkonline job's own triggers may call this function, with the "
                            "column and helper that the job recorded."),
                  errhint("DROP TRIGGER \"%s\" ON the table.", td->tg_trigger->tgname)));
  pg_unreachable();
}

// PostgreSQL checks EXECUTE on a trigger function only at CREATE TRIGGER, and the arguments are
// whatever its creator wrote: before writing anything, make sure the trigger is the one an
// unfinished job of this table (or of a partitioned table it is a partition of: the job's trigger
// is cloned onto every partition) made, with the column and the sequence (`key` seq_oid) or change
// log (log_oid) that the job recorded. `attnum` is the column's number in the job's table; the
// result, its number in this relation (a partition's columns may be in another order). The look-up
// runs once per trigger and backend.
AttrNumber RequireJobTrigger(TriggerData* td, const char* fn, AttrNumber attnum, Oid target,
                             const char* key) {
  const Oid tgoid = td->tg_trigger->tgoid;
  const Oid relid = RelationGetRelid(td->tg_relation);
  for (const Verified& v : verified)
    if (v.tgoid == tgoid && v.relid == relid && v.attnum == attnum && v.target == target) return v.local;
  Oid types[4] = {OIDOID, TEXTOID, TEXTOID, TEXTOID};
  char target_text[16], attnum_text[16];
  snprintf(target_text, sizeof target_text, "%u", target);
  snprintf(attnum_text, sizeof attnum_text, "%d", attnum);
  Datum values[4] = {ObjectIdGetDatum(relid), CStringGetTextDatum(key), CStringGetTextDatum(target_text),
                     CStringGetTextDatum(attnum_text)};
  int local = 0;
  if (!LookUpJob(
          fn,
          "SELECT a.attnum::pg_catalog.int4 FROM pkonline.jobs j "
          "JOIN pg_catalog.pg_attribute p ON p.attrelid = j.relid "
          " AND p.attnum::pg_catalog.text = $4 AND NOT p.attisdropped "
          "JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attname = p.attname "
          " AND NOT a.attisdropped "
          "WHERE (j.relid = $1 OR j.relid IN (SELECT relid FROM pg_catalog.pg_partition_ancestors($1))) "
          "AND j.state NOT IN ('done', 'cancelled') "
          "AND j.options ->> $2 = $3 "
          // the row identity: add_int_pk's new column, or (add_column, copy) the key's column
          "AND COALESCE(j.options ->> 'key_attnum', j.options ->> 'column_attnum') = $4 "
          // convert_pk_to_bigint's copy method: a table whose foreign key references the job's,
          // its records under "<fact>@<its OID>" (no partitions: such tables are plain)
          "UNION ALL SELECT a.attnum::pg_catalog.int4 FROM pkonline.jobs j "
          "JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attnum::pg_catalog.text = $4 "
          " AND NOT a.attisdropped "
          "WHERE j.state NOT IN ('done', 'cancelled') AND j.operation = 'convert_pk_to_bigint' "
          "AND j.options ->> ($2 || '@' || $1::pg_catalog.text) = $3 "
          "AND j.options ->> ('key_attnum@' || $1::pg_catalog.text) = $4",
          4, types, values, 1, &local) ||
      local <= 0)
    NotAJobTrigger(td, fn);
  verified[next_verified] = {tgoid, relid, attnum, target, static_cast<AttrNumber>(local)};
  next_verified = (next_verified + 1) % kVerifiedSlots;
  return static_cast<AttrNumber>(local);
}

// The trigger's arguments: the id column's attnum in the job's table, then an OID (the sequence,
// or the log table), checked against the job's records (`key` names the OID's option). *attnum is
// the column's number in the trigger's relation.
void Args(TriggerData* td, const char* fn, const char* key, AttrNumber* attnum, Oid* oid, Oid* type) {
  Trigger* tg = td->tg_trigger;
  if (tg->tgnargs != 2) elog(ERROR, "%s: expected 2 trigger arguments", fn);
  const AttrNumber job_attnum = static_cast<AttrNumber>(atoi(tg->tgargs[0]));
  *oid = static_cast<Oid>(strtoul(tg->tgargs[1], nullptr, 10));
  TupleDesc desc = RelationGetDescr(td->tg_relation);
  auto check_column = [&](AttrNumber a) {
    if (a < 1 || a > desc->natts || TupleDescAttr(desc, a - 1)->attisdropped)
      elog(ERROR, "%s: the job's column (attnum %d) is gone", fn, a);
    *type = TupleDescAttr(desc, a - 1)->atttypid;
    if (*type != INT2OID && *type != INT4OID && *type != INT8OID)
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("%s: column %d of \"%s\" is not smallint, integer or bigint", fn, a,
                             RelationGetRelationName(td->tg_relation))));
  };
  // The job's own table: its column checked before the look-up. A partition: the column's number
  // there is known only from the look-up.
  if (!td->tg_relation->rd_rel->relispartition) check_column(job_attnum);
  *attnum = RequireJobTrigger(td, fn, job_attnum, *oid, key);
  check_column(*attnum);
}

TriggerData* RowTrigger(FunctionCallInfo fcinfo, const char* fn) {
  if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "%s: not called as a trigger", fn);
  TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  if (!TRIGGER_FIRED_FOR_ROW(td->tg_event)) elog(ERROR, "%s: must be a row trigger", fn);
  return td;
}

// BEFORE INSERT OR UPDATE (convert_pk_to_bigint): the row's bigint column takes the value of the
// integer one. Arguments: the job and the target's number; the two columns are those the job
// recorded for this table (its plan's column, the shadow's attnum), looked up once per trigger.
Datum Sync(FunctionCallInfo fcinfo) {
  const char* fn = "pkonline_internal._sync_bigint";
  TriggerData* td = RowTrigger(fcinfo, fn);
  if (!TRIGGER_FIRED_BEFORE(td->tg_event)) elog(ERROR, "%s: must fire BEFORE", fn);
  Trigger* tg = td->tg_trigger;
  if (tg->tgnargs != 2) elog(ERROR, "%s: expected 2 trigger arguments", fn);
  const Oid tgoid = tg->tgoid;
  const Oid relid = RelationGetRelid(td->tg_relation);
  // Columns found for this backend's sync triggers: (trigger, table) -> (integer, bigint).
  static struct {
    Oid tgoid, relid;
    AttrNumber from, to;
  } cache[kVerifiedSlots];
  static int next_cache = 0;
  AttrNumber from = 0, to = 0;
  for (const auto& c : cache)
    if (c.tgoid == tgoid && c.relid == relid) {
      from = c.from;
      to = c.to;
    }
  if (from == 0) {
    Oid types[3] = {OIDOID, INT8OID, INT4OID};
    Datum values[3] = {ObjectIdGetDatum(relid), Int64GetDatum(strtoll(tg->tgargs[0], nullptr, 10)),
                       Int32GetDatum(atoi(tg->tgargs[1]))};
    int out[2] = {0, 0};
    if (!LookUpJob(
            fn,
            "SELECT a.attnum::int4, (j.options ->> ('shadow_attnum_' || $3))::int4 FROM pkonline.jobs j "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND NOT a.attisdropped "
            "AND a.attname = j.options -> 'targets' -> $3 ->> 'column' "
            "WHERE j.id = $2 AND j.state NOT IN ('done', 'cancelled') AND j.operation = "
            "'convert_pk_to_bigint' AND (j.options -> 'targets' -> $3 ->> 'relid')::oid = $1",
            3, types, values, 2, out) ||
        out[0] <= 0 || out[1] <= 0)
      NotAJobTrigger(td, fn);
    from = static_cast<AttrNumber>(out[0]);
    to = static_cast<AttrNumber>(out[1]);
    cache[next_cache] = {tgoid, relid, from, to};
    next_cache = (next_cache + 1) % kVerifiedSlots;
  }
  TupleDesc desc = RelationGetDescr(td->tg_relation);
  if (from > desc->natts || to > desc->natts || TupleDescAttr(desc, to - 1)->attisdropped ||
      TupleDescAttr(desc, to - 1)->atttypid != INT8OID)
    elog(ERROR, "%s: the job's bigint column (attnum %d) is gone", fn, to);
  const Oid type = TupleDescAttr(desc, from - 1)->atttypid;
  if (type != INT2OID && type != INT4OID && type != INT8OID)
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("%s: column %d of \"%s\" is not smallint, integer or bigint", fn, from,
                           RelationGetRelationName(td->tg_relation))));
  HeapTuple tuple = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
  bool null, had_null;
  const Datum v = heap_getattr(tuple, from, desc, &null);
  const Datum had = heap_getattr(tuple, to, desc, &had_null);
  const int64 value = null ? 0 : IdValue(v, type);
  if (null == had_null && (null || DatumGetInt64(had) == value)) return PointerGetDatum(tuple);
  int col = to;
  Datum d = Int64GetDatum(value);
  return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 1, &col, &d, &null));
}

// BEFORE INSERT OR UPDATE: give the new row version its id when it has none. With `positions`
// (the copy method) an UPDATE keeps the old version's id or position; without (the in-place
// method's fill trigger) every row without an id gets the sequence's next value.
Datum Fill(FunctionCallInfo fcinfo, const char* fn, bool positions) {
  TriggerData* td = RowTrigger(fcinfo, fn);
  if (!TRIGGER_FIRED_BEFORE(td->tg_event)) elog(ERROR, "%s: must fire BEFORE", fn);
  AttrNumber attnum;
  Oid seq, type;
  Args(td, fn, "seq_oid", &attnum, &seq, &type);
  TupleDesc desc = RelationGetDescr(td->tg_relation);
  const bool update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
  HeapTuple tuple = update ? td->tg_newtuple : td->tg_trigtuple;
  if (!heap_attisnull(tuple, attnum, desc)) return PointerGetDatum(tuple);
  int64 id;
  if (!update || !positions) {
    id = nextval_internal(seq, true);
  } else {
    bool isnull;
    Datum old = heap_getattr(td->tg_trigtuple, attnum, desc, &isnull);
    id = isnull ? TidKey(&td->tg_trigtuple->t_self) : IdValue(old, type);
  }
  int col = attnum;
  Datum value = IdDatum(id, type);
  bool null = false;
  return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 1, &col, &value, &null));
}

int64 OldId(TriggerData* td, AttrNumber attnum, Oid type) {
  bool isnull;
  Datum d = heap_getattr(td->tg_trigtuple, attnum, RelationGetDescr(td->tg_relation), &isnull);
  return isnull ? TidKey(&td->tg_trigtuple->t_self) : IdValue(d, type);
}

// AFTER INSERT OR UPDATE OR DELETE: one row in the job's log (old_id, new_id, tid of the new
// version), written straight into the heap (the log has no index; writers need no grant on it).
Datum Log(FunctionCallInfo fcinfo) {
  TriggerData* td = RowTrigger(fcinfo, "pkonline_internal._copy_log");
  if (!TRIGGER_FIRED_AFTER(td->tg_event)) elog(ERROR, "pkonline_internal._copy_log: must fire AFTER");
  AttrNumber attnum;
  Oid log_oid, type;
  Args(td, "pkonline_internal._copy_log", "log_oid", &attnum, &log_oid, &type);
  TupleDesc desc = RelationGetDescr(td->tg_relation);
  Datum values[3] = {0, 0, 0};
  bool nulls[3] = {true, true, true};
  HeapTuple fresh = nullptr;
  if (TRIGGER_FIRED_BY_INSERT(td->tg_event)) {
    fresh = td->tg_trigtuple;
  } else {
    values[0] = Int64GetDatum(OldId(td, attnum, type));
    nulls[0] = false;
    if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) fresh = td->tg_newtuple;
  }
  if (fresh != nullptr) {
    bool isnull;
    Datum d = heap_getattr(fresh, attnum, desc, &isnull);
    if (isnull)
      elog(ERROR, "pkonline_internal._copy_log: a new row version has no id (is the fill trigger disabled?)");
    values[1] = Int64GetDatum(IdValue(d, type));
    nulls[1] = false;
    ItemPointer tid = static_cast<ItemPointer>(palloc(sizeof(ItemPointerData)));
    ItemPointerCopy(&fresh->t_self, tid);
    values[2] = PointerGetDatum(tid);
    nulls[2] = false;
  }
  Relation log = table_open(log_oid, RowExclusiveLock);
  TupleDesc ld = RelationGetDescr(log);
  if (log->rd_rel->relkind != RELKIND_RELATION || ld->natts != 3 ||
      TupleDescAttr(ld, 0)->atttypid != INT8OID || TupleDescAttr(ld, 1)->atttypid != INT8OID ||
      TupleDescAttr(ld, 2)->atttypid != TIDOID || TupleDescAttr(ld, 0)->attisdropped ||
      TupleDescAttr(ld, 1)->attisdropped || TupleDescAttr(ld, 2)->attisdropped || ld->constr != nullptr ||
      log->rd_rel->relhasindex || log->rd_rel->relowner != td->tg_relation->rd_rel->relowner)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("pkonline_internal._copy_log: \"%s\" is not the job's change log",
                           RelationGetRelationName(log))));
  HeapTuple row = heap_form_tuple(RelationGetDescr(log), values, nulls);
  simple_heap_insert(log, row);
  heap_freetuple(row);
  table_close(log, NoLock);
  return PointerGetDatum(nullptr);
}

}  // namespace

extern "C" {

Datum pkonline_tid_key(PG_FUNCTION_ARGS) {
  return Int64GetDatum(TidKey(reinterpret_cast<ItemPointer>(PG_GETARG_POINTER(0))));
}

// The trigger bodies hold no C++ object: one guard per call turns an error into a PgError and
// Entry raises it again, with its SQLSTATE, once the C++ frames are gone.
Datum pkonline_copy_fill(PG_FUNCTION_ARGS) {
  return pkonline::Entry(
      [&]() { return pkonline::Call([&]() { return Fill(fcinfo, "pkonline_internal._copy_fill", true); }); });
}

Datum pkonline_fill_nextval(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() {
    return pkonline::Call([&]() { return Fill(fcinfo, "pkonline_internal._fill_nextval", false); });
  });
}

Datum pkonline_sync_bigint(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return pkonline::Call([&]() { return Sync(fcinfo); }); });
}

Datum pkonline_copy_log(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return pkonline::Call([&]() { return Log(fcinfo); }); });
}

// BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE, FOR EACH STATEMENT, on a copy: only the job's own
// statements (a CopyWriteScope is alive in this backend) write it.
Datum pkonline_copy_guard(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() {
    return pkonline::Call([&]() -> Datum {
      if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "pkonline_internal._copy_guard: not called as a trigger");
      TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
      if (pkonline::pg::CopyWritesAllowed()) return PointerGetDatum(nullptr);
      ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                      errmsg("\"%s\" is the copy of a table made by a pkonline job: only the job writes it",
                             RelationGetRelationName(td->tg_relation)),
                      errdetail("The job's swap trusts every row of the copy to have come through the job."),
                      errhint("pkonline.cancel(job) drops it.")));
      return PointerGetDatum(nullptr);
    });
  });
}

}  // extern "C"
