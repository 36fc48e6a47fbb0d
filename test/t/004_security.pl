# Security: a non-superuser table owner can use every feature, and the worker works as that
# role (never as a superuser: it connects without a login role and switches to the table's owner); SET ROLE to a NOLOGIN group role works; other roles neither see
# nor touch a job; members of the table's owning role may control it; code called during the
# work cannot SET ROLE; no function of the extension can be hijacked through search_path.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineTest;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('security');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pkonline'\nmax_worker_processes = 16\npkonline.max_workers = 4\n");
$node->start;

# --- helpers ---------------------------------------------------------------------------------

sub su { return $node->safe_psql('postgres', $_[0]); }

sub as {
	my ($role, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $role ]);
}

# The statement fails with this SQLSTATE; a boolean query turns true (test/t/PkonlineTest.pm).
sub refused { PkonlineTest::refused($node, @_); }

sub poll { return PkonlineTest::poll($node, @_); }

sub wait_job {
	my ($role, $job) = @_;
	return as($role, "CALL pkonline.wait($job, '60s', NULL)");
}

sub columns_of {
	my ($table) = @_;
	return su("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute "
		  . "WHERE attrelid = '$table'::regclass AND attnum > 0 AND NOT attisdropped");
}

# The job's helper sequence and trigger function, and triggers left on the table.
sub leftovers {
	my ($job, $table) = @_;
	return su("SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline\\_${job}\\_seq%') "
		  . "+ (SELECT count(*) FROM pg_proc WHERE proname LIKE 'pkonline\\_${job}\\_fill%') "
		  . "+ (SELECT count(*) FROM pg_trigger WHERE tgrelid = '$table'::regclass AND NOT tgisinternal "
		  . "AND tgname LIKE 'pkonline%')");
}

# A finished add_int_pk: primary key on id, every row numbered once, identity, no helpers left.
sub check_done {
	my ($job, $table, $rows, $label) = @_;
	is(su("SELECT state FROM pkonline.jobs WHERE id = $job"), 'done', "$label: job done");
	is(su("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '$table'::regclass AND contype = 'p'"),
		'PRIMARY KEY (id)', "$label: primary key attached");
	is(su("SELECT count(*) || ' ' || count(id) || ' ' || count(DISTINCT id) FROM $table"),
		"$rows $rows $rows", "$label: every row has its own id");
	is(su("SELECT attidentity FROM pg_attribute WHERE attrelid = '$table'::regclass AND attname = 'id'"),
		'd', "$label: id is an identity column");
	is(leftovers($job, $table), '0', "$label: helper sequence, function and trigger removed");
}

# Debug wait point: the worker stops before each backfill batch while this lock is held.
my $holder = $node->background_psql('postgres');
sub hold    { $holder->query_safe("SELECT pkonline.hold_wait_point('backfill_batch')"); }
sub release { $holder->query_safe("SELECT pkonline.release_wait_point('backfill_batch')"); }

sub worker_where { return "backend_type = 'pkonline worker' AND application_name = 'pkonline job $_[0]'"; }


sub held_at_wait_point {
	my ($job, $label) = @_;
	ok( poll("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE "
			  . worker_where($job)
			  . " AND wait_event = 'advisory') AND (SELECT step = 'backfill' FROM pkonline.status WHERE job = $job)"),
		"$label: the worker waits at the backfill_batch wait point");
}

# --- setup -----------------------------------------------------------------------------------

su(q{
	CREATE EXTENSION pkonline;
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE carol LOGIN;
	CREATE ROLE grp NOLOGIN;
	GRANT alice TO carol;
	GRANT grp TO alice;
	GRANT CREATE ON SCHEMA public TO alice, bob, grp;
	GRANT CREATE ON DATABASE postgres TO alice;
	-- the test hook is superuser-only: a superuser turns it on for alice's sessions
	ALTER ROLE alice SET pkonline.debug_wait_points = on;
	CREATE TABLE su_t (a int, b text);
	INSERT INTO su_t SELECT g, md5(g::text) FROM generate_series(1, 500) g;
});
is(su("SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'"), 'f', 'alice is not a superuser');
for my $t (qw(a1 a2 a3 a4 a5 a6)) {
	as('alice', "CREATE TABLE $t AS SELECT g AS a, md5(g::text) AS b FROM generate_series(1, 2000) g");
}
as('bob', "CREATE TABLE b1 AS SELECT g AS a FROM generate_series(1, 500) g");
is(as('alice', 'SHOW pkonline.debug_wait_points'), 'on', 'the superuser-set hook reaches alice\'s sessions');
refused('alice', 'SET pkonline.debug_wait_points = off', '42501', 'alice changes the superuser-only test hook');

# --- 1, 2, 4: alice's job runs as alice; bob neither sees nor touches it ---------------------

hold();
my $j1 = as('alice', "SELECT pkonline.add_int_pk('a1')");
is(su("SELECT options->>'debug_wait_points' FROM pkonline.jobs WHERE id = $j1"), 'true', 'job 1 has the test hook');
held_at_wait_point($j1, 'job 1');
is(su("SELECT relowner::regrole FROM pg_class WHERE relname LIKE 'pkonline\\_${j1}\\_seq%'"), 'alice',
	'job 1: helper sequence created as alice');
is(su("SELECT relowner::regrole FROM pg_class WHERE relname LIKE 'pkonline\\_${j1}\\_seq%'"), 'alice',
	'job 1: helper sequence created as alice');
is(su("SELECT owner || ' ' || run_as FROM pkonline.jobs WHERE id = $j1"), 'alice alice',
	'job 1: created by alice, runs as alice (the table\'s owner)');

# alice follows her job
is(as('alice', "SELECT state || ' ' || step || ' ' || step_of || ' ' || worker_alive FROM pkonline.status WHERE job = $j1"),
	'running backfill 2/7 true', 'alice sees her running job in pkonline.status');
is(as('alice', "SELECT string_agg(step || ':' || state, ',' ORDER BY step_no) FROM pkonline.steps($j1)"),
	'add_column:done,backfill:running,catch_up:pending,add_check:pending,validate:pending,create_index:pending,attach:pending',
	'alice reads her job\'s plan with pkonline.steps()');
cmp_ok(as('alice', "SELECT count(*) FROM pkonline.events WHERE job_id = $j1"), '>', 0, 'alice reads her job\'s events');
refused('alice', "UPDATE pkonline.jobs SET state = 'done' WHERE id = $j1", '42501', 'alice writes pkonline.jobs directly');

# bob sees nothing of it
is(as('bob', "SELECT (SELECT count(*) FROM pkonline.status) || ' ' || (SELECT count(*) FROM pkonline.jobs) || ' ' "
	  . "|| (SELECT count(*) FROM pkonline.job_steps) || ' ' || (SELECT count(*) FROM pkonline.events) || ' ' "
	  . "|| (SELECT count(*) FROM pkonline.metrics) || ' ' || (SELECT count(*) FROM pkonline.active)"),
	'0 0 0 0 0 0', 'bob sees no row of alice\'s job in status, jobs, job_steps, events, metrics, active');
refused('bob', "SELECT * FROM pkonline.steps($j1)", '42704', 'steps() of alice\'s job: it does not exist for bob');
refused('bob', "SELECT * FROM pkonline.report($j1)", '42704', 'report() of alice\'s job: it does not exist for bob');
refused('bob', "CALL pkonline.wait($j1, '5s', NULL)", '42704', 'bob waits for alice\'s job (it does not exist for him)');

# bob cannot control it nor write the job tables; nothing changes
my $snapshot_sql = "SELECT state, pause_requested, cancel_requested, worker_pid, step_no, "
  . "(SELECT count(*) FROM pkonline.events WHERE job_id = $j1), "
  . "(SELECT string_agg(state, ',' ORDER BY step_no) FROM pkonline.job_steps WHERE job_id = $j1) "
  . "FROM pkonline.jobs WHERE id = $j1";
my $before = su($snapshot_sql);
for my $fn (qw(pause resume cancel start)) {
	refused('bob', "SELECT pkonline.$fn($j1)", '42704', "bob calls pkonline.$fn() on alice's running job");
}
refused('bob', "INSERT INTO pkonline.jobs (relid, table_name, operation, owner, run_as) "
	  . "VALUES ('b1'::regclass, 'public.b1', 'add_int_pk', 'bob', 'bob')", '42501', 'bob inserts into pkonline.jobs');
refused('bob', "UPDATE pkonline.jobs SET cancel_requested = true", '42501', 'bob updates pkonline.jobs');
refused('bob', "DELETE FROM pkonline.jobs", '42501', 'bob deletes from pkonline.jobs');
refused('bob', "UPDATE pkonline.job_steps SET state = 'done'", '42501', 'bob updates pkonline.job_steps');
refused('bob', "DELETE FROM pkonline.job_steps", '42501', 'bob deletes from pkonline.job_steps');
refused('bob', "INSERT INTO pkonline.job_steps (job_id, step_no, step, action, lock) VALUES ($j1, 99, 'x', 'x', 'x')",
	'42501', 'bob inserts into pkonline.job_steps');
refused('bob', "DELETE FROM pkonline.events", '42501', 'bob deletes from pkonline.events');
refused('bob', "TRUNCATE pkonline.events", '42501', 'bob truncates pkonline.events');
usleep(300_000);
is(su($snapshot_sql), $before, 'alice\'s job is untouched by all of bob\'s attempts');
ok(su('SELECT count(*) FROM pg_stat_activity WHERE ' . worker_where($j1) . " AND wait_event = 'advisory'") eq '1',
	'alice\'s worker still waits where it was');

# alice pauses and resumes; the resumed worker is alice again
is(as('alice', "SELECT pkonline.pause($j1)"), 'pausing', 'alice pauses her running job');
is(wait_job('alice', $j1), 'paused', 'job 1 paused');
is(su("SELECT worker_alive FROM pkonline.status WHERE job = $j1"), 'f', 'job 1: no worker while paused');
is(as('alice', "SELECT pkonline.resume($j1)"), 'queued', 'alice resumes her job');
held_at_wait_point($j1, 'job 1 resumed');
release();
is(wait_job('alice', $j1), 'done', 'alice waits for her job: done');
check_done($j1, 'a1', 2000, 'job 1');
is(su("SELECT attempts FROM pkonline.jobs WHERE id = $j1"), '2', 'job 1 ran in two workers (before and after the pause)');

# --- 2: a superuser's table ---------------------------------------------------------------------

my $jobs_before = su('SELECT count(*) FROM pkonline.jobs');
refused('alice', "SELECT pkonline.add_int_pk('su_t')", '42501', 'alice starts a job on a superuser\'s table');
is(columns_of('su_t'), 'a,b', 'the superuser\'s table is unchanged');
is(su('SELECT count(*) FROM pkonline.jobs'), $jobs_before, 'no job was created');

# --- 1, 4: start => false + start, run_pending ----------------------------------------------------

my $j2 = as('alice', "SELECT pkonline.add_int_pk('a2', start => false)");
is(as('alice', "SELECT state || ' ' || worker_alive FROM pkonline.status WHERE job = $j2"), 'created false',
	'job 2 created, not started');
is(as('bob', 'SELECT pkonline.run_pending()'), '0', 'bob\'s run_pending() starts none of alice\'s jobs');
usleep(1_000_000);
is(su("SELECT state || ' ' || attempts || ' ' || (SELECT count(*) FROM pkonline.job_steps WHERE job_id = $j2 AND state <> 'pending') "
	  . "FROM pkonline.jobs WHERE id = $j2"),
	'created 0 0', 'job 2 is still not started and untouched after bob\'s run_pending()');
is(columns_of('a2'), 'a,b', 'a2 is unchanged after bob\'s run_pending()');
is(as('alice', "SELECT pkonline.start($j2)"), 'queued', 'alice starts her job');
is(wait_job('alice', $j2), 'done', 'job 2 done');
check_done($j2, 'a2', 2000, 'job 2');

my $j3 = as('alice', "SELECT pkonline.add_int_pk('a3', start => false)");
is(as('alice', 'SELECT pkonline.run_pending()'), '0', 'run_pending() does not start a job created with start => false');
is(as('alice', "SELECT pkonline.start($j3)"), 'queued', 'alice starts job 3');
is(wait_job('alice', $j3), 'done', 'job 3 done');
check_done($j3, 'a3', 2000, 'job 3');

# --- 1, 5: cancel by alice, and by carol (a member of alice, not the job's creator) ------------

hold();
my $j4 = as('alice', "SELECT pkonline.add_int_pk('a4')");
held_at_wait_point($j4, 'job 4');
is(columns_of('a4'), 'a,b,id', 'job 4 added its column');
is(as('alice', "SELECT pkonline.cancel($j4)"), 'cancelling', 'alice cancels her running job');
is(wait_job('alice', $j4), 'cancelled', 'job 4 cancelled');
is(columns_of('a4'), 'a,b', 'job 4: a4 is as it was');
is(leftovers($j4, 'a4'), '0', 'job 4: helpers undone');

my $j5 = as('alice', "SELECT pkonline.add_int_pk('a5')");
held_at_wait_point($j5, 'job 5');
is(as('carol', "SELECT state FROM pkonline.status WHERE job = $j5"), 'running', 'carol (member of alice) sees alice\'s job');
is(as('carol', "SELECT pkonline.cancel($j5)"), 'cancelling', 'carol cancels alice\'s job');
is(wait_job('carol', $j5), 'cancelled', 'job 5 cancelled');
is(columns_of('a5'), 'a,b', 'job 5: a5 is as it was');
is(leftovers($j5, 'a5'), '0', 'job 5: helpers undone');
is(su("SELECT owner FROM pkonline.jobs WHERE id = $j5"), 'alice', 'job 5 still belongs to alice');
release();

# --- 4: a start => false job is not started by another role's job ending ----------------------

my $j6 = as('alice', "SELECT pkonline.add_int_pk('a6', start => false)");
my $jb = as('bob', "SELECT pkonline.add_int_pk('b1')");
is(wait_job('bob', $jb), 'done', 'bob\'s own job on his own table: done');
usleep(1_000_000);
is(su("SELECT state || ' ' || attempts FROM pkonline.jobs WHERE id = $j6"), 'created 0',
	'alice\'s not-started job is not started when bob\'s job ends')
  or diag(su("SELECT string_agg(format('job %s (%s): created %s, started %s, finished %s, state %s', id, owner, "
		  . "created_at::time, started_at::time, finished_at::time, state), E'\\n' ORDER BY id) "
		  . "FROM pkonline.jobs WHERE id IN ($j6, $jb)"));
is(columns_of('a6'), 'a,b', 'a6 is unchanged by bob\'s job');
# clean up whatever happened: cancel it if it is still queued, else let it end
$node->psql('postgres', "SELECT pkonline.cancel($j6)", extra_params => [ '-U', 'alice' ]);
like(wait_job('alice', $j6), qr/^(cancelled|done)$/, 'job 6 ended');

# --- 3: SET ROLE to a NOLOGIN group role; code called by the work cannot SET ROLE ------------

as('alice', q{
	SET ROLE grp;
	CREATE TABLE g AS SELECT g AS a, md5(g::text) AS b FROM generate_series(1, 1000) g;
	-- a trigger (the table owner's) tries to take the login role's privileges
	CREATE TABLE public.g_log (who text, outcome text);
	CREATE FUNCTION public.g_probe() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	  BEGIN
	    EXECUTE 'SET LOCAL ROLE alice';
	    INSERT INTO public.g_log VALUES (current_user, 'set role succeeded');
	  EXCEPTION WHEN OTHERS THEN
	    INSERT INTO public.g_log VALUES (current_user, SQLSTATE || ': ' || SQLERRM);
	  END;
	  RETURN NEW;
	END $$;
	CREATE TRIGGER g_probe BEFORE UPDATE ON g FOR EACH ROW EXECUTE FUNCTION public.g_probe();
});
is(su("SELECT relowner::regrole FROM pg_class WHERE oid = 'g'::regclass"), 'grp', 'table g belongs to grp');
# control: in an ordinary session of alice as grp the probe can SET ROLE
as('alice', 'SET ROLE grp; UPDATE g SET b = b WHERE a = 1');
is(su("SELECT string_agg(who || ' ' || outcome, ';') FROM g_log"), 'alice set role succeeded',
	'control: the probe trigger can SET ROLE in an ordinary session');
su('TRUNCATE g_log');

hold();
# (the table's own triggers fire for the backfill only when asked to)
my $jg = as('alice', "SET ROLE grp; SET pkonline.backfill_fires_triggers = on; SELECT pkonline.add_int_pk('g')");
held_at_wait_point($jg, 'group job');
is(su("SELECT owner || ' ' || run_as FROM pkonline.jobs WHERE id = $jg"), 'grp grp',
	'group job: created by grp, runs as grp (the table\'s owner)');
is(su("SELECT relowner::regrole FROM pg_class WHERE relname LIKE 'pkonline\\_${jg}\\_seq%'"), 'grp',
	'group job: the work runs as grp (helper sequence owned by grp)');
is(as('bob', "SELECT count(*) FROM pkonline.status WHERE job = $jg"), '0', 'bob does not see the group job');
release();
is(wait_job('alice', $jg), 'done', 'group job done (alice, a member of grp, waits for it)');
check_done($jg, 'g', 1000, 'group job');
is(su("SELECT count(*) > 0 FROM g_log"), 't', 'the probe trigger ran in the worker');
is(su("SELECT count(*) FROM g_log WHERE outcome NOT LIKE '42501:%' OR who <> 'grp'"), '0',
	'the worker\'s SET ROLE attempts were all refused (42501), all ran as grp')
  or diag(su('SELECT who, outcome, count(*) FROM g_log GROUP BY 1, 2'));

# --- 6: functions of the extension and search_path -------------------------------------------

is(su(q{SELECT count(*) FROM pg_proc WHERE pronamespace IN ('pkonline'::regnamespace, 'pkonline_internal'::regnamespace) AND prosecdef
	AND NOT EXISTS (SELECT 1 FROM unnest(proconfig) c WHERE c LIKE 'search_path=%')}),
	'0', 'no SECURITY DEFINER function of pkonline without a pinned search_path');
cmp_ok(su(q{SELECT count(*) FROM pg_proc WHERE pronamespace = 'pkonline'::regnamespace
	AND prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')}), '>=', 6, 'pkonline has C functions');
# The row triggers (the copy method's two and its copy's guard, the in-place fill trigger, convert_pk_to_bigint's sync)
# and the row key run no SQL of a user's and look up nothing by name in the user's path (their one
# check of the job's records pins search_path itself, once per trigger and backend): a SET clause
# would cost a GUC save and restore on every row written. wait() is a procedure that commits, which
# a SET clause forbids: every name in its SQL is schema-qualified, and it uses no operator (section
# 7 runs it under a hostile search_path).
is(su(q{SELECT coalesce(string_agg(proname, ', ' ORDER BY proname), '') FROM pg_proc
	WHERE pronamespace IN ('pkonline'::regnamespace, 'pkonline_internal'::regnamespace) AND prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
	AND proname NOT IN ('_copy_fill', '_copy_guard', '_copy_log', '_fill_nextval', '_sync_bigint', '_tid_key', 'wait')
	AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false)}),
	'', 'every C function of pkonline that runs SQL has search_path pinned to pg_catalog, pg_temp');

# --- 7: a hostile search_path (evil before pg_catalog) hijacks nothing -------------------------
# pg_catalog is listed explicitly after evil: with 'evil, public' pg_catalog would be searched first
# implicitly, its exact-match operators would win, and nothing could be hijacked even unpinned.

as('alice', q{
	CREATE TABLE e1 AS SELECT g AS a, md5(g::text) AS b FROM generate_series(1, 2000) g;
	CREATE SCHEMA evil;
	CREATE TABLE evil.calls (fn text, by_user text DEFAULT current_user, pid int DEFAULT pg_backend_pid());
	GRANT USAGE ON SCHEMA evil TO PUBLIC;
	GRANT INSERT ON evil.calls TO PUBLIC;
	CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO evil.calls (fn) VALUES ('nextval'); RETURN pg_catalog.nextval($1); END$$;
	CREATE FUNCTION evil.oideq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO evil.calls (fn) VALUES ('=(oid,oid)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END$$;
	CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.oideq);
	CREATE FUNCTION evil.int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO evil.calls (fn) VALUES ('=(bigint,bigint)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END$$;
	CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8eq);
	CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO evil.calls (fn) VALUES ('=(text,text)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END$$;
	CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
	CREATE FUNCTION evil.textne(text, text) RETURNS boolean LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO evil.calls (fn) VALUES ('<>(text,text)'); RETURN $1 OPERATOR(pg_catalog.<>) $2; END$$;
	CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textne);
	CREATE FUNCTION evil.tidge(tid, tid) RETURNS boolean LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO evil.calls (fn) VALUES ('>=(tid,tid)'); RETURN $1 OPERATOR(pg_catalog.>=) $2; END$$;
	CREATE OPERATOR evil.>= (LEFTARG = tid, RIGHTARG = tid, FUNCTION = evil.tidge);
	-- every session of alice, the worker's included, starts with the hostile path
	ALTER ROLE alice SET search_path = evil, pg_catalog, public;
});
# control: the hostile path does pick the evil objects
as('alice', "SELECT 1::bigint = 1::bigint; SELECT 1::oid = 1::oid");
is(su('SELECT count(*) FROM evil.calls'), '2', 'control: the hostile search_path picks evil operators');
su('TRUNCATE evil.calls');

my $hostile = 'SET search_path = evil, pg_catalog, public; ';
hold();
my $je = as('alice', $hostile . "SELECT pkonline.add_int_pk('e1', start => false)");
is(as('alice', $hostile . "SELECT pkonline.start($je)"), 'queued', 'hostile path: start()');
held_at_wait_point($je, 'hostile path');
is(as('alice', $hostile . "SELECT string_agg(step || ':' || state, ',' ORDER BY step_no) FROM pkonline.steps($je)"),
	'add_column:done,backfill:running,catch_up:pending,add_check:pending,validate:pending,create_index:pending,attach:pending',
	'hostile path: steps()');
is(as('alice', $hostile . "SELECT state FROM pkonline.status WHERE job = $je"), 'running', 'hostile path: status');
is(as('alice', $hostile . 'SELECT pkonline.run_pending()'), '0', 'hostile path: run_pending()');
is(as('alice', $hostile . "SELECT pkonline.pause($je)"), 'pausing', 'hostile path: pause()');
ok(poll("SELECT state = 'paused' FROM pkonline.jobs WHERE id = $je"), 'hostile path: paused');
is(as('alice', $hostile . "SELECT pkonline.resume($je)"), 'queued', 'hostile path: resume()');
held_at_wait_point($je, 'hostile path, resumed');
# rows written while the job runs go through its default and its fill trigger
# (an UPDATE of a row not filled yet is filled by the catch-up pass, checked when the job is done)
as('alice', $hostile . "INSERT INTO e1 (a, b) VALUES (-1, 'new'); INSERT INTO e1 (a, b, id) VALUES (-2, 'new', NULL); "
	. "UPDATE e1 SET b = b || '!' WHERE a = 1");
is(su('SELECT count(id) FROM e1 WHERE a IN (-1, -2)'), '2',
	'hostile path: rows inserted during the job got their ids (default, fill trigger)');
release();
is(as('alice', $hostile . "CALL pkonline.wait($je, '60s', NULL)"), 'done', 'hostile path: wait(), job done');
check_done($je, 'e1', 2002, 'hostile path');
is(su("SELECT coalesce(string_agg(fn || ' by ' || by_user, '; '), '') FROM evil.calls"), '',
	'hostile path: no evil function or operator was called (API, worker, fill trigger)');

# pkonline.wait is part of the extension too (a procedure: it cannot pin search_path with SET, as it
# COMMITs, so its operators must not resolve through the caller's path)
su('TRUNCATE evil.calls');
is(as('alice', $hostile . "CALL pkonline.wait($je, '5s', NULL)"), 'done', 'hostile path: wait()');
is(su("SELECT coalesce(string_agg(DISTINCT fn || ' by ' || by_user, '; '), '') FROM evil.calls"), '',
	'hostile path: pkonline.wait() called no evil operator');

su('ALTER ROLE alice RESET search_path');
$holder->quit;
$node->stop;
done_testing();
