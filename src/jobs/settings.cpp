// A job's settings (see include/pkonline/jobs/settings.hpp). Plain C++: unit-tested.
#include "pkonline/jobs/settings.hpp"

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
  fn("run_window", s.run_window);
  fn("stop_before_final", s.stop_before_final);
  fn("load_rise", s.load_rise);
}

// Settings added after 0.1: a job created then has no key for them and keeps their default.
bool AddedLater(const char* key) {
  return std::string(key) == "run_window" || std::string(key) == "stop_before_final" ||
         std::string(key) == "load_rise";
}

Json Value(int v) { return Json::Number(v); }
Json Value(bool v) { return Json::Bool(v); }
Json Value(const std::string& v) { return Json::String(v); }

void Read(const Json& value, int& v) { v = static_cast<int>(value.AsInt()); }
void Read(const Json& value, bool& v) { v = value.AsBool(); }
void Read(const Json& value, std::string& v) { v = value.AsString(); }

constexpr int kIntMax = 2147483647;
const Tunable kTunables[] = {
    {"lock_timeout", "lock_timeout_ms", &JobSettings::lock_timeout_ms, Tunable::Unit::kMs, 1, 60000},
    {"lock_retries", "lock_retries", &JobSettings::lock_retries, Tunable::Unit::kNone, 0, 10000},
    {"batch_time", "batch_time_ms", &JobSettings::batch_time_ms, Tunable::Unit::kMs, 0, 60000},
    {"batch_sleep", "batch_sleep_ms", &JobSettings::batch_sleep_ms, Tunable::Unit::kMs, 0, 600000},
    {"max_wal_rate", "max_wal_rate_kb", &JobSettings::max_wal_rate_kb, Tunable::Unit::kKb, 0, kIntMax},
    {"max_replica_lag", "max_replica_lag_ms", &JobSettings::max_replica_lag_ms, Tunable::Unit::kMs, 0,
     kIntMax},
    {"load_rise", "load_rise", &JobSettings::load_rise, Tunable::Unit::kNone, 0, 10000},
};

}  // namespace

const Tunable* FindTunable(const std::string& name) {
  const std::string bare = name.rfind("pkonline.", 0) == 0 ? name.substr(9) : name;
  for (const auto& t : kTunables)
    if (bare == t.name) return &t;
  return nullptr;
}

std::string TunableNames() {
  std::string out;
  for (const auto& t : kTunables) out += std::string(t.name) + ", ";
  return out + "run_window, stop_before_final";
}

void JobSettings::TakeTunables(const JobSettings& now) {
  for (const auto& t : kTunables) this->*t.field = now.*t.field;
  run_window = now.run_window;
  stop_before_final = now.stop_before_final;
}

void JobSettings::SaveTo(Json& options) const {
  JobSettings copy = *this;
  EachSetting(copy, [&](const char* key, const auto& value) { options.Set(key, Value(value)); });
}

JobSettings JobSettings::Load(const Json& options) {
  JobSettings s;
  EachSetting(s, [&](const char* key, auto& value) {
    try {
      if (AddedLater(key) && options.Find(key) == nullptr) {
        if (std::string(key) == "load_rise") s.load_rise = 0;  // as the job was made
        return;
      }
      Read(options.At(key), value);
    } catch (const Json::Error& e) {
      Fail(sqlstate::kInternal, std::string("pkonline: the job's setting ") + key + ": " + e.what());
    }
  });
  return s;
}

}  // namespace pkonline::jobs
