#!/usr/bin/env bash
# The whole pkonline test suite, from a fresh Debian 12 machine, as root:
#   installs what is missing, builds and installs the extension, then runs
#   - unit tests of the operations' plans (plain C++, no server) and the house rules (layering,
#     formatting),
#   - pg_regress and isolation tests in a throwaway cluster (pg_virtualenv, library preloaded),
#   - TAP tests (PostgreSQL::Test::Cluster) as the postgres user,
#   - pg_regress again with every server process under valgrind (test/valgrind.sh),
# and ends with one line: "N passed, M failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bash test/deps.sh || exit 1
if ! { make -s -j2 >/tmp/pkonline-build.log 2>&1 && make -s install >>/tmp/pkonline-build.log 2>&1; }; then
  cat /tmp/pkonline-build.log
  echo "0 passed, 1 failed"
  exit 1
fi

# PostgreSQL refuses to run as root: the postgres user gets a copy of the tree it may write to.
WORK=$(mktemp -d /tmp/pkonline-test.XXXXXX)
cp -a "$ROOT/." "$WORK/"
chown -R postgres: "$WORK"
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }

echo "== unit tests: the operations' plans, without a server (test/unit)"
if g++ -std=c++17 -Wall -I"$ROOT/include" -o "$WORK/unit_tests" "$ROOT"/test/unit/*.cpp "$ROOT"/src/ops/*.cpp \
     "$ROOT/src/jobs/step.cpp" "$ROOT/src/jobs/job.cpp" "$ROOT/src/jobs/pacing.cpp" "$ROOT/src/jobs/settings.cpp" "$ROOT/src/jobs/window.cpp" "$ROOT/src/json.cpp" >"$WORK/unit.log" 2>&1; then
  "$WORK/unit_tests" 2>&1 | tee -a "$WORK/unit.log"
else
  cat "$WORK/unit.log"; echo "unit: 0 passed, 1 failed" | tee -a "$WORK/unit.log"
fi

echo "== house rules"
house_pass=0; house_fail=0
rule() {  # rule "what" command...: passes when the command prints nothing
  local what=$1; shift
  local out; out=$("$@" 2>&1)
  if [ -z "$out" ]; then echo "ok - $what"; house_pass=$((house_pass + 1));
  else echo "not ok - $what"; echo "$out" | head -20; house_fail=$((house_fail + 1)); fi
}
rule "src/ops and src/jobs include no PostgreSQL header; ops/ reaches the job only through its Context" \
  grep -lE '#include "(postgres\.h|pkonline/jobs/store\.hpp|pkonline/pg/txn\.hpp)"' src/ops/*.cpp include/pkonline/ops/*.hpp
rule "src/jobs includes no PostgreSQL header and nothing of ops/" \
  grep -lE '#include "(postgres\.h|pkonline/ops/)' src/jobs/*.cpp include/pkonline/jobs/*.hpp
rule "every link of README.md and docs/ leads to a file and heading that exist" perl test/doc_links.pl
rule "every C++ file is formatted (clang-format --dry-run -Werror; make format fixes it)" \
  clang-format --dry-run -Werror src/*.cpp src/*/*.cpp include/pkonline/*.hpp include/pkonline/*/*.hpp test/unit/*.cpp

echo "== pg_regress and isolation tests (throwaway cluster, shared_preload_libraries=pkonline)"
# pg_regress twice in a row against the same server: installcheck leaves it as it found it.
as_pg pg_virtualenv -o shared_preload_libraries=pkonline -o max_worker_processes=16 \
  bash -c "make -C '$WORK' installcheck ISOLATION= TAP_TESTS=; \
           [ -f '$WORK/regression.diffs' ] && mv '$WORK/regression.diffs' '$WORK/regression.diffs.first'; \
           echo '== pg_regress again, on the same server'; make -C '$WORK' installcheck ISOLATION= TAP_TESTS=; \
           make -C '$WORK' installcheck REGRESS= TAP_TESTS=" \
  2>&1 | tee "$WORK/regress.log"
for f in "$WORK/regression.diffs.first" "$WORK/regression.diffs" "$WORK/output_iso/regression.diffs"; do
  [ -s "$f" ] && { echo "---- $f"; cat "$f"; }
done

echo "== TAP tests (PostgreSQL::Test::Cluster)"
as_pg make -C "$WORK" installcheck REGRESS= ISOLATION= TAP=1 PROVE_FLAGS="-v" 2>&1 | tee "$WORK/tap.log"
for f in "$WORK"/tmp_check/log/regress_log_*; do
  grep -q "not ok" "$f" 2>/dev/null && { echo "---- $f (tail)"; tail -50 "$f"; }
done

echo "== pg_regress under valgrind (every server process under memcheck)"
bash "$ROOT/test/valgrind.sh" 2>&1 | tee "$WORK/valgrind.log"

# Count: one per pg_regress/isolation test file, one per TAP assertion, plus the valgrind run.
rp=$(grep -Ec '^(test | +)[^ ].* \.\.\. ok ' "$WORK/regress.log")
rf=$(grep -Ec '\.\.\. FAILED' "$WORK/regress.log")
tp=$(grep -Ec '^ *ok [0-9]+' "$WORK/tap.log")
tf=$(grep -Ec '^ *not ok [0-9]+' "$WORK/tap.log")
td=$(grep -Ec 'Dubious|No subtests run|Parse errors' "$WORK/tap.log")
uline=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed$' "$WORK/unit.log" | tail -1)
up=$(echo "$uline" | sed -E 's/^unit: ([0-9]+) passed.*/\1/'); uf=$(echo "$uline" | sed -E 's/.* ([0-9]+) failed$/\1/')
[ -n "$uline" ] || { up=0; uf=1; }
vline=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$WORK/valgrind.log" | tail -1)
vp=${vline%% passed*}; vf=${vline#*, }; vf=${vf%% failed}
[ -n "$vline" ] || { vp=0; vf=1; }
passed=$((rp + tp + vp + up + house_pass))
failed=$((rf + tf + td + vf + uf + house_fail))
[ "$passed" -eq 0 ] && failed=$((failed + 1))
echo "test files: pg_regress+isolation $rp passed, $rf failed; TAP assertions $tp passed, $((tf + td)) failed; under valgrind $vp passed, $vf failed; unit $up passed, $uf failed; house rules $house_pass passed, $house_fail failed"
echo "work tree kept in $WORK"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
