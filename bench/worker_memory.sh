#!/usr/bin/env bash
# Does a job's worker keep its memory flat across batches? A measurement: it prints figures.
#
#   bash bench/worker_memory.sh [ROWS...]     # as root, from the repository root; default 1000000 5000000
#
# For each size, in a throwaway cluster: a PK-less table of ROWS rows, add_int_pk with its
# default settings, and while the backfill runs, samples of the worker process: RssAnon (its
# private memory, from /proc; shared buffers excluded) and the grand total of its memory
# contexts (pg_log_backend_memory_contexts, read back from the server log).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

inside() {
  local rows=$1 log
  log=$(psql -XAtc "SELECT current_setting('data_directory') || '/' || current_setting('log_directory')")
  psql -Xq -c "ALTER SYSTEM SET logging_collector = off" >/dev/null
  psql -Xq -c "CREATE EXTENSION pkonline" \
       -c "CREATE TABLE mem (a int, b text)" \
       -c "INSERT INTO mem SELECT g, md5(g::text) FROM generate_series(1, $rows) g" \
       -c "VACUUM ANALYZE mem"
  psql -Xq -c "SET client_min_messages = warning" -c "SELECT pkonline.add_int_pk('mem')" >/dev/null
  local pid="" pct
  printf '%8s %10s %12s %16s\n' "rows" "backfill%" "RssAnon kB" "contexts bytes"
  while :; do
    read -r state step pct pid < <(psql -XAt -F' ' -c "SELECT s.state, s.step, s.backfill_pct, j.worker_pid FROM pkonline.status s JOIN pkonline.jobs j ON j.id = s.job")
    [ "$state" = done ] || [ "$state" = failed ] && break
    if [ "$step" = backfill ] && [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      rss=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")
      psql -XAtq -c "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null
      sleep 0.3
      total=$(grep -h "Grand total" "$PKONLINE_MEM_LOG" 2>/dev/null | tail -1 | sed -E 's/.*Grand total: ([0-9]+) bytes.*/\1/')
      printf '%8s %10s %12s %16s\n' "$rows" "$pct" "$rss" "${total:-?}"
    fi
    sleep 1
  done
  psql -XAtc "SELECT 'job ' || state || ' in ' || elapsed FROM pkonline.status"
}

if [ "${PKONLINE_MEM_STAGE:-}" = inside ]; then
  inside "$1"
  exit 0
fi

ROOT=$(cd "$BENCH_DIR/.." && pwd)
(cd "$ROOT" && make -s -j2 >/dev/null && make -s install >/dev/null)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 5000000)
for rows in "${sizes[@]}"; do
  work=$(mktemp -d /tmp/pkonline-mem.XXXXXX)
  chmod 777 "$work"
  echo "== $rows rows"
  PKONLINE_MEM_STAGE=inside PKONLINE_MEM_LOG="$work/server.log" \
    pg_virtualenv -t -o shared_preload_libraries=pkonline -o "log_min_messages=log" \
    bash -c "ln -sf \$(dirname \"\$PG_CLUSTER_CONF_ROOT\")/log/postgresql-15-regress.log '$work/server.log' 2>/dev/null; \
             ls \$(dirname \"\$PG_CLUSTER_CONF_ROOT\")/log >&2; bash '$BENCH_DIR/worker_memory.sh' $rows"
  rm -rf "$work"
done
