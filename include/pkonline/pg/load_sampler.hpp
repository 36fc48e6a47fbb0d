// What the database's other sessions do while the job works: every few milliseconds a timer in
// the worker's own process counts the client sessions of this database that are active —
// running, or waiting on a lock, a buffer, WAL, I/O or another process; not idle waiting for
// their client, nor sleeping on purpose (pg_sleep, pkonline.wait()). Their
// mean (average active sessions) rises with the clients' latency under a steady load (Little's
// law: sessions = arrival rate × time in the server), whatever slows them: the job's row locks,
// its WAL ahead of their commits, its share of CPU and I/O.
#pragma once

#include <cstdint>

namespace pkonline::pg {

struct LoadSample {
  int64_t samples = 0;
  int64_t active = 0;  // summed over the samples
  double Mean() const { return samples > 0 ? static_cast<double>(active) / static_cast<double>(samples) : 0; }
};

// Starts counting every `every_ms` (the timer is registered on first use). Reads PGPROC fields
// only, in the timer's signal handler: no lock, no allocation.
void StartLoadSampling(int every_ms);
// Stops the timer; what it counted since StartLoadSampling.
LoadSample StopLoadSampling();

}  // namespace pkonline::pg
