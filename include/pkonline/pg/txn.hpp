// Transactions in a background worker: "one unit of work = one short transaction".
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pkonline/pg/bridge.hpp"

namespace pkonline::pg {

struct TxnOptions {
  int lock_timeout_ms = 0;       // SET LOCAL lock_timeout (0: leave as is)
  bool repeatable_read = false;  // one snapshot for every statement of the transaction
  // SET LOCAL deadlock_timeout; 0: kDeadlockMs. A worker's transaction looks for a deadlock long
  // before any client does (1 s by default), so that it is the one aborted: seen, DROP EXTENSION
  // taking the job tables one by one while a worker's step start held one of them. The runner
  // takes a deadlock outside a step's own retries as a reason to resume the job where it is.
  int deadlock_timeout_ms = 0;
  static constexpr int kDeadlockMs = 50;
};

// Start a transaction, connect SPI, push a snapshot, report `activity`, run fn, commit.
// Any error aborts the transaction and is re-thrown as PgError.
void InTransaction(const std::string& activity, const std::function<void()>& fn, const TxnOptions& opts = {});

// A CREATE INDEX statement (as pg_get_indexdef prints it) made into another index: every
// unqualified reference to a column renamed (key and INCLUDE columns, expressions, the
// predicate — found in the parse tree, never in the text) names its new column, the index is
// called `name`, and it is built CONCURRENTLY.
struct IndexRewrite {
  std::vector<std::pair<std::string, std::string>> renames;  // (old column, new column)
  std::string name;
};

// Run one statement at top level, outside any transaction block, the way a client's simple
// query runs: for CREATE/DROP INDEX CONCURRENTLY and VACUUM, which SPI refuses. With `rewrite`,
// `sql` is an index definition, rewritten in its parse tree before it runs.
void RunTopLevel(const std::string& sql, const IndexRewrite* rewrite = nullptr);

// Sleeps ms on a steady clock, on the latch: a SetLatch (a timer's signal) does not end it early;
// interrupts are served at each wake-up; exits if the postmaster dies.
void SleepMs(long ms);
// Set a setting for this (worker) session with superuser rights, e.g. wal_compression, which a
// job owner could not set: it affects only what this session writes.
void SetWorkerSetting(const std::string& name, const std::string& value);

// SET LOCAL session_replication_role = replica (row triggers enabled ORIGIN stay quiet), with
// superuser rights: only where no code a user wrote can run in the transaction (pg/user_code.hpp).
void ReplicaRoleForThisTransaction();

// Runs fn in a subtransaction of the caller's transaction and always rolls it back: what fn
// wrote, the locks it took and the SPI connections it opened are gone afterwards. Returns the
// error fn ended with, if any (the caller's transaction goes on either way).
std::optional<PgError> InRolledBackSubtransaction(const std::function<void()>& fn);

// Process pending interrupts (cancel, terminate) between units of work.
void CheckInterrupts();

// Run fn with the current user switched to `role` (SECURITY_LOCAL_USERID_CHANGE), restoring
// the previous user afterwards — also when fn throws.
void AsRole(unsigned role, const std::function<void()>& fn);
// fn as `owner` inside a security-restricted operation (as VACUUM and ANALYZE run a table's code):
// for a query that plans or reads a table, whose index expressions, predicates, statistics
// expressions, policies and column types' operators are its owner's code.
void AsOwnerRestricted(unsigned owner, const std::function<void()>& fn);

}  // namespace pkonline::pg
