#!/usr/bin/env bash
# Memory errors in pkonline's own code: the pg_regress suite against a server whose every process
# (backends and pkonline's workers) runs under valgrind memcheck. Reports raised in pkonline's
# own code count as failures; PostgreSQL's own well-known reports (it is not built for
# valgrind here) are listed but not counted. As root, from the repository root; takes minutes.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/test/deps.sh" || exit 1
(cd "$ROOT" && make -s -j2 >/dev/null && make -s install >/dev/null) || { echo "0 passed, 1 failed"; exit 1; }
WORK=$(mktemp -d /tmp/pkonline-valgrind.XXXXXX)
cp -a "$ROOT/." "$WORK/"
chown -R postgres: "$WORK"
cat > "$WORK/inside.sh" <<INNER
set -u
conf=\$PG_CLUSTER_CONF_ROOT/15/regress
data=\$(dirname "\$PG_CLUSTER_CONF_ROOT")/data/15/regress
pg_ctlcluster 15 regress stop
valgrind --quiet --trace-children=yes --num-callers=40 --error-limit=no --leak-check=no \\
  --log-file="$WORK/vg.%p" /usr/lib/postgresql/15/bin/postgres -D "\$data" -c config_file="\$conf/postgresql.conf" \\
  >"$WORK/server.log" 2>&1 &
for i in \$(seq 1 120); do pg_isready -q && break; sleep 1; done
make -C '$WORK' installcheck REGRESS="${REGRESS_TESTS:-errors add_int_pk add_int_pk_copy control}" ISOLATION= TAP_TESTS=
/usr/lib/postgresql/15/bin/pg_ctl stop -m fast -D "\$data"
INNER
runuser -u postgres -- pg_virtualenv -t -o shared_preload_libraries=pkonline -o max_worker_processes=16 \
  bash "$WORK/inside.sh" 2>&1 | tee "$WORK/run.log"
ours=0
for f in "$WORK"/vg.*; do
  # A report is ours when its innermost frame in PostgreSQL or in our code is ours (a C++
  # source or header, libstdc++, or a pkonline symbol), not the server's.
  n=$(awk '/^==[0-9]+== [A-Z]/ && !/^==[0-9]+== +(at|by) / {inrep=1; decided=0; mine=0}
           inrep && !decided && /^==[0-9]+== +(at|by) / {
             if ($0 ~ /pkonline|\.cpp:|\.hpp:|\.h:|\.tcc:|libstdc\+\+/) {decided=1; mine=1}
             else if ($0 ~ /bin\/postgres/) {decided=1}
           }
           inrep && /^==[0-9]+== $/ {if (mine) c++; inrep=0}
           END {print c+0}' "$f")
  if [ "$n" -gt 0 ]; then ours=$((ours + n)); echo "---- $f"; cat "$f"; fi
done
all=$(cat "$WORK"/vg.* 2>/dev/null | grep -cE '^==[0-9]+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched)')
passed=$(grep -c '\.\.\. ok ' "$WORK/run.log")
failed=$(grep -c '\.\.\. FAILED' "$WORK/run.log")
echo "valgrind: $ours report(s) in pkonline's code; $all in PostgreSQL's own (logs: $WORK/vg.*)"
echo "$passed passed, $((failed + ours)) failed"
[ "$failed" -eq 0 ] && [ "$ours" -eq 0 ]
