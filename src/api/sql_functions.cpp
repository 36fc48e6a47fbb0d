// The extern "C" edge: one thin shim per SQL function, each through pkonline::Entry.
#include "pkonline/api/api.hpp"
#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "funcapi.h"
#include "utils/tuplestore.h"
#include "nodes/parsenodes.h"
#include "utils/timestamp.h"
}

namespace {

template <typename T>
T Required(FunctionCallInfo fcinfo, int n, const char* name, T (*get)(FunctionCallInfo, int)) {
  if (PG_ARGISNULL(n))
    pkonline::Fail(pkonline::sqlstate::kInvalidParameter, std::string(name) + " must not be NULL");
  return get(fcinfo, n);
}

int64_t JobArg(FunctionCallInfo fcinfo) {
  return Required<int64_t>(
      fcinfo, 0, "job", [](FunctionCallInfo f, int i) -> int64_t { return DatumGetInt64(f->args[i].value); });
}

std::string TextArg(Datum d) {
  char* s = pkonline::Call([&]() { return text_to_cstring(DatumGetTextPP(d)); });
  std::string out(s);
  pfree(s);
  return out;
}

// The elements of a one-dimensional name[]; NULL elements are refused.
std::vector<std::string> NameArray(Datum d, const char* what) {
  ArrayType* array = pkonline::Call([&]() { return DatumGetArrayTypeP(d); });
  if (ARR_NDIM(array) > 1)
    pkonline::Fail(pkonline::sqlstate::kInvalidParameter,
                   std::string(what) + " must be a one-dimensional array");
  Datum* elems = nullptr;
  bool* nulls = nullptr;
  int n = 0;
  pkonline::Call(
      [&]() { deconstruct_array(array, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &elems, &nulls, &n); });
  std::vector<std::string> out;
  for (int i = 0; i < n; i++) {
    if (nulls[i])
      pkonline::Fail(pkonline::sqlstate::kInvalidParameter, std::string(what) + " must not contain NULL");
    out.emplace_back(NameStr(*DatumGetName(elems[i])));
  }
  return out;
}

Datum TextResult(const std::string& s) {
  const char* c = s.c_str();
  return pkonline::Call([&]() { return CStringGetTextDatum(c); });
}

}  // namespace

extern "C" {

#define PKONLINE_FUNCTION(name)             \
  PGDLLEXPORT Datum name(PG_FUNCTION_ARGS); \
  PG_FUNCTION_INFO_V1(name)

PKONLINE_FUNCTION(pkonline_add_int_pk);
PKONLINE_FUNCTION(pkonline_add_column);
PKONLINE_FUNCTION(pkonline_set_primary_key);
PKONLINE_FUNCTION(pkonline_convert_pk_to_bigint);
PKONLINE_FUNCTION(pkonline_check);
PKONLINE_FUNCTION(pkonline_start);
PKONLINE_FUNCTION(pkonline_pause);
PKONLINE_FUNCTION(pkonline_resume);
PKONLINE_FUNCTION(pkonline_cancel);
PKONLINE_FUNCTION(pkonline_forget);
PKONLINE_FUNCTION(pkonline_wait);
PKONLINE_FUNCTION(pkonline_set_option);
PKONLINE_FUNCTION(pkonline_complete);
PKONLINE_FUNCTION(pkonline_forget_older);
PKONLINE_FUNCTION(pkonline_set_run_window);
PKONLINE_FUNCTION(pkonline_run_pending);
PKONLINE_FUNCTION(pkonline_in_transaction_block);

Datum pkonline_add_int_pk(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() -> Datum {
    pkonline::api::AddIntPkArgs a;
    a.relid = Required<Oid>(fcinfo, 0, "tbl",
                            [](FunctionCallInfo f, int i) { return DatumGetObjectId(f->args[i].value); });
    a.column_name = NameStr(*Required<Name>(
        fcinfo, 1, "column_name", [](FunctionCallInfo f, int i) { return DatumGetName(f->args[i].value); }));
    a.column_type = Required<Oid>(fcinfo, 2, "column_type", [](FunctionCallInfo f, int i) {
      return DatumGetObjectId(f->args[i].value);
    });
    // 0.3: identity NULL (the default) is true unless the table is partitioned; pk_columns.
    if (!PG_ARGISNULL(3)) a.identity = DatumGetBool(PG_GETARG_DATUM(3));
    a.start = Required<bool>(fcinfo, 4, "start",
                             [](FunctionCallInfo f, int i) { return DatumGetBool(f->args[i].value); });
    a.method = TextArg(
        Required<Datum>(fcinfo, 5, "method", [](FunctionCallInfo f, int i) { return f->args[i].value; }));
    if (PG_NARGS() > 6 && !PG_ARGISNULL(6)) a.pk_columns = NameArray(PG_GETARG_DATUM(6), "pk_columns");
    return Int64GetDatum(pkonline::api::AddIntPk(a));
  });
}

Datum pkonline_add_column(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() -> Datum {
    auto oid = [](FunctionCallInfo f, int i) { return DatumGetObjectId(f->args[i].value); };
    auto boolean = [](FunctionCallInfo f, int i) {
      return static_cast<bool>(DatumGetBool(f->args[i].value));
    };
    auto text = [](FunctionCallInfo f, int i) { return f->args[i].value; };
    pkonline::api::AddColumnArgs a;
    a.relid = Required<Oid>(fcinfo, 0, "tbl", oid);
    a.column_name = NameStr(*Required<Name>(
        fcinfo, 1, "column_name", [](FunctionCallInfo f, int i) { return DatumGetName(f->args[i].value); }));
    a.column_type = Required<Oid>(fcinfo, 2, "column_type", oid);
    a.fill = TextArg(Required<Datum>(fcinfo, 3, "fill", text));
    if (!PG_ARGISNULL(4)) a.not_null = boolean(fcinfo, 4);
    a.unique = Required<bool>(fcinfo, 5, "is_unique", boolean);
    a.set_default = Required<bool>(fcinfo, 6, "set_default", boolean);
    a.start = Required<bool>(fcinfo, 7, "start", boolean);
    a.search_path = TextArg(Required<Datum>(fcinfo, 8, "search_path", text));
    if (PG_NARGS() > 9) a.method = TextArg(Required<Datum>(fcinfo, 9, "method", text));  // 0.6
    return Int64GetDatum(pkonline::api::AddColumn(a));
  });
}

Datum pkonline_set_primary_key(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() -> Datum {
    pkonline::api::SetPrimaryKeyArgs a;
    a.relid = Required<Oid>(fcinfo, 0, "tbl",
                            [](FunctionCallInfo f, int i) { return DatumGetObjectId(f->args[i].value); });
    const Datum array =
        Required<Datum>(fcinfo, 1, "columns", [](FunctionCallInfo f, int i) { return f->args[i].value; });
    a.columns = NameArray(array, "columns");
    a.old_pk = TextArg(
        Required<Datum>(fcinfo, 2, "old_pk", [](FunctionCallInfo f, int i) { return f->args[i].value; }));
    a.start = Required<bool>(fcinfo, 3, "start", [](FunctionCallInfo f, int i) {
      return static_cast<bool>(DatumGetBool(f->args[i].value));
    });
    // (0.1–0.4 declared four arguments)
    if (PG_NARGS() > 4)
      a.replace_unique = Required<bool>(fcinfo, 4, "replace_unique", [](FunctionCallInfo f, int i) {
        return static_cast<bool>(DatumGetBool(f->args[i].value));
      });
    return Int64GetDatum(pkonline::api::SetPrimaryKey(a));
  });
}

Datum pkonline_convert_pk_to_bigint(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() -> Datum {
    auto boolean = [](FunctionCallInfo f, int i) {
      return static_cast<bool>(DatumGetBool(f->args[i].value));
    };
    pkonline::api::ConvertPkArgs a;
    a.relid = Required<Oid>(fcinfo, 0, "tbl",
                            [](FunctionCallInfo f, int i) { return DatumGetObjectId(f->args[i].value); });
    a.referencing = Required<bool>(fcinfo, 1, "referencing", boolean);
    a.start = Required<bool>(fcinfo, 2, "start", boolean);
    if (PG_NARGS() > 3)  // 0.6
      a.method = TextArg(
          Required<Datum>(fcinfo, 3, "method", [](FunctionCallInfo f, int i) { return f->args[i].value; }));
    return Int64GetDatum(pkonline::api::ConvertPkToBigint(a));
  });
}

Datum pkonline_check(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() -> Datum {
    auto text = [](FunctionCallInfo f, int i) { return f->args[i].value; };
    pkonline::api::CheckArgs a;
    a.relid = Required<Oid>(fcinfo, 0, "tbl",
                            [](FunctionCallInfo f, int i) { return DatumGetObjectId(f->args[i].value); });
    a.operation = TextArg(Required<Datum>(fcinfo, 1, "operation", text));
    a.args = TextArg(Required<Datum>(fcinfo, 2, "args", text));
    a.search_path = TextArg(Required<Datum>(fcinfo, 3, "search_path", text));
    const std::vector<pkonline::api::Finding> findings = pkonline::api::Check(a);
    pkonline::Call([&]() { InitMaterializedSRF(fcinfo, 0); });
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    for (const auto& f : findings) {
      const char* fields[] = {f.level.c_str(), f.item.c_str(), f.detail.c_str(), f.advice.c_str()};
      pkonline::Call([&]() {
        Datum values[4];
        bool nulls[4];
        for (int i = 0; i < 4; i++) {
          nulls[i] = fields[i][0] == '\0';
          values[i] = nulls[i] ? Datum(0) : CStringGetTextDatum(fields[i]);
        }
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
      });
    }
    return Datum(0);
  });
}

Datum pkonline_start(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return TextResult(pkonline::api::Start(JobArg(fcinfo))); });
}
Datum pkonline_pause(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return TextResult(pkonline::api::Pause(JobArg(fcinfo))); });
}
Datum pkonline_resume(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return TextResult(pkonline::api::Resume(JobArg(fcinfo))); });
}
Datum pkonline_cancel(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return TextResult(pkonline::api::Cancel(JobArg(fcinfo))); });
}
Datum pkonline_forget(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return TextResult(pkonline::api::Forget(JobArg(fcinfo))); });
}
// A procedure (CALL): its one INOUT argument comes back as a record of one column.
Datum pkonline_wait(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() {
    const int64_t job = JobArg(fcinfo);
    std::optional<std::string> timeout;
    if (!PG_ARGISNULL(1))
      timeout = pkonline::Call(
          [&]() { return DatumGetCString(DirectFunctionCall1(interval_out, PG_GETARG_DATUM(1))); });
    const bool atomic = fcinfo->context == nullptr || !IsA(fcinfo->context, CallContext) ||
                        castNode(CallContext, fcinfo->context)->atomic || IsTransactionBlock();
    MemoryContext caller = CurrentMemoryContext;  // the CALL's portal: it outlives the commits
    const std::string state = pkonline::api::Wait(job, timeout, atomic);
    const char* s = state.c_str();
    return pkonline::Call([&]() {
      MemoryContext old = MemoryContextSwitchTo(caller);
      TupleDesc desc = CreateTemplateTupleDesc(1);
      TupleDescInitEntry(desc, 1, "state", TEXTOID, -1, 0);
      desc = BlessTupleDesc(desc);
      Datum value = CStringGetTextDatum(s);
      bool isnull = false;
      Datum out = HeapTupleGetDatum(heap_form_tuple(desc, &value, &isnull));
      MemoryContextSwitchTo(old);
      return out;
    });
  });
}
Datum pkonline_forget_older(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() {
    const Datum age =
        Required<Datum>(fcinfo, 0, "older_than", [](FunctionCallInfo f, int i) { return f->args[i].value; });
    const char* text =
        pkonline::Call([&]() { return DatumGetCString(DirectFunctionCall1(interval_out, age)); });
    return Int64GetDatum(pkonline::api::ForgetOlder(text));
  });
}
Datum pkonline_set_run_window(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() {
    const std::string window = TextArg(
        Required<Datum>(fcinfo, 1, "run_window", [](FunctionCallInfo f, int i) { return f->args[i].value; }));
    return TextResult(pkonline::api::SetRunWindow(JobArg(fcinfo), window));
  });
}
Datum pkonline_set_option(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() {
    auto text_arg = [&](int n, const char* what) {
      return TextArg(
          Required<Datum>(fcinfo, n, what, [](FunctionCallInfo f, int i) { return f->args[i].value; }));
    };
    const std::string name = text_arg(1, "name"), value = text_arg(2, "value");
    return TextResult(pkonline::api::SetOption(JobArg(fcinfo), name, value));
  });
}
Datum pkonline_complete(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return TextResult(pkonline::api::Complete(JobArg(fcinfo))); });
}
Datum pkonline_run_pending(PG_FUNCTION_ARGS) {
  return pkonline::Entry([&]() { return Int32GetDatum(pkonline::api::RunPending()); });
}
Datum pkonline_in_transaction_block(PG_FUNCTION_ARGS) { PG_RETURN_BOOL(IsTransactionBlock()); }

}  // extern "C"
