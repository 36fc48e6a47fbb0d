#!/usr/bin/env bash
# How far can a DBA plan by pkonline.estimate()? For tables of each size in SIZES (rows of the
# bench table, bench/orders_table.sql) with 0, 1 and 3 indexes, and each operation and method in
# OPS: estimate() first, then the job under a light load (pgbench, RATE transactions/s from
# CLIENTS clients, each updating one row), and what it did: the growth of its tables and the WAL
# its worker wrote (what report() records), the peak of the database's size (sampled every 0.1 s),
# and its wall time. Prints one line per job with actual / estimate, then how many fell inside
# the targets: growth and WAL within 0.7x-1.3x, the time inside [seconds_low, seconds_high].
# A measurement, not a test: it asserts nothing.
#
#   bash bench/estimate.sh        # as root, from the repository root
#
# Environment: SIZES ("100000 500000 2000000"), OPS ("in_place copy add_column set_primary_key
# convert"), RATE (200; 0: no load), CLIENTS (4).
set -euo pipefail
export LC_ALL=C
SIZES=${SIZES:-100000 500000 2000000}
OPS=${OPS:-in_place copy add_column set_primary_key convert}
RATE=${RATE:-200}
CLIENTS=${CLIENTS:-4}
die() { echo "estimate: $*" >&2; exit 1; }

if [ "${PKONLINE_ESTIMATE_STAGE:-}" = inside ]; then
  psql_() { psql -X -v ON_ERROR_STOP=1 -q "$@"; }
  export PGOPTIONS="-c client_min_messages=warning"
  psql_ -c "CREATE EXTENSION pkonline"
  cat >"$WORK/load.sql" <<'SQL'
\set k random(1, :rows)
UPDATE orders SET amount = amount + 1 WHERE customer = :k % 100000 AND ctid = (SELECT ctid FROM orders WHERE customer = :k % 100000 LIMIT 1);
SQL
  printf '%-15s %8s %3s | %8s %8s %5s | %8s %8s %5s | %8s %8s %5s | %6s %6s %6s %s\n' op rows idx \
    "grow MB" "est" "a/e" "WAL MB" "est" "a/e" "peak MB" "est" "a/e" "secs" "low" "high" "in"
  : >"$WORK/results"
  for rows in $SIZES; do for idx in 0 1 3; do for op in $OPS; do
    psql_ -c "DROP TABLE IF EXISTS orders CASCADE" -c "DROP SEQUENCE IF EXISTS orders_order_no_seq"
    psql_ -v rows="$rows" -f "$BENCH/orders_table.sql" >/dev/null
    [ "$idx" = 0 ] && psql_ -c "DROP INDEX orders_customer"
    [ "$idx" = 3 ] && psql_ -c "CREATE INDEX ON orders (status)" -c "CREATE INDEX ON orders (created_at)"
    [ "$op" = convert ] && psql_ -c "ALTER TABLE orders ALTER order_no TYPE integer, ADD PRIMARY KEY (order_no)"
    psql_ -c "VACUUM ANALYZE orders" -c CHECKPOINT
    case $op in
      in_place) est="'add_int_pk'"; call="pkonline.add_int_pk('orders')" ;;
      copy) est="'add_int_pk', '{\"method\": \"copy\"}'"; call="pkonline.add_int_pk('orders', method => 'copy')" ;;
      add_column) est="'add_column', '{\"column_name\": \"ref\", \"column_type\": \"uuid\", \"fill\": \"gen_random_uuid()\"}'"
        call="pkonline.add_column('orders', 'ref', 'uuid', 'gen_random_uuid()')" ;;
      set_primary_key) est="'set_primary_key', '{\"columns\": [\"order_no\"]}'"; call="pkonline.set_primary_key('orders', '{order_no}')" ;;
      convert) est="'convert_pk_to_bigint'"; call="pkonline.convert_pk_to_bigint('orders')" ;;
    esac
    read -r e_peak e_after e_wal e_low e_high < <(psql -XAt -F ' ' -c \
      "SELECT disk_peak_bytes, disk_after_bytes, wal_bytes, seconds_low, seconds_high FROM pkonline.estimate('orders', $est)")
    before=$(psql -XAtc "SELECT pg_database_size(current_database())")
    loadpid=
    if [ "$RATE" -gt 0 ]; then
      pgbench -n -c "$CLIENTS" -j 2 -T 100000 -R "$RATE" -D rows="$rows" -f "$WORK/load.sql" >/dev/null 2>&1 &
      loadpid=$!
    fi
    (while true; do psql -XAtc "SELECT pg_database_size(current_database())"; sleep 0.1; done) >"$WORK/peak" 2>/dev/null &
    peakpid=$!
    job=$(psql -XAtq -v ON_ERROR_STOP=1 -c "SELECT $call")
    psql_ -c "CALL pkonline.wait($job)" >/dev/null
    kill "$peakpid" 2>/dev/null; wait "$peakpid" 2>/dev/null || true
    [ -n "$loadpid" ] && { kill "$loadpid" 2>/dev/null; wait "$loadpid" 2>/dev/null || true; }
    peak=$(sort -n "$WORK/peak" | tail -1)
    read -r grow wal secs < <(psql -XAt -F ' ' -c "SELECT j.size_after - j.size_before,
        (SELECT sum(s.wal_bytes) FROM pkonline.job_steps s WHERE s.job_id = j.id),
        round(extract(epoch FROM j.finished_at - j.started_at)::numeric, 1) FROM pkonline.jobs j WHERE j.id = $job")
    # the database's peak above where it began, and the estimate's peak without the WAL it counts
    e_data=$(psql -XAtc "SELECT $e_peak - LEAST($e_wal, (SELECT setting::bigint * 1048576 FROM pg_settings WHERE name = 'max_wal_size'))")
    awk -v op="$op" -v rows="$rows" -v idx="$idx" -v g="$grow" -v eg="$e_after" -v w="$wal" -v ew="$e_wal" \
        -v p="$((peak - before))" -v ep="$e_data" -v s="$secs" -v lo="$e_low" -v hi="$e_high" 'BEGIN {
      mb = 1048576
      rg = eg > 0 ? g / eg : 0; rw = ew > 0 ? w / ew : 0; rp = ep > 0 ? p / ep : 0
      inside = (s >= lo && s <= hi) ? "yes" : "no"
      printf "%-15s %8d %3d | %8.1f %8.1f %5.2f | %8.1f %8.1f %5.2f | %8.1f %8.1f %5.2f | %6.2f %6.2f %6.2f %s\n",
        op, rows, idx, g / mb, eg / mb, rg, w / mb, ew / mb, rw, p / mb, ep / mb, rp, s, lo, hi, inside
    }' | tee -a "$WORK/results"
  done; done; done
  awk -F'|' '{ split($2, g, " "); split($3, w, " "); split($5, d, " ");
      n++; if (g[3] >= 0.7 && g[3] <= 1.3) ng++; if (w[3] >= 0.7 && w[3] <= 1.3) nw++; if (d[4] == "yes") nd++;
      if (d[2] > 0 && d[3] / d[2] > worst) worst = d[3] / d[2] }
    END { printf "\n%d jobs: growth within 0.7x-1.3x in %d, WAL in %d, time inside [low, high] in %d; high/low at most %.2f\n",
      n, ng, nw, nd, worst }' "$WORK/results"
  exit 0
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v pg_virtualenv >/dev/null && command -v pgbench >/dev/null || die "needs postgresql-15 and postgresql-common: run bash bench/demo.sh once"
WORK=$(mktemp -d /tmp/pkonline-estimate.XXXXXX)
chmod 755 "$WORK"
export SIZES OPS RATE CLIENTS WORK BENCH="$ROOT/bench"
PKONLINE_ESTIMATE_STAGE=inside pg_virtualenv -o shared_preload_libraries=pkonline -o max_wal_size=1GB -t bash "$0" || die "failed"
