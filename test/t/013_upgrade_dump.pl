# Upgrades and dumps.
#  (a) pkonline 0.1 (sql/pkonline--0.1.sql, the last 0.1 main shipped) with this library: a job
#      paused mid-backfill, ALTER EXTENSION pkonline UPDATE (to 0.6 through 0.2, 0.3, 0.4, 0.5), resumed: it ends correctly;
#      a job running through the update ends too; the current version's objects are there afterwards.
#  (b) an earlier 0.1 (without the functions the last one has) is refused by the update.
#  (c) pg_dump / pg_restore by the database's owner, who is not a superuser (S3-4: since 0.2 the
#      job tables were configuration tables, and only their owner could dump the database): a
#      database with a finished and an unfinished job dumps; it restores with its data, without
#      the job history (0.4: the job tables are not in dumps); new jobs run there, beside the
#      unfinished job's leftovers.
#  (d) a co-tenant's schema named pkonline_internal (where 0.5 keeps the internals) in a 0.4
#      database: the job calls pkonline's own functions, and the update refuses to adopt it.
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
is(su("SELECT extversion FROM pg_extension WHERE extname = 'pkonline'"), '0.6', '(a) updated to 0.6 (through 0.2, 0.3, 0.4 and 0.5)');
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
my $config = q{SELECT coalesce(array_length(extconfig, 1), 0) FROM pg_extension WHERE extname = 'pkonline'};
is(su($config) . ' ' . su($config, 'fresh'), '0 0', '(a) and no configuration table (pg_dump leaves the job tables out)');

# --- (b) an earlier 0.1 is refused --------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE early');
su("CREATE EXTENSION pkonline VERSION '0.1'", 'early');
su('ALTER EXTENSION pkonline DROP FUNCTION pkonline.convert_pk_to_bigint(regclass, boolean, boolean); '
	  . 'DROP FUNCTION pkonline.convert_pk_to_bigint(regclass, boolean, boolean)', 'early');
my ($ret, $out, $err) = $node->psql('early', 'ALTER EXTENSION pkonline UPDATE');
ok($ret != 0 && $err =~ /an early pkonline 0\.1, which cannot be updated in place/, '(b) an earlier 0.1 is refused')
  or diag($err);
is(su("SELECT extversion FROM pg_extension WHERE extname = 'pkonline'", 'early'), '0.1', '(b) and left as it was');

# --- (c) pg_dump / pg_restore by the database's owner, not a superuser ---------------------------
$node->safe_psql('postgres', 'CREATE ROLE dbo LOGIN; CREATE DATABASE src OWNER dbo');
su('CREATE EXTENSION pkonline', 'src');
sub dbo { return $node->safe_psql($_[1] // 'src', $_[0], extra_params => [ '-U', 'dbo' ]); }
dbo("CREATE TABLE finished (a int, b text); INSERT INTO finished SELECT g, 'r' || g FROM generate_series(1, 3000) g");
dbo("CREATE TABLE half (a int, b text); INSERT INTO half SELECT g, 'r' || g FROM generate_series(1, 40000) g");
my $jd = dbo("SELECT pkonline.add_int_pk('finished')");
is(dbo("CALL pkonline.wait($jd, '60s', NULL)"), 'done', '(c) a finished job');
my $jh = dbo("$slow SELECT pkonline.add_int_pk('half')");
ok($node->poll_query_until('src', "SELECT rows_done > 0 FROM pkonline.jobs WHERE id = $jh"), '(c) a job mid-backfill');
dbo("SELECT pkonline.pause($jh)");
ok($node->poll_query_until('src', "SELECT state = 'paused' FROM pkonline.jobs WHERE id = $jh"), '(c) paused');
my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-U', 'dbo', '-f', $dump, '-d', $node->connstr('src') ],
	'(c) pg_dump by the database\'s owner, who is not a superuser');
$node->command_ok([ 'pg_dump', '-U', 'dbo', '--enable-row-security', '-f', '/dev/null', '-d', $node->connstr('src') ],
	'(c) and with --enable-row-security');
# the restore, by the same role, into a database where a superuser created the extension
$node->safe_psql('postgres', 'CREATE DATABASE dst OWNER dbo');
su('CREATE EXTENSION pkonline', 'dst');
my ($rout, $rerr) = ('', '');
IPC::Run::run([ 'pg_restore', '-U', 'dbo', '-d', $node->connstr('dst'), $dump ], '>', \$rout, '2>', \$rerr);
my @failed = ($rerr =~ /^Command was: (.*)$/mg);
my @unexpected = grep { !/^(CREATE SCHEMA pkonline;|COMMENT ON EXTENSION pkonline |CREATE TRIGGER pkonline_\d+_fill)/ } @failed;
is(scalar(@unexpected), 0,
	'(c) pg_restore by dbo fails only where a superuser-only extension must (its schema, its comment, '
	  . 'the unfinished job\'s trigger on pkonline\'s C function)') or diag($rerr);
for my $t ('finished', 'half')
{
	my $sum = "SELECT count(*) || ' ' || sum(hashtext(a || b || coalesce(id::text, '-'))) FROM $t";
	is(dbo($sum, 'dst'), dbo($sum), "(c) $t restored with every row as it was");
}
is(su('SELECT count(*) FROM pkonline.jobs', 'dst'), '0', '(c) the job history stays where it was made');
is(su("SELECT state FROM pkonline.jobs WHERE id = $jh", 'src'), 'paused', '(c) the source database is untouched');
# the restored, half-filled table stays writable (the column's DEFAULT fills it)
my ($ret, $out, $err) = $node->psql('dst', "INSERT INTO half (a, b) VALUES (0, 'new'); UPDATE half SET b = 'x' WHERE a = 39999",
	extra_params => [ '-U', 'dbo' ]);
is($ret, 0, '(c) writes to the restored table go on') or diag($err);
# new jobs in the restored database: their ids start again, their helpers' names do not collide
my $jn = dbo("SELECT pkonline.add_column('finished', 'twice', 'int', 'a * 2', not_null => true)", 'dst');
is(dbo("CALL pkonline.wait($jn, '60s', NULL)", 'dst'), 'done', '(c) new jobs run in the restored database');
dbo("CREATE TABLE other (a int); INSERT INTO other SELECT generate_series(1, 500)", 'dst');
my $jo = dbo("SELECT pkonline.add_int_pk('other')", 'dst');
is(dbo("CALL pkonline.wait($jo, '60s', NULL)", 'dst'), 'done',
	"(c) job ids start again there: job $jo is done beside job ${jh}'s restored helpers");
# --- (d) a co-tenant's schema named pkonline_internal ---------------------------------------------
# Since 0.5 the internals live in pkonline_internal. Under 0.4 (with this library) a role that may
# create schemas makes one of that name with a _fill_nextval of her own: the job must still call
# pkonline's (found among the extension's members, never by name), and the update must fail rather
# than adopt her schema.
$node->safe_psql('postgres', 'CREATE DATABASE squat; CREATE ROLE mallory LOGIN');
su("CREATE EXTENSION pkonline VERSION '0.4'; GRANT CREATE ON DATABASE squat TO mallory", 'squat');
$node->safe_psql('squat', q{
	CREATE SCHEMA pkonline_internal;
	CREATE TABLE pkonline_internal.calls (by_user name);
	GRANT USAGE ON SCHEMA pkonline_internal TO PUBLIC;
	GRANT INSERT ON pkonline_internal.calls TO PUBLIC;
	CREATE FUNCTION pkonline_internal._fill_nextval() RETURNS trigger LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO pkonline_internal.calls VALUES (current_user); RETURN NEW; END$$;
	CREATE FUNCTION pkonline_internal._worker_alive(bigint) RETURNS boolean LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO pkonline_internal.calls VALUES (current_user); RETURN true; END$$;
}, extra_params => [ '-U', 'mallory' ]);
table('sq', 20000, 'squat');
su("INSERT INTO sq (a, b) SELECT g, 'late' FROM generate_series(1, 10) g", 'squat');
my $js = su("$slow SELECT pkonline.add_int_pk('sq')", 'squat');
ok($node->poll_query_until('squat', "SELECT rows_done > 0 FROM pkonline.jobs WHERE id = $js"), '(d) the 0.4 job runs');
is(su(q{SELECT string_agg(DISTINCT p.pronamespace::regnamespace::text, ',') FROM pg_trigger t
	JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = 'sq'::regclass}, 'squat'), 'pkonline',
	'(d) its fill trigger calls pkonline\'s function, not the co-tenant\'s of the same name');
su("INSERT INTO sq (a, b) VALUES (-1, 'during')", 'squat');
is(su("CALL pkonline.wait($js, '120s', NULL)", 'squat'), 'done', '(d) and ends');
is(su('SELECT count(*) FROM pkonline_internal.calls', 'squat'), '0', '(d) the co-tenant\'s functions never ran');
is(su('SELECT count(*) = count(DISTINCT id) AND count(id) = count(*) FROM sq', 'squat'), 't',
	'(d) every row numbered once');
($ret, $out, $err) = $node->psql('squat', 'ALTER EXTENSION pkonline UPDATE');
ok($ret != 0 && $err =~ /schema "pkonline_internal" already exists/, '(d) the update refuses to adopt the schema')
  or diag($err);
is(su("SELECT extversion FROM pg_extension WHERE extname = 'pkonline'", 'squat'), '0.4', '(d) and leaves 0.4 as it was');

$node->stop;
done_testing();
