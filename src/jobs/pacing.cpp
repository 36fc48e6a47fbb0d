// How a job paces its work (see include/pkonline/jobs/pacing.hpp).
#include "pkonline/jobs/pacing.hpp"

#include <algorithm>

namespace pkonline::jobs {

namespace {
constexpr int kMaxDoublings = 10;  // 50 ms * 2^10 is past kMaxMs already
}  // namespace

Backoff::Backoff() : rng_(std::random_device{}()) {}

long Backoff::After(int failures) {
  const long cap = std::min<long>(kMaxMs, kBaseMs << std::clamp(failures, 0, kMaxDoublings));
  return std::uniform_int_distribution<long>(cap / 2, cap)(rng_);
}

BatchSizer::BatchSizer(int64_t first_blocks, int target_ms)
    : blocks_(std::clamp<int64_t>(first_blocks, 1, kMaxBlocks)), target_ms_(target_ms) {}

void BatchSizer::Took(double ms) {
  if (target_ms_ <= 0 || ms <= 0) return;
  const double factor = std::clamp(target_ms_ / ms, 0.5, 2.0);
  blocks_ = std::clamp<int64_t>(static_cast<int64_t>(static_cast<double>(blocks_) * factor), 1, kMaxBlocks);
}

void BatchSizer::GaveWay() { blocks_ = std::max<int64_t>(1, blocks_ / 2); }

int64_t FirstBatchBlocks(int64_t batch_size, int64_t carried_blocks, int batch_time_ms) {
  batch_size = std::max<int64_t>(1, batch_size);
  if (batch_time_ms <= 0) return batch_size;
  if (carried_blocks > 0) return std::max<int64_t>(1, carried_blocks / 4);
  return std::min(batch_size, kProbeBlocks);
}

long LoadThrottle::After(double batch_ms, double mean_active) {
  if (!enabled()) return 0;
  recent_ = recent_ < 0 ? mean_active : 0.6 * recent_ + 0.4 * mean_active;
  if (recent_ > baseline_ * (1 + rise_) + kSlack)
    pause_ms_ = std::max(kStepMs, pause_ms_ * 2);
  else if (recent_ < baseline_ * (1 + rise_ / 2) + kSlack / 2)
    pause_ms_ = pause_ms_ / 2 < kStepMs ? 0 : pause_ms_ / 2;
  const long cap = static_cast<long>(kMaxShare * std::max(0.0, batch_ms));
  pause_ms_ = std::min(pause_ms_, std::max(cap, kStepMs));
  return std::min(pause_ms_, cap);
}

long WalPacer::PauseMs(long at_least_ms, uint64_t batch_wal_bytes, double batch_ms) const {
  if (rate_ <= 0) return at_least_ms;
  const double due_ms = 1000.0 * static_cast<double>(batch_wal_bytes) / rate_;
  return std::max<long>(at_least_ms, static_cast<long>(due_ms - batch_ms));
}

VacuumCadence::VacuumCadence(int64_t every_setting, int64_t walk_blocks, bool enabled)
    : every_(enabled && every_setting > 0 ? std::max<int64_t>(every_setting, walk_blocks / 10) : 0) {}

bool VacuumCadence::After(int64_t blocks, int64_t rows) {
  if (every_ <= 0) return false;
  if (rows > 0) since_ += blocks;  // a pass that changes nothing leaves nothing to reclaim
  if (since_ < every_) return false;
  since_ = 0;
  return true;
}

}  // namespace pkonline::jobs
