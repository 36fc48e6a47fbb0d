// The error bridge: PG_TRY around PostgreSQL calls, and ereport at extern "C" entries.
#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

namespace pkonline {

int SqlState(const char code[6]) { return MAKE_SQLSTATE(code[0], code[1], code[2], code[3], code[4]); }

std::string PgError::sqlstate_text() const { return unpack_sql_state(sqlstate_); }

namespace sqlstate {
const int kLockNotAvailable = ERRCODE_LOCK_NOT_AVAILABLE;
const int kQueryCanceled = ERRCODE_QUERY_CANCELED;
const int kDeadlock = ERRCODE_T_R_DEADLOCK_DETECTED;
const int kSerialization = ERRCODE_T_R_SERIALIZATION_FAILURE;
const int kCheckViolation = ERRCODE_CHECK_VIOLATION;
const int kInvalidParameter = ERRCODE_INVALID_PARAMETER_VALUE;
const int kUndefinedTable = ERRCODE_UNDEFINED_TABLE;
const int kUndefinedColumn = ERRCODE_UNDEFINED_COLUMN;
const int kUndefinedObject = ERRCODE_UNDEFINED_OBJECT;
const int kDuplicateColumn = ERRCODE_DUPLICATE_COLUMN;
const int kDuplicateObject = ERRCODE_DUPLICATE_OBJECT;
const int kInsufficientPrivilege = ERRCODE_INSUFFICIENT_PRIVILEGE;
const int kWrongObjectType = ERRCODE_WRONG_OBJECT_TYPE;
const int kInvalidTableDefinition = ERRCODE_INVALID_TABLE_DEFINITION;
const int kObjectInUse = ERRCODE_OBJECT_IN_USE;
const int kObjectNotInState = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
const int kConfigLimit = ERRCODE_CONFIGURATION_LIMIT_EXCEEDED;
const int kInternal = ERRCODE_INTERNAL_ERROR;
const int kFeatureNotSupported = ERRCODE_FEATURE_NOT_SUPPORTED;
const int kNumericOutOfRange = ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
}  // namespace sqlstate

void Fail(int code, const std::string& message, const std::string& detail, const std::string& hint) {
  throw PgError(code, message, detail, hint);
}

namespace detail {

void CallRaw(void (*fn)(void*), void* arg) {
  MemoryContext volatile saved = CurrentMemoryContext;
  ErrorData* volatile edata = nullptr;
  PG_TRY();
  { fn(arg); }
  PG_CATCH();
  {
    MemoryContextSwitchTo(saved);
    edata = CopyErrorData();
    FlushErrorState();
  }
  PG_END_TRY();
  if (edata == nullptr) return;
  // Copy into C++ strings, free the palloc'd copy, then unwind C++ frames.
  PgError err(edata->sqlerrcode, edata->message ? edata->message : "", edata->detail ? edata->detail : "",
              edata->hint ? edata->hint : "", edata->context ? edata->context : "");
  FreeErrorData(edata);
  throw err;
}

void* ExceptionStack() noexcept { return PG_exception_stack; }

void RequireExceptionStack(void* saved) noexcept {
  if (PG_exception_stack != saved)
    ereport(FATAL,
            (errmsg_internal("pkonline: PostgreSQL's error stack was not restored on leaving pkonline code"),
             errdetail_internal("A C++ exception crossed a PG_TRY block.")));
}

char* PallocCopy(const std::string& s) noexcept { return s.empty() ? nullptr : pstrdup(s.c_str()); }
char* PallocCopy(const char* s) noexcept { return s ? pstrdup(s) : nullptr; }

void RaiseFromEntry(int code, char* message, char* detail, char* hint, char* context) {
  ereport(ERROR, (errcode(code), errmsg_internal("%s", message ? message : "unknown error"),
                  detail ? errdetail_internal("%s", detail) : 0, hint ? errhint("%s", hint) : 0,
                  context ? errcontext("%s", context) : 0));
  pg_unreachable();
}

}  // namespace detail
}  // namespace pkonline

namespace pkonline {
void Notice(const std::string& message, const std::string& hint, bool warning, const std::string& detail) {
  const char* m = message.c_str();
  const char* h = hint.empty() ? nullptr : hint.c_str();
  const char* d = detail.empty() ? nullptr : detail.c_str();
  const int level = warning ? WARNING : NOTICE;
  Call([&]() {
    ereport(level, (errmsg_internal("%s", m), d ? errdetail_internal("%s", d) : 0, h ? errhint("%s", h) : 0));
  });
}
void ServerLog(const std::string& message) {
  const char* m = message.c_str();
  Call([&]() { ereport(LOG, (errmsg_internal("%s", m), errhidestmt(true))); });
}
void ServerWarning(const std::string& message, const std::string& detail, const std::string& hint) {
  const char* m = message.c_str();
  const char* d = detail.c_str();
  const char* h = hint.c_str();
  Call(
      [&]() { ereport(WARNING, (errmsg_internal("%s", m), errdetail_internal("%s", d), errhint("%s", h))); });
}
}  // namespace pkonline
