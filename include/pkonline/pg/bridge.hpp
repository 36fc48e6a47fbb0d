// The error bridge between C++ and PostgreSQL, used at every crossing.
//
//  * Entry(): wraps every extern "C" function PostgreSQL calls. C++ exceptions are caught, C++
//    frames unwound, and only then is the error raised with ereport (keeping its SQLSTATE).
//  * Call(): wraps every PostgreSQL call made from C++ that may ereport. The longjmp is caught
//    right there (PG_TRY), the error copied and flushed, and re-thrown as pkonline::PgError so
//    C++ destructors run. The callable must not throw: it runs inside PG_TRY.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <optional>

namespace pkonline {

// A PostgreSQL error (or one of ours) travelling through C++ frames.
class PgError : public std::exception {
 public:
  PgError(int sqlstate, std::string message, std::string detail = {}, std::string hint = {},
          std::string context = {})
      : sqlstate_(sqlstate),
        message_(std::move(message)),
        detail_(std::move(detail)),
        hint_(std::move(hint)),
        context_(std::move(context)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  int sqlstate() const { return sqlstate_; }
  std::string sqlstate_text() const;  // "55P03"
  const std::string& message() const { return message_; }
  const std::string& detail() const { return detail_; }
  const std::string& hint() const { return hint_; }
  const std::string& context() const { return context_; }

 private:
  int sqlstate_;
  std::string message_, detail_, hint_, context_;
};

// SQLSTATE helpers (PostgreSQL's MAKE_SQLSTATE encoding) so C++ files need no PG header.
int SqlState(const char code[6]);
namespace sqlstate {
extern const int kLockNotAvailable;        // 55P03
extern const int kQueryCanceled;           // 57014
extern const int kDeadlock;                // 40P01
extern const int kSerialization;           // 40001
extern const int kCheckViolation;          // 23514
extern const int kInvalidParameter;        // 22023
extern const int kUndefinedTable;          // 42P01
extern const int kUndefinedColumn;         // 42703
extern const int kUndefinedObject;         // 42704
extern const int kDuplicateColumn;         // 42701
extern const int kDuplicateObject;         // 42710
extern const int kInsufficientPrivilege;   // 42501
extern const int kWrongObjectType;         // 42809
extern const int kInvalidTableDefinition;  // 42P16
extern const int kObjectInUse;             // 55006
extern const int kObjectNotInState;        // 55000
extern const int kConfigLimit;             // 53400
extern const int kInternal;                // XX000
extern const int kFeatureNotSupported;     // 0A000
extern const int kNumericOutOfRange;       // 22003
}  // namespace sqlstate

// Raise an error of ours from C++ (a PgError with the given SQLSTATE).
[[noreturn]] void Fail(int sqlstate, const std::string& message, const std::string& detail = {},
                       const std::string& hint = {});

namespace detail {
// Runs fn(arg) under PG_TRY; on ereport(ERROR) copies the error and throws PgError.
void CallRaw(void (*fn)(void*), void* arg);
// Raises an ERROR from palloc'd strings (no C++ objects alive). Never returns.
[[noreturn]] void RaiseFromEntry(int sqlstate, char* message, char* detail, char* hint, char* context);
// Copies text into palloc memory (in the catch of Entry); nullptr for empty.
char* PallocCopy(const std::string& s) noexcept;
char* PallocCopy(const char* s) noexcept;
// PostgreSQL's error stack (PG_exception_stack) now; and a FATAL error if it is not `saved`
// (a C++ exception left a PG_TRY without restoring it: the next ERROR would jump into a dead frame).
void* ExceptionStack() noexcept;
void RequireExceptionStack(void* saved) noexcept;
}  // namespace detail

// Calls a PostgreSQL function that may ereport; an ERROR becomes a thrown PgError. The callable
// runs inside PG_TRY and must not throw: it is called through a noexcept wrapper, so a C++
// exception thrown there stops the process (std::terminate) instead of unwinding through PG_TRY.
template <typename F>
decltype(auto) Call(F&& f) {
  using R = decltype(f());
  if constexpr (std::is_void_v<R>) {
    auto body = [&]() noexcept { f(); };
    detail::CallRaw([](void* p) { (*static_cast<decltype(body)*>(p))(); }, &body);
  } else {
    static_assert(std::is_trivially_copyable_v<R>, "Call() returns plain values only");
    R result{};
    auto body = [&]() noexcept { result = f(); };
    detail::CallRaw([](void* p) { (*static_cast<decltype(body)*>(p))(); }, &body);
    return result;
  }
}

// Body of every extern "C" entry point: runs f, turns any C++ exception into ereport(ERROR)
// after all C++ frames inside f are gone.
template <typename F>
auto Entry(F&& f) noexcept -> decltype(f()) {
  void* const stack = detail::ExceptionStack();
  int code = 0;
  char* msg = nullptr;
  char* det = nullptr;
  char* hint = nullptr;
  char* ctx = nullptr;
  try {
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      detail::RequireExceptionStack(stack);
      return;
    } else {
      auto result = f();
      detail::RequireExceptionStack(stack);
      return result;
    }
  } catch (const PgError& e) {
    code = e.sqlstate();
    msg = detail::PallocCopy(e.message());
    det = detail::PallocCopy(e.detail());
    hint = detail::PallocCopy(e.hint());
    ctx = detail::PallocCopy(e.context());
  } catch (const std::exception& e) {
    code = sqlstate::kInternal;
    msg = detail::PallocCopy(std::string("pkonline internal error: ") + e.what());
  } catch (...) {
    code = sqlstate::kInternal;
    msg = detail::PallocCopy("pkonline internal error: unknown C++ exception");
  }
  detail::RequireExceptionStack(stack);
  detail::RaiseFromEntry(code, msg, det, hint, ctx);
}

}  // namespace pkonline

namespace pkonline {
// Sends a NOTICE (or, with warning=true, a WARNING) to the client.
void Notice(const std::string& message, const std::string& hint = {}, bool warning = false,
            const std::string& detail = {});
// A LOG line for the server log only (what a job's owner may not read in its events).
void ServerLog(const std::string& message);
// A WARNING for the server log (from a background worker).
void ServerWarning(const std::string& message, const std::string& detail, const std::string& hint);
}  // namespace pkonline
