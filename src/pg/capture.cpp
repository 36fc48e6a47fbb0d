// The copy-and-swap method's row triggers and row key (see include/pkonline/pg/capture.hpp).
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

extern "C" {
#include "postgres.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "storage/itemptr.h"
#include "utils/rel.h"

PGDLLEXPORT Datum pkonline_tid_key(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum pkonline_copy_fill(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum pkonline_copy_log(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum pkonline_fill_nextval(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(pkonline_tid_key);
PG_FUNCTION_INFO_V1(pkonline_copy_fill);
PG_FUNCTION_INFO_V1(pkonline_copy_log);
PG_FUNCTION_INFO_V1(pkonline_fill_nextval);
}

namespace {

int64 TidKey(ItemPointer tid) {
  return static_cast<int64>(ItemPointerGetBlockNumberNoCheck(tid)) * MaxHeapTuplesPerPage +
         ItemPointerGetOffsetNumberNoCheck(tid);
}

// The id column's value as int64 (it is smallint, integer or bigint).
int64 IdValue(Datum d, Oid type) {
  switch (type) {
    case INT2OID: return DatumGetInt16(d);
    case INT4OID: return DatumGetInt32(d);
    default: return DatumGetInt64(d);
  }
}

Datum IdDatum(int64 v, Oid type) {
  switch (type) {
    case INT2OID:
      if (v > PG_INT16_MAX) ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE), errmsg("pkonline: id %lld out of range for smallint", (long long)v)));
      return Int16GetDatum(static_cast<int16>(v));
    case INT4OID:
      if (v > PG_INT32_MAX) ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE), errmsg("pkonline: id %lld out of range for integer", (long long)v)));
      return Int32GetDatum(static_cast<int32>(v));
    default: return Int64GetDatum(v);
  }
}

// The trigger's arguments: the id column's attnum, then an OID (the sequence, or the log table).
void Args(TriggerData* td, const char* fn, AttrNumber* attnum, Oid* oid, Oid* type) {
  Trigger* tg = td->tg_trigger;
  if (tg->tgnargs != 2) elog(ERROR, "%s: expected 2 trigger arguments", fn);
  *attnum = static_cast<AttrNumber>(atoi(tg->tgargs[0]));
  *oid = static_cast<Oid>(strtoul(tg->tgargs[1], nullptr, 10));
  TupleDesc desc = RelationGetDescr(td->tg_relation);
  if (*attnum < 1 || *attnum > desc->natts || TupleDescAttr(desc, *attnum - 1)->attisdropped)
    elog(ERROR, "%s: the job's column (attnum %d) is gone", fn, *attnum);
  *type = TupleDescAttr(desc, *attnum - 1)->atttypid;
}

TriggerData* RowTrigger(FunctionCallInfo fcinfo, const char* fn) {
  if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "%s: not called as a trigger", fn);
  TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  if (!TRIGGER_FIRED_FOR_ROW(td->tg_event)) elog(ERROR, "%s: must be a row trigger", fn);
  return td;
}

// BEFORE INSERT OR UPDATE: give the new row version its id when it has none. With `positions`
// (the copy method) an UPDATE keeps the old version's id or position; without (the in-place
// method's fill trigger) every row without an id gets the sequence's next value.
Datum Fill(FunctionCallInfo fcinfo, const char* fn, bool positions) {
  TriggerData* td = RowTrigger(fcinfo, fn);
  if (!TRIGGER_FIRED_BEFORE(td->tg_event)) elog(ERROR, "%s: must fire BEFORE", fn);
  AttrNumber attnum;
  Oid seq, type;
  Args(td, fn, &attnum, &seq, &type);
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
  TriggerData* td = RowTrigger(fcinfo, "pkonline._copy_log");
  if (!TRIGGER_FIRED_AFTER(td->tg_event)) elog(ERROR, "pkonline._copy_log: must fire AFTER");
  AttrNumber attnum;
  Oid log_oid, type;
  Args(td, "pkonline._copy_log", &attnum, &log_oid, &type);
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
    if (isnull) elog(ERROR, "pkonline._copy_log: a new row version has no id (is the fill trigger disabled?)");
    values[1] = Int64GetDatum(IdValue(d, type));
    nulls[1] = false;
    ItemPointer tid = static_cast<ItemPointer>(palloc(sizeof(ItemPointerData)));
    ItemPointerCopy(&fresh->t_self, tid);
    values[2] = PointerGetDatum(tid);
    nulls[2] = false;
  }
  Relation log = table_open(log_oid, RowExclusiveLock);
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
  return pkonline::Entry([&]() { return pkonline::Call([&]() { return Fill(fcinfo, "pkonline._copy_fill", true); }); });
}

Datum pkonline_fill_nextval(PG_FUNCTION_ARGS) {
  return pkonline::Entry(
      [&]() { return pkonline::Call([&]() { return Fill(fcinfo, "pkonline._fill_nextval", false); }); });
}

Datum pkonline_copy_log(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return pkonline::Call([&]() { return Log(fcinfo); }); });
}

}  // extern "C"
