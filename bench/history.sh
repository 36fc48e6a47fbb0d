#!/usr/bin/env bash
# What a job's start costs against the size of the job history (security review S3-5: every start
# looked at every job ever made, 6.9-8.8 s with 100,000 finished jobs). Prints, for an empty
# history and for HISTORY finished jobs of another role, the time of add_int_pk(..., start =>
# true) on a small table (median of RUNS calls, each rolled back: the job row, its plan and its
# worker's slot are taken, nothing starts), and the time of pkonline.forget(interval) trimming the
# history. A measurement, not a test: it asserts nothing.
#
#   bash bench/history.sh        # as root, from the repository root
#
# Environment: HISTORY (100000), RUNS (21).
set -euo pipefail
export LC_ALL=C
HISTORY=${HISTORY:-100000}
RUNS=${RUNS:-21}
die() { echo "history: $*" >&2; exit 1; }

if [ "${PKONLINE_HISTORY_STAGE:-}" = inside ]; then
  export PGOPTIONS="-c client_min_messages=warning"
  psql -X -v ON_ERROR_STOP=1 -q -c "CREATE EXTENSION pkonline" -c "CREATE ROLE other" \
    -c "CREATE TABLE small (a int)" -c "INSERT INTO small SELECT generate_series(1, 1000)"
  # One start, rolled back, timed by the server; the median of RUNS.
  median_start() {
    for _ in $(seq 1 "$RUNS"); do
      psql -X -v ON_ERROR_STOP=1 -qAt -c "BEGIN" -c "CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t" \
        -c "SELECT pkonline.add_int_pk('small') IS NOT NULL" \
        -c "SELECT round(extract(epoch FROM clock_timestamp() - t) * 1000, 2) FROM t0" -c "ROLLBACK" | tail -1
    done | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
  }
  printf '%-52s %12s\n' "job history" "job start (median of $RUNS)"
  printf '%-52s %9s ms\n' "0 jobs" "$(median_start)"
  # Finished jobs of another role, as a DBA's years of use leave them (inserted directly).
  psql -X -v ON_ERROR_STOP=1 -q -c "INSERT INTO pkonline.jobs (relid, table_name, operation, owner, run_as, state,
      options, created_at, finished_at)
    SELECT 'small'::regclass, 'public.small', 'add_int_pk', 'other'::regrole, 'other'::regrole,
      CASE WHEN g % 3 = 0 THEN 'cancelled' ELSE 'done' END, '{}', now() - interval '90 days', now() - interval '90 days'
    FROM generate_series(1, $HISTORY) g" -c "ANALYZE pkonline.jobs"
  printf '%-52s %9s ms\n' "$HISTORY finished jobs of another role" "$(median_start)"
  ms=$(psql -X -v ON_ERROR_STOP=1 -qAt -c "CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t" \
    -c "SELECT pkonline.forget(interval '30 days')" \
    -c "SELECT round(extract(epoch FROM clock_timestamp() - t) * 1000, 1) FROM t0" 2>/dev/null | tail -2 | tr "\n" " ") || ms="(no pkonline.forget in this version)"
  printf '%-52s %s\n' "pkonline.forget(interval '30 days') (rows, ms)" "$ms"
  exit 0
fi

command -v pg_virtualenv >/dev/null || die "needs postgresql-15 and postgresql-common: run bash bench/demo.sh once"
export HISTORY RUNS
PKONLINE_HISTORY_STAGE=inside pg_virtualenv -o shared_preload_libraries=pkonline -t bash "$0" || die "failed"
