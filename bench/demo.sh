#!/usr/bin/env bash
# See pkonline work: on a fresh Debian 12 machine, as root, from the repository root,
#
#   bash bench/demo.sh
#
# installs what is missing (apt), builds and installs the extension, then, in a throwaway
# cluster (pg_virtualenv, pkonline preloaded), makes a 1,000,000-row table `orders` with no
# primary key, puts a pgbench write load on it (4 clients), and adds the primary key while the
# load runs: check() first, add_int_pk, wait (live progress), the status view, report(), \d
# before and after, the load's summary, and a check that every row got a distinct id. Exits non-zero if anything fails.
#
# Environment: ROWS (default 1000000), LOAD_SECS (pgbench -T, default 40).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

ROWS=${ROWS:-1000000}
LOAD_SECS=${LOAD_SECS:-40}
CLIENTS=4

section() { printf '\n\033[1m=== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------------
# Part 2 runs inside pg_virtualenv (PGHOST, PGPORT, PGUSER, PGPASSWORD set; the cluster is dropped
# when it returns).
# ------------------------------------------------------------------------------------------------
inside() {
  local work=$PKONLINE_DEMO_WORK
  local psql=(psql -X -v ON_ERROR_STOP=1)
  pgbench_pid=
  # Whatever happens, the load stops with us and the server log is kept.
  trap 'rc=$?; [ -n "${pgbench_pid:-}" ] && kill "$pgbench_pid" 2>/dev/null;
        cp "$(dirname "${PG_CLUSTER_CONF_ROOT:-/nonexistent}")"/log/*.log "$PKONLINE_DEMO_WORK"/ 2>/dev/null; exit $rc' EXIT

  section "2. A table without a primary key: orders, $ROWS rows"
  local t0=$SECONDS
  "${psql[@]}" -q <<SQL
CREATE EXTENSION pkonline;
SQL
  "${psql[@]}" -q -v rows="$ROWS" -f "$BENCH_DIR/orders_table.sql"
  "${psql[@]}" -Atc "SELECT format('%s rows, %s, made in $((SECONDS - t0)) s', count(*),
                       pg_size_pretty(pg_total_relation_size('orders'))) FROM orders"

  section "3. The application: pgbench, $CLIENTS clients, ${LOAD_SECS}s, each transaction updates an order by customer and order number and inserts a new one"
  cat >"$work/orders.sql" <<'PGB'
\set o random(1, :rows)
\set c random(1, 100000)
\set a random(100, 99999)
BEGIN;
UPDATE orders SET amount = amount + 1, status = 'paid' WHERE customer = :o % 100000 AND order_no = :o;
INSERT INTO orders (customer, amount, status) VALUES (:c, :a / 100.0, 'new');
END;
PGB
  cat "$work/orders.sql"
  (cd "$work" && exec pgbench -n -c "$CLIENTS" -j 2 -T "$LOAD_SECS" -D rows="$ROWS" \
     -f orders.sql --log --log-prefix=pgbench_log >pgbench.out 2>&1) &
  pgbench_pid=$!
  local load_start=$SECONDS
  sleep 3
  kill -0 "$pgbench_pid" 2>/dev/null || { cat "$work/pgbench.out"; die "pgbench did not start"; }
  echo "pgbench is running in the background (pid $pgbench_pid)."

  section "4. pkonline adds the primary key while the load runs"
  "${psql[@]}" <<'SQL'
\echo '--- before: \\d orders (no primary key)'
\d orders
\set ECHO queries
SELECT level, item, detail FROM pkonline.check('orders');
SELECT pkonline.add_int_pk('orders');
\set ECHO none
SELECT job FROM pkonline.status WHERE table_name = 'public.orders' ORDER BY job DESC LIMIT 1 \gset
\set ECHO queries
CALL pkonline.wait(:job, '10 min');
\x on
SELECT * FROM pkonline.status WHERE job = :job;
\x off
SELECT step, wall, longest_lock, lock_ms, writes_blocked_ms, lock_retries, rows, rows_per_sec, wal, table_size
  FROM pkonline.report(:job);
\set ECHO none
\echo '--- after: \\d orders'
\d orders
SQL
  local state
  state=$("${psql[@]}" -Atc "SELECT state FROM pkonline.status WHERE table_name = 'public.orders' ORDER BY job DESC LIMIT 1")
  [ "$state" = "done" ] || die "the job ended '$state', not 'done'"

  section "5. The load's summary"
  local left=$((LOAD_SECS + 1 - (SECONDS - load_start)))
  [ "$left" -gt 0 ] && echo "(waiting ${left}s for pgbench's ${LOAD_SECS}s run to end)"
  local pgbench_rc=0
  wait "$pgbench_pid" || pgbench_rc=$?
  pgbench_pid=
  grep -E '^(number of clients|duration|number of transactions actually processed|number of failed transactions|latency average|latency stddev|tps)' \
    "$work/pgbench.out" || true
  grep -Ei 'error|abort' "$work/pgbench.out" | head -20 || true
  # Slowest transaction, from the per-transaction logs (column 3: latency in microseconds).
  cat "$work"/pgbench_log.* | awk '$3 ~ /^[0-9]+$/ && $3 > m { m = $3 } END { printf "slowest transaction = %.1f ms\n", m / 1000 }'
  [ "$pgbench_rc" -eq 0 ] || die "pgbench exited with status $pgbench_rc (see above)"
  local failed
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/pgbench.out")
  [ "${failed:-0}" -eq 0 ] || die "$failed pgbench transactions failed"

  section "6. Every row has a distinct, non-NULL id"
  "${psql[@]}" <<'SQL'
\pset footer off
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_ids, count(*) - count(id) AS null_ids,
       min(id), max(id) FROM orders;
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'p';
SQL
  local ok
  ok=$("${psql[@]}" -Atc "SELECT count(*) = count(DISTINCT id) AND count(id) = count(*)
                              AND EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'p')
                         FROM orders")
  [ "$ok" = t ] || die "check failed: ids are not a primary key over every row"
  echo "OK: count(*) = count(DISTINCT id), no NULL id, primary key in place."
}

if [ "${PKONLINE_DEMO_STAGE:-}" = inside ]; then
  inside
  exit 0
fi

# ------------------------------------------------------------------------------------------------
# Part 1: packages, build, install.
# ------------------------------------------------------------------------------------------------
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ "$(id -u)" -eq 0 ] || die "run me as root (I install packages and the extension)"

section "1. Packages, build, install"
bash test/deps.sh || die "could not install the packages pkonline needs"

WORK=$(mktemp -d /tmp/pkonline-demo.XXXXXX)
if ! { make -j"$(nproc)" >"$WORK/build.log" 2>&1 && make install >>"$WORK/build.log" 2>&1; }; then
  tail -50 "$WORK/build.log"
  die "build failed (log: $WORK/build.log)"
fi
echo "built and installed pkonline ($(pg_config --pkglibdir)/pkonline.so)"

# -t: the throwaway cluster lives in a temporary directory (no clash with another 15/regress).
rc=0
PKONLINE_DEMO_STAGE=inside PKONLINE_DEMO_WORK=$WORK ROWS=$ROWS LOAD_SECS=$LOAD_SECS \
  pg_virtualenv -t -o shared_preload_libraries=pkonline bash "$ROOT/bench/demo.sh" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "demo FAILED (exit $rc); pgbench output, logs and server log in $WORK" >&2
  exit "$rc"
fi
rm -rf "$WORK"
echo
echo "demo finished: pkonline added a primary key to a busy $ROWS-row table."
