// Unit tests of a job's states and options (include/pkonline/jobs/job.hpp).
#include <fstream>
#include <map>
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
  const JobState all[] = {JobState::kCreated,    JobState::kQueued,    JobState::kRunning, JobState::kPaused,
                          JobState::kCancelling, JobState::kCancelled, JobState::kFailed,  JobState::kDone};
  bool round_trip = true;
  std::string texts;
  for (JobState s : all) {
    round_trip = round_trip && pkonline::jobs::JobStateFromText(pkonline::jobs::ToText(s)) == s;
    texts += std::string(texts.empty() ? "" : ",") + pkonline::jobs::ToText(s);
  }
  Check(round_trip, "state: every state reads back as itself");
  // The SQL CHECK on pkonline.jobs.state (the extension script, read from the tree: the tests run
  // from its root) names exactly this set, in this order.
  std::ifstream script("sql/pkonline--0.1.sql");
  std::stringstream text;
  text << script.rdbuf();
  std::smatch m;
  const std::string sql = text.str();
  std::string checked;
  if (std::regex_search(
          sql, m, std::regex(R"(state\s+text NOT NULL DEFAULT 'queued'\s+CHECK \(state IN \(([^)]*)\)\))")))
    checked = std::regex_replace(m[1].str(), std::regex(R"('|\s)"), "");
  Check(!checked.empty() && checked == texts,
        "state: the SQL CHECK on pkonline.jobs.state names the same set (" + checked + " vs " + texts + ")");
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
  std::map<std::string, std::string> options{{"column_name", "id"}};
  s.SaveTo(options);
  const auto back = pkonline::jobs::JobSettings::Load(options);
  Check(back.lock_timeout_ms == 250 && back.batch_size == 7 && back.max_wal_rate_kb == 20480 &&
            back.backfill_fires_triggers && !back.debug_wait_points && back.wal_compression == "zstd" &&
            back.lock_retries == s.lock_retries && back.vacuum_every == s.vacuum_every &&
            back.max_replica_lag_ms == s.max_replica_lag_ms && back.batch_time_ms == s.batch_time_ms &&
            back.batch_sleep_ms == s.batch_sleep_ms,
        "settings: saved into a job's options and read back unchanged");
  Check(options.size() == 12 && options["column_name"] == "id",
        "settings: eleven keys, beside the operation's");
  auto without = options;
  without.erase("lock_retries");
  bool refused_missing = false, refused_garbled = false;
  try {
    pkonline::jobs::JobSettings::Load(without);
  } catch (const pkonline::PgError&) {
    refused_missing = true;
  }
  auto garbled = options;
  garbled["batch_size"] = "12 blocks";
  try {
    pkonline::jobs::JobSettings::Load(garbled);
  } catch (const pkonline::PgError&) {
    refused_garbled = true;
  }
  Check(refused_missing && refused_garbled, "settings: a missing or garbled setting is refused");

  pkonline::jobs::Job job;
  job.id = 7;
  job.options = {{"n", "42"}, {"yes", "true"}, {"no", "false"}};
  Check(job.OptInt("n") == 42 && job.OptBool("yes") && !job.OptBool("no"), "options: read as int and bool");
  bool missing = false;
  try {
    job.Opt("absent");
  } catch (const pkonline::PgError& e) {
    missing = e.message() == "job 7 has no option absent";
  }
  Check(missing, "options: a missing key fails, naming it");
}
