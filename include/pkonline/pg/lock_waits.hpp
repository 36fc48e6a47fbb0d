// The worker's own lock waits of a second or more, as PostgreSQL itself reports them: with
// log_lock_waits on, the waiting process logs "still waiting for <lock>" after deadlock_timeout
// and "acquired <lock> after N ms" when it gets it. An emit_log_hook in the worker keeps those
// two messages (and no longer writes them to the server log): they are how a concurrent index
// build's wait for old snapshots, which no lock_timeout bounds, becomes an event and a line of
// pkonline.report().
#pragma once

#include <string>
#include <vector>

namespace pkonline::pg::lock_waits {

struct Wait {
  std::string lock;     // e.g. "ShareLock on virtual transaction 4/17"
  std::string holders;  // "Process holding the lock: 123. Wait queue: 456." (PostgreSQL's words)
  double ms = 0;        // how long it waited
};

// In a worker: installs the hook and turns log_lock_waits on for this session.
void Install();
// The waits of kMinMs or more that ended since the last call, oldest first.
constexpr double kMinMs = 1000;
std::vector<Wait> Take();

}  // namespace pkonline::pg::lock_waits
