// The pkonline.* settings a job keeps from the session that created it: typed here, stored in the
// job's options under the keys below (SaveTo/Load are the one place that names them).
#pragma once

#include <string>

#include "pkonline/json.hpp"

namespace pkonline::jobs {

struct JobSettings {
  int lock_timeout_ms = 100;             // pkonline.lock_timeout
  int lock_retries = 30;                 // pkonline.lock_retries
  int batch_size = 200;                  // pkonline.batch_size: heap blocks in the first batch
  int batch_time_ms = 50;                // pkonline.batch_time: target per batch (0: fixed size)
  int batch_sleep_ms = 5;                // pkonline.batch_sleep
  int vacuum_every = 1000;               // pkonline.vacuum_every: heap blocks between VACUUMs (0: never)
  int max_replica_lag_ms = 10000;        // pkonline.max_replica_lag (0: do not wait for standbys)
  int max_wal_rate_kb = 0;               // pkonline.max_wal_rate: kB of WAL per second (0: no limit)
  bool debug_wait_points = false;        // pkonline.debug_wait_points (testing)
  bool backfill_fires_triggers = false;  // pkonline.backfill_fires_triggers
  std::string wal_compression = "lz4";   // pkonline.wal_compression: the worker's own
  std::string run_window;                // pkonline.run_window: "" always, else window.hpp's spans
  bool stop_before_final = false;        // pkonline.stop_before_final: pause before the final step
  int load_rise = 50;  // pkonline.load_rise: % the clients' active sessions may rise (0: no throttle)

  // Into a job's options (an object), and back; Load fails (XX000) on a key missing or of the
  // wrong kind — but for run_window, stop_before_final and load_rise, which jobs of earlier versions
  // lack (a job of 0.4 resumed keeps load_rise off, as it was made).
  void SaveTo(Json& options) const;
  static JobSettings Load(const Json& options);
  // Takes the values that pkonline.set_option may change on a running job from `now` (the job's
  // options as they are now); the rest stay as the job started with them.
  void TakeTunables(const JobSettings& now);
};

// A setting pkonline.set_option changes on a job: its name there (the GUC's, without
// "pkonline."), its key in the job's options, its unit and range (the GUC's).
struct Tunable {
  enum class Unit { kNone, kMs, kKb };
  const char* name;
  const char* key;
  int JobSettings::*field;
  Unit unit;
  int min, max;
};
// nullptr for a name that is not one (run_window is set apart: it is text).
const Tunable* FindTunable(const std::string& name);
// "lock_timeout, lock_retries, ..., run_window": for hints.
std::string TunableNames();

}  // namespace pkonline::jobs
