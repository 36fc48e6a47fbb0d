// pkonline.wait(): blocks until a job ends, printing its progress. A C procedure, so that between
// its polls this session holds no snapshot at all: it commits, then sleeps outside any statement.
// (The PL/pgSQL loop of 0.1-0.4 could not: after COMMIT its next statement, pg_sleep included,
// takes a snapshot that lasts until the next COMMIT, and every concurrent index build waits for
// it: a 65 ms CREATE INDEX CONCURRENTLY took 755 ms with wait() beside it.)
#include "pkonline/api/api.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/txn.hpp"
#include "pkonline/text.hpp"

namespace pkonline::api {

namespace {

constexpr long kPollMs = 200;

// One poll: pkonline_internal._wait_poll composes what to say (all comparisons live there, in SQL with a
// pinned search_path); every name here is schema-qualified, so the caller's search_path cannot
// redirect it.
struct Poll {
  std::string state;
  bool finished = false;
  pg::Value msg, warn, detail, hint, next_step, next_at, report;
  int64_t next_dead_polls = 0;
};

Poll PollOnce(int64_t job, const std::string& started, const pg::Value& timeout, const pg::Value& last_step,
              const pg::Value& last_at, int64_t dead_polls) {
  auto r = pg::Query(
      "SELECT p.state, p.finished, p.msg, p.warn, p.detail, p.hint, p.next_step, "
      "p.next_at::pg_catalog.text, p.next_dead_polls, p.report "
      "FROM pkonline_internal._wait_poll($1::pg_catalog.int8, $2::pg_catalog.timestamptz, "
      "$3::pg_catalog.interval, "
      "$4::pg_catalog.text, $5::pg_catalog.timestamptz, $6::pg_catalog.int4) p",
      {pg::V(job), pg::V(started), timeout, last_step, last_at, pg::V(dead_polls)});
  const auto& row = r.rows.at(0);
  Poll p;
  p.state = row[0].value_or("");
  p.finished = pg::AsBool(row[1]);
  p.msg = row[2];
  p.warn = row[3];
  p.detail = row[4];
  p.hint = row[5];
  p.next_step = row[6];
  p.next_at = row[7];
  p.next_dead_polls = pg::AsInt(row[8]);
  p.report = row[9];
  return p;
}

}  // namespace

std::string Wait(int64_t job, const std::optional<std::string>& timeout, bool atomic) {
  if (atomic)
    Fail(SqlState("25001"), "pkonline.wait cannot run inside a transaction block",
         "It commits between polls so that the job's concurrent index build is not held up by this session.",
         "CALL it outside BEGIN ... COMMIT, or poll pkonline.status instead.");
  pg::SpiScope spi(true);
  const std::string started = *pg::Query("SELECT pg_catalog.clock_timestamp()::pg_catalog.text").scalar();
  pg::Value last_step, last_at;
  int64_t dead_polls = 0;
  for (;;) {
    const Poll p = PollOnce(job, started, timeout, last_step, last_at, dead_polls);
    if (p.msg) Notice(*p.msg);
    if (p.warn) Notice(*p.warn, p.hint.value_or(""), true);
    // The job's detail may quote the table's values (a duplicated key): to this session only, as
    // a NOTICE, which the server log does not keep at its default log_min_messages (a WARNING's
    // DETAIL it would).
    if (p.detail) Notice(Fmt("pkonline job %1%, detail: %2%", job, *p.detail));
    if (p.report) Notice(*p.report);
    if (p.finished) {
      spi.Close();
      return p.state;
    }
    last_step = p.next_step;
    last_at = p.next_at;
    dead_polls = p.next_dead_polls;
    // No snapshot from here until the next poll's statement.
    pg::CommitHere();
    pg::SleepMs(kPollMs);
  }
}

}  // namespace pkonline::api
