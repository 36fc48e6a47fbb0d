# Run windows (pkonline.run_window, pkonline.set_run_window): outside its window a job waits —
# state 'waiting', a 'window' event, no lock held — and goes on by itself when the window opens;
# a window that closes stops it between batches; a brief DDL step does not start when the window
# closes sooner than its lock retries could take; pause, cancel and a restart work while it waits.
# Windows are made from the server's clock, a few seconds ahead.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineTest;

my $node = PostgreSQL::Test::Cluster->new('window');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pkonline'\nmax_worker_processes = 16\npkonline.max_workers = 4\n");
$node->start;

sub su   { return $node->safe_psql('postgres', $_[0]); }
sub poll { return PkonlineTest::poll($node, @_); }

# A window "HH:MM:SS-HH:MM:SS" from `from` to `to` seconds from now, on the server's clock.
sub window
{
	my ($from, $to) = @_;
	return su("SELECT to_char(LOCALTIME + make_interval(secs => $from), 'HH24:MI:SS') || '-' || "
		  . "to_char(LOCALTIME + make_interval(secs => $to), 'HH24:MI:SS')");
}

sub table
{
	my ($name, $rows) = @_;
	su("CREATE TABLE $name (a int, b text); INSERT INTO $name SELECT g, 'r' || g FROM generate_series(1, $rows) g");
}

sub job_state { return su("SELECT state FROM pkonline.jobs WHERE id = $_[0]"); }
sub events    { return su("SELECT string_agg(message, ' | ' ORDER BY id) FROM pkonline.events WHERE job_id = $_[0] AND kind = 'window'"); }

su('CREATE EXTENSION pkonline');

# --- bad windows are refused ----------------------------------------------------------------------
PkonlineTest::refused($node, 'postgres', "SET pkonline.run_window = '25:00-01:00'", '22023', 'a time of day past 24:00');
PkonlineTest::refused($node, 'postgres', "SET pkonline.run_window = '01:00'", '22023', 'a time, not a span');
table('w0', 100);
my $j0 = su("SET pkonline.run_window = '01:00-02:00'; SELECT pkonline.add_int_pk('w0', start => false)");
PkonlineTest::refused($node, 'postgres', "SELECT pkonline.set_run_window($j0, '03:00-03:00')", '22023', 'an empty span');
is(su("SELECT pkonline.set_run_window($j0, '')"), 'always', 'set_run_window: empty is always');
su("SELECT pkonline.cancel($j0)");

# --- (a) a window opening in 6 s: the job waits, then goes on by itself ----------------------------
table('w1', 5000);
my $opens = su("SELECT clock_timestamp() + interval '6 s'");
my $w1 = window(6, 3600);
my $j1 = su("SET pkonline.run_window = '$w1'; SELECT pkonline.add_int_pk('w1')");
ok(poll("SELECT state = 'waiting' FROM pkonline.jobs WHERE id = $j1", 5), '(a) the job waits for its window');
like(events($j1), qr/outside the run window \Q$w1\E \(server time [\d:]+\): waiting; it opens in \d+ s/,
	'(a) a window event says why and when it opens');
is(su("SELECT count(*) FROM pg_attribute WHERE attrelid = 'w1'::regclass AND attname = 'id'"), '0',
	'(a) nothing was done before the window');
is(su("SELECT count(*) FROM pg_locks l JOIN pkonline.jobs j ON l.pid = j.worker_pid WHERE j.id = $j1 "
	  . "AND l.locktype = 'relation'"), '0', '(a) the waiting worker holds no lock on any relation');
is(su("SELECT state FROM pkonline.status WHERE job = $j1"), 'waiting', '(a) the status view says waiting');
is(su("CALL pkonline.wait($j1, '60s', NULL)"), 'done', '(a) the job is done once the window opened');
is(su("SELECT min(started_at) >= '$opens'::timestamptz - interval '1 s' FROM pkonline.job_steps WHERE job_id = $j1"),
	't', '(a) its first step started when the window opened');
like(events($j1), qr/the run window is open: going on/, '(a) and an event says so');

# --- (b) a window that closes mid-backfill: the job stops between batches; set_run_window lets it go
table('w2', 30000);
my $w2 = window(-60, 12);
my $j2 = su("SET pkonline.run_window = '$w2'; SET pkonline.lock_retries = 0; SET pkonline.batch_size = 1; "
	  . "SET pkonline.batch_time = 0; SET pkonline.batch_sleep = '100ms'; SELECT pkonline.add_int_pk('w2')");
ok(poll("SELECT state = 'waiting' FROM pkonline.jobs WHERE id = $j2", 40), '(b) the window closed on the job');
my $rows = su("SELECT rows_done FROM pkonline.jobs WHERE id = $j2");
is(su("SELECT step_no = 2 AND rows_done > 0 AND rows_done < 30000 FROM pkonline.jobs WHERE id = $j2"), 't',
	'(b) in the middle of its backfill');
sleep 2;
is(su("SELECT rows_done FROM pkonline.jobs WHERE id = $j2"), $rows, '(b) no batch runs while it waits');
is(su("SELECT count(*) FROM pg_locks l JOIN pkonline.jobs j ON l.pid = j.worker_pid WHERE j.id = $j2 "
	  . "AND l.locktype = 'relation'"), '0', '(b) and it holds no lock');
su("SELECT pkonline.set_run_window($j2, '')");
is(su("CALL pkonline.wait($j2, '120s', NULL)"), 'done', '(b) with the window removed it goes on and is done');
is(su("SELECT count(*) = count(DISTINCT id) AND count(id) = 30000 FROM w2"), 't', '(b) every row numbered once');
like(events($j2), qr/run window removed/, '(b) the change is an event');

# --- (c) a brief DDL step does not start when the window closes sooner than its retries could take
table('w3', 100);
my $w3 = window(-60, 10);
my $j3 = su("SET pkonline.run_window = '$w3'; SET pkonline.lock_retries = 2; SELECT pkonline.add_int_pk('w3')");
ok(poll("SELECT state = 'waiting' FROM pkonline.jobs WHERE id = $j3", 10), '(c) the job waits inside its window');
like(events($j3), qr/closes in \d+ s, sooner than the lock retries of .* could take \(15 s\)/,
	'(c) because the window closes before the lock retries could end');
is(su("SELECT count(*) FROM pg_attribute WHERE attrelid = 'w3'::regclass AND attname = 'id'"), '0',
	'(c) the step did not start');

# --- (d) pause and cancel while waiting; a restart keeps it waiting --------------------------------
is(su("SELECT pkonline.pause($j3)"), 'pausing', '(d) pause asked of a waiting job');
ok(poll("SELECT state = 'paused' FROM pkonline.jobs WHERE id = $j3", 10), '(d) it is paused');
su("SELECT pkonline.set_run_window($j3, '" . window(3600, 7200) . "')");
su("SELECT pkonline.resume($j3)");
ok(poll("SELECT state = 'waiting' FROM pkonline.jobs WHERE id = $j3", 10), '(d) resumed, it waits again');
$node->restart;
ok(poll("SELECT state = 'waiting' AND pkonline_internal._worker_alive(id) FROM pkonline.jobs WHERE id = $j3", 20),
	'(d) after a restart its worker waits again');
su("SELECT pkonline.cancel($j3)");
is(su("CALL pkonline.wait($j3, '60s', NULL)"), 'cancelled', '(d) cancelled while waiting');
is(su("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'w3'::regclass "
	  . "AND attnum > 0 AND NOT attisdropped"), 'a,b', '(d) the table is as it was');

# --- (e) the copy method waits for its window before its last rounds, not under its lock ----------
# (the job is held before its pre-swap rounds while the window is made to open in 20 s; 20000
# rows are updated while it waits: they are replayed before the lock, a handful under it)
table('w5', 20000);
my $holder = $node->background_psql('postgres');
$holder->query_safe("SELECT pkonline.hold_wait_point('pre_swap')");
my $j5 = su("SET pkonline.debug_wait_points = on; SELECT pkonline.add_int_pk('w5', method => 'copy')");
ok(poll("SELECT step = 'swap' FROM pkonline.status WHERE job = $j5", 60), '(e) the copy job reached its swap step');
su("SELECT pkonline.set_run_window($j5, '" . window(20, 3600) . "')");
$holder->query_safe("SELECT pkonline.release_wait_point('pre_swap')");
ok(poll("SELECT state = 'waiting' FROM pkonline.jobs WHERE id = $j5", 10), '(e) it waits for the window before the swap');
su("UPDATE w5 SET b = b || '+'");
is(su("CALL pkonline.wait($j5, '120s', NULL)"), 'done', '(e) done once the window opened');
my $under = su("SELECT substring(message FROM '(\\d+) last changes')::int FROM pkonline.events "
	  . "WHERE job_id = $j5 AND message LIKE 'storage swapped%'");
cmp_ok($under, '<', 1000, "(e) the 20000 changes made while it waited were replayed before the lock ($under under it)");
is(su("SELECT count(*) FILTER (WHERE b LIKE '%+') = 20000 AND count(DISTINCT id) = 20000 FROM w5"), 't',
	'(e) every change is in the table, every row numbered once');
$holder->quit;

# --- (f) jobs waiting for their window give their workers to queued jobs -----------------------------
# (pkonline.max_workers = 4: four jobs whose window is shut hold every slot; a fifth, queued, runs)
my @waiting;
for my $i (1 .. 4)
{
	table("wf$i", 100);
	push @waiting, su("SET pkonline.run_window = '" . window(3600, 7200) . "'; SELECT pkonline.add_int_pk('wf$i')");
}
my $list = join(',', @waiting);
ok(poll("SELECT count(*) = 4 FROM pkonline.jobs WHERE id IN ($list) AND state = 'waiting' AND pkonline_internal._worker_alive(id)", 30),
	'(f) four jobs wait for their window, each in a worker');
table('wf5', 1000);
my $j6 = su("SELECT pkonline.add_int_pk('wf5')");
is(su("CALL pkonline.wait($j6, '60s', NULL)"), 'done', '(f) a fifth job, queued, got a worker and is done');
is(su("SELECT count(*) FROM pkonline.events WHERE job_id IN ($list) AND message LIKE '%gives way to a queued job%'"), '1',
	'(f) one waiting job gave its worker way');
ok(poll("SELECT count(*) = 4 FROM pkonline.jobs WHERE id IN ($list) AND state = 'waiting' AND pkonline_internal._worker_alive(id)", 30),
	'(f) and was taken up again when the slot freed');
su("SELECT pkonline.cancel(id) FROM pkonline.jobs WHERE id IN ($list)");
ok(poll("SELECT bool_and(state = 'cancelled') FROM pkonline.jobs WHERE id IN ($list)", 60), '(f) cancelled');

$node->stop;
done_testing();
