#!/usr/bin/env bash
# Side by side: an integer primary key and the integer column referencing it made bigint, two
# ways, same fresh tables, same load. A measurement, not a test: it prints figures and asserts
# nothing about speed (it exits non-zero only when a method loses rows or leaves a column integer).
#
#   bash bench/bigint.sh            # as root, from the repository root
#
# In a throwaway cluster (pg_virtualenv, pkonline preloaded), for each method: `accounts` (ROWS
# rows, id integer primary key from a serial) and `entries` (ROWS rows, account_id integer NOT NULL
# REFERENCES accounts, indexed) are created afresh, vacuumed and checkpointed; a pgbench load runs
# at a fixed RATE (each transaction: UPDATE one account by its key, INSERT one entry for it, SELECT
# the account's last entries), every transaction logged; LEAD seconds in, the method runs; the load
# goes on TAIL seconds after it. Methods:
#   naive     BEGIN; ALTER TABLE entries ALTER account_id TYPE bigint;
#             ALTER TABLE accounts ALTER id TYPE bigint; ALTER SEQUENCE accounts_id_seq AS bigint; COMMIT
#   pkonline  SELECT pkonline.convert_pk_to_bigint('accounts'); CALL pkonline.wait(job)
#   copy      the same with method => 'copy' (0.6: each table written once into a twin, swapped in)
# SCENARIO=key: `entries` has no foreign key to `accounts`; only accounts.id is converted (naive:
# ALTER TABLE accounts ALTER id TYPE bigint and its sequence, one transaction).
# Columns: wall; clients' worst latency and p99 over the transactions that overlap the method, p99
# before it; failed transactions and aborted clients; lost rows; size after (both tables, with
# indexes); WAL written while the method ran (the load's own included, at the same rate for both).
#
# Environment: ROWS (2000000), RATE (200), CLIENTS (4), LEAD (5), TAIL (3), METHODS ("naive pkonline"),
# SCENARIO (both | key), PKONLINE_SETTINGS (e.g. "batch_time=100ms"), SKIP_BUILD=1, KEEP=1.
# With naive and copy (or pkonline) both run, the ratios are printed against issue 23's targets.
set -euo pipefail
export LC_ALL=C
ROWS=${ROWS:-2000000}
RATE=${RATE:-200}
CLIENTS=${CLIENTS:-4}
LEAD=${LEAD:-5}
TAIL=${TAIL:-3}
METHODS=${METHODS:-naive pkonline}
SCENARIO=${SCENARIO:-both}
case $SCENARIO in both | key) ;; *) echo "bigint: SCENARIO must be both or key" >&2; exit 1 ;; esac
PKONLINE_SETTINGS=${PKONLINE_SETTINGS:-}
die() { echo "bigint: $*" >&2; exit 1; }

psql_() { psql -X -v ON_ERROR_STOP=1 -q "$@"; }
now() { date +%s.%N; }

load() {  # rounds of 5 s until $WORK/$1.stop exists
  local m=$1 round=0
  while [ ! -e "$WORK/$m.stop" ] && kill -0 "$$" 2>/dev/null; do
    round=$((round + 1))
    pgbench -n -c "$CLIENTS" -j 2 -T 5 -R "$RATE" -D rows="$ROWS" -f "$WORK/load.sql" \
      --log --log-prefix="$WORK/$m.r$round" >"$WORK/$m.r$round.out" 2>&1 || true
  done
}

tables() {
  local fk="REFERENCES accounts"
  [ "$SCENARIO" = key ] && fk=""
  psql_ -v rows="$ROWS" -v fk="$fk" <<'SQL'
DROP TABLE IF EXISTS entries, accounts CASCADE;
CREATE TABLE accounts (id serial PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL DEFAULT 0);
INSERT INTO accounts (owner) SELECT 'owner ' || g FROM generate_series(1, :rows) g;
CREATE TABLE entries (entry_no bigserial PRIMARY KEY, account_id int NOT NULL :fk,
                      amount numeric(12,2) NOT NULL, at timestamptz NOT NULL DEFAULT now());
INSERT INTO entries (account_id, amount) SELECT 1 + g % :rows, g % 1000 FROM generate_series(1, :rows) g;
CREATE INDEX entries_account ON entries (account_id);
VACUUM ANALYZE accounts;
VACUUM ANALYZE entries;
CHECKPOINT;
SQL
}

run_method() {
  local m=$1
  echo "== $m: fresh tables ($ROWS + $ROWS rows), load at $RATE tps"
  tables
  local before
  before=$(psql -XAtc "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM entries)")
  rm -f "$WORK/$m.stop"
  load "$m" &
  local loader=$!
  sleep "$LEAD"
  local lsn0 t0 t1 lsn1
  lsn0=$(psql -XAtc "SELECT pg_current_wal_lsn()")
  t0=$(now)
  case $m in
    naive)
      local entries=(-c "ALTER TABLE entries ALTER account_id TYPE bigint")
      [ "$SCENARIO" = key ] && entries=()
      psql_ -c "BEGIN" "${entries[@]}" \
            -c "ALTER TABLE accounts ALTER id TYPE bigint" -c "ALTER SEQUENCE accounts_id_seq AS bigint" -c "COMMIT" ;;
    pkonline | copy)
      local method=in_place
      [ "$m" = copy ] && method=copy
      local sets=() s job
      for s in $PKONLINE_SETTINGS; do sets+=(-c "SET pkonline.${s%%=*} = '${s#*=}'"); done
      job=$(psql -XAtq -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" "${sets[@]}" \
              -c "SELECT pkonline.convert_pk_to_bigint('accounts', method => '$method')")
      psql_ -c "SET client_min_messages = warning" -c "CALL pkonline.wait($job)" >/dev/null
      psql -XAt -F ' ' -c "SELECT step, round(extract(epoch FROM finished_at - started_at)::numeric, 2)
                           FROM pkonline.job_steps WHERE job_id = $job ORDER BY step_no" | tr '\n' ' ' >"$WORK/$m.steps"
      psql -XAt -F ' ' -c "SELECT step, writes_blocked_ms FROM pkonline.report($job) WHERE writes_blocked_ms > 0
                           AND step_no IS NOT NULL ORDER BY step_no" | tr '\n' ' ' >"$WORK/$m.blocked" ;;
  esac
  t1=$(now)
  lsn1=$(psql -XAtc "SELECT pg_current_wal_lsn()")
  sleep "$TAIL"
  touch "$WORK/$m.stop"
  wait "$loader"
  psql -XAt -F ' ' >"$WORK/$m.result" <<SQL
SELECT '$t0', '$t1', $before, pg_total_relation_size('accounts') + pg_total_relation_size('entries'),
       pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint,
       (SELECT count(*) FROM accounts) + (SELECT count(*) FROM entries),
       (SELECT string_agg(format_type(atttypid, NULL), ',' ORDER BY attrelid) FROM pg_attribute
         WHERE (attrelid, attname) IN (('accounts'::regclass, 'id'), ('entries'::regclass, 'account_id')));
SQL
  echo "   done in $(echo "$t1 - $t0" | bc) s"
}

inside() {
  psql_ -c "CREATE EXTENSION pkonline"
  cat >"$WORK/load.sql" <<'PGB'
\set a random(1, :rows)
\set x random(1, 99999)
BEGIN;
UPDATE accounts SET balance = balance + :x / 100.0 WHERE id = :a;
INSERT INTO entries (account_id, amount) VALUES (:a, :x / 100.0);
SELECT count(*), sum(amount) FROM (SELECT amount FROM entries WHERE account_id = :a ORDER BY entry_no DESC LIMIT 5) e;
END;
PGB
  local m
  for m in $METHODS; do run_method "$m"; done
  cp "$(psql -XAtc "SELECT current_setting('data_directory') || '/' || pg_current_logfile()" 2>/dev/null)" \
    "$WORK/server.log" 2>/dev/null || true
}

if [ "${PKONLINE_BIGINT_STAGE:-}" = inside ]; then
  inside
  exit 0
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v pg_virtualenv >/dev/null && command -v pgbench >/dev/null && command -v bc >/dev/null ||
  die "needs postgresql-15, postgresql-common and bc: run bash bench/demo.sh once (it installs them), apt-get install bc"
if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$ROOT" && make -s -j"$(nproc)" >/dev/null && make -s install >/dev/null) || die "make && make install failed"
fi
WORK=$(mktemp -d /tmp/pkonline-bigint.XXXXXX)
chmod 777 "$WORK"
echo "bigint ($SCENARIO): $ROWS + $ROWS rows, load $RATE tps from $CLIENTS clients, methods: $METHODS; files in $WORK"
export WORK ROWS RATE CLIENTS LEAD TAIL METHODS PKONLINE_SETTINGS SCENARIO
start=$(date +%s)
PKONLINE_BIGINT_STAGE=inside pg_virtualenv -t -o shared_preload_libraries=pkonline -o max_worker_processes=16 \
  -o log_lock_waits=on -o deadlock_timeout=100ms -o "log_line_prefix=%m [%p] %a: " \
  bash "$0" || die "collection failed; files in $WORK"

window() {  # "count p99_ms max_ms" of the transactions of method $1 overlapping [$2, $3]
  cat "$WORK/$1".r*.[0-9]* 2>/dev/null | awk -v a="$2" -v b="$3" '
    { end = $5 + $6 / 1e6; lat = $3 / 1e3; start = end - lat / 1e3;
      if (end >= a && start <= b) print lat }' | sort -n | awk '
    { v[NR] = $1 } END { if (NR == 0) { print "0 - -"; exit }
      i = int(NR * 0.99); if (i < 1) i = 1; printf "%d %.1f %.1f\n", NR, v[i], v[NR] }'
}

bad=0
want=bigint,bigint
[ "$SCENARIO" = key ] && want=bigint,integer
declare -A WALL WORST P99 P99B SIZE WALB
printf '\n%-9s %8s %10s %9s %10s %7s %6s %10s %8s %s\n' method wall "worst(ms)" "p99(ms)" "p99 before" errors lost "size(MB)" "WAL(MB)" types
for m in $METHODS; do
  read -r t0 t1 before size wal count types <"$WORK/$m.result"
  first=$(cat "$WORK/$m".r1.[0-9]* | awk 'NR == 1 || $5 < m { m = $5 } END { print m }')
  read -r _ p99b _ < <(window "$m" "$first" "$t0")
  read -r _ p99 worst < <(window "$m" "$t0" "$t1")
  committed=$(cat "$WORK/$m".r*.out | awk '/^number of transactions actually processed/ { s += $6 } END { print s + 0 }')
  failed=$(cat "$WORK/$m".r*.out | awk '/^number of failed transactions/ { s += $5 } END { print s + 0 }')
  aborted=$(cat "$WORK/$m".r*.out | grep -c 'aborted' || true)
  lost=$((before + committed - count))  # each committed transaction inserted one entry
  [ "$lost" = 0 ] || bad=1
  [ "$types" = "$want" ] || bad=1
  WALL[$m]=$(echo "$t1 - $t0" | bc); WORST[$m]=$worst; P99[$m]=$p99; P99B[$m]=$p99b
  SIZE[$m]=$size; WALB[$m]=$wal
  printf '%-9s %7.1fs %10s %9s %10s %7s %6s %10s %8s %s\n' "$m" "$(echo "$t1 - $t0" | bc)" "$worst" "$p99" "$p99b" \
    "$((failed + aborted))" "$lost" "$((size / 1048576))" "$((wal / 1048576))" "$types"
done
for m in pkonline copy; do
  [ -s "$WORK/$m.steps" ] && echo "$m steps (s): $(cat "$WORK/$m.steps")"
  [ -s "$WORK/$m.blocked" ] && echo "$m writes blocked (ms) by step: $(cat "$WORK/$m.blocked")"
done
verdict() { if [ "$(echo "$1" | bc)" = 1 ]; then echo met; else echo "NOT met"; fi; }
# Issue 23's targets for the copy method against the rewrite (ALTER … TYPE bigint, one transaction).
for m in copy pkonline; do
  [ -n "${WALL[$m]:-}" ] && [ -n "${WALL[naive]:-}" ] || continue
  echo
  printf '%-37s %s\n' "$m vs naive" "figure      target  verdict"
  printf 'clients worst wait during the job   %8s ms   <= 50 ms  %s\n' "${WORST[$m]}" "$(verdict "${WORST[$m]} <= 50")"
  r=$(echo "scale=2; ${P99[$m]} / ${P99B[$m]}" | bc)
  printf 'clients p99 during / before         %8sx     <= 1.5x  %s\n' "$r" "$(verdict "$r <= 1.5")"
  for row in "wall time:WALL:1.3" "size after:SIZE:1.05" "WAL:WALB:1.2"; do
    IFS=: read -r label arr t <<<"$row"
    declare -n a=$arr
    r=$(echo "scale=2; ${a[$m]} / ${a[naive]}" | bc)
    if [ "$m" = copy ]; then
      printf '%-35s %8sx     <= %sx  %s\n' "$label" "$r" "$t" "$(verdict "$r <= $t")"
    else
      printf '%-35s %8sx     (in place: no target against the rewrite)\n' "$label" "$r"
    fi
    unset -n a
  done
done
echo "bigint: $(( $(date +%s) - start )) s in all"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
exit "$bad"
