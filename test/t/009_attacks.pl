# Attacks from the security review of 0.1 (../shared/reviews/security-2026-12.md), each run as the
# review ran it, each asserting the safe outcome: refused with its SQLSTATE, no row written, no
# role changed, the server alive, other users' jobs unaffected.
#
# Roles: alice and bob own tables; mallory has no privileges; all three have CREATE on schema
# shared (a public schema as databases upgraded from PostgreSQL 14 have it).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineTest;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('attacks');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pkonline'\nmax_worker_processes = 16\npkonline.max_workers = 2\n"
	  . "max_prepared_transactions = 4\n");
$node->start;

sub su { return $node->safe_psql('postgres', $_[0]); }

sub as {
	my ($role, $sql, $db) = @_;
	return $node->safe_psql($db // 'postgres', $sql, extra_params => [ '-U', $role ]);
}

# The statement fails with this SQLSTATE; a boolean query turns true (test/t/PkonlineTest.pm).
sub refused { PkonlineTest::refused($node, @_); }

sub poll { return PkonlineTest::poll($node, @_); }

sub wait_job {
	my ($job) = @_;
	return su("CALL pkonline.wait($job, '60s', NULL)");
}

sub server_alive { return su('SELECT 1') eq '1'; }

sub superusers { return su("SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolsuper"); }

sub next_job { return su('SELECT COALESCE(max(id), 0) + 1 FROM pkonline.jobs'); }

# Each section of attacks runs on its own: one whose statements fail unexpectedly is one failed
# test, and the next section still runs (so every class is seen to fail, or to hold, on its own).
sub section {
	my ($name, $body) = @_;
	eval { $body->(); 1 } or fail("$name: the attack could not run to its end: $@");
}

my ($n, $holder, $jobs_before);

# Debug wait points (pkonline.debug_wait_points = on in the job's session): while a test holds
# the named point's advisory lock, the job's worker stops before it.
sub hold    { $holder->query_safe("SELECT pkonline.hold_wait_point('$_[0]')"); }
sub release { $holder->query_safe("SELECT pkonline.release_wait_point('$_[0]')"); }

su(q{
	CREATE EXTENSION pkonline;
	CREATE EXTENSION amcheck;
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE mallory LOGIN;
	CREATE ROLE carol LOGIN;
	GRANT alice TO carol;
	CREATE SCHEMA alice AUTHORIZATION alice;
	CREATE SCHEMA bob AUTHORIZATION bob;
	CREATE SCHEMA mallory AUTHORIZATION mallory;
	CREATE SCHEMA shared;
	GRANT USAGE, CREATE ON SCHEMA shared TO alice, bob, mallory;
});
my $supers = superusers();
my $members = su('SELECT count(*) FROM pg_auth_members');
is($supers, $node->safe_psql('postgres', 'SELECT current_user'), 'one superuser to begin with');

# --- 1. The C trigger functions: nobody may attach them; used anyway, they write nothing -------
section('1. The C trigger functions: nobody may attach them; used anyway, they write nothing', sub {

as('alice', q{
	CREATE TABLE alice.secret_ledger (a bigint NOT NULL, b bigint NOT NULL CHECK (b > 0));
	CREATE UNIQUE INDEX ON alice.secret_ledger (a);
	INSERT INTO alice.secret_ledger VALUES (1, 100);
});
my $victim = su("SELECT 'alice.secret_ledger'::regclass::oid");
as('mallory', 'CREATE TEMP SEQUENCE s; CREATE TABLE mallory.probe (id bigint, t text)');
for my $fn ('_copy_log', '_copy_fill', '_fill_nextval', '_sync_bigint') {
	for my $target ($victim, '1261') {
		refused('mallory',
			"CREATE TRIGGER t_${fn}_$target AFTER INSERT OR UPDATE OR DELETE ON mallory.probe FOR EACH ROW "
			  . "EXECUTE FUNCTION pkonline_internal.$fn('1', '$target')",
			'42501', "mallory attaches pkonline_internal.$fn to her table (target $target)");
	}
}
refused('mallory', "CREATE TEMP SEQUENCE s2; CREATE TEMP TABLE p2 (id bigint); "
	  . "SELECT format('CREATE TRIGGER t BEFORE INSERT ON p2 FOR EACH ROW EXECUTE FUNCTION pkonline_internal._fill_nextval(1, %s)', "
	  . "'s2'::regclass::oid) \\gexec",
	'42501', 'mallory attaches pkonline_internal._fill_nextval to a temp table');
is(su(q{SELECT count(*) FROM pg_proc p WHERE p.pronamespace IN ('pkonline'::regnamespace, 'pkonline_internal'::regnamespace)
	AND p.prorettype = 'trigger'::regtype AND has_function_privilege('public', p.oid, 'EXECUTE')}), '0',
	'no trigger function of pkonline is executable by PUBLIC');

# The second layer: a trigger made by a superuser (who may) with arguments naming another table,
# another table's log, a catalog or a column of the wrong type: each write is refused in C.
su(q{
	CREATE TABLE public.decoy (id bigint, t text);
	CREATE TABLE public.decoy_txt (id text);
	CREATE SEQUENCE public.decoy_seq;
});
my $seq = su("SELECT 'public.decoy_seq'::regclass::oid");
my %layer2 = (
	'_copy_log victim' =>
	  "CREATE TRIGGER x AFTER INSERT OR UPDATE OR DELETE ON public.decoy FOR EACH ROW EXECUTE FUNCTION pkonline_internal._copy_log('1', '$victim')",
	'_copy_log pg_auth_members' =>
	  "CREATE TRIGGER x AFTER INSERT OR UPDATE OR DELETE ON public.decoy FOR EACH ROW EXECUTE FUNCTION pkonline_internal._copy_log('1', '1261')",
	'_copy_fill' =>
	  "CREATE TRIGGER x BEFORE INSERT OR UPDATE ON public.decoy FOR EACH ROW EXECUTE FUNCTION pkonline_internal._copy_fill('1', '$seq')",
	'_fill_nextval' =>
	  "CREATE TRIGGER x BEFORE INSERT OR UPDATE ON public.decoy FOR EACH ROW EXECUTE FUNCTION pkonline_internal._fill_nextval('1', '$seq')",
	'_sync_bigint, no such job' =>
	  "CREATE TRIGGER x BEFORE INSERT OR UPDATE ON public.decoy FOR EACH ROW EXECUTE FUNCTION pkonline_internal._sync_bigint('1', '0')",
	'_fill_nextval on text' =>
	  "CREATE TRIGGER x BEFORE INSERT OR UPDATE ON public.decoy_txt FOR EACH ROW EXECUTE FUNCTION pkonline_internal._fill_nextval('1', '$seq')",
);
for my $what (sort keys %layer2) {
	my $tbl = $what =~ /text/ ? 'public.decoy_txt' : 'public.decoy';
	su("DROP TRIGGER IF EXISTS x ON $tbl; $layer2{$what}");
	for my $dml ("INSERT INTO $tbl VALUES (NULL)", "INSERT INTO $tbl (id) VALUES ('42')",
		"INSERT INTO $tbl (id) VALUES ('7'); UPDATE $tbl SET id = '16'") {
		refused($node->safe_psql('postgres', 'SELECT current_user'), "SET client_min_messages = error; $dml",
			$what =~ /text/ ? '42804' : '55000', "trigger $what not made by a job: $dml");
	}
	su("DROP TRIGGER x ON $tbl");
}
ok(server_alive(), 'the server is alive after every trigger attack');
is(su("SELECT count(*) || ' ' || string_agg(a || ':' || b, ',') FROM alice.secret_ledger"), '1 1:100',
	'alice\'s ledger still holds its one row');
is(su('SELECT count(*) FROM pg_auth_members'), $members, 'no row was written into pg_auth_members');
is(su('SELECT count(*) FROM public.decoy') . su('SELECT count(*) FROM public.decoy_seq WHERE is_called'), '00',
	'nothing was written by the refused triggers, no id drawn');
});

# --- 2. Copy-method helpers pre-created under the job's names are never adopted -----------------
# (Since 0.4 a helper's name ends in a tag from the job's secret (S3-6): the names mallory plants
# are the ones 0.3 used, and the job now goes on beside them instead of failing with 42P07.)
section("2. Copy-method helpers pre-created under the job's names are never adopted", sub {

as('alice', q{
	CREATE TABLE shared.orders (a int, b text);
	INSERT INTO shared.orders SELECT g, 'secret-' || g FROM generate_series(1, 1000) g;
	CREATE INDEX orders_a ON shared.orders (a);
	REVOKE ALL ON shared.orders FROM PUBLIC;
});
as('mallory', q{
	CREATE TABLE mallory.loot (who text, sess text, r text);
	GRANT USAGE ON SCHEMA mallory TO PUBLIC; GRANT INSERT ON mallory.loot TO PUBLIC;
	CREATE FUNCTION mallory.spy() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	  INSERT INTO mallory.loot VALUES (current_user, session_user, row_to_json(NEW)::text);
	  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
	    EXECUTE 'ALTER ROLE mallory SUPERUSER';
	  END IF;
	  RETURN NEW;
	END $$;
});
$n = next_job();
for my $j ($n .. $n + 3) {
	as('mallory', qq{
		CREATE TABLE shared.pkonline_${j}_copy (a int, b text, id bigint NOT NULL);
		CREATE UNIQUE INDEX pkonline_${j}_pk ON shared.pkonline_${j}_copy (id);
		INSERT INTO shared.pkonline_${j}_copy VALUES (666, 'row injected by mallory', 9999999);
		CREATE TRIGGER spy AFTER INSERT ON shared.pkonline_${j}_copy FOR EACH ROW EXECUTE FUNCTION mallory.spy();
		ALTER TABLE shared.pkonline_${j}_copy ENABLE ALWAYS TRIGGER spy;
		GRANT ALL ON shared.pkonline_${j}_copy TO PUBLIC;
	});
}
my $jc = as('alice', "SELECT pkonline.add_int_pk('shared.orders', method => 'copy')");
is(wait_job($jc), 'done', 'alice\'s copy job is done beside tables under its 0.3 helper names');
is(su('SELECT count(*) FROM mallory.loot'), '0', 'mallory\'s trigger read no row');
is(su("SELECT count(*) FROM shared.orders WHERE b LIKE 'row injected%'"), '0', 'no row injected');
is(su("SELECT count(*) || ' ' || count(DISTINCT b) || ' ' || count(DISTINCT id) FROM shared.orders"), '1000 1000 1000',
	'orders holds its 1000 rows, each with its id');
is(su("SELECT count(*) FROM shared.pkonline_${jc}_copy"), '1', 'mallory\'s table is left as it was (not dropped by the job)');
# the superuser runs the documented command on a squatted name
as('alice', q{CREATE TABLE shared.payroll AS SELECT g AS a, 'salary-' || g AS b FROM generate_series(1, 500) g});
su('ALTER TABLE shared.payroll OWNER TO bob');
my $jp = su("SELECT pkonline.add_int_pk('shared.payroll', method => 'copy')");
is(wait_job($jp), 'done', 'the superuser\'s copy job is done beside the planted names');
is(su('SELECT count(*) FROM mallory.loot'), '0', 'mallory\'s trigger read no row of the payroll');
is(superusers(), $supers, 'mallory did not become superuser');

# the index variant: a twin index name taken on mallory's own table
as('alice', q{CREATE TABLE shared.acct AS SELECT g AS a FROM generate_series(1, 300) g;
	CREATE INDEX acct_a ON shared.acct (a)});
my $ix = su("SELECT 'shared.acct_a'::regclass::oid");
$n = next_job();
as('mallory', "CREATE TABLE shared.m (a int); INSERT INTO shared.m SELECT -g FROM generate_series(1, 300) g;"
	  . join('', map { "CREATE INDEX pkonline_${_}_ix$ix ON shared.m (a);" } ($n .. $n + 2)));
my $ja = as('alice', "SELECT pkonline.add_int_pk('shared.acct', method => 'copy')");
is(wait_job($ja), 'done', 'a copy job beside indexes under its twin index\'s 0.3 name is done');
is(su("SET enable_seqscan = off; SELECT count(*) FROM shared.acct WHERE a = 42"), '1', 'alice\'s index finds her row');
is(su("SELECT bt_index_check('shared.acct_a', true)"), '', 'alice\'s index is intact');

# a twin dropped and replaced by mallory mid-job is not used (checked by OID and owner)
as('mallory', q{DO $$DECLARE r record; BEGIN
	FOR r IN SELECT c.oid::regclass AS t FROM pg_class c WHERE c.relname LIKE 'pkonline%' AND c.relkind = 'r'
	  AND c.relowner = 'mallory'::regrole LOOP EXECUTE 'DROP TABLE ' || r.t; END LOOP; END$$});
as('alice', q{CREATE TABLE shared.ledger2 AS SELECT g AS a, 'row-' || g AS b FROM generate_series(1, 3000) g});
su("ALTER ROLE alice SET pkonline.debug_wait_points = on");
$holder = $node->background_psql('postgres');
hold('swap');
my $jl = as('alice', "SELECT pkonline.add_int_pk('shared.ledger2', method => 'copy')");
ok(poll("SELECT step = 'swap' FROM pkonline.status WHERE job = $jl"), 'the copy job waits before its swap')
  or diag(su("SELECT state || ' ' || step || ' ' || coalesce(last_error, '') || ' ' || worker_alive FROM pkonline.status WHERE job = $jl"));
# (the names as the catalog shows them to anyone once the job has made them)
my $copy = su("SELECT relname FROM pg_class WHERE relname LIKE 'pkonline\\_${jl}\\_copy%' AND relkind = 'r'");
my $pk = su("SELECT relname FROM pg_class WHERE relname LIKE 'pkonline\\_${jl}\\_pk%' AND relkind = 'i'");
as('alice', "DROP TABLE shared.$copy");
as('mallory', "CREATE TABLE shared.$copy (a int, b text, id bigint NOT NULL); "
	  . "CREATE UNIQUE INDEX $pk ON shared.$copy (id); "
	  . "INSERT INTO shared.$copy VALUES (666, 'injected', 1)");
release('swap');
is(wait_job($jl), 'failed', 'the job whose twin was replaced fails before its swap');
is(su("SELECT count(*) FROM shared.ledger2 WHERE b = 'injected'"), '0', 'nothing of mallory\'s table reached alice\'s');
is(su("SELECT count(*) FROM shared.$copy"), '1', 'mallory\'s table was not used');
su("SELECT pkonline.cancel($jl)");
is(wait_job($jl), 'cancelled', 'cancelled');
su("ALTER ROLE alice RESET pkonline.debug_wait_points");

# in-place helpers under the names 0.3 gave them: the job goes on beside them (it failed with
# 42P07 before 0.4: a denial of service), and never drops what mallory made
as('alice', 'CREATE TABLE shared.inpl AS SELECT generate_series(1, 300) a');
$n = next_job();
as('mallory', "CREATE SEQUENCE shared.pkonline_${n}_seq; "
	  . "CREATE FUNCTION shared.pkonline_${n}_fill() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'");
my $ji = as('alice', "SELECT pkonline.add_int_pk('shared.inpl')");
is(wait_job($ji), 'done', 'an in-place job beside a sequence under its 0.3 name is done');
is(su("SELECT count(*) || ' ' || count(DISTINCT id) FROM shared.inpl"), '300 300', 'every row has its own id');
as('alice', 'ALTER TABLE shared.inpl DROP COLUMN id');
$n = next_job();
as('mallory', "CREATE FUNCTION shared.pkonline_${n}_fill() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'");
my $ji2 = as('alice', "SELECT pkonline.add_int_pk('shared.inpl')");
is(wait_job($ji2), 'done', 'an in-place job beside a function under its fill trigger\'s name: done');
is(su("SELECT count(*) FROM pg_proc WHERE proname LIKE 'pkonline\\_%\\_fill' AND proowner = 'mallory'::regrole") . ' '
	  . su("SELECT count(*) FROM pg_class WHERE relname = 'pkonline_${ji}_seq' AND relowner = 'mallory'::regrole"),
	'2 1', 'mallory\'s sequence and functions are left as they were');
});

# --- 4. A schema named pkonline that the extension did not create ----------------------------
section('4. A schema named pkonline that the extension did not create', sub {

su(q{CREATE DATABASE d2 OWNER mallory; CREATE DATABASE d3});
as('mallory', 'CREATE SCHEMA pkonline', 'd2');
refused($node->safe_psql('postgres', 'SELECT current_user'), 'CREATE EXTENSION pkonline', '42501',
	'CREATE EXTENSION in a schema pkonline owned by mallory', 'd2');
is($node->safe_psql('d2', "SELECT count(*) FROM pg_extension WHERE extname = 'pkonline'"), '0', 'not installed in d2');
$node->safe_psql('d3', 'CREATE SCHEMA pkonline; GRANT CREATE ON SCHEMA pkonline TO mallory');
refused($node->safe_psql('postgres', 'SELECT current_user'), 'CREATE EXTENSION pkonline', '42501',
	'CREATE EXTENSION in a superuser\'s schema pkonline where mallory may create', 'd3');
$node->safe_psql('d3', 'DROP SCHEMA pkonline; CREATE EXTENSION pkonline');
is($node->safe_psql('d3', "SELECT nspowner::regrole::text = current_user FROM pg_namespace WHERE nspname = 'pkonline'"), 't',
	'CREATE EXTENSION creates its own schema, owned by the installing superuser');
});

# --- R3, R4, R6: refused up front ------------------------------------------------------------
section('R3, R4, R6: refused up front', sub {

as('alice', q{
	CREATE TABLE alice.par (a int); CREATE TABLE alice.kid (b int) INHERITS (alice.par);
	INSERT INTO alice.par SELECT generate_series(1, 10); INSERT INTO alice.kid SELECT g, g FROM generate_series(1, 20) g;
	CREATE TABLE alice.rls (a int); ALTER TABLE alice.rls ENABLE ROW LEVEL SECURITY; ALTER TABLE alice.rls FORCE ROW LEVEL SECURITY;
});
$jobs_before = su('SELECT count(*) FROM pkonline.jobs');
refused('alice', "SELECT pkonline.add_int_pk('alice.par')", '0A000', 'R3: in-place add_int_pk on an inheritance parent');
refused('alice', "SELECT pkonline.add_int_pk('alice.kid')", '0A000', 'R3: in-place add_int_pk on an inheritance child');
refused('alice', "SELECT pkonline.add_int_pk('alice.rls')", '0A000', 'R4: in-place add_int_pk with FORCE ROW LEVEL SECURITY');
refused($node->safe_psql('postgres', 'SELECT current_user'), "SELECT pkonline.add_column('pkonline.events', 'x', 'int', '1')",
	'42501', 'R6: add_column on an extension\'s own table');
refused($node->safe_psql('postgres', 'SELECT current_user'), "SELECT pkonline.set_primary_key('pkonline.job_steps', '{job_id,step_no,step}')",
	'42501', 'R6: set_primary_key on an extension\'s own table');
is(su('SELECT count(*) FROM pkonline.jobs'), $jobs_before, 'no job was created by the refused calls');
is(su(q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'alice.kid'::regclass AND attnum > 0}),
	'a,b', 'the inheritance child is unchanged');
});

# --- 3. No replica mode around code a user wrote ------------------------------------------------
section('3. No replica mode around code a user wrote', sub {

as('bob', q{
	CREATE TABLE bob.parent (id int PRIMARY KEY); INSERT INTO bob.parent VALUES (1);
	CREATE TABLE bob.child (pid int NOT NULL REFERENCES bob.parent, note text);
	INSERT INTO bob.child VALUES (1, 'legit child of parent 1');
	CREATE TABLE bob.audit (who text, what text);
	CREATE FUNCTION bob.audit_f() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
	BEGIN INSERT INTO bob.audit VALUES (current_user, 'child insert ' || NEW.pid);
	  IF NEW.note LIKE '%forbidden%' THEN RAISE EXCEPTION 'bob''s trigger refuses this'; END IF;
	  RETURN NEW; END $$;
	CREATE TRIGGER audit BEFORE INSERT ON bob.child FOR EACH ROW EXECUTE FUNCTION bob.audit_f();
	GRANT USAGE ON SCHEMA bob TO alice; GRANT INSERT ON bob.child TO alice;
	GRANT SELECT, DELETE ON bob.parent TO alice;
});
refused('alice', "INSERT INTO bob.child VALUES (999, 'orphan')", '23503', 'control: alice inserts an orphan directly');
as('alice', q{
	CREATE TABLE alice.t (a int); INSERT INTO alice.t SELECT generate_series(1, 20);
	CREATE FUNCTION alice.sneak(a int) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
	BEGIN
	  INSERT INTO bob.child VALUES (100000 + a, 'orphan + forbidden, inserted during backfill');
	  IF a = 20 THEN DELETE FROM bob.parent WHERE id = 1; END IF;
	  RETURN a;
	END $$;
	-- the table's own CHECK calls code with side effects too (checked on every row the backfill updates)
	CREATE TABLE alice.t2 (a int); INSERT INTO alice.t2 SELECT -g FROM generate_series(1, 5) g;
	ALTER TABLE alice.t2 ADD CONSTRAINT sneaky CHECK (alice.sneak(a) IS NOT NULL) NOT VALID;
});
my $jf = as('alice', "SELECT pkonline.add_column('alice.t', 'x', 'int', 'alice.sneak(a)', not_null => true)");
is(wait_job($jf), 'failed', 'a fill that writes orphans into bob\'s table fails the job');
like(su("SELECT last_sqlstate FROM pkonline.jobs WHERE id = $jf"), qr/^(23503|P0001)$/,
	'failed on bob\'s trigger (P0001) or foreign key (23503)');
is(su('SELECT count(*) FROM bob.child'), '1', 'bob.child holds only its legitimate row');
is(su('SELECT count(*) FROM bob.parent'), '1', 'bob.parent still holds its row');
su("SELECT pkonline.cancel($jf)");
is(wait_job($jf), 'cancelled', 'the fill job cancelled');
my $jk = as('alice', "SELECT pkonline.add_int_pk('alice.t2')");
is(wait_job($jk), 'failed', 'a CHECK that writes orphans into bob\'s table fails the job');
is(su('SELECT count(*) FROM bob.child'), '1', 'bob.child still holds only its legitimate row');
su("SELECT pkonline.cancel($jk)");
is(wait_job($jk), 'cancelled', 'the CHECK job cancelled');
# where no user code can run, the table's own triggers stay quiet as before
as('alice', q{
	CREATE TABLE alice.quiet (a int); INSERT INTO alice.quiet SELECT generate_series(1, 500);
	CREATE TABLE alice.fired (n int DEFAULT 1);
	CREATE FUNCTION alice.count_f() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN INSERT INTO alice.fired DEFAULT VALUES; RETURN NEW; END $$;
	CREATE TRIGGER c BEFORE UPDATE ON alice.quiet FOR EACH ROW EXECUTE FUNCTION alice.count_f();
});
my $jq = as('alice', "SELECT pkonline.add_int_pk('alice.quiet')");
is(wait_job($jq), 'done', 'add_int_pk on a table without user code in its batches: done');
is(su('SELECT count(*) FROM alice.fired'), '0', 'its own triggers did not fire for the backfill (replica mode, safe there)');
as('alice', q{CREATE FUNCTION alice.pos(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 0';
	CREATE TABLE alice.loud (a int CHECK (alice.pos(a))); INSERT INTO alice.loud SELECT generate_series(1, 300);
	CREATE TRIGGER c BEFORE UPDATE ON alice.loud FOR EACH ROW EXECUTE FUNCTION alice.count_f()});
my $jl2 = as('alice', "SELECT pkonline.add_int_pk('alice.loud')");
is(wait_job($jl2), 'done', 'add_int_pk on a table whose CHECK calls a user function: done');
cmp_ok(su('SELECT count(*) FROM alice.fired'), '>=', 300, 'there its triggers fired for the backfill (no replica mode)');
like(su("SELECT string_agg(message, ' ') FROM pkonline.events WHERE job_id = $jl2"), qr/own triggers fire/,
	'an event says why the triggers fired');
});

# --- 5. A superuser's job runs as the table's owner; the owner does not choose when it runs ----
section("5. A superuser's job runs as the table's owner; the owner does not choose when it runs", sub {

as('alice', q{
	CREATE TABLE alice.orders AS SELECT generate_series(1, 1000) a;
	CREATE TABLE alice.trap_log (who text);
	CREATE FUNCTION alice.trap() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	  INSERT INTO alice.trap_log VALUES (current_user || '/' || session_user);
	  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
	    EXECUTE 'ALTER ROLE alice SUPERUSER';
	  END IF;
	  RETURN NEW;
	END $$;
	CREATE TRIGGER trap BEFORE UPDATE ON alice.orders FOR EACH ROW EXECUTE FUNCTION alice.trap();
	ALTER TABLE alice.orders ENABLE ALWAYS TRIGGER trap;
});
my $js = su("SELECT pkonline.add_column('alice.orders', 'a2', 'int', 'a * 2', not_null => true)");
is(wait_job($js), 'done', 'the superuser\'s add_column on alice\'s trapped table: done');
is(su("SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'"), 'f', 'alice did not become superuser');
is(su('SELECT string_agg(DISTINCT who, \',\') FROM alice.trap_log'), 'alice/alice',
	'alice\'s trigger ran as alice only (current_user and session_user)');
is(su("SELECT owner || ' ' || run_as FROM pkonline.jobs WHERE id = $js"), $node->safe_psql('postgres', 'SELECT current_user') . ' alice',
	'the job belongs to the superuser and runs as the table\'s owner');
my $js2 = su("SELECT pkonline.add_int_pk('alice.orders', start => false)");
refused('alice', "SELECT pkonline.start($js2)", '42501', 'alice starts the superuser\'s job on her table');
refused('alice', "SELECT pkonline.resume($js2)", '42501', 'alice resumes the superuser\'s job on her table');
is(su("SELECT state FROM pkonline.jobs WHERE id = $js2"), 'created', 'the superuser\'s job is still not started');
is(as('alice', "SELECT pkonline.cancel($js2)"), 'cancelled', 'alice may cancel a job on her own table');
# the table changes hands before the job runs: it never works as the new owner
as('alice', 'CREATE TABLE alice.oc AS SELECT generate_series(1, 300) a');
my $jo = as('alice', "SELECT pkonline.add_int_pk('alice.oc', start => false)");
su('ALTER TABLE alice.oc OWNER TO bob');
is(as('alice', "SELECT pkonline.start($jo)"), 'queued', 'alice starts her job on a table now bob\'s');
is(wait_job($jo), 'failed', 'the job fails: the table changed owner');
like(su("SELECT last_sqlstate || ' ' || last_error || ' ' || last_hint FROM pkonline.jobs WHERE id = $jo"),
	qr/^42501 table alice.oc changed owner .*OWNER TO alice/, 'it says so, and how to go on');
is(su(q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'alice.oc'::regclass AND attnum > 0}),
	'a', 'bob\'s table is unchanged');
su('ALTER TABLE alice.oc OWNER TO alice');
is(as('alice', "SELECT pkonline.resume($jo)"), 'queued', 'given back, the job resumes');
is(wait_job($jo), 'done', 'and is done');
});

# --- R1, R2: the login role may go; members and superusers get a working job ---------------------
section('R1, R2: the login role may go; members and superusers get a working job', sub {

as('alice', 'CREATE TABLE alice.d1 AS SELECT generate_series(1, 500) a');
my $jd = as('carol', "SET ROLE alice; SELECT pkonline.add_int_pk('alice.d1', start => false)");
su('DROP ROLE carol');
is(as('alice', "SELECT pkonline.start($jd)"), 'queued', 'R1: the job of a dropped login role starts');
is(wait_job($jd), 'done', 'R1: and finishes');
as('alice', 'CREATE TABLE alice.d2 AS SELECT generate_series(1, 500) a');
my $jn = as('alice', "SELECT pkonline.add_int_pk('alice.d2', start => false)");
su('ALTER ROLE alice NOLOGIN');
is(su("SELECT pkonline.start($jn)"), 'queued', 'R1: a NOLOGIN owner\'s job starts');
is(wait_job($jn), 'done', 'R1: and finishes');
su('ALTER ROLE alice LOGIN; CREATE ROLE carol2 LOGIN IN ROLE alice');
as('alice', 'CREATE TABLE alice.m1 AS SELECT generate_series(1, 500) a; CREATE TABLE alice.m2 AS SELECT generate_series(1, 500) a');
my $jm = as('carol2', "SELECT pkonline.add_int_pk('alice.m1')");
is(wait_job($jm), 'done', 'R2: a member of the owning role runs add_int_pk: done');
my $jsu = su("SELECT pkonline.add_int_pk('alice.m2')");
is(wait_job($jsu), 'done', 'R2: a superuser runs add_int_pk on alice\'s table: done');
is(su("SELECT string_agg(DISTINCT c.relowner::regrole::text, ',') FROM pg_class c WHERE c.relname IN ('m1_id_seq', 'm2_id_seq')"),
	'alice', 'R2: the identity sequences belong to alice');
});

# --- R8: the add_column fill function's search_path is pinned ------------------------------------
section("R8: the add_column fill function's search_path is pinned", sub {

as('alice', 'CREATE TABLE alice.f1 AS SELECT generate_series(1, 500) a');
su("ALTER ROLE alice SET pkonline.debug_wait_points = on");
hold('backfill_batch');
my $jr8 = as('alice', "SELECT pkonline.add_column('alice.f1', 'b', 'int', 'a + 1', not_null => true)");
su("ALTER ROLE alice RESET pkonline.debug_wait_points");
ok(poll("SELECT step = 'backfill' FROM pkonline.status WHERE job = $jr8"), 'R8: the job waits in its backfill');
is(su("SELECT array_to_string(proconfig, ';') FROM pg_proc WHERE proname LIKE 'pkonline\\_${jr8}\\_fill%'"),
	'search_path=pg_catalog, pg_temp', 'R8: the fill trigger function has its search_path pinned');
release('backfill_batch');
is(wait_job($jr8), 'done', 'R8: done');
});

# --- 6. Worker slots and job claims ----------------------------------------------------------------
section('6. Worker slots and job claims', sub {

as('alice', 'CREATE TABLE alice.s1 AS SELECT generate_series(1, 100) a');
as('bob', 'CREATE TABLE bob.b1 AS SELECT generate_series(1, 500) a');
my $hog = $node->background_psql('postgres', extra_params => [ '-U', 'alice' ]);
$hog->query_safe(q{SET client_min_messages = warning});
$hog->query_safe(q{BEGIN});
$hog->query_safe(q{DO $$ BEGIN FOR i IN 1..30 LOOP
	BEGIN PERFORM pkonline.add_int_pk('alice.s1'); RAISE EXCEPTION 'back to the savepoint';
	EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$});
usleep(500_000);
is(su("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pkonline worker'"), '0',
	'6a: thirty rolled-back calls in an open transaction start no worker');
my $jb = as('bob', "SELECT pkonline.add_int_pk('bob.b1')");
is(wait_job($jb), 'done', '6a: meanwhile bob\'s job runs');
$hog->query_safe('ROLLBACK');
$hog->quit;

my $squat = $node->background_psql('postgres', extra_params => [ '-U', 'mallory' ]);
$squat->query_safe('SELECT pg_advisory_lock(1886089070, g) FROM generate_series(1, 200) g');
$squat->query_safe('SELECT pg_advisory_lock_shared(1886089070, g) FROM generate_series(1, 200) g');
as('alice', 'CREATE TABLE alice.c1 AS SELECT generate_series(1, 3000) a');
su("ALTER ROLE alice SET pkonline.debug_wait_points = on");
hold('backfill_batch');
my $jx = as('alice', "SELECT pkonline.add_int_pk('alice.c1')");
ok(poll("SELECT worker_alive AND step = 'backfill' FROM pkonline.status WHERE job = $jx"),
	'6b: alice\'s job runs although mallory holds every advisory lock of its old key');
is(as('alice', "SELECT pkonline.pause($jx)"), 'pausing', '6b: alice pauses her job');
is(wait_job($jx), 'paused', '6b: paused');
is($squat->query_safe('SELECT 42'), '42', '6b: mallory\'s session was not signalled by alice\'s pause');
release('backfill_batch');
su("ALTER ROLE alice RESET pkonline.debug_wait_points");
is(as('alice', "SELECT pkonline.resume($jx)"), 'queued', '6b: resumed');
is(wait_job($jx), 'done', '6b: done');
$squat->quit;
});

# --- 6c. wait() says why a queued job has no worker -----------------------------------------------
section('6c. wait() says why a queued job has no worker', sub {
	as('alice', 'CREATE TABLE alice.w1 AS SELECT generate_series(1, 3000) a; '
		  . 'CREATE TABLE alice.w2 AS SELECT generate_series(1, 3000) a; '
		  . 'CREATE TABLE alice.w3 AS SELECT generate_series(1, 300) a');
	su("ALTER ROLE alice SET pkonline.debug_wait_points = on");
	hold('backfill_batch');
	my @running = map { as('alice', "SELECT pkonline.add_int_pk('alice.$_')") } qw(w1 w2);
	ok(poll("SELECT count(*) = 2 FROM pkonline.status WHERE job IN ($running[0], $running[1]) AND worker_alive"),
		'6c: two jobs run (pkonline.max_workers = 2), held at a wait point');
	my $queued = as('alice', "SELECT pkonline.add_int_pk('alice.w3')");
	su("ALTER ROLE alice RESET pkonline.debug_wait_points");
	my ($ret, $out, $err) = $node->psql('postgres', "CALL pkonline.wait($queued, '7s', NULL)",
		extra_params => [ '-U', 'alice' ]);
	like($err, qr/WARNING:  pkonline job $queued is queued and no worker has taken it for 5 s/,
		'6c: wait() warns that the queued job has no worker')
	  or diag($err);
	like($err, qr/max_workers/, '6c: and says why it may be waiting');
	release('backfill_batch');
	is(wait_job($_), 'done', "6c: job $_ done") for (@running, $queued);
});

# --- R5: set_primary_key whose foreign keys the job could not move is refused up front ----------
section('R5: set_primary_key whose foreign keys the job could not move is refused up front', sub {

as('alice', q{CREATE TABLE alice.acc (a int PRIMARY KEY, b int NOT NULL UNIQUE); INSERT INTO alice.acc SELECT g, g FROM generate_series(1, 100) g;
	GRANT USAGE ON SCHEMA alice TO bob; GRANT REFERENCES ON alice.acc TO bob});
as('bob', 'CREATE TABLE bob.ref (a int REFERENCES alice.acc)');
$jobs_before = su('SELECT count(*) FROM pkonline.jobs');
refused('alice', "SELECT pkonline.set_primary_key('alice.acc', '{b}')", '42501',
	'R5: set_primary_key when bob\'s foreign key references the old key');
is(su('SELECT count(*) FROM pkonline.jobs'), $jobs_before, 'R5: no job created');
});

# --- R10: helpers left by an earlier installation do not collide with new jobs' names ----------
section("R10: helpers left by an earlier installation do not collide with new jobs' names", sub {

$node->safe_psql('d3', q{DROP EXTENSION pkonline; CREATE SEQUENCE public.pkonline_1_seq; CREATE SEQUENCE public.pkonline_7_seq;
	CREATE TABLE public.t10 AS SELECT generate_series(1, 200) a; CREATE EXTENSION pkonline});
my $j10 = $node->safe_psql('d3', "SELECT pkonline.add_int_pk('public.t10')");
is($j10, '8', 'R10: job ids go on above the leftovers\' (pkonline_7_seq)');
is($node->safe_psql('d3', "CALL pkonline.wait($j10, '60s', NULL)"), 'done', 'R10: the new job is done');
});

# --- R11: work that ends its own session; workers lost again and again -----------------------
section('R11: work that ends its own session; workers lost again and again', sub {

as('alice', 'CREATE TABLE alice.k1 AS SELECT generate_series(1, 100) a');
my $j11 = as('alice', "SELECT pkonline.add_column('alice.k1', 'k', 'boolean', 'pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid())')");
is(wait_job($j11), 'failed', 'R11: a fill that terminates its own worker fails the job');
is(su("SELECT last_sqlstate FROM pkonline.jobs WHERE id = $j11"), '42501', 'R11: with 42501 (the worker is not the job owner\'s session to end)');
is(as('alice', "SELECT pkonline.cancel($j11)"), 'cancelling', 'R11: cancel');
is(wait_job($j11), 'cancelled', 'R11: cancelled, the table as it was');
# a worker lost three times in a row at the same point: the job fails instead of looping
as('alice', 'CREATE TABLE alice.k2 AS SELECT generate_series(1, 3000) a');
su("ALTER ROLE alice SET pkonline.debug_wait_points = on");
hold('backfill_batch');
my $jk2 = as('alice', "SELECT pkonline.add_int_pk('alice.k2')");
su("ALTER ROLE alice RESET pkonline.debug_wait_points");
for my $try (1 .. 3) {
	ok(poll("SELECT worker_alive AND step = 'backfill' FROM pkonline.status WHERE job = $jk2"), "R11: worker $try waits in the backfill");
	su("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pkonline job $jk2'");
	ok(poll("SELECT NOT worker_alive FROM pkonline.status WHERE job = $jk2"), "R11: worker $try lost");
	su('SELECT pkonline.run_pending()');
}
ok(poll("SELECT state = 'failed' FROM pkonline.jobs WHERE id = $jk2"), 'R11: the third loss at the same point fails the job');
like(su("SELECT last_sqlstate || ' ' || last_error FROM pkonline.jobs WHERE id = $jk2"), qr/^57P01 .*lost 3 times/, 'R11: and says why');
is(su("SELECT count(*) FROM pkonline.events WHERE job_id = $jk2 AND kind = 'worker_lost'"), '2', 'R11: the two earlier losses are events');
release('backfill_batch');
is(su("SELECT pkonline.resume($jk2)"), 'queued', 'R11: resumed by hand');
is(wait_job($jk2), 'done', 'R11: and done');
});

# --- R9: the worker's wal_compression is not the job owner's to choose -------------------------
section("Second review: holes in the first fix", sub {
	# a. the table owner's code changes the worker's search_path; pkonline's own bookkeeping (run
	#    as the extension's owner) must not pick up her operators
	as('alice', q{
		CREATE TABLE alice.calls (who text);
		GRANT INSERT ON alice.calls TO PUBLIC;
		CREATE FUNCTION alice.plus(a bigint, b bigint) RETURNS bigint LANGUAGE plpgsql AS $$BEGIN
		  INSERT INTO alice.calls VALUES (current_user);
		  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN EXECUTE 'ALTER ROLE alice SUPERUSER'; END IF;
		  RETURN a OPERATOR(pg_catalog.+) b; END$$;
		CREATE OPERATOR alice.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = alice.plus);
		CREATE FUNCTION alice.eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$BEGIN
		  INSERT INTO alice.calls VALUES (current_user);
		  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN EXECUTE 'ALTER ROLE alice SUPERUSER'; END IF;
		  RETURN a OPERATOR(pg_catalog.=) b; END$$;
		CREATE OPERATOR alice.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = alice.eq);
		CREATE FUNCTION alice.f(a int) RETURNS int LANGUAGE sql AS
		  $$SELECT pg_catalog.set_config('search_path', 'alice, pg_catalog', false); SELECT a$$;
		CREATE TABLE alice.sp AS SELECT generate_series(1, 2000) a;
	});
	my $ja2 = as('alice', "SET pkonline.batch_size = 2; SELECT pkonline.add_column('alice.sp', 'x', 'int', 'alice.f(a)', not_null => true)");
	is(wait_job($ja2), 'done', 'a: the job whose fill changes search_path is done');
	is(su("SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'"), 'f', 'a: alice did not become superuser');
	is(su("SELECT count(*) FROM alice.calls c JOIN pg_roles r ON r.rolname = c.who WHERE r.rolsuper"), '0',
		'a: her operators never ran as a superuser');
	is(su('SELECT count(*) FROM alice.sp WHERE x IS DISTINCT FROM a'), '0', 'a: every row filled');

	# b. a CHECK that runs SQL text through a built-in function: no replica mode there
	as('alice', q{CREATE TABLE alice.qx (a int); INSERT INTO alice.qx SELECT generate_series(1, 20);
		ALTER TABLE alice.qx ADD CONSTRAINT q CHECK (pg_catalog.query_to_xml('SELECT alice.sneak(' || a || ')', false, false, '') IS NOT NULL) NOT VALID});
	my $jq2 = as('alice', "SELECT pkonline.add_int_pk('alice.qx')");
	is(wait_job($jq2), 'failed', 'b: the CHECK\'s orphans are refused by bob\'s checks: the job fails');
	is(su('SELECT count(*) FROM bob.child'), '1', 'b: bob.child holds only its legitimate row');
	su("SELECT pkonline.cancel($jq2)");
	is(wait_job($jq2), 'cancelled', 'b: cancelled');

	# c. a fill whose user code runs through a composite type's input (a domain field)
	as('alice', q{CREATE DOMAIN alice.d AS int CHECK (alice.sneak(VALUE) IS NOT NULL);
		CREATE TYPE alice.c AS (v alice.d);
		CREATE TABLE alice.t3 (a int); INSERT INTO alice.t3 SELECT generate_series(1, 20)});
	my $jc2 = as('alice', q{SELECT pkonline.add_column('alice.t3', 'x', 'int', $f$((('(' || a || ')')::alice.c).v)$f$, not_null => true)});
	is(wait_job($jc2), 'failed', 'c: the domain\'s orphans are refused by bob\'s checks: the job fails');
	is(su('SELECT count(*) FROM bob.child'), '1', 'c: bob.child holds only its legitimate row');
	su("SELECT pkonline.cancel($jc2)");
	is(wait_job($jc2), 'cancelled', 'c: cancelled');

	# d. the table changes hands mid-job: the new owner's code never runs with the old owner's rights
	su(q{CREATE TABLE public.handover AS SELECT generate_series(1, 3000) a});
	hold('backfill_batch');
	my $jh = su("SET pkonline.debug_wait_points = on; SELECT pkonline.add_int_pk('public.handover')");
	ok(poll("SELECT step = 'backfill' AND worker_alive FROM pkonline.status WHERE job = $jh"), 'd: the superuser\'s job waits in its backfill');
	su('ALTER TABLE public.handover OWNER TO alice');
	as('alice', q{CREATE TRIGGER trap BEFORE UPDATE ON public.handover FOR EACH ROW EXECUTE FUNCTION alice.trap();
		ALTER TABLE public.handover ENABLE ALWAYS TRIGGER trap});
	release('backfill_batch');
	is(wait_job($jh), 'failed', 'd: the job fails once the table has changed hands');
	like(su("SELECT last_error FROM pkonline.jobs WHERE id = $jh"), qr/changed owner/, 'd: and says so');
	is(su("SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'"), 'f', 'd: alice did not become superuser');
	su('ALTER TABLE public.handover OWNER TO ' . $node->safe_psql('postgres', 'SELECT current_user'));
	su("SELECT pkonline.cancel($jh)");
	is(wait_job($jh), 'cancelled', 'd: given back and cancelled');

	# e. a member who lost the membership can no longer have the job work as the table's owner
	as('alice', 'CREATE TABLE alice.mem AS SELECT generate_series(1, 200) a');
	my $je2 = as('carol2', "SELECT pkonline.add_int_pk('alice.mem', start => false)");
	su('REVOKE alice FROM carol2');
	is(as('carol2', "SELECT pkonline.start($je2)"), 'queued', 'e: carol2 starts the job she created');
	is(wait_job($je2), 'failed', 'e: it fails: carol2 is no longer a member of alice');
	like(su("SELECT last_error FROM pkonline.jobs WHERE id = $je2"), qr/no longer a member/, 'e: and says so');
	is(su(q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'alice.mem'::regclass AND attnum > 0}),
		'a', 'e: the table is unchanged');
	is(as('alice', "SELECT pkonline.cancel($je2)"), 'cancelled', 'e: the table\'s owner cancels it');

	# f. code the job runs releases its claim: the job still ends right, with one worker at a time
	as('alice', q{CREATE FUNCTION alice.unlock(a int) RETURNS int LANGUAGE plpgsql AS
		$$BEGIN PERFORM pg_catalog.pg_advisory_unlock_all(); RETURN a; END$$;
		CREATE TABLE alice.ul AS SELECT generate_series(1, 3000) a});
	my $ju = as('alice', "SET pkonline.batch_size = 2; SELECT pkonline.add_column('alice.ul', 'x', 'int', 'alice.unlock(a)', not_null => true)");
	for (1 .. 10) { su('SELECT pkonline.run_pending()'); usleep(100_000); }
	is(wait_job($ju), 'done', 'f: the job whose fill releases every session lock is done');
	is(su('SELECT count(*) FROM alice.ul WHERE x IS DISTINCT FROM a'), '0', 'f: every row filled');
});

# --- 7. Events tell the job's creator only what it may see --------------------------------------
section("7. Events tell the job's creator only what it may see", sub {
	as('alice', 'CREATE TABLE alice.ev AS SELECT g AS a, repeat(\'x\', 200) AS b FROM generate_series(1, 20000) g');
	my $old = $node->background_psql('postgres', extra_params => [ '-U', 'bob' ]);
	$old->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	$old->query_safe('SELECT count(*) FROM pg_class');
	my $bob_pid = $old->query_safe('SELECT pg_backend_pid()');
	usleep(1_500_000);
	my $jv = as('alice', 'SET pkonline.vacuum_every = 1; SET pkonline.batch_size = 20; '
		  . "SELECT pkonline.add_int_pk('alice.ev')");
	ok(poll("SELECT EXISTS (SELECT 1 FROM pkonline.events WHERE job_id = $jv AND kind = 'horizon')", 60),
		'7: the backfill met bob\'s old snapshot');
	$old->query_safe('ROLLBACK');    # (the job's concurrent index build would wait for it)
	is(wait_job($jv), 'done', '7: the job is done');
	my $events = as('alice', "SELECT string_agg(message || ' ' || coalesce(detail::text, ''), ' | ') FROM pkonline.events "
		  . "WHERE job_id = $jv AND kind = 'horizon'");
	like($events, qr/may not see/, '7: an event says an old snapshot holds the table back');
	unlike($events, qr/$bob_pid|idle in transaction|bob|\d+ s\b/, '7: it names neither bob\'s session, its state nor its age');
	like(slurp_file($node->logfile), qr/pkonline job $jv: pid $bob_pid \(bob, idle in transaction\)/,
		'7: the server log has the details');
	$old->quit;
});

section("R9: the worker's wal_compression is not the job owner's to choose", sub {

refused('alice', "SET pkonline.wal_compression = 'off'", '42501', 'R9: alice sets pkonline.wal_compression');
});

# --- check(): the review of pkonline.check() (issue 14) -------------------------------------------
section('check(): no code of the table\'s owner runs for the caller, nothing crashes it', sub {

# C1: a superuser checks alice's table, whose partial index predicate would make alice superuser
# if it ran as a superuser (planning a query on the table folds it): the sample read is no query.
as('alice', q{
	CREATE TABLE alice.trap (a int); INSERT INTO alice.trap SELECT generate_series(1, 3000);
	CREATE FUNCTION alice.trapg() RETURNS void LANGUAGE plpgsql VOLATILE AS $$ BEGIN
	  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
	    EXECUTE 'ALTER ROLE alice SUPERUSER';
	  END IF; END $$;
	CREATE FUNCTION alice.trapf() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN
	  PERFORM alice.trapg(); RETURN true; END $$;
	CREATE INDEX trap_a ON alice.trap (a) WHERE alice.trapf();
});
for my $op ('add_int_pk', 'convert_pk_to_bigint')
{
	su("SELECT count(*) FROM pkonline.check('alice.trap', '$op')");
}
is(superusers(), $supers, 'C1: check() on alice\'s booby-trapped table made no role superuser');
like(su("SELECT detail FROM pkonline.check('alice.trap') WHERE item = 'duration'"), qr/^between \d\d:/,
	'C1: the duration is still estimated (from the sizes, not a query on the table)');

# C2: a prepared transaction whose role is gone, and one whose gid is SQL: check() neither crashes
# nor hands the DBA the gid as SQL to paste.
su(q{CREATE ROLE gone LOGIN;});
my $gone = $node->background_psql('postgres', extra_params => [ '-U', 'gone' ]);
$gone->query_safe("BEGIN; SELECT pg_current_xact_id(); PREPARE TRANSACTION 'gone_px'");
$gone->quit;
$n = $node->background_psql('postgres', extra_params => [ '-U', 'mallory' ]);
$n->query_safe(q{CREATE TABLE mallory.px (a int)});
$n->query_safe(q{BEGIN; SELECT pg_current_xact_id(); PREPARE TRANSACTION 'x''; ALTER ROLE mallory SUPERUSER; --'});
$n->quit;
su(q{DROP ROLE gone;});
my $px = as('mallory', "SELECT string_agg(detail || ' / ' || advice, E'\\n') FROM pkonline.check('mallory.px') "
	  . "WHERE item = 'prepared transaction'");
like($px, qr/'gone_px' \(role \?, database postgres\)/, 'C2: the prepared transaction of a dropped role is shown with role ?');
like($px, qr/ROLLBACK PREPARED 'x''; ALTER ROLE mallory SUPERUSER; --'\./, 'C2: a gid is quoted as a literal in the advice');
su(q{ROLLBACK PREPARED 'gone_px'});
su(q{ROLLBACK PREPARED 'x''; ALTER ROLE mallory SUPERUSER; --'});
ok(server_alive(), 'C2: the server is alive');

# C3: the table dropped after the caller's snapshot was taken: the checks find it gone, no crash.
as('alice', 'CREATE TABLE alice.vanish (a int); INSERT INTO alice.vanish SELECT generate_series(1, 100)');
my $oid = su("SELECT 'alice.vanish'::regclass::oid");
my $rr = $node->background_psql('postgres', extra_params => [ '-U', 'alice' ]);
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
as('alice', 'DROP TABLE alice.vanish');
for my $op ('add_int_pk', 'convert_pk_to_bigint')
{
	my ($ret, $out, $err) = $rr->query("SELECT level, item FROM pkonline.check(${oid}::oid::regclass, '$op', '{}')");
	unlike($err // '', qr/internal error|server closed/, "C3 ($op): no internal error");
}
$rr->quit;
ok(server_alive(), 'C3: the server is alive');

# C4: a statement_timeout (or a cancel) during the operation's dry run ends check(): it is not a
# "blocker" row, and check() does not go on.
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK alice.trap IN ACCESS EXCLUSIVE MODE');
refused('alice', "SET statement_timeout = '1s'; SELECT * FROM pkonline.check('alice.trap', 'add_column', "
	  . q{'{"column_name": "c", "column_type": "int", "fill": "a + 1"}')}, '57014',
	'C4: check() under statement_timeout behind a lock');
$locker->query_safe('ROLLBACK');
$locker->quit;

# C5: the data directory's path is not shown (a role without pg_read_all_settings may not see it).
my $datadir = $node->data_dir;
unlike(as('alice', "SELECT string_agg(detail, ' ') FROM pkonline.check('alice.trap')"), qr/\Q$datadir\E/,
	'C5: no finding names the data directory');
# column_type resolves through the caller's search_path, as the operation's argument does
as('alice', 'CREATE DOMAIN alice.small AS int');
is(as('alice', "SET search_path = alice, public; SELECT level FROM pkonline.check('alice.trap', 'add_column', "
	  . q{'{"column_name": "c", "column_type": "small", "fill": "a", "not_null": true}') WHERE item = 'operation'}),
	'ok', 'C5: a type found through the caller\'s search_path');
});

ok(server_alive(), 'the server is alive at the end');
is(superusers(), $supers, 'no role became superuser');
$holder->quit if $holder;
$node->stop;
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no server process crashed');
done_testing();
