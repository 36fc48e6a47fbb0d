// Unit tests of a job's states, its settings in the options, and JSON values (include/pkonline/jobs/job.hpp).
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "check.hpp"
#include "pkonline/jobs/job.hpp"
#include "pkonline/jobs/settings.hpp"
#include "pkonline/pg/bridge.hpp"

using pkonline::jobs::JobState;
using unit::Check;

void unit::JobTests() {
  const JobState all[] = {JobState::kCreated,   JobState::kQueued, JobState::kRunning,
                          JobState::kWaiting,   JobState::kPaused, JobState::kCancelling,
                          JobState::kCancelled, JobState::kFailed, JobState::kDone};
  bool round_trip = true;
  std::string texts;
  for (JobState s : all) {
    round_trip = round_trip && pkonline::jobs::JobStateFromText(pkonline::jobs::ToText(s)) == s;
    texts += std::string(texts.empty() ? "" : ",") + pkonline::jobs::ToText(s);
  }
  Check(round_trip, "state: every state reads back as itself");
  // The SQL CHECK on pkonline.jobs.state names exactly this set, in this order: as the newest
  // script defines it (the 0.1 script, then the update to 0.2; read from the tree: the tests run
  // from its root).
  std::string checked, all_sql;
  for (const char* file : {"sql/pkonline--0.1.sql", "sql/pkonline--0.1--0.2.sql"}) {
    std::ifstream script(file);
    std::stringstream text;
    text << script.rdbuf();
    std::smatch m;
    const std::string sql = text.str();
    all_sql += sql;
    if (std::regex_search(
            sql, m,
            std::regex(R"((?:state\s+text NOT NULL DEFAULT 'queued'|ADD CONSTRAINT jobs_state_check)\s+)"
                       R"(CHECK \(state IN \(([^)]*)\)\))")))
      checked = std::regex_replace(m[1].str(), std::regex(R"('|\s)"), "");
  }
  Check(!checked.empty() && checked == texts,
        "state: the SQL CHECK on pkonline.jobs.state names the same set (" + checked + " vs " + texts + ")");
  // The wait points' advisory key: the worker's (kAdvisoryClass + 1) is the one the SQL helpers
  // hold_wait_point / release_wait_point take.
  int holds = 0;
  const std::regex key(R"(pg_advisory_(un)?lock\((\d+), )");
  for (std::sregex_iterator it(all_sql.begin(), all_sql.end(), key), end; it != end; ++it)
    holds += std::stoll((*it)[2].str()) == pkonline::jobs::kAdvisoryClass + 1 ? 1 : -100;
  Check(holds == 2, "wait points: the SQL helpers use the worker's advisory key (" +
                        std::to_string(pkonline::jobs::kAdvisoryClass + 1) + ")");
  bool refused = false;
  try {
    pkonline::jobs::JobStateFromText("finished");
  } catch (const pkonline::PgError&) {
    refused = true;
  }
  Check(refused, "state: a text outside the set is refused");
  int finished = 0;
  for (JobState s : all) finished += pkonline::jobs::Finished(s) ? 1 : 0;
  Check(finished == 2 && pkonline::jobs::Finished(JobState::kDone) &&
            pkonline::jobs::Finished(JobState::kCancelled),
        "state: only done and cancelled are finished");

  // Settings: saved into the options and read back unchanged; a missing or garbled one is refused.
  pkonline::jobs::JobSettings s;
  s.lock_timeout_ms = 250;
  s.batch_size = 7;
  s.max_wal_rate_kb = 20480;
  s.backfill_fires_triggers = true;
  s.wal_compression = "zstd";
  pkonline::Json options = pkonline::Json::Object();
  options.Set("column_name", pkonline::Json::String("id"));
  s.SaveTo(options);
  const auto back = pkonline::jobs::JobSettings::Load(options);
  Check(back.lock_timeout_ms == 250 && back.batch_size == 7 && back.max_wal_rate_kb == 20480 &&
            back.backfill_fires_triggers && !back.debug_wait_points && back.wal_compression == "zstd" &&
            back.lock_retries == s.lock_retries && back.vacuum_every == s.vacuum_every &&
            back.max_replica_lag_ms == s.max_replica_lag_ms && back.batch_time_ms == s.batch_time_ms &&
            back.batch_sleep_ms == s.batch_sleep_ms,
        "settings: saved into a job's options and read back unchanged");
  Check(options.Fields().size() == 15 && options.At("column_name").AsString() == "id" &&
            options.At("batch_size") == pkonline::Json::Number(7) &&
            options.At("backfill_fires_triggers") == pkonline::Json::Bool(true),
        "settings: fourteen keys, beside the operation's, numbers and booleans as JSON ones");
  pkonline::Json before_05 = pkonline::Json::Object();  // a job of 0.4: no load_rise
  for (const auto& [k, v] : options.Fields())
    if (k != "load_rise") before_05.Set(k, v);
  Check(s.load_rise == 50 && options.At("load_rise") == pkonline::Json::Number(50) &&
            pkonline::jobs::JobSettings::Load(before_05).load_rise == 0,
        "settings: load_rise is kept; a job made before it had none keeps the throttle off");
  pkonline::Json without = pkonline::Json::Object();
  for (const auto& [k, v] : options.Fields())
    if (k != "lock_retries") without.Set(k, v);
  bool refused_missing = false, refused_garbled = false;
  try {
    pkonline::jobs::JobSettings::Load(without);
  } catch (const pkonline::PgError& e) {
    refused_missing = e.message().find("lock_retries") != std::string::npos;
  }
  auto garbled = options;
  garbled.Set("batch_size", pkonline::Json::String("12 blocks"));
  try {
    pkonline::jobs::JobSettings::Load(garbled);
  } catch (const pkonline::PgError& e) {
    refused_garbled = e.message().find("batch_size") != std::string::npos;
  }
  Check(refused_missing && refused_garbled, "settings: a missing or garbled setting is refused, naming it");
  pkonline::Json old_job = pkonline::Json::Object();  // a job of pkonline 0.1: no run_window
  for (const auto& [k, v] : options.Fields())
    if (k != "run_window") old_job.Set(k, v);
  s.run_window = "01:00-05:00";
  pkonline::Json windowed = pkonline::Json::Object();
  s.SaveTo(windowed);
  Check(pkonline::jobs::JobSettings::Load(old_job).run_window.empty() &&
            pkonline::jobs::JobSettings::Load(windowed).run_window == "01:00-05:00",
        "settings: run_window round-trips, and a 0.1 job without it runs always");

  // set_option's settings: found by name (with or without "pkonline."), each a key Load reads;
  // a running job takes them from its options as they are now, and keeps the rest.
  using pkonline::jobs::FindTunable;
  const auto* lt = FindTunable("pkonline.lock_timeout");
  Check(lt != nullptr && FindTunable("lock_timeout") == lt && std::string(lt->key) == "lock_timeout_ms" &&
            FindTunable("batch_size") == nullptr && FindTunable("run_window") == nullptr &&
            FindTunable("wal_compression") == nullptr,
        "settings: set_option finds lock_timeout, but not batch_size or wal_compression");
  bool keys_known = true;
  for (const char* name :
       {"lock_timeout", "lock_retries", "batch_time", "batch_sleep", "max_wal_rate", "max_replica_lag"})
    keys_known =
        keys_known && FindTunable(name) != nullptr && options.Find(FindTunable(name)->key) != nullptr;
  Check(keys_known, "settings: every tunable is a key of the job's options");
  pkonline::jobs::JobSettings running = s, changed = s;
  changed.batch_sleep_ms = 0;
  changed.lock_retries = 99;
  changed.batch_size = 12345;
  changed.wal_compression = "off";
  changed.run_window = "";
  running.TakeTunables(changed);
  Check(running.batch_sleep_ms == 0 && running.lock_retries == 99 && running.run_window.empty() &&
            running.batch_size == s.batch_size && running.wal_compression == s.wal_compression,
        "settings: a running job takes the tunables, and keeps batch_size and wal_compression");

  // JSON values: the text written for a ::jsonb cast.
  using pkonline::Json;
  Json o = Json::Object();
  o.Set("s", Json::String("a\"b\\c\n\x01"));
  o.Set("n", Json::Number(-42));
  o.Set("b", Json::Bool(false));
  o.Set("l", Json::Strings({"x", "y"}));
  o.Set("z", Json());
  Check(o.ToText() == R"({"s": "a\"b\\c\n\u0001", "n": -42, "b": false, "l": ["x", "y"], "z": null})",
        "json: written with escapes (" + o.ToText() + ")");
  o.Set("n", Json::Number(7));
  Check(o.At("n").AsInt() == 7 && o.Fields().size() == 5, "json: Set replaces a key's value");
  bool kind_refused = false;
  try {
    o.At("s").AsInt();
  } catch (const Json::Error&) {
    kind_refused = true;
  }
  bool not_integer = false;
  try {
    Json::NumberText("1.5").AsInt();
  } catch (const Json::Error&) {
    not_integer = true;
  }
  Check(kind_refused && not_integer,
        "json: a value read as another kind, or a fraction as an integer, is refused");
}
