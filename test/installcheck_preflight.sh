#!/usr/bin/env bash
# Before `make installcheck` runs pkonline's pg_regress and isolation tests against a running
# server (the one PGHOST / PGPORT / PGUSER name, as pg_regress uses them): can they run there?
# Prints one line saying what is missing, and fails, instead of letting the tests fail with diffs.
# The tests need: PostgreSQL 15; a superuser (CREATE EXTENSION pkonline, roles, databases, the
# superuser-only pkonline.debug_wait_points); pkonline installed on the server's machine at this
# tree's version; room for the job workers (background workers); pkonline.max_workers >= 2.
# shared_preload_libraries = 'pkonline' is not needed (the tests run with or without it).
set -u
want_version=$(sed -nE "s/^default_version = '([^']+)'/\1/p" "$(dirname "$0")/../pkonline.control")
say() { echo "pkonline installcheck: cannot run against this server: $*" >&2; exit 1; }
q() { psql -X -A -t -q -d "${PGDATABASE:-postgres}" -c "$1" 2>/dev/null; }

command -v psql >/dev/null || say "psql is not on PATH"
q 'SELECT 1' >/dev/null || say "no connection (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-$(id -un)}): start the server, or set PGHOST/PGPORT/PGUSER"
num=$(q 'SHOW server_version_num')
[ "${num:0:2}" = 15 ] || say "the server is PostgreSQL $(q 'SHOW server_version'), the tests are for 15"
[ "$(q 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')" = t ] ||
  say "role $(q 'SELECT current_user') is not a superuser (CREATE EXTENSION pkonline and the tests' roles and wait points need one): set PGUSER"
have=$(q "SELECT string_agg(version, ',' ORDER BY version) FROM pg_available_extension_versions WHERE name = 'pkonline'")
[ -n "$have" ] || say "pkonline is not installed on the server's machine: run make install there (as root)"
case ",$have," in *",$want_version,"*) ;; *) say "the server's pkonline offers versions $have, this tree is $want_version: run make install there (as root)" ;; esac
total=$(q 'SHOW max_worker_processes')
busy=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type NOT IN ('client backend', 'autovacuum launcher',
  'autovacuum worker', 'background writer', 'checkpointer', 'walwriter', 'startup', 'walreceiver', 'walsender',
  'archiver', 'logger', 'standalone backend')")
free=$((total - busy))
[ "$free" -ge 4 ] || say "max_worker_processes = $total leaves $free background workers free; the tests need 4 (raise it and restart)"
mw=$(q "SELECT current_setting('pkonline.max_workers', true)")
[ -z "$mw" ] || [ "$mw" -ge 2 ] || say "pkonline.max_workers = $mw; the tests need 2 (set it in postgresql.conf and reload)"
for db in contrib_regression isolation_regression; do
  n=$(q "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND pid <> pg_backend_pid()")
  [ "${n:-0}" = 0 ] || say "database $db is in use ($n sessions): the tests drop and re-create it"
done
echo "pkonline installcheck: PostgreSQL $(q 'SHOW server_version'), pkonline $want_version available, $free background workers free$([ -n "$(q "SELECT 1 WHERE current_setting('shared_preload_libraries') ~ 'pkonline'")" ] && echo ', preloaded' || echo ', not preloaded')"
