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

# --- status.waiting_for: every cause, while it happens, and wait() says it -----------------------
sub waiting { return su("SELECT waiting_for FROM pkonline.status WHERE job = $_[0]") // ''; }
sub poll_waiting {
	my ($job, $re, $what) = @_;
	my $seen = '';
	for (1 .. 300) {
		$seen = waiting($job);
		last if $seen =~ $re;
		select(undef, undef, undef, 0.1);
	}
	like($seen, $re, $what);
	return $seen;
}
# (a) old snapshots: a REPEATABLE READ transaction opened before the index build
table_of('x1', 5000);
su('CREATE TABLE other (a int)');
my $reader = $node->background_psql('postgres', timeout => 60);
$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM other');
my $reader_pid = $reader->query_safe('SELECT pg_backend_pid()');
my $jx1 = su('SELECT pkonline.add_int_pk(\'x1\')');
poll_waiting($jx1, qr/^old snapshots: .* pid $reader_pid \(role \w+, idle in transaction, transaction open/,
	'(a) an index build held up by an old snapshot names the session that holds it');
my ($wo, $we) = ('', '');
my $w = IPC::Run::start([ $psql, '-XAtq', '-d', $node->connstr('postgres'), '-c', "CALL pkonline.wait($jx1, interval '30 s')" ],
	'>', \$wo, '2>', \$we);
select(undef, undef, undef, 1.0);
$reader->query_safe('COMMIT');
$w->finish;
like($we, qr/step 6\/7 create_index, .*, waiting for old snapshots: .*pid $reader_pid/, '(a) wait() prints it');
like($we, qr/pkonline job $jx1: done/, '(a) and the job is done once the transaction ends');
is(waiting($jx1), '', '(a) a done job waits for nothing');
like(su("SELECT waited || ' ' || waited_for FROM pkonline.report($jx1) WHERE step = 'create_index'"),
	qr/^00:00:0[1-9]\.\d+ old snapshots$/, "(a) report(): create_index waited a second or more for old snapshots");
like(su("SELECT message FROM pkonline.events WHERE job_id = $jx1 AND kind = 'wait'"),
	qr/^waited \d+\.\d s for old snapshots \(ShareLock on virtual transaction [0-9\/]+\): Process holding the lock: $reader_pid\./,
	'(a) and an event names the session it waited for');

# (b) a lock queue, seen by the job's owner: a session it may not see is named by pid and role only
table_of('x2', 5000);
su('ALTER TABLE x2 OWNER TO alice');
$reader->query_safe('BEGIN; LOCK TABLE x2 IN ACCESS SHARE MODE');
my $jx2 = as('alice', "SET pkonline.lock_timeout = '60s'; SELECT pkonline.add_int_pk('x2')");
my $seen = '';
for (1 .. 300) {
	$seen = as('alice', "SELECT waiting_for FROM pkonline.status WHERE job = $jx2") // '';
	last if $seen =~ /^a /;
	select(undef, undef, undef, 0.1);
}
like($seen, qr/^a AccessExclusiveLock on public\.x2, held or queued for by: pid $reader_pid \(role postgres\)$/,
	"(b) alice sees the lock and the superuser's session's pid and role, not its state");
like(waiting($jx2), qr/pid $reader_pid \(role postgres, idle in transaction, transaction open/,
	'(b) the superuser sees its state too');
$reader->query_safe('COMMIT');
is(su("CALL pkonline.wait($jx2, '60 s', NULL)"), 'done', '(b) the job goes on when the lock is free');

# (c) a throttle: a long batch_sleep, the WAL rate
table_of('x3', 20000);
my $jx3 = su("SET pkonline.batch_size = 1; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = '3s'; SELECT pkonline.add_int_pk('x3')");
poll_waiting($jx3, qr/^pkonline\.batch_sleep: pausing 3000 ms after each batch$/, '(c) a batch_sleep of 3 s is a wait');
su("SELECT pkonline.set_option($jx3, 'batch_sleep', '0')");
su("SELECT pkonline.set_option($jx3, 'max_wal_rate', '8kB')");
poll_waiting($jx3, qr/^the WAL rate limit: pkonline\.max_wal_rate is 8 kB\/s; pausing \d+ ms after a batch$/,
	'(c) so is a pause for the WAL rate');
su("SELECT pkonline.set_option($jx3, 'max_wal_rate', '0')");
is(su("CALL pkonline.wait($jx3, '60 s', NULL)"), 'done', '(c) the job ends');
like(su("SELECT message FROM pkonline.events WHERE job_id = $jx3 AND kind = 'throttle' AND detail ? 'waited_ms'"),
	qr/^the walk paused \d+\.\d s in all, in pauses of more than a second between batches/, '(c) the pauses left an event');
like(su("SELECT waited_for FROM pkonline.report($jx3) WHERE step = 'backfill'"), qr/the WAL rate limit or batch_sleep/,
	'(c) and report() counts them in the backfill\'s waits');

# (d) the run window
table_of('x4', 1000);
my $jx4 = su("SET pkonline.run_window = '" . su("SELECT to_char(localtime + interval '2 hours', 'HH24:MI') || '-' || to_char(localtime + interval '3 hours', 'HH24:MI')") . "'; SELECT pkonline.add_int_pk('x4')");
poll_waiting($jx4, qr/^the run window \d\d:\d\d-\d\d:\d\d, which opens in (01|02):\d\d:\d\d$/, '(d) the run window, and when it opens');
su("SELECT pkonline.set_option($jx4, 'run_window', '')");
is(su("CALL pkonline.wait($jx4, '60 s', NULL)"), 'done', '(d) the job runs once the window is lifted');

# (e) the worker queue
su('ALTER SYSTEM SET pkonline.max_workers = 1; SELECT pg_reload_conf()');
table_of('x5', 20000);
table_of('x6', 1000);
my $jx5 = su("SET pkonline.batch_size = 1; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = '100ms'; SELECT pkonline.add_int_pk('x5')");
ok(poll("SELECT step = 'backfill' FROM pkonline.status WHERE job = $jx5"), '(e) one job runs');
my $jx6 = su('SELECT pkonline.add_int_pk(\'x6\')');
poll_waiting($jx6, qr/^a worker to take it \(at most pkonline\.max_workers = 1 jobs run at once in a database\)$/, '(e) the next one waits for a worker');
select(undef, undef, undef, 1.5);  # (queued for more than a second: a wait worth an event)
su("SELECT pkonline.set_option($jx5, 'batch_sleep', '0')");
is(su("CALL pkonline.wait($jx6, '60 s', NULL)"), 'done', '(e) and runs when the first ends');
like(su("SELECT message FROM pkonline.events WHERE job_id = $jx6 AND kind = 'wait'"), qr/^waited \d+\.\d s in the queue for a worker$/,
	'(e) its wait in the queue left an event');
like(su("SELECT waited_for FROM pkonline.report($jx6) WHERE step = 'total'"), qr/a worker/, '(e) which report() counts');
su('ALTER SYSTEM RESET pkonline.max_workers; SELECT pg_reload_conf()');
$reader->quit;

# --- DROP EXTENSION while jobs work: refused for what depends on it, never a deadlock ---------------
# (0.4: in 600 DROP EXTENSION beside four workers stepping through their jobs, 2 deadlocks, and a job
# failed of it: DROP held one job table and wanted another that a worker's step held)
su('CREATE VIEW keep_ext AS SELECT job FROM pkonline.status');  # plain DROP EXTENSION always refused
su('ALTER SYSTEM SET pkonline.max_workers = 4; SELECT pg_reload_conf()');
table_of("dd$_", 2000) for 1 .. 4;
my ($dout, $derr) = ('', '');
my $dropper = IPC::Run::start(
	[ 'bash', '-c', 'for k in $(seq 1 600); do "$0" -XAtq -d "$1" -c "DROP EXTENSION pkonline"; done', $psql,
	  $node->connstr('postgres') ], '>', \$dout, '2>', \$derr);
for my $r (1 .. 15) {
	su("SELECT pkonline.add_column('dd$_', 'c$r', 'int', '$r', start => true)") for 1 .. 4;
	select(undef, undef, undef, 0.3);
}
$dropper->finish;
my $refusals = () = $derr =~ /cannot drop extension pkonline because other objects depend on it/g;
cmp_ok($refusals, '>=', 100, "DROP EXTENSION was refused $refusals times");
unlike($derr, qr/deadlock detected/, 'and never ended in a deadlock');
ok(poll("SELECT count(*) FILTER (WHERE state NOT IN ('done', 'failed')) = 0 FROM pkonline.jobs WHERE table_name LIKE 'public.dd%'", 60),
	'the jobs ended');
is(su("SELECT count(*) FILTER (WHERE state = 'failed') || ' failed of ' || count(*) FROM pkonline.jobs WHERE table_name LIKE 'public.dd%'"),
	'0 failed of 60', 'none of them failed');
note('deadlocks the workers gave way in: '
	  . su("SELECT count(*) FROM pkonline.events WHERE message LIKE 'gave way in a deadlock%'"));
su('DROP VIEW keep_ext; ALTER SYSTEM RESET pkonline.max_workers; SELECT pg_reload_conf()');

# --- progress: one percent for the whole job, never backwards --------------------------------------
# (0.4: convert_pk_to_bigint's backfill went 99.8 %, then 51.2 % of "~176773 of ~176773" rows)
sub watch_progress {
	my ($job) = @_;
	my (@pct, @bf, %totals);
	for (1 .. 1200) {
		my ($state, $step, $pct, $bf, $total) = split /\|/, su("SELECT state, step, pct, backfill_pct, rows_total FROM pkonline.status WHERE job = $job");
		push @pct, $pct;
		if (($step // '') eq 'backfill') { push @bf, $bf; $totals{$total}++ if $total > 0; }  # (0: not measured yet)
		last if $state =~ /^(done|failed|cancelled)$/;
		select(undef, undef, undef, 0.05);
	}
	my ($back_pct, $back_bf) = (0, 0);
	for my $i (1 .. $#pct) { $back_pct++ if $pct[$i] < $pct[$i - 1]; }
	for my $i (1 .. $#bf)  { $back_bf++  if $bf[$i] < $bf[$i - 1]; }
	return ($back_pct, $back_bf, scalar(@bf), join(',', sort keys %totals), $pct[-1]);
}
su(q{CREATE TABLE acc (id serial PRIMARY KEY, owner text);
INSERT INTO acc (owner) SELECT 'o' || g FROM generate_series(1, 30000) g;
CREATE TABLE ent (entry_id bigserial PRIMARY KEY, acc_id int NOT NULL REFERENCES acc (id), amount numeric);
INSERT INTO ent (acc_id, amount) SELECT 1 + g % 30000, g FROM generate_series(1, 45000) g;
ANALYZE acc, ent});
my $jc = su("SET pkonline.batch_size = 4; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = '20ms'; "
	  . "SELECT pkonline.convert_pk_to_bigint('acc')");
my ($bp, $bb, $n, $totals, $last) = watch_progress($jc);
cmp_ok($n, '>=', 20, "convert_pk_to_bigint on two tables: $n looks during its backfill");
is($bb, 0, 'its backfill_pct never went back, from one table to the next');
is($bp, 0, 'nor did the job\'s pct');
is($totals, '75000', 'rows_total counts both tables, all along');
is($last, '100.0', 'the job ends at 100 %');
su(q{CREATE TABLE pt (k int NOT NULL, v text) PARTITION BY RANGE (k);
CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (20000);
CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (20000) TO (40000);
CREATE TABLE pt3 PARTITION OF pt FOR VALUES FROM (40000) TO (60000);
INSERT INTO pt SELECT g, md5(g::text) FROM generate_series(0, 59999) g; ANALYZE pt});
my $jp = su("SET pkonline.batch_size = 4; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = '20ms'; "
	  . "SELECT pkonline.add_int_pk('pt', pk_columns => '{id,k}')");
($bp, $bb, $n, $totals, $last) = watch_progress($jp);
cmp_ok($n, '>=', 20, "a partitioned table of three partitions: $n looks during its backfill");
is($bb . ' ' . $bp, '0 0', 'neither its backfill_pct nor its pct went back');
is($last, '100.0', 'the job ends at 100 %');

# --- a gate before the point of no return: stop_before_final and complete() -------------------------
table_of('g1', 5000);
my $jg = as('postgres', "SET pkonline.stop_before_final = on; SELECT pkonline.add_int_pk('g1')");
is(su("CALL pkonline.wait($jg, '60 s', NULL)"), 'paused', 'stop_before_final: the job stops on its own');
is(su("SELECT step || ' | ' || waiting_for FROM pkonline.status WHERE job = $jg"),
	"attach | pkonline.complete($jg): stopped before its final step, attach", 'before its final step, saying what runs it');
is(su("SELECT count(*) FROM pg_constraint WHERE conrelid = 'g1'::regclass AND contype = 'p'"), '0', 'no primary key yet');
is(su("SELECT pkonline.cancel($jg)"), 'cancelling', 'cancel still works at the gate');
is(su("CALL pkonline.wait($jg, '60 s', NULL)"), 'cancelled', 'and undoes the job');
table_of('g2', 5000);
my $jg2 = su("SET pkonline.stop_before_final = on; SELECT pkonline.add_int_pk('g2')");
is(su("CALL pkonline.wait($jg2, '60 s', NULL)"), 'paused', 'a second job stops at its gate');
my ($rr, $ro, $re) = $node->psql('postgres', "SELECT pkonline.resume($jg2)");
like($re, qr/stops again before its final step/, 'resume() says it will stop there again');
is(su("CALL pkonline.wait($jg2, '60 s', NULL)"), 'paused', 'and it does');
refused('bob', "SELECT pkonline.complete($jg2)", '42704', 'bob cannot complete it');
is(su("SELECT pkonline.complete($jg2)"), 'queued', 'complete() runs the final step');
is(su("CALL pkonline.wait($jg2, '60 s', NULL)"), 'done', 'the job is done');
is(su("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'g2'::regclass AND contype = 'p'"),
	'PRIMARY KEY (id)', 'with its primary key');
# set on a running job, and lifted before it gets there
table_of('g3', 20000);
my $jg3 = su("SET pkonline.batch_size = 1; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = '50ms'; SELECT pkonline.add_int_pk('g3')");
ok(poll("SELECT step = 'backfill' FROM pkonline.status WHERE job = $jg3"), 'a running job');
is(su("SELECT pkonline.set_option($jg3, 'stop_before_final', 'on')"), 'on', 'set_option stop_before_final on a running job');
su("SELECT pkonline.set_option($jg3, 'batch_sleep', '0')");
is(su("CALL pkonline.wait($jg3, '60 s', NULL)"), 'paused', 'it stops at the gate');
refused('postgres', "SELECT pkonline.set_option($jg3, 'stop_before_final', 'perhaps')", '22023', 'not a boolean');
is(su("SELECT pkonline.complete($jg3)"), 'queued', 'complete()');
is(su("CALL pkonline.wait($jg3, '60 s', NULL)"), 'done', 'done');

# --- the review of 0.5: holes found in these changes, each seen open before its fix -----------------
# F1: any role may hold ACCESS EXCLUSIVE on the extension (ALTER INDEX … DEPENDS ON EXTENSION on a
# temp index of its own); workers that locked the extension in each transaction stalled behind it,
# and one whose lock timed out died ("unexpected state STARTED"). Workers take no such lock now.
su('CREATE ROLE mal LOGIN');
my $mal = $node->background_psql('postgres', extra_params => [ '-U', 'mal' ], timeout => 120);
$mal->query_safe('CREATE TEMP TABLE x (a int); CREATE INDEX xi ON x (a)');
$mal->query_safe('BEGIN; ALTER INDEX xi DEPENDS ON EXTENSION pkonline');
is(su("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'mal' "
	  . "AND l.locktype = 'object' AND l.classid = 'pg_extension'::regclass AND l.mode = 'AccessExclusiveLock' AND l.granted"),
	'1', 'F1: mal holds ACCESS EXCLUSIVE on the extension');
table_of('f1', 20000);
my $jf1 = su("SET pkonline.batch_size = 4; SELECT pkonline.add_int_pk('f1')");
is(su("CALL pkonline.wait($jf1, '60 s', NULL)"), 'done', 'F1: a job runs to its end all the same');
$mal->query_safe('ROLLBACK');
$mal->quit;

# F2: check() read the table as the caller, a member of its owner: the owner's row-security policy
# ran with the caller's rights (and read the caller's own table).
su(q{CREATE ROLE owner1 LOGIN; CREATE ROLE dba1 LOGIN; GRANT owner1 TO dba1;
CREATE SCHEMA o1 AUTHORIZATION owner1; CREATE TABLE dba_secret (s text); INSERT INTO dba_secret VALUES ('dba-only');
ALTER TABLE dba_secret OWNER TO dba1; REVOKE ALL ON dba_secret FROM PUBLIC});
as('owner1', q{CREATE TABLE o1.loot (who text, got text); GRANT INSERT ON o1.loot TO PUBLIC;
CREATE FUNCTION o1.spy() RETURNS boolean LANGUAGE plpgsql AS $$BEGIN
  INSERT INTO o1.loot SELECT current_user, (SELECT string_agg(s, ',') FROM public.dba_secret); RETURN true;
EXCEPTION WHEN OTHERS THEN RETURN true; END$$;
CREATE TABLE o1.r (id int, v text); INSERT INTO o1.r SELECT g, 'x' FROM generate_series(1, 100) g;
ALTER TABLE o1.r ENABLE ROW LEVEL SECURITY; ALTER TABLE o1.r FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON o1.r USING (o1.spy())});
my $f2 = as('dba1', q{SELECT level || ': ' || detail FROM pkonline.check('o1.r', 'set_primary_key', '{"columns": ["id"]}') WHERE item = 'data'});
like($f2, qr/^ok: no NULL and no duplicate in \(id\)/, "F2: check() reads the table as its owner");
is(su("SELECT count(*) FILTER (WHERE who <> 'owner1' OR got IS NOT NULL) || ' of ' || count(*) FROM o1.loot"), '0 of 0',
	'F2: the policy never ran as the DBA, nor as its owner outside what check() rolls back');

# F4 (the second review of 0.5): planning check()'s read ran the owner's IMMUTABLE function of a
# partial index's predicate (or of expression statistics) with the caller's rights: a superuser's
# check() made the owner superuser. The read is planned and run as the owner, restricted.
su(q{CREATE ROLE owner2 LOGIN; CREATE SCHEMA o2 AUTHORIZATION owner2});
as('owner2', q{CREATE TABLE o2.log (who text, super boolean); GRANT INSERT ON o2.log TO PUBLIC;
CREATE FUNCTION o2.spy() RETURNS int LANGUAGE plpgsql VOLATILE AS $$BEGIN
  INSERT INTO o2.log SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN EXECUTE 'ALTER ROLE owner2 SUPERUSER'; END IF;
  RETURN 1; END$$;
CREATE FUNCTION o2.k(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN RETURN o2.spy(); END$$;
CREATE TABLE o2.t (a int, b int); INSERT INTO o2.t SELECT g, g FROM generate_series(1, 100) g;
CREATE INDEX ON o2.t (b) WHERE o2.k(0) > 0;
CREATE TABLE o2.u (a int, b int); INSERT INTO o2.u SELECT g, g FROM generate_series(1, 100) g;
CREATE STATISTICS o2.st ON (b + o2.k(0)), a FROM o2.u});
su(q{SELECT count(*) FROM pkonline.check('o2.t', 'set_primary_key', '{"columns": ["a"]}')});
su(q{SELECT count(*) FROM pkonline.check('o2.u', 'set_primary_key', '{"columns": ["a"]}')});
is(su("SELECT rolsuper FROM pg_roles WHERE rolname = 'owner2'"), 'f', 'F4: the owner is not superuser after a superuser\'s check()');
is(su("SELECT count(*) FILTER (WHERE super) FROM o2.log"), '0', 'F4: its code never ran as a superuser');

# F5 (the third review of 0.5): the foreign keys set_primary_key moves were re-added and validated
# as the key table's owner on tables it merely "had the privileges of" (pg_has_role: a superuser
# has every role's): validation plans a query on the referencing table, and a role with only
# REFERENCES on a superuser's table made itself superuser through its partial index's predicate.
# Now every referencing table must be the very same role's, at creation and again at the swap.
su(q{CREATE ROLE refr LOGIN; CREATE SCHEMA k5; CREATE SCHEMA r5 AUTHORIZATION refr;
GRANT USAGE ON SCHEMA k5 TO refr;
CREATE TABLE k5.t (id int PRIMARY KEY, k int NOT NULL, CONSTRAINT t_k_key UNIQUE (k));
INSERT INTO k5.t SELECT g, g FROM generate_series(1, 500) g;
CREATE TABLE k5.u (id int PRIMARY KEY, k int NOT NULL); INSERT INTO k5.u SELECT g, g FROM generate_series(1, 500) g;
GRANT REFERENCES ON k5.t, k5.u TO refr});
as('refr', q{CREATE TABLE r5.log (who text, super boolean); GRANT INSERT ON r5.log TO PUBLIC;
CREATE FUNCTION r5.spy() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$BEGIN
  INSERT INTO r5.log SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN EXECUTE 'ALTER ROLE refr SUPERUSER'; END IF;
  RETURN true; END$$;
CREATE FUNCTION r5.trap(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$BEGIN RETURN r5.spy(); END$$;
CREATE TABLE r5.a (x int); INSERT INTO r5.a SELECT generate_series(1, 100);
CREATE INDEX ON r5.a (x) WHERE r5.trap(1);
ALTER TABLE r5.a ADD FOREIGN KEY (x) REFERENCES k5.t (k);
CREATE TABLE r5.b (x int); INSERT INTO r5.b SELECT generate_series(1, 100);
CREATE INDEX ON r5.b (x) WHERE r5.trap(1);
ALTER TABLE r5.b ADD FOREIGN KEY (x) REFERENCES k5.u (id)});
refused('postgres', q{SELECT pkonline.set_primary_key('k5.t', '{k}', replace_unique => true)}, '42501',
	'F5: a UNIQUE constraint that another role\'s foreign key references is not replaced');
refused('postgres', q{SELECT pkonline.set_primary_key('k5.u', '{k}')}, '42501',
	'F5: nor is a primary key another role\'s foreign key references moved');
# the same foreign key added after the job was created: the swap refuses it, changing nothing
su(q{CREATE TABLE k5.v (id int PRIMARY KEY, k int NOT NULL, CONSTRAINT v_k_key UNIQUE (k));
INSERT INTO k5.v SELECT g, g FROM generate_series(1, 500) g; GRANT REFERENCES ON k5.v TO refr});
my $jv = su(q{SET pkonline.stop_before_final = on; SELECT pkonline.set_primary_key('k5.v', '{k}', replace_unique => true)});
ok(poll("SELECT state = 'paused' FROM pkonline.jobs WHERE id = $jv", 60), 'F5: the job waits at its gate');
as('refr', q{CREATE TABLE r5.c (x int); INSERT INTO r5.c SELECT generate_series(1, 100);
CREATE INDEX ON r5.c (x) WHERE r5.trap(1);
ALTER TABLE r5.c ADD FOREIGN KEY (x) REFERENCES k5.v (k)});
su("SELECT pkonline.complete($jv)");
ok(poll("SELECT state = 'failed' FROM pkonline.jobs WHERE id = $jv", 60), 'F5: a foreign key added meanwhile fails the swap');
like(su("SELECT last_sqlstate || ' ' || last_error || ' | ' || last_hint FROM pkonline.jobs WHERE id = $jv"),
	qr/^42501 foreign key c_x_fkey on r5\.c references k5\.v, and r5\.c belongs to refr \| Drop that foreign key/,
	'F5: saying which key, whose, and what to do');
is(su(q{SELECT string_agg(conname || ' ' || contype::text, ', ' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'k5.v'::regclass}),
	'v_k_key u, v_pkey p', 'F5: and changing nothing');
is(su("SELECT rolsuper FROM pg_roles WHERE rolname = 'refr'"), 'f', 'F5: the referencing role is not superuser');
is(su("SELECT count(*) FROM r5.log WHERE super"), '0', 'F5: its code never ran as a superuser');
su("SELECT pkonline.cancel($jv)");

# F3: the job's detail (sample key values) is not written to the server log by wait()
su(q{CREATE TABLE f3 (email text, v int); INSERT INTO f3 SELECT 'someone' || (g % 50) || '@example.org', g FROM generate_series(1, 100) g});
my $jf3 = su("SELECT pkonline.set_primary_key('f3', '{email}')");
my $log_at = -s $node->logfile;
my ($r3, $o3, $e3) = $node->psql('postgres', "CALL pkonline.wait($jf3, '60 s')");
like($e3, qr/NOTICE:  pkonline job $jf3, detail: For example: \(someone\d+\@example\.org\) 2 times/, 'F3: wait() shows the session the sample values');
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $log_at);
unlike($log, qr/someone\d+\@example\.org/, 'F3: the server log has none of them');
su("SELECT pkonline.cancel($jf3)");

done_testing();
