// SPI helpers: statements with text parameters, results copied into C++ values.
#include "pkonline/pg/spi.hpp"

#include <exception>

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/lock_watch.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
}

namespace pkonline::pg {

namespace {

struct RawResult {
  int code;
  uint64 processed;
  int natts;
  char*** cells;  // palloc'd in the SPI procedure context
};

// Runs `sql` (planned for this call) or, when `plan` is given, that kept plan.
RawResult Execute(const std::string& sql, const Params& params, bool read_only, SPIPlanPtr plan = nullptr) {
  const int n = static_cast<int>(params.size());
  std::vector<Oid> types(n, TEXTOID);
  std::vector<char> nulls(n, ' ');
  std::vector<const char*> texts(n, nullptr);
  for (int i = 0; i < n; i++) {
    if (params[i])
      texts[i] = params[i]->c_str();
    else
      nulls[i] = 'n';
  }
  RawResult raw{};
  const char* sql_c = sql.c_str();
  lock_watch::BeforeStatement();
  Call([&]() {
    Datum* values = n ? static_cast<Datum*>(palloc(sizeof(Datum) * n)) : nullptr;
    for (int i = 0; i < n; i++) values[i] = texts[i] ? CStringGetTextDatum(texts[i]) : (Datum)0;
    int rc = plan != nullptr ? SPI_execute_plan(plan, values, n ? nulls.data() : nullptr, read_only, 0)
                             : SPI_execute_with_args(sql_c, n, n ? types.data() : nullptr, values,
                                                     n ? nulls.data() : nullptr, read_only, 0);
    if (rc < 0) elog(ERROR, "SPI_execute_with_args failed (%s): %s", SPI_result_code_string(rc), sql_c);
    raw.code = rc;
    raw.processed = SPI_processed;
    if (SPI_tuptable != nullptr) {
      TupleDesc desc = SPI_tuptable->tupdesc;
      raw.natts = desc->natts;
      raw.cells = static_cast<char***>(palloc0(sizeof(char**) * (SPI_processed + 1)));
      for (uint64 r = 0; r < SPI_processed; r++) {
        raw.cells[r] = static_cast<char**>(palloc0(sizeof(char*) * (desc->natts + 1)));
        for (int c = 0; c < desc->natts; c++)
          raw.cells[r][c] = SPI_getvalue(SPI_tuptable->vals[r], desc, c + 1);
      }
      SPI_freetuptable(SPI_tuptable);
    }
  });
  lock_watch::AfterStatement();
  return raw;
}

Result Collect(const RawResult& raw) {
  Result out;
  out.processed = raw.processed;
  if (raw.cells != nullptr) {
    out.rows.reserve(raw.processed);
    for (uint64 r = 0; r < raw.processed; r++) {
      std::vector<Value> row;
      row.reserve(raw.natts);
      for (int c = 0; c < raw.natts; c++) row.push_back(raw.cells[r][c] ? Value(raw.cells[r][c]) : Value());
      out.rows.push_back(std::move(row));
    }
  }
  return out;
}

}  // namespace

Result Query(const std::string& sql, const Params& params, bool read_only) {
  return Collect(Execute(sql, params, read_only));
}

void Statement::Prepare(const std::string& sql, int nparams) {
  Reset();
  std::vector<Oid> types(nparams, TEXTOID);
  const char* sql_c = sql.c_str();
  plan_ = Call([&]() -> void* {
    SPIPlanPtr p = SPI_prepare(sql_c, nparams, nparams ? types.data() : nullptr);
    if (p == nullptr) elog(ERROR, "SPI_prepare failed (%s): %s", SPI_result_code_string(SPI_result), sql_c);
    if (SPI_keepplan(p) != 0) elog(ERROR, "SPI_keepplan failed");
    return p;
  });
  sql_ = sql;
  nparams_ = nparams;
}

Result Statement::Run(const Params& params, bool read_only) {
  if (plan_ == nullptr || static_cast<int>(params.size()) != nparams_)
    Fail(sqlstate::kInternal, "pkonline: statement run unprepared or with the wrong number of parameters");
  return Collect(Execute(sql_, params, read_only, static_cast<SPIPlanPtr>(plan_)));
}

void Statement::Reset() {
  if (plan_ == nullptr) return;
  void* p = plan_;
  plan_ = nullptr;
  // Freeing a kept plan only releases its memory; it cannot fail short of a bug. Should it fail,
  // no state is left to roll back: the plan is gone from this object either way (at worst its
  // memory stays until the worker exits), and swallowing the error keeps a destructor from
  // throwing. No lock, snapshot or transaction state is touched.
  PG_TRY();
  { SPI_freeplan(static_cast<SPIPlanPtr>(p)); }
  PG_CATCH();
  { FlushErrorState(); }
  PG_END_TRY();
}

Statement::~Statement() { Reset(); }

void CommitHere() {
  Call([]() { SPI_commit(); });
}

uint64_t Exec(const std::string& sql, const Params& params) { return Query(sql, params).processed; }

Value V(int64_t n) { return std::to_string(n); }

int64_t AsInt(const Value& v, int64_t if_null) { return v ? std::stoll(*v) : if_null; }

bool AsBool(const Value& v) { return v && (*v == "t" || *v == "true"); }

SpiScope::SpiScope(bool nonatomic) {
  Call([&]() {
    if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
      elog(ERROR, "SPI_connect failed");
  });
  open_ = true;
}

void SpiScope::Close() {
  if (!open_) return;
  open_ = false;
  Call([]() { SPI_finish(); });
}

// On an error path the transaction abort releases the connection; finishing it here would
// touch state the abort owns, so only a normal scope exit without Close() finishes.
SpiScope::~SpiScope() {
  if (open_ && std::uncaught_exceptions() == 0) {
    // Reached only when a return skipped Close(). SPI_finish fails only when SPI was not connected
    // (then there is nothing to finish): swallowing that leaves no state to roll back. With an
    // error in flight SPI is left alone: the transaction's abort (AtEOXact_SPI) releases it.
    PG_TRY();
    { SPI_finish(); }
    PG_CATCH();
    { FlushErrorState(); }
    PG_END_TRY();
  }
}

}  // namespace pkonline::pg
