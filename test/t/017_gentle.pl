# The latency-aware throttle (pkonline.load_rise): clients at a steady rate update random rows of
# the table being filled; each batch's row locks hold some of them up, so while batches run more
# of their sessions are active than while the job rests. With load_rise on, the worker pauses
# after its batches (the 'batches' event counts the pause, the 'throttle' event says why, report()
# counts it as waited); with load_rise = 0, the same job on a twin table never pauses for them.
# Its figures (clients' latency, wall time) come from bench/compare.sh, never from this test.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineLoad;

my $rows = 500_000;
my $node = PkonlineLoad::busy_node('gentle');
$node->safe_psql('postgres', qq{
	CREATE EXTENSION pkonline;
	CREATE TABLE g1 (a int NOT NULL, b text);
	INSERT INTO g1 SELECT g, md5(g::text) FROM generate_series(1, $rows) g;
	CREATE INDEX ON g1 (a);
	CREATE TABLE g2 (LIKE g1 INCLUDING INDEXES);
	INSERT INTO g2 SELECT * FROM g1;
	VACUUM ANALYZE g1, g2;
});

# A steady rate (pgbench -R), so that a slower client means more active sessions, not fewer
# transactions; each updates one random row of both tables.
my $load = PkonlineLoad->new(node => $node, clients => 6, round_secs => 4, args => [ '-R', '300' ],
	script => "\\set r random(1, $rows)\nUPDATE g1 SET b = b WHERE a = :r;\nUPDATE g2 SET b = b WHERE a = :r;\n");

# Batches of 300 ms hold their rows' locks long enough for the clients that hit them to show.
sub run_job
{
	my ($table, $rise) = @_;
	$load->start_round;
	my $job = $node->safe_psql('postgres', qq{
		SET client_min_messages = warning;
		SET pkonline.batch_time = '300ms';
		SET pkonline.load_rise = $rise;
		SELECT pkonline.add_int_pk('$table')});
	ok($load->run_until(sub {
		$node->safe_psql('postgres', "SELECT state IN ('done', 'failed', 'paused') FROM pkonline.jobs WHERE id = $job") eq 't';
	}, 150), "$table: the job ended under the load (load_rise $rise)");
	is($node->safe_psql('postgres', "SELECT state FROM pkonline.jobs WHERE id = $job"), 'done', "$table: done");
	return $job;
}

my $on = run_job('g1', 20);
my ($paused, $baseline, $recent) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT sum((detail->>'load_paused_ms')::numeric), max((detail->>'baseline_sessions')::numeric),
	       max((detail->>'recent_sessions')::numeric)
	  FROM pkonline.events WHERE job_id = $on AND kind = 'batches'});
note("load_rise 20: paused $paused ms; the clients' active sessions $baseline resting, up to $recent during batches");
cmp_ok($paused, '>', 0, 'with load_rise on, the worker paused after batches while the clients were held up');
like($node->safe_psql('postgres', "SELECT string_agg(message, ' / ') FROM pkonline.events WHERE job_id = $on AND kind = 'throttle'"),
	qr/paused [\d.]+ s in all for the clients: their active sessions rose by more than pkonline.load_rise \(20 %\)/,
	'a throttle event says so');
cmp_ok($node->safe_psql('postgres', "SELECT coalesce(sum(extract(epoch FROM waited)), 0) FROM pkonline.report($on)"),
	'>', 0, 'report() counts the pauses as waited');

my $off = run_job('g2', 0);
is($node->safe_psql('postgres', qq{
	SELECT coalesce(sum((detail->>'load_paused_ms')::numeric), 0) FROM pkonline.events WHERE job_id = $off AND kind = 'batches'}),
	'0', 'with load_rise = 0, the same job never paused for the clients');

# Sessions that have ended are not active (third review: in PostgreSQL 15 an exited backend's slot
# keeps its pid and database, and 40 closed connections read as 39 active sessions, which paused
# jobs for nothing, or, counted in the baseline, switched the throttle off).
$node->safe_psql('postgres', 'CREATE TABLE g3 AS SELECT g AS a FROM generate_series(1, 200000) g');
$node->safe_psql('postgres', 'SELECT pg_sleep(0.02)') for 1 .. 40;
my $quiet = $node->safe_psql('postgres', q{SET client_min_messages = warning; SET pkonline.load_rise = 20;
	SELECT pkonline.add_int_pk('g3')});
is($node->safe_psql('postgres', "CALL pkonline.wait($quiet, '120s', NULL)"), 'done', 'g3: done, with no client connected');
is($node->safe_psql('postgres', qq{
	SELECT max((detail->>'baseline_sessions')::numeric) < 1 AND max((detail->>'recent_sessions')::numeric) < 1
	       AND sum((detail->>'load_paused_ms')::numeric) = 0
	  FROM pkonline.events WHERE job_id = $quiet AND kind = 'batches'}), 't',
	'40 closed connections are not active sessions: no pause');

# The same data either way: every row numbered once.
for my $t ('g1', 'g2')
{
	is($node->safe_psql('postgres', "SELECT count(*) = $rows AND count(DISTINCT id) = $rows FROM $t"), 't',
		"$t: every row numbered once");
}
$load->check_rounds(100);
$node->stop;
done_testing();
