#!/usr/bin/env bash
# Does CALL pkonline.wait() hold up the job it watches? A concurrent index build waits for every
# snapshot older than its own; 0.1-0.4's PL/pgSQL wait() held one nearly all the time (its loop's
# pg_sleep ran in a statement), and the DBA trial measured create_index 755 ms with it beside the
# job, 65 ms without. Prints the median time of CREATE INDEX CONCURRENTLY on a table of ROWS rows:
# alone, beside a session in 0.4's polling loop (COMMIT; pg_sleep(0.2)), and beside CALL
# pkonline.wait() on a job (that job waits for its run window, holding no snapshot itself). A
# measurement, not a test: it asserts nothing.
#
#   bash bench/wait_snapshot.sh        # as root, from the repository root
#
# Environment: ROWS (200000), RUNS (7).
set -euo pipefail
export LC_ALL=C
ROWS=${ROWS:-200000}
RUNS=${RUNS:-7}
die() { echo "wait_snapshot: $*" >&2; exit 1; }

if [ "${PKONLINE_WAIT_STAGE:-}" = inside ]; then
  export PGOPTIONS="-c client_min_messages=warning"
  psql -X -v ON_ERROR_STOP=1 -q -c "CREATE EXTENSION pkonline" \
    -c "CREATE TABLE t AS SELECT g AS a, md5(g::text) AS b FROM generate_series(1, $ROWS) g" \
    -c "CREATE TABLE watched AS SELECT g AS a FROM generate_series(1, 1000) g" -c "VACUUM ANALYZE t"
  # a job that waits for its run window, twelve hours away: its worker looks every second
  job=$(psql -X -qAt -c "SET pkonline.run_window = '$(date -d '+12 hours' +%H:00)-$(date -d '+13 hours' +%H:00)'" \
    -c "SELECT pkonline.add_int_pk('watched')" | tail -1)
  psql -X -q -c "CREATE PROCEDURE old_wait() LANGUAGE plpgsql AS \$\$
    BEGIN LOOP PERFORM state FROM pkonline.status WHERE job = $job; COMMIT; PERFORM pg_sleep(0.2); END LOOP; END \$\$"
  median_build() {
    for i in $(seq 1 "$RUNS"); do
      psql -X -v ON_ERROR_STOP=1 -qAt -c "DROP INDEX IF EXISTS t_b" \
        -c "SELECT extract(epoch FROM clock_timestamp()) * 1000" -c "CREATE INDEX CONCURRENTLY t_b ON t (b)" \
        -c "SELECT extract(epoch FROM clock_timestamp()) * 1000" | tail -2 | tr '\n' ' ' | awk '{printf "%.1f\n", $2 - $1}'
    done | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
  }
  beside() {  # beside "what" "SQL the other session runs"
    psql -X -q -c "$2" >/dev/null 2>&1 &
    local pid=$!
    sleep 1
    printf '%-58s %9s ms\n' "$1" "$(median_build)"
    kill "$pid" 2>/dev/null || true
    psql -X -qAt -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL %wait%' AND pid <> pg_backend_pid()" >/dev/null
    wait "$pid" 2>/dev/null || true
  }
  printf '%-58s %12s\n' "CREATE INDEX CONCURRENTLY on $ROWS rows" "median of $RUNS"
  printf '%-58s %9s ms\n' "alone" "$(median_build)"
  beside "beside 0.4's wait() loop (COMMIT; pg_sleep(0.2))" "CALL old_wait()"
  beside "beside CALL pkonline.wait(job)" "CALL pkonline.wait($job)"
  exit 0
fi

command -v pg_virtualenv >/dev/null || die "needs postgresql-15 and postgresql-common: run bash bench/demo.sh once"
export ROWS RUNS
PKONLINE_WAIT_STAGE=inside pg_virtualenv -o shared_preload_libraries=pkonline -t bash "$0" || die "failed"
