// The job workers' slots in shared memory (see include/pkonline/worker/slots.hpp).
#include "pkonline/worker/slots.hpp"

#include <cerrno>
#include <csignal>

#include "pkonline/guc.hpp"
#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
}

namespace pkonline::worker::slots {

namespace {

constexpr int kSlots = 128;                  // over every database (max_worker_processes bounds them anyway)
constexpr long kStartWithinMs = 120 * 1000;  // a reserved worker that has not started by then never will

struct Slot {
  bool used;
  Oid db;
  int64 job;
  int pid;  // the worker, once started; 0 before
  TimestampTz since;
  uint32 generation;
};

struct Table {
  int tranche;
  LWLock lock;
  Slot slot[kSlots];
};

Table* table = nullptr;
shmem_request_hook_type prev_request = nullptr;
shmem_startup_hook_type prev_startup = nullptr;
Ticket mine;  // the slot this worker process holds

void Attach() {
  if (table != nullptr) return;
  bool found = false;
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  table = static_cast<Table*>(ShmemInitStruct("pkonline worker slots", sizeof(Table), &found));
  if (!found) {
    memset(table, 0, sizeof(Table));
    table->tranche = LWLockNewTrancheId();
    LWLockInitialize(&table->lock, table->tranche);
  }
  LWLockRelease(AddinShmemInitLock);
  LWLockRegisterTranche(table->tranche, "pkonline_worker_slots");
}

extern "C" void RequestShmem(void) {
  if (prev_request) prev_request();
  RequestAddinShmemSpace(sizeof(Table));
}

extern "C" void StartupShmem(void) {
  if (prev_startup) prev_startup();
  table = nullptr;
  Attach();
}

bool Gone(int pid) { return pid != 0 && kill(pid, 0) != 0 && errno == ESRCH; }

// Under the lock: a reservation whose worker never started (a worker takes its slot as soon as it
// runs; the postmaster starts it within moments of the commit), or a holder gone without its exit
// callback (a crash of any process resets the whole table), frees its slot.
void ReclaimStale(TimestampTz now) {
  for (auto& s : table->slot) {
    if (!s.used) continue;
    const bool never_started =
        s.pid == 0 && TimestampDifferenceExceeds(s.since, now, static_cast<int>(kStartWithinMs));
    if (never_started || Gone(s.pid)) s.used = false;
  }
}

extern "C" void LeaveAtExit(int, Datum) { Leave(); }

}  // namespace

void InstallHooks() {
  prev_request = shmem_request_hook;
  shmem_request_hook = RequestShmem;
  prev_startup = shmem_startup_hook;
  shmem_startup_hook = StartupShmem;
}

Ticket Reserve(int64_t job_id) {
  Ticket t;
  Call([&]() {
    Attach();
    const TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(&table->lock, LW_EXCLUSIVE);
    ReclaimStale(now);
    int in_db = 0, free_index = -1;
    for (int i = 0; i < kSlots; i++) {
      const Slot& s = table->slot[i];
      if (s.used && s.db == MyDatabaseId) in_db++;
      if (!s.used && free_index < 0) free_index = i;
    }
    if (in_db < guc::max_workers && free_index >= 0) {
      Slot& s = table->slot[free_index];
      s.used = true;
      s.db = MyDatabaseId;
      s.job = job_id;
      s.pid = 0;
      s.since = now;
      s.generation++;
      t.index = free_index;
      t.generation = s.generation;
    }
    LWLockRelease(&table->lock);
  });
  return t;
}

void Release(const Ticket& t) {
  if (!t.valid() || table == nullptr || t.index >= kSlots) return;
  LWLockAcquire(&table->lock, LW_EXCLUSIVE);
  Slot& s = table->slot[t.index];
  if (s.used && s.generation == t.generation) s.used = false;
  LWLockRelease(&table->lock);
}

bool Occupy(const Ticket& t) {
  if (!t.valid() || t.index >= kSlots) return false;
  bool ok = false;
  Call([&]() {
    Attach();
    LWLockAcquire(&table->lock, LW_EXCLUSIVE);
    Slot& s = table->slot[t.index];
    ok = s.used && s.generation == t.generation && s.db == MyDatabaseId;
    if (ok) s.pid = MyProcPid;
    LWLockRelease(&table->lock);
    if (ok) {
      mine = t;
      before_shmem_exit(LeaveAtExit, 0);
    }
  });
  return ok;
}

void Leave() {
  if (!mine.valid() || table == nullptr) return;
  LWLockAcquire(&table->lock, LW_EXCLUSIVE);
  Slot& s = table->slot[mine.index];
  if (s.used && s.generation == mine.generation && s.pid == MyProcPid) s.used = false;
  LWLockRelease(&table->lock);
  mine = Ticket{};
}

int InUse() {
  int n = 0;
  Call([&]() {
    Attach();
    LWLockAcquire(&table->lock, LW_EXCLUSIVE);
    for (const auto& s : table->slot)
      if (s.used && s.db == MyDatabaseId) n++;
    LWLockRelease(&table->lock);
  });
  return n;
}

}  // namespace pkonline::worker::slots
