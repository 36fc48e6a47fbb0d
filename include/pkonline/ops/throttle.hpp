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
  // Call just before a VACUUM: an event names (once per session) the oldest transaction whose
  // snapshot is older than the previous VACUUM, which keeps this one from reclaiming the space of
  // the rows the backfill replaced meanwhile.
  void ReportHorizon();

 private:
  Context& ctx_;
  int64_t max_lag_ms_;
  std::chrono::steady_clock::time_point next_lag_check_;
  std::string since_;  // database clock at the previous VACUUM (or the start), as text
  std::set<std::string> reported_;
};

}  // namespace pkonline::ops
