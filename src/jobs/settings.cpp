// A job's settings (see include/pkonline/jobs/settings.hpp). Plain C++: unit-tested.
#include "pkonline/jobs/settings.hpp"

#include <stdexcept>

#include "pkonline/pg/bridge.hpp"

namespace pkonline::jobs {

namespace {

// The settings and their keys in the job's options, for both directions.
template <typename Fn>
void EachSetting(JobSettings& s, Fn&& fn) {
  fn("lock_timeout_ms", s.lock_timeout_ms);
  fn("lock_retries", s.lock_retries);
  fn("batch_size", s.batch_size);
  fn("batch_time_ms", s.batch_time_ms);
  fn("batch_sleep_ms", s.batch_sleep_ms);
  fn("vacuum_every", s.vacuum_every);
  fn("max_replica_lag_ms", s.max_replica_lag_ms);
  fn("max_wal_rate_kb", s.max_wal_rate_kb);
  fn("debug_wait_points", s.debug_wait_points);
  fn("backfill_fires_triggers", s.backfill_fires_triggers);
  fn("wal_compression", s.wal_compression);
}

std::string Text(int v) { return std::to_string(v); }
std::string Text(bool v) { return v ? "true" : "false"; }
std::string Text(const std::string& v) { return v; }

const std::string& Get(const std::map<std::string, std::string>& options, const char* key) {
  auto it = options.find(key);
  if (it == options.end()) Fail(sqlstate::kInternal, std::string("pkonline: the job has no setting ") + key);
  return it->second;
}

void Read(const std::string& text, const char* key, int& v) {
  try {
    size_t used = 0;
    v = std::stoi(text, &used);
    if (used != text.size()) throw std::invalid_argument(key);
  } catch (const std::exception&) {
    Fail(sqlstate::kInternal,
         std::string("pkonline: the job's setting ") + key + " is not a number: " + text);
  }
}
void Read(const std::string& text, const char*, bool& v) { v = text == "true"; }
void Read(const std::string& text, const char*, std::string& v) { v = text; }

}  // namespace

void JobSettings::SaveTo(std::map<std::string, std::string>& options) const {
  JobSettings copy = *this;
  EachSetting(copy, [&](const char* key, const auto& value) { options[key] = Text(value); });
}

JobSettings JobSettings::Load(const std::map<std::string, std::string>& options) {
  JobSettings s;
  EachSetting(s, [&](const char* key, auto& value) { Read(Get(options, key), key, value); });
  return s;
}

}  // namespace pkonline::jobs
