// Strong locks held by the job's worker, and for how long (see lock_watch.hpp).
#include "pkonline/pg/lock_watch.hpp"

#include <algorithm>
#include <chrono>

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "storage/lock.h"
}

namespace pkonline::pg::lock_watch {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<unsigned> watched;
Clock::time_point statement_start;
bool holding = false;  // this transaction holds a strong lock on a watched relation
LOCKMODE strongest = NoLock;
Clock::time_point acquired;
bool blocking = false;  // ... and one that blocks writes (SHARE or stronger)
Clock::time_point blocking_since;
Hold longest;

// The strongest mode above ROW EXCLUSIVE this backend holds on a watched relation (NoLock: none).
LOCKMODE StrongestHeld() {
  for (LOCKMODE mode = AccessExclusiveLock; mode > RowExclusiveLock; mode--)
    for (unsigned relid : watched) {
      LOCKTAG tag;
      SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
      if (LockHeldByMe(&tag, mode)) return mode;
    }
  return NoLock;
}

void Note(Clock::time_point since) {
  const LOCKMODE mode = StrongestHeld();
  if (mode == NoLock) return;
  if (!holding) {
    holding = true;
    acquired = since;
  }
  if (mode >= ShareLock && !blocking) {
    blocking = true;
    blocking_since = since;
  }
  if (mode > strongest) strongest = mode;
}

void Keep(const char* mode, double ms) {
  if (ms > longest.ms) {
    longest.mode = mode;
    longest.ms = ms;
  }
}

double Since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

void Watch(const std::vector<unsigned>& relids) {
  watched = relids;
  holding = false;
  blocking = false;
  strongest = NoLock;
}

Hold Longest() { return longest; }
void Reset() { longest = {}; }

void BeforeStatement() {
  if (!watched.empty()) statement_start = Clock::now();
}

void AfterStatement() {
  if (!watched.empty()) Note(statement_start);
}

void BeforeTransactionEnd() {
  // A lock taken by a statement that failed, or outside SQL: from the last statement's start.
  if (!watched.empty()) Note(statement_start);
}

void AfterTransactionEnd() {
  if (!holding) return;
  Keep(GetLockmodeName(DEFAULT_LOCKMETHOD, strongest), Since(acquired));
  if (blocking) longest.writes_blocked_ms = std::max(longest.writes_blocked_ms, Since(blocking_since));
  holding = false;
  blocking = false;
  strongest = NoLock;
}

void TopLevel(unsigned relid, double ms) {
  for (unsigned w : watched)
    if (w == relid) Keep(GetLockmodeName(DEFAULT_LOCKMETHOD, ShareUpdateExclusiveLock), ms);
}

}  // namespace pkonline::pg::lock_watch
