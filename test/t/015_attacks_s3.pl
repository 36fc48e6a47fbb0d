# Attacks from the second-round security review of 0.3 (../shared/reviews/security-2026-12-s3.md),
# each run as the review ran it (or as close as a test can), each asserting the safe outcome.
#
# Roles: alice and bob own tables; mallory has no privilege but CREATE on schema shared, where
# alice and bob may create too (a public schema as databases upgraded from PostgreSQL 14 have it).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineTest;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('attacks_s3');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pkonline'\nmax_worker_processes = 16\npkonline.max_workers = 2\n"
	  . "max_prepared_transactions = 10\n");
$node->start;

sub su { return $node->safe_psql($_[1] // 'postgres', $_[0]); }

sub as {
	my ($role, $sql, $db) = @_;
	return $node->safe_psql($db // 'postgres', $sql, extra_params => [ '-U', $role ]);
}

sub refused { PkonlineTest::refused($node, @_); }
sub poll    { return PkonlineTest::poll($node, @_); }
sub wait_job { return su("CALL pkonline.wait($_[0], '60s', NULL)"); }
sub superusers { return su("SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolsuper"); }
sub loot { return su('SELECT count(*) FROM mallory.loot'); }

sub section {
	my ($name, $body) = @_;
	eval { $body->(); 1 } or fail("$name: the attack could not run to its end: $@");
}

my $holder;
sub hold    { $holder->query_safe("SELECT pkonline.hold_wait_point('$_[0]')"); }
sub release { $holder->query_safe("SELECT pkonline.release_wait_point('$_[0]')"); }

su(q{
	CREATE EXTENSION pkonline;
	CREATE EXTENSION amcheck;
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE mallory LOGIN;
	CREATE SCHEMA alice AUTHORIZATION alice;
	CREATE SCHEMA bob AUTHORIZATION bob;
	CREATE SCHEMA mallory AUTHORIZATION mallory;
	GRANT USAGE ON SCHEMA mallory TO PUBLIC;
	CREATE SCHEMA shared;
	GRANT USAGE, CREATE ON SCHEMA shared TO alice, bob, mallory;
});
my $supers = superusers();
$holder = $node->background_psql('postgres');

# mallory's payload: records who runs it, and makes her superuser when a superuser does
as('mallory', q{
	CREATE TABLE mallory.loot (who text, sess text, note text);
	GRANT INSERT ON mallory.loot TO PUBLIC;
	CREATE FUNCTION mallory.evil_v(note text) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
	BEGIN
	  INSERT INTO mallory.loot VALUES (current_user, session_user, note);
	  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
	    EXECUTE 'ALTER ROLE mallory SUPERUSER';
	  END IF;
	END $$;
	CREATE FUNCTION mallory.evil(bigint, int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
	BEGIN PERFORM mallory.evil_v('evil(' || $1 || ')'); RETURN ($1 % $2)::int; END $$;
});

# --- S3-1, S3-2, C-1: convert_pk_to_bigint carries over only what is built in -------------------
section('S3-1: an index with an operator of the owner, overloaded by a co-tenant', sub {
as('alice', q{
	CREATE OPERATOR shared.#%# (LEFTARG = int, RIGHTARG = int, FUNCTION = int4mod);
	CREATE TABLE alice.p (id int PRIMARY KEY, v text);
	INSERT INTO alice.p SELECT g, 'row ' || g FROM generate_series(1, 2000) g;
	SET search_path = shared, public;
	CREATE INDEX p_shard ON alice.p ((id #%# 16));
	GRANT INSERT ON alice.p TO PUBLIC;
});
as('mallory', 'CREATE OPERATOR shared.#%# (LEFTARG = bigint, RIGHTARG = int, FUNCTION = mallory.evil)');
my $jobs = su('SELECT count(*) FROM pkonline.jobs');
refused('alice', "SELECT pkonline.convert_pk_to_bigint('alice.p')", '0A000',
	'S3-1: an index on the key with an operator that is not built in');
my ($ret, $out, $err) = $node->psql('postgres', "SELECT pkonline.convert_pk_to_bigint('alice.p')",
	extra_params => [ '-U', 'alice' ]);
like($err, qr/alice\.p_shard uses operator shared\.#%#\(integer,integer\)/, 'S3-1: the refusal names the index and the operator');
is(su('SELECT count(*) FROM pkonline.jobs'), $jobs, 'S3-1: no job was made');
su("INSERT INTO alice.p (id, v) VALUES (3007, 'inserted by the DBA')");
is(loot(), '0', 'S3-1: nothing of mallory\'s ran');
is(superusers(), $supers, 'S3-1: no new superuser');
});

section('S3-2: the same shape without an attacker is refused up front', sub {
as('bob', q{
	CREATE OPERATOR bob.#%# (LEFTARG = int, RIGHTARG = int, FUNCTION = int4mod);
	CREATE TABLE bob.p (id int PRIMARY KEY, v text);
	INSERT INTO bob.p SELECT g, 'row ' || g FROM generate_series(1, 2000) g;
	CREATE INDEX p_shard ON bob.p ((id OPERATOR(bob.#%#) 16));
});
refused('bob', "SELECT pkonline.convert_pk_to_bigint('bob.p')", '0A000', 'S3-2: refused when the job is created');
});

section('C-1: operator classes and collations that are not built in are refused up front', sub {
su(q{
	CREATE OPERATOR CLASS shared.my_int_ops FOR TYPE int USING btree AS
	  OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 btint4cmp(int, int);
	CREATE COLLATION shared.my_c (locale = 'C');
});
as('bob', q{
	CREATE TABLE bob.oc (id int PRIMARY KEY, t text);
	CREATE INDEX oc_id ON bob.oc (id shared.my_int_ops);
	CREATE TABLE bob.co (id int PRIMARY KEY, t text);
	CREATE INDEX co_id_t ON bob.co (id, t COLLATE shared.my_c);
});
refused('bob', "SELECT pkonline.convert_pk_to_bigint('bob.oc')", '0A000', 'C-1: a user-made operator class');
refused('bob', "SELECT pkonline.convert_pk_to_bigint('bob.co')", '0A000', 'C-1: a user-made collation');
});

# The overload added mid-way: the index appears while the job runs (the swap builds it then), and
# mallory's overload with it. The index is checked again before it is built: the job stops.
section('S3-1: the index and the overload added while the job runs', sub {
as('alice', q{
	CREATE TABLE alice.q (id int PRIMARY KEY, v text);
	INSERT INTO alice.q SELECT g, 'row ' || g FROM generate_series(1, 2000) g;
	GRANT INSERT ON alice.q TO PUBLIC;
});
su("ALTER ROLE alice SET pkonline.debug_wait_points = on");
hold('backfill_batch');
my $j = as('alice', "SELECT pkonline.convert_pk_to_bigint('alice.q')");
ok(poll("SELECT step = 'backfill' AND worker_alive FROM pkonline.status WHERE job = $j"), 'the job waits in its backfill');
as('alice', 'CREATE INDEX q_shard ON alice.q ((id OPERATOR(shared.#%#) 16))');
release('backfill_batch');
is(wait_job($j), 'failed', 'the job stops before it builds the index again');
like(su("SELECT last_error FROM pkonline.jobs WHERE id = $j"), qr/q_shard uses operator shared\.#%#/, 'its error names the index and the operator');
is(loot(), '0', 'nothing of mallory\'s ran');
as('alice', 'DROP INDEX alice.q_shard');
su("ALTER ROLE alice RESET pkonline.debug_wait_points");
as('alice', "SELECT pkonline.resume($j)");
is(wait_job($j), 'done', 'with the index dropped, the job finishes');
su("INSERT INTO alice.q (id, v) VALUES (3007, 'inserted by the DBA')");
is(loot(), '0', 'the superuser\'s INSERT ran nothing of mallory\'s');
is(superusers(), $supers, 'no new superuser');
is(su("SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = 'alice.q'::regclass AND attname = 'id'"), 'bigint', 'the key is bigint');
});

# What the new definition resolves to is checked as it is built: a cast to text that is built in
# for integer (I/O) but a superuser's function for bigint is refused before anything is built.
section('S3-1: the rebuilt index is checked as analysed, before it is built', sub {
su(q{
	CREATE FUNCTION shared.big_text(bigint) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
	BEGIN IF $1 = 77777 THEN PERFORM mallory.evil_v('big_text'); END IF; RETURN $1::numeric::text; END $$;
	CREATE CAST (bigint AS text) WITH FUNCTION shared.big_text(bigint);
});
as('alice', q{
	CREATE TABLE alice.t (id int PRIMARY KEY, v text);
	INSERT INTO alice.t SELECT g, 'row ' || g FROM generate_series(77000, 78000) g;
	CREATE INDEX t_txt ON alice.t ((id::text));
});
my $j = as('alice', "SELECT pkonline.convert_pk_to_bigint('alice.t')");
is(wait_job($j), 'failed', 'the job stops at the index');
like(su("SELECT last_error FROM pkonline.jobs WHERE id = $j"), qr/index t_txt built again .* would use function shared\.big_text\(bigint\).*not built in/, 'its error names what the new index would call');
is(loot(), '0', 'the function was not run');
as('alice', "SELECT pkonline.cancel($j)");
is(wait_job($j), 'cancelled', 'cancelled');
su('DROP CAST (bigint AS text)');
});

# The sweep of the rebuild paths: the key's DEFAULT is carried as its expression, by OID, never
# as text parsed again (pg_get_expr pins argument types with casts, so the text held too; the
# tree is what the rule asks). Mallory's exact-match overload for the uncast argument is not used.
section('S3-1 sweep: the key\'s DEFAULT keeps the function it called', sub {
as('alice', q{
	CREATE FUNCTION shared.next_id(bigint) RETURNS bigint LANGUAGE sql AS 'SELECT 1000000 + $1';
	CREATE TABLE alice.d (id int PRIMARY KEY DEFAULT shared.next_id(pg_catalog.pg_backend_pid()), v text);
	INSERT INTO alice.d SELECT g, 'row ' || g FROM generate_series(1, 500) g;
	GRANT INSERT ON alice.d TO PUBLIC;
});
as('mallory', q{CREATE FUNCTION shared.next_id(integer) RETURNS bigint LANGUAGE plpgsql AS $$
	BEGIN PERFORM mallory.evil_v('next_id'); RETURN 2000000 + $1; END $$});
my $before = su(q{SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'alice.d'::regclass});
my $j = as('alice', "SELECT pkonline.convert_pk_to_bigint('alice.d')");
is(wait_job($j), 'done', 'done');
is(su(q{SELECT p.oid = 'shared.next_id(bigint)'::regprocedure FROM pg_depend d JOIN pg_attrdef a ON a.oid = d.objid
	JOIN pg_proc p ON p.oid = d.refobjid WHERE d.classid = 'pg_attrdef'::regclass AND a.adrelid = 'alice.d'::regclass
	AND d.refclassid = 'pg_proc'::regclass AND p.proname = 'next_id'}), 't', 'the default calls alice\'s function, by OID');
su("INSERT INTO alice.d (v) VALUES ('inserted by the DBA')");
is(loot(), '0', 'the superuser\'s INSERT ran nothing of mallory\'s');
is(su("SELECT count(*) FROM alice.d WHERE id > 1000000 AND id < 2000000"), '1', 'the default gave alice\'s value');
is(superusers(), $supers, 'no new superuser');
});

# The sweep's robustness findings: what the rebuild cannot carry is refused up front; what it can,
# it carries whole (the tablespace, a plain column of a type of the owner's, a DEFAULT cast down).
section('convert_pk_to_bigint: carried whole, or refused up front', sub {
my $ts = $node->basedir . '/ts1';
mkdir $ts;
su("CREATE TABLESPACE ts1 LOCATION '$ts'; GRANT CREATE ON TABLESPACE ts1 TO bob");
as('bob', q{
	CREATE SEQUENCE bob.s_seq;
	CREATE TYPE bob.mood AS ENUM ('ok', 'sad');
	CREATE TABLE bob.w (id int PRIMARY KEY DEFAULT nextval('bob.s_seq')::integer, m bob.mood);
	INSERT INTO bob.w (m) SELECT 'ok' FROM generate_series(1, 300);
	CREATE INDEX w_id_m ON bob.w (id, m) TABLESPACE ts1;
	CREATE TABLE bob.br (id int PRIMARY KEY, v text);
	CREATE INDEX br_id ON bob.br USING brin (id int4_minmax_multi_ops);
});
refused('bob', "SELECT pkonline.convert_pk_to_bigint('bob.br')", '0A000', 'a non-default operator class for the key');
my $j = as('bob', "SELECT pkonline.convert_pk_to_bigint('bob.w')");
is(wait_job($j), 'done', 'a key in an index beside a column of an enum of the owner\'s');
is(su(q{SELECT t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.oid = 'bob.w_id_m'::regclass}),
	'ts1', 'the rebuilt index stays in its tablespace');
as('bob', "SELECT setval('bob.s_seq', 2147483647)");
as('bob', "INSERT INTO bob.w (m) VALUES ('sad')");
is(su("SELECT max(id) FROM bob.w"), '2147483648', 'the DEFAULT written nextval(...)::integer goes past 2^31 - 1');
});

# The helper review's finding on add_column: the fill is stored as text and parsed again where it
# runs (backfill, trigger, DEFAULT). A polymorphic function of alice's in the shared schema met
# mallory's exact-match overload there; a cast to mallory's type met her later CREATE CAST.
section('add_column: a fill whose names another role could redefine is refused', sub {
as('alice', q{
	CREATE FUNCTION shared.ptag(anyelement) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';
	CREATE TABLE alice.f (a int);
	INSERT INTO alice.f SELECT generate_series(1, 300);
	GRANT INSERT ON alice.f TO PUBLIC;
});
as('mallory', q{
	CREATE TYPE mallory.status AS ENUM ('new', 'old');
	GRANT USAGE ON TYPE mallory.status TO PUBLIC;
});
my $jobs = su('SELECT count(*) FROM pkonline.jobs');
refused('alice', "SELECT pkonline.add_column('alice.f', 'tag', 'int', 'shared.ptag(5)')", '0A000',
	'a polymorphic function in a schema mallory may create in');
refused('alice', "SELECT pkonline.add_column('alice.f', 'tag', 'int', 'shared.ptag(a)', not_null => true)", '0A000',
	'the same over a column');
refused('alice', q{SELECT pkonline.add_column('alice.f', 'st', 'mallory.status', $$'new'$$)}, '0A000',
	'a column of a type mallory owns (she may add casts to it)');
refused('alice', q{SELECT pkonline.add_column('alice.f', 'st', 'text', $$('new'::mallory.status)::text$$)}, '0A000',
	'a fill through a type mallory owns');
# (the second helper's review: a view of mallory's, which she may replace, read by the fill; SQL
# as text, looked up anew each time)
as('mallory', 'CREATE VIEW mallory.v AS SELECT 1 AS x; GRANT SELECT ON mallory.v TO PUBLIC');
refused('alice', "SELECT pkonline.add_column('alice.f', 'tag', 'int', '(SELECT x FROM mallory.v) + a', not_null => true)", '0A000',
	'a fill that reads a view mallory owns');
refused('alice', q{SELECT pkonline.add_column('alice.f', 'tag', 'text', $$query_to_xml('SELECT 1', false, false, '')::text$$)},
	'0A000', 'a fill that runs SQL given as text');
is(su('SELECT count(*) FROM pkonline.jobs'), $jobs, 'no job was made');
my ($ret, $out, $err) = $node->psql('postgres', "SELECT pkonline.add_column('alice.f', 'tag', 'int', 'shared.ptag(a)', not_null => true)",
	extra_params => [ '-U', 'alice' ]);
like($err, qr/function shared\.ptag\(anyelement\) is in schema shared/, 'the refusal names the function and its schema');
# (the overload mallory would add once the job had started)
as('mallory', q{CREATE FUNCTION shared.ptag(integer) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
	BEGIN PERFORM mallory.evil_v('ptag'); RETURN 2; END $$});
as('alice', q{CREATE FUNCTION alice.ptag(anyelement) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1'});
my $j = as('alice', "SELECT pkonline.add_column('alice.f', 'tag', 'int', 'alice.ptag(a)', not_null => true)");
is(wait_job($j), 'done', 'the same function in alice\'s own schema is used');
is(su('SELECT count(*) FROM alice.f WHERE tag = 1'), '300', 'every row has its value');
is(loot(), '0', 'nothing of mallory\'s ran');
is(superusers(), $supers, 'no new superuser');
});

# --- S3-3: worker slots -----------------------------------------------------------------------------
sub pkonline_workers {
	return su("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pkonline worker'");
}

section('S3-3: a prepared transaction starts no worker', sub {
as('alice', q{DO $$ BEGIN FOR i IN 1..16 LOOP EXECUTE format('CREATE TABLE alice.pt%s (a int)', i); END LOOP; END $$});
for my $i (1 .. 8)
{
	my ($a, $b) = (2 * $i - 1, 2 * $i);
	refused('alice', "BEGIN; SELECT pkonline.add_int_pk('alice.pt$a'), pkonline.add_int_pk('alice.pt$b'); PREPARE TRANSACTION 'p$i'",
		'0A000', "S3-3: PREPARE of a transaction that started jobs ($i)");
}
my $jc = as('alice', "SELECT pkonline.add_int_pk('alice.pt3', start => false)");
refused('alice', "BEGIN; SELECT pkonline.cancel($jc); PREPARE TRANSACTION 'c1'", '0A000',
	'S3-3: PREPARE of a transaction that controlled a job (its row would stay locked)');
is(su("SELECT state FROM pkonline.jobs WHERE id = $jc"), 'created', 'S3-3: the job is as it was');
as('alice', "SELECT pkonline.cancel($jc)");
is(su('SELECT count(*) FROM pg_prepared_xacts'), '0', 'S3-3: nothing was prepared');
is(su("SELECT count(*) FROM pkonline.jobs WHERE table_name LIKE 'alice.pt%' AND state <> 'cancelled'"), '0',
	'S3-3: no job was left');
is(pkonline_workers(), '0', 'S3-3: no worker waits');
as('alice', "BEGIN; SELECT pkonline.add_int_pk('alice.pt1', start => false); PREPARE TRANSACTION 'later'");
su("COMMIT PREPARED 'later'");
my $j = su("SELECT max(id) FROM pkonline.jobs");
as('alice', "SELECT pkonline.start($j)");
is(wait_job($j), 'done', 'S3-3: a job created with start => false in a prepared transaction starts after it');
as('bob', 'CREATE TABLE bob.b2 AS SELECT generate_series(1, 500) a');
my $jb = as('bob', "SELECT pkonline.add_int_pk('bob.b2')");
is(wait_job($jb), 'done', 'S3-3: bob\'s job runs');
});

section('S3-3: concurrent creators start no more than pkonline.max_workers workers', sub {
my @sessions;
for my $i (1 .. 7)
{
	my ($a, $b) = (2 * $i - 1, 2 * $i);
	my $s = $node->background_psql('postgres', extra_params => [ '-U', 'alice' ]);
	$s->query_safe("SET client_min_messages = warning");
	$s->query_safe("CREATE TABLE IF NOT EXISTS alice.cw$a (a int); CREATE TABLE IF NOT EXISTS alice.cw$b (a int)");
	$s->query_safe("BEGIN");
	$s->query_safe("SET LOCAL pkonline.run_window = '03:00-03:01'");
	$s->query_safe("SELECT pkonline.add_int_pk('alice.cw$a'), pkonline.add_int_pk('alice.cw$b')");
	push @sessions, $s;
}
$_->query_safe('COMMIT') for @sessions;
# (a worker that gives its slot to a queued job starts that job's worker and then exits: for a
# moment three processes are seen, two of them holding a job; slots bound the workers at work)
my ($most, $most_procs) = (0, 0);
for (1 .. 30)
{
	my $n = su("SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'userlock' AND classid = 1886089070 "
		  . "AND objsubid = 2 AND granted");
	my $p = pkonline_workers();
	$most = $n if $n > $most;
	$most_procs = $p if $p > $most_procs;
	usleep(100_000);
}
cmp_ok($most, '<=', 2, "S3-3: at most 2 job workers at work at once (seen: $most)");
cmp_ok($most_procs, '<=', 3, "S3-3: and at most one more handing its slot over (seen: $most_procs processes)");
$_->quit for @sessions;
su(q{SELECT pkonline.cancel(id) FROM pkonline.jobs WHERE table_name LIKE 'alice.cw%' AND state NOT IN ('done', 'cancelled')});
});

# --- S3-5: history: starting a job costs the same with a long history; the creator trims it ----------
section('S3-5: forget() is the creator\'s, and only for finished jobs', sub {
as('alice', 'CREATE TABLE alice.h1 (a int); INSERT INTO alice.h1 SELECT generate_series(1, 100)');
as('bob', 'CREATE TABLE bob.h2 (a int); INSERT INTO bob.h2 SELECT generate_series(1, 100)');
my $ja = as('alice', "SELECT pkonline.add_int_pk('alice.h1')");
is(wait_job($ja), 'done', 'alice\'s job is done');
my $jb = as('bob', "SELECT pkonline.add_int_pk('bob.h2', start => false)");
refused('bob', "SELECT pkonline.forget($ja)", '42704', 'bob may not forget alice\'s job');
refused('mallory', "SELECT pkonline.forget($ja)", '42704', 'nor may mallory');
refused('bob', "SELECT pkonline.forget($jb)", '55000', 'a job that is not finished is not forgotten');
my $bobs = su("SELECT count(*) FROM pkonline.jobs WHERE owner = 'bob'::regrole AND state IN ('done', 'cancelled')");
is(as('bob', "SELECT pkonline.forget(interval '0 s')"), $bobs, 'forget(interval) takes only what the caller may forget');
is(su("SELECT count(*) FROM pkonline.jobs WHERE id = $ja"), '1', 'alice\'s job is still there');
is(as('alice', "SELECT pkonline.forget($ja)"), 'forgotten', 'alice forgets her job');
is(su("SELECT (SELECT count(*) FROM pkonline.jobs WHERE id = $ja) + (SELECT count(*) FROM pkonline.job_steps "
	  . "WHERE job_id = $ja) + (SELECT count(*) FROM pkonline.events WHERE job_id = $ja)"), '0',
	'its steps and events went with it');
as('bob', "SELECT pkonline.cancel($jb)");
is(as('bob', "SELECT pkonline.forget(interval '0 s')"), '1', 'bob trims his own history');
refused('mallory', "INSERT INTO pkonline.jobs (relid, table_name, operation, owner, run_as, state) "
	  . "VALUES ('alice.h1'::regclass, 'x', 'add_int_pk', 'mallory', 'mallory', 'done')", '42501',
	'the job tables stay closed to writes');
});

# --- C-2: a job row from a 0.2 or 0.3 dump names roles by OID -----------------------------------
section('C-2: a restored job row is the extension owner\'s, not the role its OID now names', sub {
my $alice = su("SELECT 'alice'::regrole::oid");
# (a row as a 0.3 dump brings it, made in another cluster by the role whose OID alice has here)
su("INSERT INTO pkonline.jobs (relid, table_name, operation, owner, run_as, state, origin, options) "
	  . "SELECT 'bob.h2'::regclass, 'bob.h2', 'add_int_pk', ${alice}::oid::regrole, ${alice}::oid::regrole, 'paused', "
	  . "'6000000000000000000/1', j.options FROM pkonline.jobs j WHERE j.operation = 'add_int_pk' ORDER BY j.id DESC LIMIT 1");
my $jr = su('SELECT max(id) FROM pkonline.jobs');
is(as('alice', "SELECT count(*) FROM pkonline.jobs WHERE id = $jr"), '0', 'C-2: the role the OID names does not see it');
is(su("SELECT owner::text || ' ' || run_as::text || ' ' || state FROM pkonline.jobs WHERE id = $jr"),
	su('SELECT current_user') . ' ' . su('SELECT current_user') . ' failed', 'C-2: it is the extension owner\'s, and failed');
refused('alice', "SELECT pkonline.cancel($jr)", '42704', 'C-2: alice cannot close it');
is(su("SELECT pkonline.cancel($jr)"), 'cancelled', 'C-2: the superuser closes it');
});

# --- S3-7: the database's settings do not reach the resume scan or the workers ---------------------
section('S3-7: ALTER DATABASE ... SET role by its owner; settings that would stop the work', sub {
su('CREATE DATABASE d3 OWNER bob');
su('CREATE EXTENSION pkonline', 'd3');
su('CREATE TABLE public.big3 (a int); INSERT INTO public.big3 SELECT generate_series(1, 100000)', 'd3');
my $j = su("SET pkonline.batch_size = 5; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = 50; "
	  . "SELECT pkonline.add_int_pk('public.big3')", 'd3');
ok($node->poll_query_until('d3', "SELECT rows_done > 0 FROM pkonline.jobs WHERE id = $j"), 'S3-7: the superuser\'s job runs');
as('bob', q{ALTER DATABASE d3 SET role = 'bob'; ALTER DATABASE d3 SET default_transaction_read_only = on;
	ALTER DATABASE d3 SET statement_timeout = '20ms'; ALTER DATABASE d3 SET default_transaction_isolation = 'serializable'}, 'd3');
# (the test's own sessions undo what the database's settings do to them)
my $me = 'SET ROLE postgres; SET statement_timeout = 0; SET default_transaction_read_only = off; '
  . 'SET default_transaction_isolation = \'read committed\'; ';
is($node->safe_psql('d3', "$me SELECT state FROM pkonline.jobs WHERE id = $j"), 'running', 'S3-7: running when the server stops');
$node->stop('immediate');
$node->start;
is($node->safe_psql('d3', "$me CALL pkonline.wait($j, '180s', NULL)"), 'done',
	'S3-7: resumed by the scan after the restart, the job ends although the database defaults to read-only, '
	  . 'serializable transactions and a 20 ms statement_timeout');
is($node->safe_psql('d3', "$me SELECT count(*) FROM pkonline.events WHERE job_id = $j AND kind = 'worker_lost'"), '1',
	'S3-7: its event says it was resumed');
is($node->safe_psql('d3', "$me SELECT count(DISTINCT id) FROM public.big3"), '100000', 'S3-7: every row numbered');
$holder = $node->background_psql('postgres');
});

$holder->quit;
$node->stop;
done_testing();
