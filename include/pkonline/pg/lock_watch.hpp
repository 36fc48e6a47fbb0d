// How long a job's worker holds a lock stronger than ROW EXCLUSIVE on the job's tables, measured
// in the worker (for pkonline.report): from the start of the SQL statement that took it to the
// end of its transaction — a wait for the lock, at most pkonline.lock_timeout, is included — and
// the whole of a top-level CREATE INDEX CONCURRENTLY or VACUUM on one of them (SHARE UPDATE
// EXCLUSIVE throughout). spi.cpp and txn.cpp call the hooks; the runner reads Longest().
#pragma once

#include <string>
#include <vector>

namespace pkonline::pg::lock_watch {

struct Hold {
  std::string mode;  // e.g. "AccessExclusiveLock"; empty: none held
  double ms = 0;
  // The longest hold of a lock that blocks the table's writers (SHARE or stronger) within it.
  double writes_blocked_ms = 0;
};

// The relations to watch in this process (the job's tables); empty: watching nothing.
void Watch(const std::vector<unsigned>& relids);
// The longest hold since Reset(), with the strongest mode held during it; and the longest hold
// of a lock that blocks writes (not necessarily the same transaction's).
Hold Longest();
void Reset();

// Hooks.
void BeforeStatement();
void AfterStatement();
void BeforeTransactionEnd();  // inside the transaction, just before commit or abort
void AfterTransactionEnd();   // when it has ended
void TopLevel(unsigned relid, double ms);

}  // namespace pkonline::pg::lock_watch
