#!/usr/bin/env bash
# How good is pkonline.check()'s duration estimate? For each operation, on a fresh copy of the
# bench table (bench/orders_table.sql, ROWS rows, no load): check()'s estimate, then the job run
# with pkonline.wait(), its real time, and their ratio. A measurement, not a test: it prints
# figures and asserts nothing (it exits non-zero only when the script itself breaks).
#
#   bash bench/check_estimate.sh        # as root, from the repository root
#
# Environment: ROWS (1000000), OPS ("in_place copy add_column set_primary_key convert"), SKIP_BUILD=1.
set -euo pipefail
export LC_ALL=C
ROWS=${ROWS:-1000000}
OPS=${OPS:-in_place copy add_column set_primary_key convert}
die() { echo "check_estimate: $*" >&2; exit 1; }

psql_() { psql -X -v ON_ERROR_STOP=1 -q "$@"; }

one() {  # one operation: fresh table, estimate, run, time
  local op=$1 check call
  psql_ -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS orders CASCADE" \
    -c "DROP SEQUENCE IF EXISTS orders_order_no_seq"
  psql_ -v rows="$ROWS" -f "$BENCH/orders_table.sql" >/dev/null
  case $op in
    in_place) check="'orders'"; call="pkonline.add_int_pk('orders')" ;;
    copy) check="'orders', 'add_int_pk', '{\"method\": \"copy\"}'"; call="pkonline.add_int_pk('orders', method => 'copy')" ;;
    add_column)
      check="'orders', 'add_column', '{\"column_name\": \"ref\", \"column_type\": \"uuid\", \"fill\": \"gen_random_uuid()\"}'"
      call="pkonline.add_column('orders', 'ref', 'uuid', 'gen_random_uuid()')" ;;
    set_primary_key) check="'orders', 'set_primary_key', '{\"columns\": [\"order_no\"]}'"
      call="pkonline.set_primary_key('orders', '{order_no}')" ;;
    convert)
      psql_ -c "ALTER TABLE orders ALTER order_no TYPE integer, ADD PRIMARY KEY (order_no)" \
        -c "VACUUM ANALYZE orders" -c CHECKPOINT
      check="'orders', 'convert_pk_to_bigint'"; call="pkonline.convert_pk_to_bigint('orders')" ;;
  esac
  local est
  est=$(psql -XAtc "SELECT detail FROM pkonline.check($check) WHERE item = 'duration'")
  local t0 t1 job
  t0=$(date +%s.%N)
  job=$(psql -XAtq -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "SELECT $call")
  psql_ -c "SET client_min_messages = warning" -c "CALL pkonline.wait($job)" >/dev/null
  t1=$(date +%s.%N)
  local secs est_secs
  secs=$(echo "$t1 - $t0" | bc)
  est_secs=$(echo "$est" | sed -E 's/^about ([0-9]+):([0-9]+):([0-9]+).*/\1 \2 \3/' | awk '{ print $1 * 3600 + $2 * 60 + $3 }')
  printf '%-16s %10s %10.1f %8.2f   %s\n' "$op" "$est_secs" "$secs" "$(echo "$secs / $est_secs" | bc -l)" "$est"
}

if [ "${PKONLINE_CHECK_STAGE:-}" = inside ]; then
  psql_ -c "CREATE EXTENSION pkonline"
  printf '%-16s %10s %10s %8s   %s\n' operation "est(s)" "real(s)" real/est "check()'s duration"
  for op in $OPS; do one "$op"; done
  exit 0
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v pg_virtualenv >/dev/null && command -v bc >/dev/null ||
  die "needs postgresql-15, postgresql-common and bc: run bash bench/demo.sh once (it installs them), apt-get install bc"
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$ROOT" && make -s -j"$(nproc)" >/dev/null && make -s install >/dev/null) || die "make && make install failed"
fi
echo "check_estimate: $ROWS rows, operations: $OPS"
export ROWS OPS BENCH="$ROOT/bench"
PKONLINE_CHECK_STAGE=inside pg_virtualenv -t -o shared_preload_libraries=pkonline -o max_worker_processes=16 \
  bash "$0" || die "failed"
