// A job as the worker and the API see it: one row of pkonline.jobs. Its options (jsonb) hold the
// operation's plan (ops/plans.hpp), the settings (settings.hpp) and what the steps recorded.
#pragma once

#include <cstdint>
#include <string>

#include "pkonline/jobs/settings.hpp"
#include "pkonline/json.hpp"

namespace pkonline::jobs {

// Key of the lock a worker holds while it runs a job ("pkon"; pg/job_lock.hpp), and of the
// debug wait points' advisory locks (+1).
constexpr int32_t kAdvisoryClass = 0x706B6F6E;

// A job's state. The one mapping to the text stored in pkonline.jobs.state is ToText/FromText
// (job.cpp); the SQL CHECK on that column names the same set.
// kWaiting: its worker waits for the job's run window (jobs/window.hpp) to open.
enum class JobState {
  kCreated,
  kQueued,
  kRunning,
  kWaiting,
  kPaused,
  kCancelling,
  kCancelled,
  kFailed,
  kDone
};
const char* ToText(JobState state);
JobState JobStateFromText(const std::string& text);  // fails (XX000) on a text not in the set
// Done or cancelled: the job will never run again.
bool Finished(JobState state);

// The option holding a job's secret for its helper names (set when the job is created, since 0.4;
// the job tables' row security keeps it from other roles): ops::HelperName.
inline constexpr char kHelperKey[] = "helper_key";

struct Job {
  int64_t id = 0;
  unsigned relid = 0;
  std::string table_name;  // qualified, quoted, as at creation
  std::string operation;
  unsigned owner = 0;   // the role that created the job: it (and its members) control the job
  unsigned run_as = 0;  // the table's owner when the job was created: the work runs as this role
  JobState state = JobState::kQueued;
  int step_no = 1;
  bool pause_requested = false;
  bool cancel_requested = false;
  int64_t cursor_block = 0;
  int64_t end_block = -1;  // -1: not measured yet
  int64_t rows_done = 0;
  Json options = Json::Object();  // as stored when the job was loaded
  JobSettings settings;           // read from the options when the job is loaded
};

}  // namespace pkonline::jobs
