// The worker's lock waits (see lock_waits.hpp). The hook runs inside ereport: it copies text into
// fixed buffers and allocates nothing that could fail.
#include "pkonline/pg/lock_waits.hpp"

#include <cstdlib>
#include <cstring>

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "utils/elog.h"
#include "storage/proc.h"
#include "utils/guc.h"
}

namespace pkonline::pg::lock_waits {

namespace {

constexpr int kMaxWaits = 32;
constexpr size_t kText = 256;
struct Slot {
  char lock[kText];
  char holders[kText];
  double ms;
};
Slot waits[kMaxWaits];
int n_waits = 0;
char pending_holders[kText];  // from the "still waiting" message, for the "acquired" one
emit_log_hook_type previous_hook = nullptr;
bool installed = false;
bool also_to_log = false;  // log_lock_waits was on already: the server log keeps the messages

void Copy(char* to, const char* from) {
  if (from == nullptr) {
    to[0] = '\0';
    return;
  }
  strncpy(to, from, kText - 1);
  to[kText - 1] = '\0';
}

// "process 12 acquired ShareLock on virtual transaction 4/17 after 40595.123 ms": the lock is what
// lies between `after_word` and the last " after ", the time what follows it.
void Record(const char* message) {
  const char* start = strstr(message, " acquired ");
  const char* end = nullptr;
  for (const char* p = strstr(message, " after "); p != nullptr; p = strstr(p + 1, " after ")) end = p;
  if (start == nullptr || end == nullptr || end <= start) return;
  const double ms = strtod(end + 7, nullptr);
  if (ms < kMinMs || n_waits >= kMaxWaits) return;
  Slot& s = waits[n_waits++];
  start += strlen(" acquired ");
  const size_t len = std::min<size_t>(static_cast<size_t>(end - start), kText - 1);
  memcpy(s.lock, start, len);
  s.lock[len] = '\0';
  Copy(s.holders, pending_holders);
  s.ms = ms;
  pending_holders[0] = '\0';
}

extern "C" void Hook(ErrorData* edata) {
  const char* id = edata->message_id;
  if (id != nullptr && edata->message != nullptr) {
    if (strncmp(id, "process %d still waiting for ", 29) == 0) {
      Copy(pending_holders, edata->detail_log);
      if (!also_to_log) edata->output_to_server = false;
    } else if (strncmp(id, "process %d acquired ", 20) == 0) {
      Record(edata->message);
      if (!also_to_log) edata->output_to_server = false;
    }
  }
  if (previous_hook != nullptr) previous_hook(edata);
}

}  // namespace

void Install() {
  if (installed) return;
  installed = true;
  also_to_log = log_lock_waits;
  previous_hook = emit_log_hook;
  emit_log_hook = Hook;
  Call([]() { SetConfigOption("log_lock_waits", "on", PGC_SUSET, PGC_S_SESSION); });
}

std::vector<Wait> Take() {
  std::vector<Wait> out;
  for (int i = 0; i < n_waits; i++) out.push_back({waits[i].lock, waits[i].holders, waits[i].ms});
  n_waits = 0;
  return out;
}

}  // namespace pkonline::pg::lock_waits
