// How the backfill yields between batches: to lagging standbys, and by telling when a long
// transaction keeps VACUUM from reclaiming the space the backfill frees.
#pragma once

#include <chrono>
#include <set>
#include <string>

#include "pkonline/ops/operation.hpp"

namespace pkonline::ops {

class Throttle {
 public:
  explicit Throttle(Context& ctx);
  // Waits (honouring pause and cancel) while a physical standby replays more than
  // pkonline.max_replica_lag behind; looks at most once a second. Events say when it waits and
  // when it goes on.
  void WaitForStandbys();
  // Call just before a VACUUM: an event names (once per holder) the oldest transaction that began
  // before this pass over the table (or over a minute ago) and holds a snapshot: VACUUM cannot
  // reclaim the space of the rows the backfill replaced since it began.
  void ReportHorizon();
  // The job's creator may see every session's state and every standby (pg_read_all_stats).
  bool all_stats() const { return all_stats_; }

 private:
  Context& ctx_;
  // pkonline.set_option may change it while the job waits
  int64_t MaxLagMs() const { return ctx_.job().settings.max_replica_lag_ms; }
  std::chrono::steady_clock::time_point next_lag_check_;
  std::string since_;  // database clock when this pass began, as text
  std::set<std::string> reported_;
  bool all_stats_ = false;  // the job's creator may see every session and standby (pg_read_all_stats)
};

}  // namespace pkonline::ops
