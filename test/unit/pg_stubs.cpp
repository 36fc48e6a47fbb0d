// Stand-ins for pkonline's PostgreSQL layer (src/pg/, the bridge, the job store's claim), so that
// the plans of src/ops/ build and run without a server. Anything that would reach the server
// throws: a plan builder that touched the database would fail its test.
#include <stdexcept>
#include <string>

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/column_default.hpp"
#include "pkonline/pg/job_lock.hpp"
#include "pkonline/pg/load_sampler.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/pg/txn.hpp"
#include "pkonline/pg/user_code.hpp"
#include "pkonline/pg/wal.hpp"

namespace {
[[noreturn]] void NoServer(const char* what) {
  throw std::logic_error(std::string("no server in unit tests: ") + what);
}
}  // namespace

namespace pkonline {

int SqlState(const char code[6]) {
  int v = 0;
  for (int i = 0; i < 5; i++) v = v * 64 + (code[i] - '0');
  return v;
}
std::string PgError::sqlstate_text() const { return std::to_string(sqlstate_); }
void Fail(int code, const std::string& message, const std::string& detail, const std::string& hint) {
  throw PgError(code, message, detail, hint);
}
void ServerLog(const std::string&) {}

namespace sqlstate {
const int kLockNotAvailable = 1, kQueryCanceled = 2, kDeadlock = 3, kSerialization = 4, kCheckViolation = 5,
          kInvalidParameter = 6, kUndefinedTable = 7, kUndefinedColumn = 8, kUndefinedObject = 9,
          kDuplicateColumn = 10, kDuplicateObject = 11, kInsufficientPrivilege = 12, kWrongObjectType = 13,
          kInvalidTableDefinition = 14, kObjectInUse = 15, kObjectNotInState = 16, kConfigLimit = 17,
          kInternal = 19, kFeatureNotSupported = 20, kNumericOutOfRange = 21;
}  // namespace sqlstate

namespace pg {

Result Query(const std::string&, const Params&, bool) { NoServer("Query"); }
uint64_t Exec(const std::string&, const Params&) { NoServer("Exec"); }
Value V(int64_t n) { return std::to_string(n); }
int64_t AsInt(const Value& v, int64_t if_null) { return v ? std::stoll(*v) : if_null; }
bool AsBool(const Value& v) { return v && *v == "t"; }
void Statement::Prepare(const std::string&, int) { NoServer("Statement::Prepare"); }
Result Statement::Run(const Params&, bool) { NoServer("Statement::Run"); }
void Statement::Reset() { plan_ = nullptr; }
Statement::~Statement() = default;
std::string Ident(const std::string& name) { return "\"" + name + "\""; }
std::string Literal(const std::string& text) { return "'" + text + "'"; }
std::string Qualified(const std::string& schema, const std::string& name) {
  return Ident(schema) + "." + Ident(name);
}
std::optional<RelInfo> LookupRelation(unsigned) { NoServer("LookupRelation"); }
std::string ChooseName(const std::string&, const std::string&, const std::string&, unsigned, bool) {
  NoServer("ChooseName");
}
std::string Internal(const std::string&) { NoServer("Internal"); }
void StartLoadSampling(int) { NoServer("StartLoadSampling"); }
LoadSample StopLoadSampling() { NoServer("StopLoadSampling"); }
void SwapStorage(unsigned, unsigned) { NoServer("SwapStorage"); }
unsigned CreateIndexLike(unsigned, unsigned, const std::string&, bool, const std::string&,
                         const std::string&) {
  NoServer("CreateIndexLike");
}
void SwapStatistics(unsigned, unsigned) { NoServer("SwapStatistics"); }
bool CopyWritesAllowed() { return false; }
CopyWriteScope::CopyWriteScope(bool on) : on_(on) {}
CopyWriteScope::~CopyWriteScope() {}
void SetNotNullTrusted(unsigned, int) { NoServer("SetNotNullTrusted"); }
void RenameIndexColumns(unsigned, const std::string&, const std::string&) { NoServer("RenameIndexColumns"); }
std::string IndexNotBuiltIn(unsigned) { NoServer("IndexNotBuiltIn"); }
void CarryDefault(unsigned, const std::string&, const std::string&) { NoServer("CarryDefault"); }
void LockShared(unsigned) { NoServer("LockShared"); }
std::string KeyedTag(const std::string& key, const std::string& what) { return (key + what).substr(0, 8); }
uint64_t WalBytes() { return 0; }
const int64_t kIdsPerHeapBlock = 291;

}  // namespace pg
}  // namespace pkonline
