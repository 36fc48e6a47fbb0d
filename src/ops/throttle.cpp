// Throttles of the backfill (see throttle.hpp). Statistics of other roles' sessions and of the
// standbys are read as the extension's owner: the job's own role may not see them.
#include "pkonline/ops/throttle.hpp"

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops {

namespace {

std::string Now() {
  return pg::Query("SELECT pg_catalog.now()::pg_catalog.text", {}, true).scalar().value_or("");
}

}  // namespace

Throttle::Throttle(Context& ctx) : ctx_(ctx), next_lag_check_(std::chrono::steady_clock::now()) {
  ctx.Txn("pkonline: clock", [&]() {
    since_ = Now();
    // What pg_stat_activity and pg_stat_replication show the job's creator (who reads its events):
    // other roles' sessions and the standbys only to pg_read_all_stats.
    all_stats_ = pg::AsBool(pg::Query("SELECT pg_catalog.pg_has_role($1::oid, 'pg_read_all_stats', 'USAGE')",
                                      {pg::V(static_cast<int64_t>(ctx.job().owner))}, true)
                                .scalar());
  });
}

void Throttle::WaitForStandbys() {
  if (MaxLagMs() <= 0 || std::chrono::steady_clock::now() < next_lag_check_) return;
  bool waiting = false;
  const auto since = std::chrono::steady_clock::now();
  for (;;) {
    int64_t lag = 0;
    std::string standby;
    ctx_.Txn("pkonline: standby lag", [&]() {
      ctx_.AsExtensionOwner([&]() {
        auto r = pg::Query(
            "SELECT COALESCE(NULLIF(application_name, ''), client_addr::pg_catalog.text, "
            "pid::pg_catalog.text), "
            "(EXTRACT(epoch FROM replay_lag) * 1000)::bigint FROM pg_catalog.pg_stat_replication "
            "WHERE replay_lag IS NOT NULL ORDER BY replay_lag DESC LIMIT 1",
            {}, true);
        if (!r.empty()) {
          standby = r.rows[0][0].value_or("?");
          lag = pg::AsInt(r.rows[0][1]);
        }
      });
    });
    if (lag <= MaxLagMs()) {
      if (waiting) {
        ctx_.SetWaiting("");
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
        ctx_.Event("throttle",
                   all_stats_ ? Fmt("standby %1% replays %2% ms behind: the backfill goes on", standby, lag)
                              : std::string("the standbys have caught up: the backfill goes on"),
                   Fmt("{\"waited_ms\": %.1f, \"for\": \"a standby to catch up\"}", ms));
      }
      next_lag_check_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      return;
    }
    if (!waiting) {
      const std::string full =
          Fmt("standby %1% replays %2% ms behind (pkonline.max_replica_lag is %3% ms): the backfill waits",
              standby, lag, MaxLagMs());
      if (all_stats_) {
        ctx_.Event("throttle", full,
                   Fmt("{\"standby\": %1%, \"replay_lag_ms\": %2%}", JsonString(standby), lag));
      } else {
        ServerLog(Fmt("pkonline job %1%: %2%", ctx_.job().id, full));
        ctx_.Event("throttle",
                   Fmt("a standby replays more than pkonline.max_replica_lag (%1% ms) behind: the "
                       "backfill waits (which standby, and how far behind, is in the server log)",
                       MaxLagMs()));
      }
      waiting = true;
      ctx_.SetWaiting(
          Fmt("a standby to catch up: it replays more than pkonline.max_replica_lag (%1% ms) behind",
              MaxLagMs()));
    }
    ctx_.Sleep(1000);
    ctx_.CheckControl();
  }
}

void Throttle::ReportHorizon() {
  std::string pid, who, state, secs;
  bool visible = true;
  const int64_t owner = ctx_.job().owner;
  ctx_.Txn("pkonline: xmin horizon", [&]() {
    ctx_.AsExtensionOwner([&]() {
      auto r = pg::Query(
          "SELECT a.pid::pg_catalog.text, COALESCE(a.usename::pg_catalog.text, '?'), COALESCE(a.state, '?'), "
          "EXTRACT(epoch FROM pg_catalog.now() - a.xact_start)::bigint, "
          "pg_catalog.pg_has_role($2::oid, a.usesysid, 'USAGE') OR $3::boolean "
          "FROM pg_catalog.pg_stat_activity a "
          "WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid() "
          "AND (a.xact_start < $1::timestamptz OR a.xact_start < pg_catalog.now() - interval '60 s') "
          "AND a.xact_start < pg_catalog.now() - interval '1 s' "
          "UNION ALL SELECT 'prepared transaction ' || p.gid, p.owner::pg_catalog.text, 'prepared', "
          "EXTRACT(epoch FROM pg_catalog.now() - p.prepared)::bigint, true FROM pg_catalog.pg_prepared_xacts "
          "p "
          "WHERE p.prepared < $1::timestamptz OR p.prepared < pg_catalog.now() - interval '60 s' "
          "ORDER BY 4 DESC LIMIT 1",
          {pg::V(since_), pg::V(owner), pg::V(std::string(all_stats_ ? "true" : "false"))}, true);
      if (!r.empty()) {
        pid = r.rows[0][0].value_or("?");
        who = r.rows[0][1].value_or("?");
        state = r.rows[0][2].value_or("?");
        secs = r.rows[0][3].value_or("?");
        visible = pg::AsBool(r.rows[0][4]);
      }
    });
  });
  if (pid.empty() || !reported_.insert(pid).second) return;
  const bool session = pid.find_first_not_of("0123456789") == std::string::npos;
  if (!visible) {
    // pg_stat_activity hides another role's session state and transaction age from the job's
    // creator: the event says only what it may see; the rest goes to the server log.
    ServerLog(
        Fmt("pkonline job %1%: pid %2% (%3%, %4%) has held its snapshot for %5% s; VACUUM cannot reclaim the "
            "space of the rows the backfill replaced since",
            ctx_.job().id, pid, who, state, secs));
    ctx_.Event(
        "horizon",
        "a session of a role whose sessions the job's creator may not see holds an old snapshot: VACUUM "
        "cannot reclaim the space of the rows the backfill replaced since, so the table grows until it ends "
        "(which session, in the server log)");
    return;
  }
  ctx_.Event(
      "horizon",
      Fmt("%1% (%2%, %3%) has held its snapshot for %4% s: VACUUM cannot reclaim the space of the rows "
          "the backfill replaced since, so the table grows until it ends%5%",
          session ? "pid " + pid : pid, who, state, secs,
          session ? " (pg_terminate_backend(" + pid + ") ends it)" : std::string()),
      Fmt("{\"holder\": %1%, \"role\": %2%, \"state\": %3%, \"seconds\": %4%}", JsonString(pid),
          JsonString(who), JsonString(state), secs == "?" ? "null" : secs));
}

}  // namespace pkonline::ops
