# add_int_pk with method => 'copy' on a busy table, with the server killed in the middle of the
# copy. A 300,000-row table with a unique business key, a TOASTed column and a dropped column
# gets its bigint primary key while pgbench updates, inserts and deletes rows; every transaction
# makes the same change to a mirror table. Half-way through the copy the server is stopped
# (immediate); the preloaded launcher resumes the job after the restart and the load goes on.
# Afterwards: the job is done, the table holds exactly the mirror's rows and values, every id is
# set and unique, every index and the heap pass amcheck, nothing of the job is left, and no
# client waited for a lock longer than pkonline.lock_timeout.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineLoad;

my $rows       = 300_000;
my $clients    = 4;
my $round_secs = 3;
my $max_secs   = 120;

my $node = PkonlineLoad::busy_node('copy_load', qq{pkonline.batch_time = '20ms'
});

$node->safe_psql('postgres', qq{
	CREATE EXTENSION pkonline;
	CREATE EXTENSION amcheck;
	CREATE TABLE st (k bigint NOT NULL, gone text, v bigint NOT NULL, doc text);
	INSERT INTO st SELECT g, 'x', 0, CASE WHEN g % 1000 = 0 THEN repeat(md5(g::text), 300) ELSE 'd' || g END
	  FROM generate_series(1, $rows) g;
	ALTER TABLE st DROP COLUMN gone;
	CREATE UNIQUE INDEX st_k ON st (k);
	CREATE INDEX st_doc ON st (left(doc, 8)) WHERE v >= 0;
	CREATE TABLE mirror (k bigint PRIMARY KEY, v bigint NOT NULL, doc text);
	INSERT INTO mirror SELECT k, v, doc FROM st;
	CREATE SEQUENCE new_k START 1000000;
	VACUUM ANALYZE st;
	VACUUM ANALYZE mirror;
});

my $load = PkonlineLoad->new(node => $node, clients => $clients, round_secs => $round_secs,
	script => qq{
\\set k random(1, $rows)
\\set d random(1, $rows)
BEGIN;
UPDATE st SET v = v + 1 WHERE k = :k;
UPDATE mirror SET v = v + 1 WHERE k = :k;
SELECT nextval('new_k') AS n \\gset
INSERT INTO st (k, v, doc) VALUES (:n, 7, 'new');
INSERT INTO mirror VALUES (:n, 7, 'new');
UPDATE st SET v = v + 10, doc = doc || '+' WHERE k = :n;
UPDATE mirror SET v = v + 10, doc = doc || '+' WHERE k = :n;
DELETE FROM st WHERE k = :d;
DELETE FROM mirror WHERE k = :d;
COMMIT;
});

$load->start_round;
sleep 1;
# (Batches of a fixed 50 blocks, and the debug wait point before each, held from the start and let
# go one batch at a time: the crash below comes in the middle of the copy however fast this
# machine copies. Held only once the copy was a third done, a quiet machine finished it first.)
my $hold = $node->background_psql('postgres');
$hold->query_safe(q{SELECT pkonline.hold_wait_point('backfill_batch')});
my $job = $node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SET pkonline.debug_wait_points = on;
	SET pkonline.batch_time = 0;
	SET pkonline.batch_size = 50;
	SELECT pkonline.add_int_pk('st', method => 'copy');
});
like($job, qr/^\d+$/, "add_int_pk returned job id $job");

# --- the crash, half-way through the copy ----------------------------------------------------------
my $at_point = "SELECT j.step_no = 2 AND j.cursor_block < j.end_block FROM pkonline.jobs j WHERE j.id = $job AND EXISTS "
  . "(SELECT 1 FROM pg_stat_activity WHERE application_name = 'pkonline job $job' AND wait_event = 'advisory')";
my $third = 0;
for (1 .. 100) {
	last unless $node->poll_query_until('postgres', $at_point);
	$third = $node->safe_psql('postgres', "SELECT cursor_block > end_block / 3 FROM pkonline.jobs WHERE id = $job") eq 't';
	last if $third;
	# one more batch: the worker takes the point as it is let go, the point is held again behind it
	$hold->query_safe(q{SELECT pkonline.release_wait_point('backfill_batch'), pkonline.hold_wait_point('backfill_batch')});
}
ok($third, 'the copy is under way, a third done');
ok($node->poll_query_until('postgres',
		"SELECT j.step_no = 2 AND j.cursor_block < j.end_block FROM pkonline.jobs j WHERE j.id = $job AND EXISTS "
		  . "(SELECT 1 FROM pg_stat_activity WHERE application_name = 'pkonline job $job' AND wait_event = 'advisory')"),
	'the copy waits before a batch, part of the table still to copy');
$node->stop('immediate');
eval { $hold->quit };    # (its server is gone)
$load->crashed;
$node->start;

my $ended = $load->run_until(sub {
	return $node->safe_psql('postgres',
		"SELECT state IN ('done', 'failed', 'cancelled', 'paused') FROM pkonline.jobs WHERE id = $job") eq 't';
}, $max_secs);
ok($ended, 'the job ended while the load ran');
is($node->safe_psql('postgres', "SELECT state FROM pkonline.jobs WHERE id = $job"), 'done', 'the job is done')
  or diag($node->safe_psql('postgres', "SELECT kind || ': ' || message FROM pkonline.events WHERE job_id = $job ORDER BY id"));
note('step durations: ' . $node->safe_psql('postgres', qq{
	SELECT string_agg(step || ' ' || round(extract(epoch FROM finished_at - started_at)::numeric, 3) || 's', ', '
	                  ORDER BY step_no) FROM pkonline.job_steps WHERE job_id = $job}));
cmp_ok($node->safe_psql('postgres',
		"SELECT count(*) FROM pkonline.events WHERE job_id = $job AND kind = 'step_start' AND message LIKE 'step 2 %'"),
	'>=', 2, 'the copy step ran again after the crash (resumed from its cursor)');

$load->check_rounds(500);

# --- the result --------------------------------------------------------------------------------------
is($node->safe_psql('postgres', q{
	SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'st'::regclass}),
	'PRIMARY KEY (id)', 'id is the primary key');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM st) = (SELECT count(*) FROM mirror),
	       (SELECT count(*) FROM (SELECT k, v, doc FROM st EXCEPT SELECT k, v, doc FROM mirror) x),
	       (SELECT count(*) FROM (SELECT k, v, doc FROM mirror EXCEPT SELECT k, v, doc FROM st) x)}),
	't|0|0', 'the table holds exactly the rows and values of the mirror');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE id IS NULL), count(*) - count(DISTINCT id) FROM st}),
	'0|0', 'every id set and unique');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT bt_index_check(indexrelid, true) FROM pg_index WHERE indrelid = 'st'::regclass) x}),
	'3', 'amcheck: the three indexes agree with the heap');
is($node->safe_psql('postgres', q{SELECT count(*) FROM verify_heapam('st')}), '0', 'amcheck: heap and TOAST intact');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%'}), '0',
	'nothing of the job is left');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'st'::regclass}), '0',
	'its triggers are gone');
is($node->safe_psql('postgres', q{SET enable_seqscan = off; SELECT v FROM st WHERE k = 1000 OR k = -1}),
	$node->safe_psql('postgres', q{SELECT v FROM mirror WHERE k = 1000}), 'the moved indexes answer queries');

# --- lock waits: no client waited longer than pkonline.lock_timeout (100 ms) -------------------------
PkonlineLoad::check_no_client_lock_waits($node);

$node->stop;
done_testing();
