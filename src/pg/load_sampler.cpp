// Average active sessions, sampled by a timer (see include/pkonline/pg/load_sampler.hpp).
#include "pkonline/pg/load_sampler.hpp"

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace pkonline::pg {

namespace {

TimeoutId timer = MAX_TIMEOUTS;  // registered once per process
// Written by the handler only, read once the timer is off.
volatile int64_t samples = 0;
volatile int64_t active = 0;

// In the signal handler: plain reads of shared memory, as pg_stat_activity's wait columns are read
// (a torn value costs one sample's accuracy, nothing more).
void Sample() {
  int64_t n = 0;
  for (uint32 i = 0; i < ProcGlobal->allProcCount; i++) {
    const PGPROC* p = &ProcGlobal->allProcs[i];
    // (a slot whose backend has exited keeps its pid and database in PostgreSQL 15: its latch's
    // owner is cleared when it is given up)
    if (p == MyProc || p->pid == 0 || p->procLatch.owner_pid == 0 || p->databaseId != MyDatabaseId ||
        p->isBackgroundWorker || (p->statusFlags & PROC_IS_AUTOVACUUM) != 0)
      continue;
    const uint32 cls = p->wait_event_info & 0xFF000000U;
    // not held up by anyone: idle (waiting for its client), in its own main loop (walsenders),
    // sleeping on purpose (pg_sleep, an extension's wait such as pkonline.wait()'s)
    if (cls == PG_WAIT_CLIENT || cls == PG_WAIT_ACTIVITY || cls == PG_WAIT_TIMEOUT ||
        cls == PG_WAIT_EXTENSION)
      continue;
    n++;
  }
  samples = samples + 1;
  active = active + n;
}

void Handler() { Sample(); }

}  // namespace

void StartLoadSampling(int every_ms) {
  Call([&]() {
    if (timer == MAX_TIMEOUTS) timer = RegisterTimeout(USER_TIMEOUT, Handler);
    samples = 0;
    active = 0;
    enable_timeout_every(timer, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), every_ms), every_ms);
  });
}

LoadSample StopLoadSampling() {
  if (timer == MAX_TIMEOUTS) return {};
  Call([&]() { disable_timeout(timer, false); });
  return {samples, active};
}

}  // namespace pkonline::pg
