// SPI from C++: run one SQL statement with text parameters, get text results in C++ containers.
// The caller must be inside a transaction with SPI connected (see txn.hpp / SpiScope).
// Values always travel as parameters ($1::type in the SQL); identifiers only via quote.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pkonline::pg {

using Value = std::optional<std::string>;  // SQL text value; nullopt is NULL
using Params = std::vector<Value>;

struct Result {
  std::vector<std::vector<Value>> rows;
  uint64_t processed = 0;
  bool empty() const { return rows.empty(); }
  // First column of the first row (NULL if no row).
  Value scalar() const { return rows.empty() || rows[0].empty() ? Value{} : rows[0][0]; }
};

// Runs a statement; results are copied out before return.
Result Query(const std::string& sql, const Params& params = {}, bool read_only = false);
// Runs a statement and returns the number of rows processed.
uint64_t Exec(const std::string& sql, const Params& params = {});

// A statement planned once and kept across transactions (SPI_keepplan): PostgreSQL re-plans it by
// itself when the table changes. Text parameters, cast in the SQL, as for Query().
class Statement {
 public:
  Statement() = default;
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool prepared() const { return plan_ != nullptr; }
  void Prepare(const std::string& sql, int nparams);  // in a transaction, SPI connected
  Result Run(const Params& params, bool read_only = false);
  void Reset();  // frees the plan

 private:
  void* plan_ = nullptr;
  std::string sql_;
  int nparams_ = 0;
};

// Value helpers.
inline Value V(const std::string& s) { return s; }
Value V(int64_t n);
int64_t AsInt(const Value& v, int64_t if_null = 0);
bool AsBool(const Value& v);

// SPI_connect now, SPI_finish on Close(); a transaction abort also releases it. `nonatomic`: a
// procedure called by CALL outside a transaction block, which may then CommitHere().
class SpiScope {
 public:
  explicit SpiScope(bool nonatomic = false);
  ~SpiScope();  // finishes only if Close() was not reached and no error is in flight
  void Close();
  SpiScope(const SpiScope&) = delete;
  SpiScope& operator=(const SpiScope&) = delete;

 private:
  bool open_ = false;
};

// In a procedure's nonatomic SPI scope: commits and starts a new transaction that holds no
// snapshot until its next statement (SPI_commit).
void CommitHere();

}  // namespace pkonline::pg
