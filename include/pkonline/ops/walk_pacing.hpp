// How a walk over heap blocks (backfill.cpp) paces itself between batches and what it reports:
// the pause after a batch (batch_sleep, max_wal_rate, the latency-aware throttle), the clients'
// active sessions sampled while a batch runs and while the job rests, and the walk's events.
#pragma once

#include <cstdint>
#include <string>

#include "pkonline/jobs/pacing.hpp"
#include "pkonline/ops/operation.hpp"
#include "pkonline/pg/load_sampler.hpp"

namespace pkonline::ops {

// The clients' active sessions counted every 5 ms while it lives (or until Stop): a batch's.
class Sampling {
 public:
  explicit Sampling(bool on);
  pg::LoadSample Stop();
  ~Sampling();
  Sampling(const Sampling&) = delete;
  Sampling& operator=(const Sampling&) = delete;

 private:
  bool on_;
};

// Gives `load` the clients' active sessions while the job rests: measured (250 ms) at the
// worker's first walk and every LoadThrottle::kBaselineEverySec, shared by the walks of its job.
void UpdateBaseline(Context& ctx, jobs::LoadThrottle& load);

// The pause after a batch: `paced` for max_wal_rate or batch_sleep, `for_load` more for the
// clients. One longer than a second is shown in status.waiting_for; its paced part is added to
// *paced_ms.
void Pause(Context& ctx, long paced, long for_load, const jobs::JobSettings& settings, double* paced_ms);

// What a walk did, for its events.
struct WalkRun {
  int64_t batches = 0, first_blocks = 0, max_blocks = 0, last_blocks = 0;  // heap blocks, as run
  int64_t next_blocks = 0;    // the size a next batch would have had (the next walk starts at a quarter)
  double load_paused_ms = 0;  // pauses for the clients (the latency-aware throttle)
  double paced_ms = 0;        // pauses of more than a second for max_wal_rate or batch_sleep
  void Batch(int64_t blocks);
};

// The walk's events: how its batches were sized, how long it paused and for what. Other
// sessions' activity (the throttle's counts) only to a creator with pg_read_all_stats.
void ReportWalk(Context& ctx, const std::string& what, unsigned relid, const WalkRun& run,
                const jobs::LoadThrottle& load, bool all_stats);

}  // namespace pkonline::ops
