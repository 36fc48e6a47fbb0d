# Upgrades and dumps.
#  (a) pkonline 0.1 (sql/pkonline--0.1.sql, the last 0.1 main shipped) with this library: a job
#      paused mid-backfill, ALTER EXTENSION pkonline UPDATE (to 0.3 through 0.2), resumed: it ends correctly;
#      a job running through the update ends too; the current version's objects are there afterwards.
#  (b) an earlier 0.1 (without the functions the last one has) is refused by the update.
#  (c) pg_dump / pg_restore of a database with a finished and an unfinished job: it restores
#      cleanly; the finished job's history is kept; the unfinished one is failed with a message,
#      is never resumed, and cancel closes it without touching the restored table.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineTest;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pkonline'\nmax_worker_processes = 16\npkonline.max_workers = 4\n");
$node->start;

sub su   { return $node->safe_psql($_[1] // 'postgres', $_[0]); }
sub poll { return PkonlineTest::poll($node, @_); }

sub table
{
	my ($name, $rows, $db) = @_;
	su("CREATE TABLE $name (a int, b text); INSERT INTO $name SELECT g, 'r' || g FROM generate_series(1, $rows) g", $db);
}

# --- (a) 0.1, a job paused mid-backfill, the update, resume ---------------------------------------
su("CREATE EXTENSION pkonline VERSION '0.1'");
is(su("SELECT extversion FROM pg_extension WHERE extname = 'pkonline'"), '0.1', '(a) pkonline 0.1 installed');
table('up1', 40000);
table('up2', 40000);
my $slow = "SET pkonline.batch_size = 2; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = '20ms';";
my $j1 = su("$slow SELECT pkonline.add_int_pk('up1')");
ok(poll("SELECT rows_done > 0 FROM pkonline.jobs WHERE id = $j1", 30), '(a) job 1 is in its backfill under 0.1');
su("SELECT pkonline.pause($j1)");
ok(poll("SELECT state = 'paused' FROM pkonline.jobs WHERE id = $j1", 30), '(a) job 1 paused mid-backfill');
my $done_before = su("SELECT rows_done FROM pkonline.jobs WHERE id = $j1");
cmp_ok($done_before, '<', 40000, '(a) with rows left to fill');
my $j2 = su("$slow SELECT pkonline.add_int_pk('up2')");
ok(poll("SELECT rows_done > 0 FROM pkonline.jobs WHERE id = $j2", 30), '(a) job 2 runs under 0.1');
is(su("SELECT count(*) FROM pg_proc WHERE proname = 'report' AND pronamespace = 'pkonline'::regnamespace"), '0',
	'(a) 0.1 has no report()');

su('ALTER EXTENSION pkonline UPDATE');
is(su("SELECT extversion FROM pg_extension WHERE extname = 'pkonline'"), '0.3', '(a) updated to 0.3 (through 0.2)');
is(su("CALL pkonline.wait($j2, '180s', NULL)"), 'done', '(a) job 2, running through the update, is done');
su("SELECT pkonline.resume($j1)");
is(su("CALL pkonline.wait($j1, '180s', NULL)"), 'done', '(a) job 1, resumed after the update, is done');
for my $t ('up1', 'up2')
{
	is(su("SELECT count(*) = 40000 AND count(DISTINCT id) = 40000 FROM $t"), 't', "(a) $t: every row numbered once");
	is(su("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '$t'::regclass AND contype = 'p'"),
		'PRIMARY KEY (id)', "(a) $t: the primary key");
}
is(su("SELECT rows FROM pkonline.report($j1) WHERE step = 'backfill'") + $done_before >= 40000 ? 1 : 0, 1,
	'(a) the report of job 1 counts the rows filled after the update');
like(su("SELECT level FROM pkonline.check('up1') WHERE item = 'operation'"), qr/blocker/,
	'(a) check() exists after the update');
# the current schema as a fresh install has it: the same objects
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
su('CREATE EXTENSION pkonline', 'fresh');
my $objects = q{SELECT string_agg(pg_describe_object(classid, objid, 0), ', ' ORDER BY 1)
	FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pkonline')};
is(su($objects), su($objects, 'fresh'), '(a) the updated extension has exactly the objects of a fresh install');
my $columns = q{SELECT string_agg(attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, atttypmod), ', '
	ORDER BY attrelid::regclass::text, attnum) FROM pg_attribute
	WHERE attrelid IN ('pkonline.jobs'::regclass, 'pkonline.job_steps'::regclass, 'pkonline.events'::regclass)
	AND attnum > 0 AND NOT attisdropped};
is(su($columns), su($columns, 'fresh'), '(a) and the same job table columns');

# --- (b) an earlier 0.1 is refused --------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE early');
su("CREATE EXTENSION pkonline VERSION '0.1'", 'early');
su('ALTER EXTENSION pkonline DROP FUNCTION pkonline.convert_pk_to_bigint(regclass, boolean, boolean); '
	  . 'DROP FUNCTION pkonline.convert_pk_to_bigint(regclass, boolean, boolean)', 'early');
my ($ret, $out, $err) = $node->psql('early', 'ALTER EXTENSION pkonline UPDATE');
ok($ret != 0 && $err =~ /an early pkonline 0\.1, which cannot be updated in place/, '(b) an earlier 0.1 is refused')
  or diag($err);
is(su("SELECT extversion FROM pg_extension WHERE extname = 'pkonline'", 'early'), '0.1', '(b) and left as it was');

# --- (c) pg_dump / pg_restore ---------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE src');
su('CREATE EXTENSION pkonline', 'src');
table('finished', 3000, 'src');
table('half', 40000, 'src');
my $jd = su("SELECT pkonline.add_int_pk('finished')", 'src');
is($node->safe_psql('src', "CALL pkonline.wait($jd, '60s', NULL)"), 'done', '(c) a finished job');
my $jh = su("$slow SELECT pkonline.add_int_pk('half')", 'src');
ok($node->poll_query_until('src', "SELECT rows_done > 0 FROM pkonline.jobs WHERE id = $jh"), '(c) a job mid-backfill');
su("SELECT pkonline.pause($jh)", 'src');
ok($node->poll_query_until('src', "SELECT state = 'paused' FROM pkonline.jobs WHERE id = $jh"), '(c) paused');
my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ], '(c) pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
my ($rret, $rout, $rerr) = ('', '', '');
my $rok = IPC::Run::run([ 'pg_restore', '-d', $node->connstr('dst'), '--exit-on-error', $dump ], '>', \$rout, '2>', \$rerr);
ok($rok, '(c) pg_restore without an error') or diag($rerr);
is(su("SELECT string_agg(id || ' ' || state, ', ' ORDER BY id) FROM pkonline.jobs", 'dst'), "$jd done, $jh failed",
	'(c) the finished job kept, the unfinished one failed');
like(su("SELECT last_error FROM pkonline.jobs WHERE id = $jh", 'dst'), qr/restored from a dump: it is not resumed/,
	'(c) with a message');
is(su("SELECT count(*) > 0 FROM pkonline.events WHERE job_id = $jd", 'dst'), 't', '(c) the history came along');
is(su("SELECT rows FROM pkonline.report($jd) WHERE step = 'backfill'", 'dst'), '3000', '(c) and the report');
($ret, $out, $err) = $node->psql('dst', "SELECT pkonline.resume($jh)", extra_params => [ '-v', 'VERBOSITY=verbose' ]);
ok($ret != 0 && $err =~ /55000: pkonline job $jh was restored from a dump/, '(c) resume refused (55000)') or diag($err);
su("SELECT pkonline.run_pending()", 'dst');
sleep 1;
is(su("SELECT state FROM pkonline.jobs WHERE id = $jh", 'dst'), 'failed', '(c) run_pending does not run it');
# the application's writes to the restored, half-filled table go on (the column's DEFAULT fills it)
($ret, $out, $err) = $node->psql('dst', "INSERT INTO half (a, b) VALUES (0, 'new'); UPDATE half SET b = 'x' WHERE a = 39999");
is($ret, 0, '(c) writes to the restored table go on') or diag($err);
my $cols = su("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'half'::regclass "
	  . "AND attnum > 0 AND NOT attisdropped", 'dst');
is(su("SELECT pkonline.cancel($jh)", 'dst'), 'cancelled', '(c) cancel closes it');
is(su("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'half'::regclass "
	  . "AND attnum > 0 AND NOT attisdropped", 'dst'), $cols, '(c) touching nothing on the restored table');
like(su("SELECT message FROM pkonline.events WHERE job_id = $jh ORDER BY id DESC LIMIT 1", 'dst'),
	qr/closed without undo: it was restored from a dump/, '(c) an event says what is left to do');
my $jn = su("SELECT pkonline.add_column('finished', 'twice', 'int', 'a * 2')", 'dst');
is($node->safe_psql('dst', "CALL pkonline.wait($jn, '60s', NULL)"), 'done', '(c) new jobs run in the restored database');
cmp_ok($jn, '>', $jh, '(c) with ids above the restored ones');
is(su("SELECT state FROM pkonline.jobs WHERE id = $jh", 'src'), 'paused', '(c) the source database is untouched');

$node->stop;
done_testing();
