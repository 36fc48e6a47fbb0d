// The pause after a batch, and the latency-aware throttle's eyes (see walk_pacing.hpp).
#include "pkonline/ops/walk_pacing.hpp"

#include <algorithm>
#include <chrono>

#include "pkonline/text.hpp"

namespace pkonline::ops {

// The pause after a batch: `paced` for max_wal_rate or batch_sleep, `for_load` more for the
// clients (the latency-aware throttle, counted by the walk itself). One longer than a second is a
// wait a DBA should see (status.waiting_for; the paced part in `paced_ms`, which the walk reports
// when it ends).
void Pause(Context& ctx, long paced, long for_load, const jobs::JobSettings& settings, double* paced_ms) {
  const long ms = std::max(paced, settings.batch_sleep_ms + for_load);
  if (ms <= 1000) {
    ctx.Sleep(ms);
    return;
  }
  if (paced > 1000) *paced_ms += static_cast<double>(paced);
  std::string why;
  if (ms > paced)
    why = Fmt("the clients' latency (pkonline.load_rise): pausing %1% ms after a batch", ms);
  else if (paced > settings.batch_sleep_ms)
    why = Fmt("the WAL rate limit: pkonline.max_wal_rate is %1% kB/s; pausing %2% ms after a batch",
              settings.max_wal_rate_kb, ms);
  else
    why = Fmt("pkonline.batch_sleep: pausing %1% ms after each batch", ms);
  ctx.SetWaiting(why);
  ctx.Sleep(ms);
  ctx.SetWaiting("");
}

// The latency-aware throttle's eyes: the clients' active sessions sampled every kSampleMs while a
// batch runs (pg/load_sampler.hpp), and while the job rests (its baseline: kBaselineMs after
// kSettleMs, at the walk's start and every LoadThrottle::kBaselineEverySec).
namespace {
constexpr int kSampleMs = 5;
constexpr long kSettleMs = 50;
constexpr long kBaselineMs = 200;
}  // namespace

// The timer stops when the batch ends, however it ends.
Sampling::Sampling(bool on) : on_(on) {
  if (on_) pg::StartLoadSampling(kSampleMs);
}

pg::LoadSample Sampling::Stop() {
  if (!on_) return {};
  on_ = false;
  return pg::StopLoadSampling();
}

Sampling::~Sampling() {
  try {
    Stop();
  } catch (...) {
  }
}

namespace {

// The baseline is the worker's (it runs one job): the walks over a tree's partitions share it.
struct Baseline {
  double sessions = 0;
  std::chrono::steady_clock::time_point next{};
  bool measured = false;
} baseline;

}  // namespace

void UpdateBaseline(Context& ctx, jobs::LoadThrottle& load) {
  const auto now = std::chrono::steady_clock::now();
  if (!baseline.measured || now >= baseline.next) {
    ctx.Sleep(kSettleMs);
    Sampling sampling(true);
    ctx.Sleep(kBaselineMs);
    baseline.sessions = sampling.Stop().Mean();
    baseline.measured = true;
    baseline.next =
        std::chrono::steady_clock::now() + std::chrono::seconds(jobs::LoadThrottle::kBaselineEverySec);
  }
  load.Baseline(baseline.sessions);
}

void WalkRun::Batch(int64_t blocks) {
  if (batches++ == 0) first_blocks = blocks;
  max_blocks = std::max(max_blocks, blocks);
  last_blocks = blocks;
}

// The walk's events: how its batches were sized (the first one is the probe: pacing.hpp), and
// how long it paused, for what. Other sessions' activity (the throttle's counts) only to a
// creator who may see it in pg_stat_activity (pg_read_all_stats).
void ReportWalk(Context& ctx, const std::string& what, unsigned relid, const WalkRun& run,
                const jobs::LoadThrottle& load, bool all_stats) {
  const bool counts = all_stats && load.enabled() && load.recent() >= 0;
  const std::string sessions =
      counts ? Fmt(", \"baseline_sessions\": %.2f, \"recent_sessions\": %.2f", load.baseline(), load.recent())
             : std::string();
  if (run.load_paused_ms > 0)
    ctx.Event("throttle",
              Fmt("the walk paused %.1f s in all for the clients: their active sessions rose by more than "
                  "pkonline.load_rise (%d %%) over their count while the job rested",
                  run.load_paused_ms / 1000, static_cast<int>(load.rise_percent())) +
                  (counts ? Fmt(" (%.2f)", load.baseline()) : std::string()),
              Fmt("{\"waited_ms\": %.1f, \"for\": \"the clients' latency (pkonline.load_rise)\"",
                  run.load_paused_ms) +
                  sessions + "}");
  if (run.batches > 0)
    ctx.Event("batches",
              Fmt("%1%: %2% batch(es); the first of %3% heap blocks, the largest %4%, the last %5%", what,
                  run.batches, run.first_blocks, run.max_blocks, run.last_blocks),
              Fmt("{\"relid\": %1%, \"batches\": %2%, \"first_blocks\": %3%, \"max_blocks\": %4%, "
                  "\"last_blocks\": %5%, \"next_blocks\": %6%, \"load_paused_ms\": %7%",
                  relid, run.batches, run.first_blocks, run.max_blocks, run.last_blocks, run.next_blocks,
                  static_cast<int64_t>(run.load_paused_ms)) +
                  sessions + "}");
  if (run.paced_ms > 0)
    ctx.Event("throttle",
              Fmt("the walk paused %.1f s in all, in pauses of more than a second between batches "
                  "(pkonline.max_wal_rate, batch_sleep)",
                  run.paced_ms / 1000),
              Fmt("{\"waited_ms\": %.1f, \"for\": \"the WAL rate limit or batch_sleep\"}", run.paced_ms));
}

}  // namespace pkonline::ops
