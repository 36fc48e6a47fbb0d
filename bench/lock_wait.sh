#!/usr/bin/env bash
# How long does the application wait while pkonline adds a primary key?  A measurement, not a test:
# it prints figures and asserts nothing about speed.
#
#   bash bench/lock_wait.sh [ROWS]        # as root, from the repository root; ROWS default 1000000
#
# In a throwaway cluster (pg_virtualenv, pkonline preloaded) it makes a PK-less table `orders` of
# ROWS rows, then runs the same pgbench load twice, 4 clients, small transactions (UPDATE one order
# found by the indexed customer column, INSERT one order, SELECT one customer's orders):
#   1. baseline: LOAD_SECS seconds, no job;
#   2. during the job: LOAD_SECS seconds; LEAD_SECS seconds in, add_int_pk('orders') + wait.
# Every transaction is logged (pgbench --log: end time and latency). The "job window" is
# [started_at, finished_at] of the job; the baseline window is the same stretch of the baseline run
# (same offset from the start of the load, same length). For each window: tps (transactions that
# completed in it), latency average / p50 / p99 / max of the transactions that overlap it, failed
# transactions and aborted clients; then the same per step of the job. The longest time any client
# waited on a lock is bounded above by the longest transaction latency during the job; the server
# also logs every lock wait longer than deadlock_timeout (log_lock_waits, deadlock_timeout=10ms in
# both runs), which gives the waits themselves.
#
# Environment: LOAD_SECS (length of each pgbench run; default LEAD_SECS + 10 + 25 s per million
# rows, i.e. 40 s for 1M), LEAD_SECS (5), CLIENTS (4), RATE (pgbench -R; default unthrottled),
# SKIP_BUILD=1 (skip make && make install), KEEP=1 (keep the work directory with all logs).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LC_ALL=C

ROWS=${1:-${ROWS:-1000000}}
[[ "$ROWS" =~ ^[0-9]+$ ]] || { echo "usage: $0 [ROWS]" >&2; exit 2; }
CLIENTS=${CLIENTS:-4}
LEAD_SECS=${LEAD_SECS:-5}
# The job takes ~17 s for 1M rows under this load on 2 cores: leave it room.
LOAD_SECS=${LOAD_SECS:-$((LEAD_SECS + 10 + ROWS / 40000))}
RATE=${RATE:-}

die() { echo "lock_wait: $*" >&2; exit 1; }

# ================================================================================================
# Inside pg_virtualenv: collect. Everything lands in $WORK; the analysis runs afterwards.
# ================================================================================================
collect() {
  cd "$WORK"
  local psql=(psql -X -v ON_ERROR_STOP=1)
  pgbench_pid=
  trap 'rc=$?; [ -n "${pgbench_pid:-}" ] && kill "$pgbench_pid" 2>/dev/null;
        cp "$(dirname "${PG_CLUSTER_CONF_ROOT:-/nonexistent}")"/log/*.log "$WORK"/server.log 2>/dev/null; exit $rc' EXIT

  echo "== setup: orders, $ROWS rows, no primary key (cluster on port $PGPORT)"
  "${psql[@]}" -q <<SQL
ALTER SYSTEM SET log_lock_waits = on;
ALTER SYSTEM SET deadlock_timeout = '10ms';
ALTER SYSTEM SET log_line_prefix = '%n [%p] %a|%b: ';
SELECT pg_reload_conf();
CREATE EXTENSION pkonline;
SQL
  "${psql[@]}" -q -v rows="$ROWS" -f "$BENCH_DIR/orders_table.sql"
  cat >load.sql <<'PGB'
\set o random(1, :rows)
\set c random(1, 100000)
\set a random(100, 99999)
BEGIN;
UPDATE orders SET amount = amount + 1, status = 'paid' WHERE customer = :o % 100000 AND order_no = :o;
INSERT INTO orders (customer, amount, status) VALUES (:c, :a / 100.0, 'new');
SELECT count(*), sum(amount) FROM orders WHERE customer = :c;
END;
PGB
  local bench=(pgbench -n -c "$CLIENTS" -j 2 -T "$LOAD_SECS" -P 5 -r -D rows="$ROWS" -f load.sql --log)
  [ -n "$RATE" ] && bench+=(-R "$RATE")

  echo "== run 1, baseline: pgbench ${bench[*]:1} (${LOAD_SECS}s, no job)"
  date +%s.%N >base.t0
  local rc=0
  "${bench[@]}" --log-prefix=base >base.out 2>&1 || rc=$?
  echo "$rc" >base.rc
  grep -E '^progress' base.out || true

  "${psql[@]}" -q -c "VACUUM ANALYZE orders" -c "CHECKPOINT"

  echo "== run 2, during the job: same load, add_int_pk after ${LEAD_SECS}s"
  date +%s.%N >job.t0
  ( "${bench[@]}" --log-prefix=job >job.out 2>&1; echo $? >job.rc ) &
  pgbench_pid=$!
  sleep "$LEAD_SECS"
  "${psql[@]}" -q <<'SQL' 2>&1 | tee wait.out | grep -v 'step 2/6 backfill' || true
SELECT pkonline.add_int_pk('orders') AS job \gset
\echo job :job started; backfill progress lines are in wait.out
CALL pkonline.wait(:job, '10 min');
SQL
  local job
  job=$("${psql[@]}" -Atc "SELECT max(job) FROM pkonline.status")
  [ -n "$job" ] || die "no job was created (see $WORK/wait.out)"
  "${psql[@]}" -At -F ' ' >job.env <<SQL
SELECT 'JOB=' || job, 'STATE=' || state,
       'JOB_CREATED=' || extract(epoch FROM created_at), 'JOB_START=' || extract(epoch FROM started_at),
       'JOB_END=' || COALESCE(extract(epoch FROM finished_at), extract(epoch FROM clock_timestamp())),
       'LOCK_RETRIES=' || lock_retries, 'ROWS_DONE=' || rows_done, 'ROWS_PER_SEC=' || COALESCE(rows_per_sec, 0)
  FROM pkonline.status WHERE job = $job;
SQL
  "${psql[@]}" -At -F ' ' >steps.txt -c \
    "SELECT step_no, step, state, extract(epoch FROM started_at), extract(epoch FROM finished_at) FROM pkonline.steps($job) ORDER BY step_no"
  "${psql[@]}" -x -c "SELECT * FROM pkonline.status WHERE job = $job" >status.txt
  "${psql[@]}" -c "SELECT at, kind, step, message, detail FROM pkonline.events WHERE job_id = $job AND kind NOT IN ('batch') ORDER BY id" >events.txt
  "${psql[@]}" -At -c "SELECT count(*) = count(DISTINCT id) AND count(id) = count(*) FROM orders" >ids_ok.txt || true

  echo "== waiting for run 2's pgbench to end"
  wait "$pgbench_pid" || true
  pgbench_pid=
  grep -E '^progress' job.out || true
}

if [ "${PKONLINE_LOCKWAIT_STAGE:-}" = inside ]; then
  collect
  exit 0
fi

# ================================================================================================
# Outside: build, run the collection in a throwaway cluster, analyse.
# ================================================================================================
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v pg_virtualenv >/dev/null || ! command -v pgbench >/dev/null; then
  die "needs postgresql-15 and postgresql-common: run bash bench/demo.sh once (it installs them)"
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$ROOT" && make -s -j"$(nproc)" >/dev/null && make -s install >/dev/null) ||
    die "make && make install failed in $ROOT (as root?)"
fi
[ -f "$(pg_config --pkglibdir)/pkonline.so" ] || die "pkonline is not installed (make install)"

WORK=$(mktemp -d /tmp/pkonline-lockwait.XXXXXX)
chmod 755 "$WORK"
echo "lock_wait: $ROWS rows, $CLIENTS clients, load runs of ${LOAD_SECS}s, job starts ${LEAD_SECS}s into run 2${RATE:+, rate $RATE tps}; files in $WORK"
export WORK ROWS CLIENTS LEAD_SECS LOAD_SECS RATE
PKONLINE_LOCKWAIT_STAGE=inside pg_virtualenv -t -o shared_preload_libraries=pkonline \
  bash "$ROOT/bench/lock_wait.sh" || die "collection failed (exit $?); files in $WORK"

cd "$WORK"
# shellcheck disable=SC1091  # sets JOB STATE JOB_CREATED JOB_START JOB_END LOCK_RETRIES ROWS_DONE ROWS_PER_SEC
. ./job.env 2>/dev/null || die "no job figures (see $WORK/wait.out)"
STATE=${STATE:-unknown}

# ---- helpers over the per-transaction logs: "client txno latency_us script epoch_s epoch_us" ----
# (latency is "failed" for a failed transaction)
log_first_start() { cat "$@" | awk '$3 ~ /^[0-9]+$/ { s = $5 + $6 / 1e6 - $3 / 1e6; if (m == "" || s < m) m = s } END { printf "%.6f\n", m }'; }
log_last_end()    { cat "$@" | awk '{ e = $5 + $6 / 1e6; if (e > m) m = e } END { printf "%.6f\n", m }'; }

# window_stats START END FILES... -> "completed tps avg p50 p99 max failed overlapping over100ms"
# completed/tps/failed: transactions that ended in [START, END]; latency figures: transactions
# whose run overlaps [START, END] (a transaction stalled by the job counts even if it ended later).
window_stats() {
  local ws=$1 we=$2; shift 2
  local sorted
  sorted=$(mktemp)
  cat "$@" | awk -v ws="$ws" -v we="$we" '
    { e = $5 + $6 / 1e6
      if ($3 !~ /^[0-9]+$/) next
      s = e - $3 / 1e6
      if (e >= ws && s <= we) printf "%d %.6f\n", $3, e }' | sort -n -k1,1 >"$sorted"
  local counts
  counts=$(cat "$@" | awk -v ws="$ws" -v we="$we" '
    { e = $5 + $6 / 1e6; if (e < ws || e > we) next
      if ($3 ~ /^[0-9]+$/) done++; else failed++ }
    END { printf "%d %d\n", done, failed }')
  awk -v ws="$ws" -v we="$we" -v counts="$counts" '
    { lat[NR] = $1; sum += $1; if ($1 > 100000) slow++ }
    END {
      split(counts, c, " "); n = NR; len = we - ws
      if (n == 0) { printf "%d %.1f - - - - %d 0 0\n", c[1], (len > 0 ? c[1] / len : 0), c[2]; exit }
      i99 = int(0.99 * n); if (i99 < 0.99 * n) i99++; if (i99 < 1) i99 = 1
      i50 = int(0.50 * n); if (i50 < 0.50 * n) i50++; if (i50 < 1) i50 = 1
      printf "%d %.1f %.2f %.2f %.2f %.2f %d %d %d\n", c[1], (len > 0 ? c[1] / len : 0), sum / n / 1000,
             lat[i50] / 1000, lat[i99] / 1000, lat[n] / 1000, c[2], n, slow }' "$sorted"
  rm -f "$sorted"
}
summary_field() { sed -n "s/^$2 = \([0-9.]*\).*/\1/p; s/^$2: \([0-9]*\).*/\1/p" "$1" | head -1; }
aborted_clients() { grep -c 'aborted' "$1" || true; }

base_logs=(base.[0-9]*)
job_logs=(job.[0-9]*)
if [ ! -e "${base_logs[0]}" ] || [ ! -e "${job_logs[0]}" ]; then die "pgbench wrote no per-transaction logs"; fi
base_t0=$(log_first_start "${base_logs[@]}"); base_t1=$(log_last_end "${base_logs[@]}")
job_t0=$(log_first_start "${job_logs[@]}");   job_t1=$(log_last_end "${job_logs[@]}")

# The job window, clipped to the load; the same stretch of the baseline run.
read -r win_s win_e clipped < <(awk -v s="$JOB_START" -v e="$JOB_END" -v t1="$job_t1" \
  'BEGIN { c = 0; if (e > t1) { e = t1; c = 1 }; printf "%.6f %.6f %d\n", s, e, c }')
read -r bwin_s bwin_e < <(awk -v s="$win_s" -v e="$win_e" -v j0="$job_t0" -v b0="$base_t0" -v b1="$base_t1" \
  'BEGIN { bs = b0 + (s - j0); be = b0 + (e - j0); if (be > b1) be = b1; printf "%.6f %.6f\n", bs, be }')

read -r b_done b_tps b_avg b_p50 b_p99 b_max b_failed _ b_slow < <(window_stats "$bwin_s" "$bwin_e" "${base_logs[@]}")
read -r j_done j_tps j_avg j_p50 j_p99 j_max j_failed _ j_slow < <(window_stats "$win_s" "$win_e" "${job_logs[@]}")

fmt_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
wall=$(fmt_secs "$JOB_START" "$JOB_END")
queued=$(fmt_secs "$JOB_CREATED" "$JOB_START")

# Lock waits the server logged (log_lock_waits: longer than deadlock_timeout = 10 ms).
# Line: "<epoch> [pid] <application>|<backend type>: LOG:  process N acquired|still waiting ... after X ms"
lock_waits() { # START END WHO(pgbench|other) -> "count max_ms what"
  [ -f server.log ] || { echo "0 - -"; return; }
  awk -v ws="$1" -v we="$2" -v who="$3" '
    / LOG:  process [0-9]+ (acquired|still waiting for) / && / after [0-9.]+ ms/ {
      ms = $0; sub(/.* after /, "", ms); sub(/ ms.*/, "", ms); ms += 0
      t = $1 + 0; if (t < ws || t - ms / 1000 > we) next   # the wait [t - ms, t] overlaps the window
      app = $3; sub(/\|.*/, "", app)
      if ((who == "pgbench") != (app == "pgbench")) next
      what = $0; sub(/.*process [0-9]+ /, "", what); sub(/ after .*/, "", what)
      if (/ acquired /) n++
      if (ms > max) { max = ms; w = what }
    }
    END { if (max == "") print n + 0, "-", "-"; else printf "%d %.1f %s\n", n, max, w }' server.log
}
read -r lw_b_n lw_b_max _ < <(lock_waits "$bwin_s" "$bwin_e" pgbench)
read -r lw_j_n lw_j_max lw_j_what < <(lock_waits "$win_s" "$win_e" pgbench)
read -r lw_o_n lw_o_max lw_o_what < <(lock_waits "$win_s" "$win_e" other)

b_rc=$(cat base.rc 2>/dev/null || echo '?'); j_rc=$(cat job.rc 2>/dev/null || echo '?')
b_abort=$(aborted_clients base.out); j_abort=$(aborted_clients job.out)

echo
echo "================================================================================================"
echo " pkonline lock_wait: add_int_pk on a $ROWS-row table under a $CLIENTS-client pgbench load"
echo "================================================================================================"
echo "job $JOB: $STATE; wall time $wall s (started_at -> finished_at; $queued s from creation to start)"
echo "    rows filled by the backfill $ROWS_DONE (${ROWS_PER_SEC} rows/s), lock retries $LOCK_RETRIES"
echo "    ids: count(*) = count(DISTINCT id), no NULL: $(cat ids_ok.txt 2>/dev/null)"
[ "$clipped" = 1 ] && echo "    WARNING: the load ended before the job: the windows cover only its first part (raise LOAD_SECS)"
echo
printf '%-14s %-8s %10s %9s %10s %10s %9s\n' step state "duration" "txns" "p99 ms" "max ms" "lockwait"
printf '%-14s %-8s %10s %9s %10s %10s %9s\n' -------------- -------- ---------- --------- ---------- ---------- ---------
while read -r _ step st s e; do
  if [ -z "$s" ] || [ -z "$e" ]; then
    printf '%-14s %-8s %10s\n' "$step" "$st" "-"
    continue
  fi
  read -r _ _ _ _ p99 max _ n _ < <(window_stats "$s" "$e" "${job_logs[@]}")
  read -r _ lwmax _ < <(lock_waits "$s" "$e" pgbench)
  printf '%-14s %-8s %9.3fs %9s %10s %10s %9s\n' "$step" "$st" "$(fmt_secs "$s" "$e")" "$n" "$p99" "$max" "$lwmax"
done <steps.txt
echo "  (txns: pgbench transactions overlapping the step; lockwait: longest client lock wait the server"
echo "   logged during the step, ms, '-' = none over deadlock_timeout=10ms)"
echo
printf '%-44s %18s %18s\n' "" "baseline (no job)" "during the job"
printf '%-44s %18s %18s\n' "window (s)" "$(fmt_secs "$bwin_s" "$bwin_e")" "$(fmt_secs "$win_s" "$win_e")"
printf '%-44s %18s %18s\n' "transactions completed in the window" "$b_done" "$j_done"
printf '%-44s %18s %18s\n' "tps" "$b_tps" "$j_tps"
printf '%-44s %18s %18s\n' "latency average (ms)" "$b_avg" "$j_avg"
printf '%-44s %18s %18s\n' "latency p50 (ms)" "$b_p50" "$j_p50"
printf '%-44s %18s %18s\n' "latency p99 (ms)" "$b_p99" "$j_p99"
printf '%-44s %18s %18s\n' "latency max (ms) = longest possible lock wait" "$b_max" "$j_max"
printf '%-44s %18s %18s\n' "transactions slower than 100 ms" "$b_slow" "$j_slow"
printf '%-44s %18s %18s\n' "client lock waits > 10 ms logged by the server" "$lw_b_n" "$lw_j_n"
printf '%-44s %18s %18s\n' "longest logged client lock wait (ms)" "$lw_b_max" "$lw_j_max"
printf '%-44s %18s %18s\n' "failed transactions (in the window)" "$b_failed" "$j_failed"
echo
printf '%-44s %18s %18s\n' "whole pgbench run: tps" "$(summary_field base.out tps)" "$(summary_field job.out tps)"
printf '%-44s %18s %18s\n' "whole pgbench run: latency average (ms)" "$(summary_field base.out 'latency average')" "$(summary_field job.out 'latency average')"
printf '%-44s %18s %18s\n' "whole pgbench run: failed transactions" "$(summary_field base.out 'number of failed transactions')" "$(summary_field job.out 'number of failed transactions')"
printf '%-44s %18s %18s\n' "whole pgbench run: aborted clients" "$b_abort" "$j_abort"
printf '%-44s %18s %18s\n' "pgbench exit status" "$b_rc" "$j_rc"
[ "$lw_j_what" != "-" ] && echo "longest client lock wait during the job: $lw_j_what"
echo "lock waits > 10 ms of other sessions (the job's worker, autovacuum) during the job: $lw_o_n${lw_o_what:+, longest $lw_o_max ms ($lw_o_what)}" | sed 's/, longest - ms (-)//'
echo
echo "Per-statement latencies during the job run (pgbench -r, whole run):"
sed -n '/statement latencies in milliseconds/,$p' job.out | tail -n +2
grep -iE 'error|abort' base.out job.out | head -10 || true

if [ -n "${KEEP:-}" ] || [ "$STATE" != "done" ] || [ "$j_rc" != 0 ] || [ "$b_rc" != 0 ]; then
  echo "files kept in $WORK (status.txt, events.txt, wait.out, server.log, pgbench logs)"
else
  rm -rf "$WORK"
fi
[ "$STATE" = "done" ] || die "the job ended '$STATE' (see status.txt / events.txt in $WORK)"
