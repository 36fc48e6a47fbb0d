// Unit tests of how a job paces its work (include/pkonline/jobs/pacing.hpp).
#include <string>

#include "check.hpp"
#include "pkonline/jobs/pacing.hpp"

using pkonline::jobs::Backoff;
using pkonline::jobs::BatchSizer;
using pkonline::jobs::VacuumCadence;
using pkonline::jobs::WalPacer;
using unit::Check;

void unit::PacingTests() {
  // Backoff: full jitter in [cap/2, cap], cap doubling from 50 ms, never above 5 s.
  Backoff backoff;
  bool in_range = true, capped = true;
  for (int failures = 1; failures <= 40; failures++)
    for (int i = 0; i < 50; i++) {
      const long cap = std::min<long>(Backoff::kMaxMs, Backoff::kBaseMs << std::min(failures, 10));
      const long w = backoff.After(failures);
      in_range = in_range && w >= cap / 2 && w <= cap;
      capped = capped && w <= Backoff::kMaxMs;
    }
  Check(in_range, "backoff: each wait lies in [cap/2, cap], cap = 50 ms doubled per failure");
  Check(capped, "backoff: no wait is longer than 5 s, however many failures");
  Check(backoff.After(1) <= 100 && backoff.After(1) >= 50, "backoff: the first retry waits 50-100 ms");

  // BatchSizer: toward the target time, at most x2 or /2 a batch, within [1, kMaxBlocks].
  BatchSizer sizer(200, 50);
  sizer.Took(10);  // much faster than the target: doubles, not x5
  Check(sizer.blocks() == 400, "batch: a fast batch doubles the next (not more)");
  sizer.Took(1000);  // much slower: halves, not /20
  Check(sizer.blocks() == 200, "batch: a slow batch halves the next (not less)");
  sizer.Took(40);
  Check(sizer.blocks() == 250, "batch: in between, in proportion (40 ms for a 50 ms target: x1.25)");
  sizer.GaveWay();
  Check(sizer.blocks() == 125, "batch: a batch that gave way to a row lock halves the next");
  BatchSizer tiny(1, 50);
  tiny.GaveWay();
  tiny.Took(1000);
  Check(tiny.blocks() == 1, "batch: never below one block");
  BatchSizer huge(BatchSizer::kMaxBlocks, 50);
  huge.Took(1);
  Check(huge.blocks() == BatchSizer::kMaxBlocks, "batch: never above the cap");
  BatchSizer fixed(300, 0);
  fixed.Took(5);
  Check(fixed.blocks() == 300, "batch: pkonline.batch_time = 0 keeps the size fixed");

  // FirstBatchBlocks: a probe first, or a quarter of what the last walk of the job ended with.
  using pkonline::jobs::FirstBatchBlocks;
  using pkonline::jobs::kProbeBlocks;
  Check(FirstBatchBlocks(200, 0, 50) == kProbeBlocks,
        "first batch: a walk with nothing measured starts with a probe");
  Check(FirstBatchBlocks(3, 0, 50) == 3, "first batch: never more than batch_size");
  Check(FirstBatchBlocks(200, 120, 50) == 30,
        "first batch: the next table starts at a quarter of the last size");
  Check(FirstBatchBlocks(200, 2, 50) == 1, "first batch: at least one block");
  Check(FirstBatchBlocks(200, 120, 0) == 200, "first batch: batch_time = 0 keeps batch_size, fixed");

  // LoadThrottle: pauses grow while the clients' active sessions stay above baseline × 1.5 + 0.1,
  // shrink when they fall back, and never exceed half the batch's time.
  using pkonline::jobs::LoadThrottle;
  LoadThrottle no_throttle(0);
  no_throttle.Baseline(1.0);
  Check(no_throttle.After(50, 9.0) == 0, "load: rise 0 turns the throttle off");
  LoadThrottle lt(50);
  lt.Baseline(1.0);
  Check(lt.After(50, 1.2) == 0, "load: sessions within the allowed rise: no pause");
  long p1 = lt.After(50, 3.0), p2 = lt.After(50, 3.0), p3 = lt.After(50, 3.0);
  Check(p1 > 0 && p2 >= p1 && p3 >= p2,
        "load: sessions above baseline x 1.5: the pause grows batch by batch");
  long p = 0;
  for (int i = 0; i < 20; i++) p = lt.After(50, 3.0);
  Check(p == 25, "load: never more than half the batch's own time (50 ms batches: 25 ms)");
  Check(lt.After(400, 3.0) <= 200, "load: half of a longer batch");
  for (int i = 0; i < 20; i++) p = lt.After(50, 0.9);
  Check(p == 0, "load: back to no pause once the sessions fall back");
  LoadThrottle idle(50);
  idle.Baseline(0.0);
  Check(idle.After(50, 0.05) == 0, "load: an idle database's noise (0.05 sessions) is no rise");

  // WalPacer: the pause that spreads a batch's WAL to the rate; never shorter than batch_sleep.
  const WalPacer off(0);
  Check(off.PauseMs(5, 100 << 20, 10) == 5, "wal: no rate, the pause is batch_sleep");
  const WalPacer mb(1024.0 * 1024.0);  // 1 MB/s
  Check(mb.PauseMs(5, 2 << 20, 500) == 1500, "wal: 2 MB written in 0.5 s at 1 MB/s: 1.5 s more");
  Check(mb.PauseMs(5, 1 << 10, 500) == 5, "wal: little WAL, the pause is batch_sleep");

  // VacuumCadence: every max(vacuum_every, a tenth of the walk) blocks that changed rows.
  VacuumCadence every(1000, 50000, true);  // a tenth of 50000 is 5000
  bool early = false;
  for (int i = 0; i < 49; i++) early = early || every.After(100, 10);
  Check(!early && every.After(100, 10), "vacuum: after a tenth of the walk (5000 blocks), not before");
  VacuumCadence small(1000, 2000, true);
  bool due = false;
  for (int i = 0; i < 10; i++) due = small.After(100, 1);
  Check(due, "vacuum: on a small table after pkonline.vacuum_every blocks");
  VacuumCadence untouched(10, 100, true);
  bool any = false;
  for (int i = 0; i < 100; i++) any = any || untouched.After(10, 0);
  Check(!any, "vacuum: blocks where nothing changed do not count");
  VacuumCadence never(0, 100000, true), copy(1000, 100000, false);
  Check(!never.After(100000, 1) && !copy.After(100000, 1),
        "vacuum: never with vacuum_every = 0, nor for the copy");
}
