# Issue 22, "a DBA can take pkonline at its word": wait() holds up nothing, says what the job said,
# and a running, paused or failed job can be steered with set_option().
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineTest;

my $node = PostgreSQL::Test::Cluster->new('dba_word');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pkonline'\nmax_worker_processes = 16\npkonline.max_workers = 4\n");
$node->start;

sub su { return $node->safe_psql('postgres', $_[0]); }
sub as { return $node->safe_psql('postgres', $_[1], extra_params => [ '-U', $_[0] ]); }
sub refused { PkonlineTest::refused($node, @_); }
sub poll    { return PkonlineTest::poll($node, @_); }
my $psql = $node->installed_command('psql');

su('CREATE EXTENSION pkonline');
su('CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN; GRANT CREATE ON SCHEMA public TO alice');
# Samples, in transactions of their own, whether a session named $app holds a snapshot (xmin).
su(q{CREATE PROCEDURE sample_xmin(app text, n int, INOUT held int DEFAULT 0, INOUT seen int DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE x boolean;
BEGIN
  FOR i IN 1..n LOOP
    PERFORM pg_stat_clear_snapshot();
    SELECT backend_xmin IS NOT NULL INTO x FROM pg_stat_activity WHERE application_name = app;
    IF x IS NOT NULL THEN seen := seen + 1; IF x THEN held := held + 1; END IF; END IF;
    COMMIT;
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$});
my $slow = "SET pkonline.batch_size = 1; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = '100ms';";
sub table_of { my ($t, $n) = @_; su("CREATE TABLE $t AS SELECT g AS a, md5(g::text) AS b FROM generate_series(1, $n) g"); }

# --- wait() holds no snapshot while it waits ------------------------------------------------------
# A concurrent index build waits for every snapshot older than its own: the PL/pgSQL wait() of
# 0.1-0.4 held one nearly all the time (a 65 ms build took 755 ms beside it).
table_of('w1', 20000);
my $j1 = su("$slow SELECT pkonline.add_int_pk('w1')");
my ($out, $err) = ('', '');
my $waiter = IPC::Run::start(
	[ $psql, '-XAtq', '-d', $node->connstr('postgres') . ' application_name=waiter',
	  '-c', "CALL pkonline.wait($j1, interval '30 s')" ], '>', \$out, '2>', \$err);
ok(poll("SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'waiter' AND query LIKE 'CALL%'"),
	'wait() is waiting');
my ($held, $seen) = split /\|/, su("CALL sample_xmin('waiter', 200)");
cmp_ok($seen, '>=', 150, "the waiting session was sampled ($seen times)");
cmp_ok($held, '<=', $seen / 5, "wait() held a snapshot in $held of $seen samples (0.4: in every one)");
is(su("SELECT pkonline.cancel($j1)"), 'cancelling', 'the job is cancelled');
$waiter->finish;
like($err, qr/pkonline job $j1: cancelled/, 'wait() ends when the job does');

# --- wait() says what the job said: its error's detail and its own hint ---------------------------
table_of('w2', 20000);
my $j2 = su("$slow SELECT pkonline.add_int_pk('w2')");
ok(poll("SELECT step = 'backfill' AND rows_done > 0 FROM pkonline.status WHERE job = $j2"), 'job 2 in its backfill');
su('DROP TABLE w2');
my ($ret, $o2, $e2) = $node->psql('postgres', "CALL pkonline.wait($j2, '60 s')");
like($e2, qr/WARNING:  pkonline job $j2 failed: .*w2.* no longer exists/, 'wait(): the job failed, the table gone');
my $hint = su("SELECT last_hint FROM pkonline.status WHERE job = $j2");
like($hint, qr/cancel/, "the job's own hint: $hint");
like($e2, qr/HINT:  \Q$hint\E/, "wait() prints the job's own hint, not a generic one");
unlike($e2, qr/Fix the cause/, 'and not the generic one');

# --- set_option: a failed job resumed with what it lacked -----------------------------------------
table_of('w3', 1000);
my $holder = $node->background_psql('postgres', timeout => 60);
$holder->query_safe('BEGIN; LOCK TABLE w3 IN ACCESS SHARE MODE');
my $j3 = su("SET pkonline.lock_retries = 1; SET pkonline.lock_timeout = '20ms'; SELECT pkonline.add_int_pk('w3')");
is(su("CALL pkonline.wait($j3, '60 s', NULL)"), 'failed', 'a job that may retry its lock once fails behind a reader');
like(su("SELECT last_hint FROM pkonline.status WHERE job = $j3"), qr/pkonline\.set_option\($j3, 'lock_retries'/,
	'its hint names set_option, which helps on resume');
is(su("SELECT pkonline.set_option($j3, 'lock_retries', '1000')"), '1000', 'set_option lock_retries');
is(su("SELECT pkonline.set_option($j3, 'pkonline.lock_timeout', '1s')"), '1000ms', 'set_option lock_timeout with a unit');
is(su("SELECT options->>'lock_retries' || ' ' || (options->>'lock_timeout_ms') FROM pkonline.jobs WHERE id = $j3"),
	'1000 1000', 'both kept in the job');
su("SELECT pkonline.resume($j3)");
ok(poll("SELECT lock_retries > 1 FROM pkonline.status WHERE job = $j3"), 'resumed, it retries past the old limit');
$holder->query_safe('COMMIT');
is(su("CALL pkonline.wait($j3, '60 s', NULL)"), 'done', 'and is done once the reader has gone');
is(su("SELECT string_agg(message, ' / ' ORDER BY id) FROM pkonline.events WHERE job_id = $j3 AND kind = 'option'"),
	'lock_retries set to 1000 (was 1): the job takes it at its next batch or retry / '
	  . 'lock_timeout set to 1000ms (was 20ms): the job takes it at its next batch or retry',
	'each change left an event');

# --- set_option: a running job takes a new pace at its next batch ----------------------------------
su("CREATE TABLE w4 (a int, b text) WITH (fillfactor = 10); INSERT INTO w4 SELECT g, 'x' FROM generate_series(1, 3000) g; GRANT ALL ON w4 TO alice");
su('ALTER TABLE w4 OWNER TO alice');
my $j4 = as('alice', "SET pkonline.batch_size = 1; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = '10s'; "
	  . "SELECT pkonline.add_int_pk('w4')");
ok(poll("SELECT step = 'backfill' AND rows_done > 0 FROM pkonline.status WHERE job = $j4"), 'job 4 in its backfill, 10 s between batches');
my $blocks = su("SELECT end_block FROM pkonline.jobs WHERE id = $j4");
cmp_ok($blocks, '>', 50, "$blocks blocks to fill: over 500 s at that pace");
refused('bob', "SELECT pkonline.set_option($j4, 'batch_sleep', '0')", '42704', 'bob, with no part in the job, finds no such job');
su('GRANT alice TO carol');
is(as('carol', "SELECT pkonline.set_option($j4, 'batch_sleep', '0')"), '0ms', "alice's member carol sets batch_sleep to 0");
is(su("CALL pkonline.wait($j4, '60 s', NULL)"), 'done', 'the job finishes within a minute: the new pace was taken');
refused('alice', "SELECT pkonline.set_option($j4, 'batch_sleep', '5')", '55000', 'a done job has no settings to change');

# --- set_option: bad input is refused and changes nothing ------------------------------------------
table_of('w5', 100);
my $j5 = su('SELECT pkonline.add_int_pk(\'w5\', start => false)');
my $before = su("SELECT options::text FROM pkonline.jobs WHERE id = $j5");
refused('postgres', "SELECT pkonline.set_option($j5, 'batch_size', '5')", '22023', 'batch_size is not changed on a job');
refused('postgres', "SELECT pkonline.set_option($j5, 'lock_timeout', '2min')", '22023', 'lock_timeout beyond its range');
refused('postgres', "SELECT pkonline.set_option($j5, 'batch_sleep', 'soon')", '22023', 'an unreadable value');
refused('postgres', "SELECT pkonline.set_option($j5, 'run_window', '25:00-26:00')", '22023', 'an unreadable run window');
refused('postgres', "SELECT pkonline.set_option($j5, 'lock_retries', NULL)", '22023', 'NULL');
is(su("SELECT options::text FROM pkonline.jobs WHERE id = $j5"), $before, 'the job is as it was');
is(su("SELECT pkonline.set_option($j5, 'run_window', '01:00-02:00')"), '01:00-02:00', 'run_window through set_option');

done_testing();
