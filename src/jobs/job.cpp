// A job's states (see include/pkonline/jobs/job.hpp). Plain C++: unit-tested without a server.
#include "pkonline/jobs/job.hpp"

#include "pkonline/pg/bridge.hpp"

namespace pkonline::jobs {

namespace {
struct StateText {
  JobState state;
  const char* text;
};
constexpr StateText kStates[] = {
    {JobState::kCreated, "created"},     {JobState::kQueued, "queued"}, {JobState::kRunning, "running"},
    {JobState::kWaiting, "waiting"},     {JobState::kPaused, "paused"}, {JobState::kCancelling, "cancelling"},
    {JobState::kCancelled, "cancelled"}, {JobState::kFailed, "failed"}, {JobState::kDone, "done"}};
}  // namespace

const char* ToText(JobState state) {
  for (const auto& s : kStates)
    if (s.state == state) return s.text;
  return "?";
}

JobState JobStateFromText(const std::string& text) {
  for (const auto& s : kStates)
    if (text == s.text) return s.state;
  Fail(sqlstate::kInternal, "pkonline: unknown job state \"" + text + "\"");
}

bool Finished(JobState state) { return state == JobState::kDone || state == JobState::kCancelled; }

}  // namespace pkonline::jobs
