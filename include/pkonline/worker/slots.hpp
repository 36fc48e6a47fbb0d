// pkonline.max_workers, counted atomically across sessions: a table in shared memory of the job
// workers that exist or are about to (registered by a transaction that is committing), per
// database. A slot is reserved when a transaction asks for a worker, released if it rolls back,
// taken over by the worker when it starts and freed when that process exits.
#pragma once

#include <cstdint>

namespace pkonline::worker::slots {

// The shared-memory request and initialisation hooks (preload mode: _PG_init calls this).
// Without preloading, the table is made on first use from shared memory's spare space.
void InstallHooks();

// A reservation: the slot's index and generation (a slot freed and reserved again is another).
struct Ticket {
  int index = -1;
  uint32_t generation = 0;
  bool valid() const { return index >= 0; }
};

// Reserves a slot for job `job_id` of this database unless pkonline.max_workers slots of this
// database are taken (reserved or held); stale reservations (a worker that never started, a
// process gone without its exit callback) are reclaimed first.
Ticket Reserve(int64_t job_id);

// A reservation whose worker will not start (its transaction rolled back, or registration failed).
void Release(const Ticket& t);

// In the worker: the reservation becomes this process's until it exits (or Leave). False if it
// was reclaimed meanwhile (the worker then leaves its job to a later start).
bool Occupy(const Ticket& t);

// In the worker: gives its slot back now (before it starts the next queued job in its place).
void Leave();

// Slots of this database in use (reserved or held).
int InUse();

}  // namespace pkonline::worker::slots
