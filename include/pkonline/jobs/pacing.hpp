// How a job paces its work: the backoff between retries, the size of a batch, the pause that
// keeps its WAL to a rate, how often the backfill vacuums. Plain C++ (unit-tested in test/unit).
#pragma once

#include <cstdint>
#include <random>

namespace pkonline::jobs {

// Exponential backoff with full jitter: after the n-th failure in a row, a random wait in
// [cap/2, cap], cap = min(max_ms, base_ms * 2^n). Used by the brief DDL's lock retries and by the
// batches' row-lock retries alike.
class Backoff {
 public:
  static constexpr long kBaseMs = 50;
  static constexpr long kMaxMs = 5000;
  Backoff();
  long After(int failures);

 private:
  std::mt19937 rng_;
};

// Heap blocks per batch: starts at pkonline.batch_size and moves toward pkonline.batch_time per
// batch, at most doubling or halving each time; halves after a batch gave way to a row lock.
class BatchSizer {
 public:
  static constexpr int64_t kMaxBlocks = 100000;
  BatchSizer(int64_t first_blocks, int target_ms);
  int64_t blocks() const { return blocks_; }
  void set_target_ms(int target_ms) { target_ms_ = target_ms; }
  void Took(double ms);
  void GaveWay();

 private:
  int64_t blocks_;
  int target_ms_;
};

// The first batch of a walk (a table, a partition, the copy into a twin): nothing is known of
// this table's rows yet, so it is a probe of at most kProbeBlocks (batch_size if smaller) —
// measured: a first batch of batch_size (200 blocks) took 320-540 ms where 50 were meant, and
// clients waited up to 228 ms behind its row locks. The walk after another in the same job
// starts from a quarter of the size the last one ended with (the next table's rows may cost
// more each). With pkonline.batch_time = 0 (no sizing) every batch is batch_size.
constexpr int64_t kProbeBlocks = 8;
int64_t FirstBatchBlocks(int64_t batch_size, int64_t carried_blocks, int batch_time_ms);

// The pause after a batch that keeps the job's WAL to pkonline.max_wal_rate: clients' commits wait
// for the WAL to be flushed, and a job that writes it as fast as it can lengthens them (measured:
// they wait on WALSync / WALWrite). 0 bytes per second: no pacing.
class WalPacer {
 public:
  explicit WalPacer(double bytes_per_second) : rate_(bytes_per_second) {}
  long PauseMs(long at_least_ms, uint64_t batch_wal_bytes, double batch_ms) const;

 private:
  double rate_;
};

// The latency-aware throttle: from the clients' average active sessions (pg/load_sampler.hpp)
// while the job's batches run, against the same measured while the job does nothing (its
// baseline, measured again every kBaselineEverySec), the pause to add after each batch. Above
// baseline × (1 + rise) + kSlack the pause doubles (from kStepMs); below baseline × (1 + rise / 2)
// + kSlack / 2 it halves (to none). It never exceeds kMaxShare of the batch's own time, so the
// job's wall time grows by at most that share. rise 0: off.
class LoadThrottle {
 public:
  static constexpr double kSlack = 0.1;  // active sessions: below that a rise is noise
  static constexpr long kStepMs = 5;
  static constexpr double kMaxShare = 0.5;
  static constexpr int kBaselineEverySec = 30;
  explicit LoadThrottle(int rise_percent) : rise_(rise_percent / 100.0) {}
  bool enabled() const { return rise_ > 0; }
  void set_rise_percent(int rise_percent) { rise_ = rise_percent / 100.0; }
  double rise_percent() const { return rise_ * 100; }
  void Baseline(double mean_active) { baseline_ = mean_active; }
  double baseline() const { return baseline_; }
  double recent() const { return recent_; }
  // After a batch of batch_ms during which the clients averaged mean_active sessions.
  long After(double batch_ms, double mean_active);

 private:
  double rise_;
  double baseline_ = 0;
  double recent_ = -1;  // smoothed over the last few batches; -1: no batch yet
  long pause_ms_ = 0;
};

// When the backfill vacuums: every pkonline.vacuum_every heap blocks changed, or a tenth of the
// walk if that is more — each VACUUM reads every index whole, so a fixed interval would make the
// cost grow with the square of the table's size; ten of them keep it linear. 0: never.
class VacuumCadence {
 public:
  VacuumCadence(int64_t every_setting, int64_t walk_blocks, bool enabled);
  // After a batch over `blocks` heap blocks that changed `rows` rows: is a VACUUM due now?
  bool After(int64_t blocks, int64_t rows);

 private:
  int64_t every_;
  int64_t since_ = 0;
};

}  // namespace pkonline::jobs
