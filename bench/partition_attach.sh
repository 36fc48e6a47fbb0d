#!/usr/bin/env bash
# Groundwork for primary keys on partitioned tables (issue 15), measured: PostgreSQL 15 refuses
# ADD CONSTRAINT ... USING INDEX on a partitioned table and CREATE INDEX CONCURRENTLY on one, so
# the key is built leaf by leaf — each leaf's unique index CONCURRENTLY, NOT NULL from a validated
# CHECK, the leaf's PRIMARY KEY USING INDEX — and then ALTER TABLE parent ADD PRIMARY KEY, which
# finds every leaf's key and attaches it instead of building. This prints, for a ROWS-row table in
# range partitions plus a default one, each brief step's time and the locks the parent's step takes:
# none of them scans or builds under ACCESS EXCLUSIVE. A measurement, not a test: it asserts
# nothing (it exits non-zero only when the script itself breaks, or an index was built anew).
#
#   bash bench/partition_attach.sh        # as root, from the repository root
#
# Environment: ROWS (3000000), PARTS (4).
set -euo pipefail
export LC_ALL=C
ROWS=${ROWS:-3000000}
PARTS=${PARTS:-4}
die() { echo "partition_attach: $*" >&2; exit 1; }

psql_() { psql -X -v ON_ERROR_STOP=1 -q "$@"; }
# Runs one statement, prints its time in ms (measured by the server: clock_timestamp around it).
timed() {
  local label=$1 sql=$2
  local ms
  ms=$(psql -X -v ON_ERROR_STOP=1 -qAt -c "CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t" -c "$sql" \
    -c "SELECT round(extract(epoch FROM clock_timestamp() - t) * 1000, 1) FROM t0" | tail -1)
  printf '%-44s %10s ms\n' "$label" "$ms"
}

if [ "${PKONLINE_PART_STAGE:-}" = inside ]; then
  export PGOPTIONS="-c client_min_messages=warning"
  psql_ -c "CREATE TABLE ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts)"
  for p in $(seq 1 "$PARTS"); do
    psql_ -c "CREATE TABLE ev_$p PARTITION OF ev FOR VALUES FROM ('2026-01-01'::timestamptz + interval '$((p - 1)) days')
              TO ('2026-01-01'::timestamptz + interval '$p days')"
  done
  psql_ -c "CREATE TABLE ev_default PARTITION OF ev DEFAULT"
  psql_ -c "INSERT INTO ev SELECT '2026-01-01'::timestamptz + (g % ($PARTS * 86400 + 3600)) * interval '1 second', g
            FROM generate_series(1, $ROWS) g"
  # (the online steps before these — ADD COLUMN, a trigger, the batched backfill — as for a table)
  psql_ -c "ALTER TABLE ev ADD COLUMN id bigint" -c "CREATE SEQUENCE ev_id_seq" -c "UPDATE ev SET id = nextval('ev_id_seq')" \
    -c "VACUUM ANALYZE ev" -c "CHECKPOINT"
  leaves=$(psql -XAtc "SELECT string_agg(relid::regclass::text, ' ' ORDER BY relid::regclass::text)
                       FROM pg_partition_tree('ev') WHERE isleaf")
  echo "partition_attach: $ROWS rows in $(echo "$leaves" | wc -w) leaves of ev ($(psql -XAtc "SELECT pg_size_pretty(sum(pg_relation_size(relid))) FROM pg_partition_tree('ev')"))"
  printf '\n%-44s %13s\n' "step (the slow ones take no strong lock)" "time"
  for l in $leaves; do
    timed "$l: CHECK (id IS NOT NULL) NOT VALID" "ALTER TABLE $l ADD CONSTRAINT ${l}_id_nn CHECK (id IS NOT NULL) NOT VALID"
    timed "$l: VALIDATE (SHARE UPDATE EXCLUSIVE)" "ALTER TABLE $l VALIDATE CONSTRAINT ${l}_id_nn"
    timed "$l: CREATE UNIQUE INDEX CONCURRENTLY" "CREATE UNIQUE INDEX CONCURRENTLY ${l}_key ON $l (id, ts)"
  done
  printf '\n%-44s %13s\n' "brief step (ACCESS EXCLUSIVE)" "time"
  for l in $leaves; do
    timed "$l: SET NOT NULL (from the check)" "ALTER TABLE $l ALTER id SET NOT NULL"
    timed "$l: PRIMARY KEY USING INDEX" "ALTER TABLE $l ADD CONSTRAINT ${l}_pkey PRIMARY KEY USING INDEX ${l}_key"
  done
  before=$(psql -XAtc "SELECT string_agg(relfilenode::text, ',' ORDER BY oid) FROM pg_class WHERE relname LIKE 'ev_%_pkey'")
  # the parent's step, with the locks it took, read in its own transaction before it commits
  out=$(psql -X -v ON_ERROR_STOP=1 -qAt -F ' ' -c "BEGIN" -c "CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS t" \
    -c "ALTER TABLE ev ADD PRIMARY KEY (id, ts)" \
    -c "SELECT round(extract(epoch FROM clock_timestamp() - t) * 1000, 1) FROM t0" \
    -c "SELECT relation::regclass, string_agg(mode, ', ' ORDER BY mode) FROM pg_locks
        WHERE pid = pg_backend_pid() AND locktype = 'relation' AND relation::regclass::text LIKE 'ev%'
        GROUP BY 1 ORDER BY 1::text" -c "COMMIT")
  printf '%-44s %10s ms\n' "ev: ADD PRIMARY KEY (id, ts) (attaches)" "$(echo "$out" | head -1)"
  after=$(psql -XAtc "SELECT string_agg(relfilenode::text, ',' ORDER BY oid) FROM pg_class WHERE relname LIKE 'ev_%_pkey'")
  [ "$before" = "$after" ] || die "a leaf's index was built anew"
  echo
  echo "locks the parent's step held:"
  echo "$out" | tail -n +2 | sed 's/^/  /'
  echo "leaf keys attached to the parent's, none built: $(psql -XAtc "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relkind = 'i' AND i.inhparent = 'ev_pkey'::regclass")"
  exit 0
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v pg_virtualenv >/dev/null || die "needs postgresql-15 and postgresql-common: run bash bench/demo.sh once"
export ROWS PARTS
PKONLINE_PART_STAGE=inside pg_virtualenv -t bash "$0" || die "failed"
