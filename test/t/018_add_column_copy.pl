# add_column with method => 'copy' on a busy table, killed at each delicate point.
#  (a) a 200,000-row table (bigint primary key, a TOASTed column, a dropped column) gets a unique
#      uuid column while pgbench updates, inserts, deletes rows and moves keys, every transaction
#      making the same change to a mirror table; half-way through the copy the server is stopped
#      (immediate); the preloaded launcher resumes the job and the load goes on. Afterwards the
#      table holds exactly the mirror's rows, every uuid is set and unique, amcheck passes, nothing
#      of the job is left, no client waited for a lock longer than pkonline.lock_timeout;
#  (b) a kill inside the swap's transaction (it waits there for its ACCESS EXCLUSIVE lock), with
#      a write logged just before;
#  (c) a kill at 'swap_committed': storages swapped, old storage not dropped yet.
# (b) and (c) end like an uninterrupted run: every row, its values, the column NOT NULL and filled.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineLoad;

my $rows       = 200_000;
my $clients    = 4;
my $round_secs = 3;
my $max_secs   = 120;

my $node = PkonlineLoad::busy_node('add_column_copy', qq{pkonline.batch_time = '20ms'
});
sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(qq{
	CREATE EXTENSION pkonline;
	CREATE EXTENSION amcheck;
	CREATE TABLE st (k bigint PRIMARY KEY, gone text, v bigint NOT NULL, doc text);
	INSERT INTO st SELECT g, 'x', 0, CASE WHEN g % 1000 = 0 THEN repeat(md5(g::text), 300) ELSE 'd' || g END
	  FROM generate_series(1, $rows) g;
	ALTER TABLE st DROP COLUMN gone;
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
\\set m random(1, $rows)
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
UPDATE st SET k = -k WHERE k = :m;
UPDATE mirror SET k = -k WHERE k = :m;
COMMIT;
});

# --- (a) the crash half-way through the copy, under load -----------------------------------------
$load->start_round;
sleep 1;
# Batches of a fixed 50 blocks, let go one at a time from a held wait point: the crash comes in
# the middle of the copy however fast the machine copies.
my $hold = $node->background_psql('postgres');
$hold->query_safe(q{SELECT pkonline.hold_wait_point('backfill_batch')});
my $job = sql(q{
	SET client_min_messages = warning;
	SET pkonline.debug_wait_points = on;
	SET pkonline.batch_time = 0;
	SET pkonline.batch_size = 50;
	SELECT pkonline.add_uuid_column('st', 'ref', method => 'copy');
});
like($job, qr/^\d+$/, "(a) add_uuid_column returned job id $job");
my $at_point = "SELECT j.step_no = 2 AND j.cursor_block < j.end_block FROM pkonline.jobs j WHERE j.id = $job AND EXISTS "
  . "(SELECT 1 FROM pg_stat_activity WHERE application_name = 'pkonline job $job' AND wait_event = 'advisory')";
my $third = 0;
for (1 .. 100) {
	last unless $node->poll_query_until('postgres', $at_point);
	$third = sql("SELECT cursor_block > end_block / 3 FROM pkonline.jobs WHERE id = $job") eq 't';
	last if $third;
	$hold->query_safe(q{SELECT pkonline.release_wait_point('backfill_batch'), pkonline.hold_wait_point('backfill_batch')});
}
ok($third, '(a) the copy is under way, a third done');
ok($node->poll_query_until('postgres', $at_point), '(a) the copy waits before a batch, part of the table still to copy');
$node->stop('immediate');
eval { $hold->quit };    # (its server is gone)
$load->crashed;
$node->start;

my $ended = $load->run_until(sub {
	return sql("SELECT state IN ('done', 'failed', 'cancelled', 'paused') FROM pkonline.jobs WHERE id = $job") eq 't';
}, $max_secs);
ok($ended, '(a) the job ended while the load ran');
is(sql("SELECT state FROM pkonline.jobs WHERE id = $job"), 'done', '(a) the job is done')
  or diag(sql("SELECT kind || ': ' || message FROM pkonline.events WHERE job_id = $job ORDER BY id"));
cmp_ok(sql("SELECT count(*) FROM pkonline.events WHERE job_id = $job AND kind = 'step_start' AND message LIKE 'step 2 %'"),
	'>=', 2, '(a) the copy step ran again after the crash (resumed from its cursor)');
$load->check_rounds(300);

is(sql(q{
	SELECT (SELECT count(*) FROM st) = (SELECT count(*) FROM mirror),
	       (SELECT count(*) FROM (SELECT k, v, doc FROM st EXCEPT SELECT k, v, doc FROM mirror) x),
	       (SELECT count(*) FROM (SELECT k, v, doc FROM mirror EXCEPT SELECT k, v, doc FROM st) x)}),
	't|0|0', '(a) the table holds exactly the rows and values of the mirror');
is(sql(q{SELECT count(*) FILTER (WHERE ref IS NULL), count(*) - count(DISTINCT ref) FROM st}),
	'0|0', '(a) every uuid set and unique');
is(sql(q{SELECT string_agg(pg_get_constraintdef(oid), ', ' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'st'::regclass}),
	'PRIMARY KEY (k), UNIQUE (ref)', '(a) the key kept, the unique constraint attached');
is(sql(q{SELECT attnotnull FROM pg_attribute WHERE attrelid = 'st'::regclass AND attname = 'ref'}), 't', '(a) ref is NOT NULL');
is(sql(q{SELECT count(*) FROM (SELECT bt_index_check(indexrelid, true) FROM pg_index WHERE indrelid = 'st'::regclass) x}),
	'3', '(a) amcheck: the three indexes agree with the heap');
is(sql(q{SELECT count(*) FROM verify_heapam('st')}), '0', '(a) amcheck: heap and TOAST intact');
is(sql(q{SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%'}), '0', '(a) nothing of the job is left');
is(sql(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'st'::regclass}), '0', '(a) its trigger is gone');
PkonlineLoad::check_no_client_lock_waits($node);

# --- (b), (c): kills in the swap --------------------------------------------------------------------
sub small_table {
	my ($t) = @_;
	sql(qq{CREATE TABLE $t (id int PRIMARY KEY, b text);
	       INSERT INTO $t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;});
}
sub checksum { return sql("SELECT md5(string_agg(id || '|' || b, ',' ORDER BY id)) FROM $_[0]"); }
sub check_end {
	my ($t, $j, $sum, $label) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT state IN ('done', 'failed', 'cancelled', 'paused') FROM pkonline.jobs WHERE id = $j"),
		"$label: after the restart the launcher resumed the job to its end");
	is(sql("SELECT state FROM pkonline.jobs WHERE id = $j"), 'done', "$label: the job is done")
	  or diag(sql("SELECT kind || ': ' || message FROM pkonline.events WHERE job_id = $j ORDER BY id"));
	is(checksum($t), $sum, "$label: every row with its values");
	is(sql("SELECT count(*) FILTER (WHERE c IS NULL) || ' ' || count(DISTINCT c) || ' ' || "
		  . "(SELECT attnotnull FROM pg_attribute WHERE attrelid = '$t'::regclass AND attname = 'c') FROM $t"),
		'0 20000 true', "$label: the column filled for every row, NOT NULL");
	is(sql("SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline\\_${j}\\_%'")
		  . ' ' . sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = '$t'::regclass"),
		'0 0', "$label: nothing of the job is left");
	is(sql("SELECT count(*) FROM verify_heapam('$t')") . ' '
		  . sql("SELECT count(bt_index_check(indexrelid, true)) FROM pg_index WHERE indrelid = '$t'::regclass"),
		'0 1', "$label: amcheck: heap and index intact");
}
sub start_copy {
	my ($t) = @_;
	return sql("SET client_min_messages = warning; SET pkonline.debug_wait_points = on; "
		  . "SELECT pkonline.add_column('$t', 'c', 'uuid', 'gen_random_uuid()', method => 'copy')");
}

for my $case (['t_b', 'swap', '(b) inside the swap transaction'], ['t_c', 'swap_committed', '(c) at swap_committed']) {
	my ($t, $at, $label) = @$case;
	small_table($t);
	PkonlineLoad::kill_in_swap(
		node => $node, table => $t, at => $at, label => $label,
		start => \&start_copy, checksum => \&checksum, check_end => \&check_end,
		before_crash => sub {
			my ($j, $label) = @_;
			is(sql("SELECT attnotnull FROM pg_attribute WHERE attrelid = 't_c'::regclass AND attname = 'c'"), 't',
				"$label: before the crash the column is NOT NULL, the storage swapped");
		});
}

$node->stop;
done_testing();
