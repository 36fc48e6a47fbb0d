# add_int_pk on a partitioned table under load: 1,000,000 rows in 8 daily partitions that
# pg_partman manages (and its default partition), while pgbench — as a role that may only read and
# write the table — updates rows (some move to another partition), inserts rows and deletes some
# of them; pg_partman's run_maintenance() creates two more partitions while the job runs.
# Afterwards: 0 failed transactions, 0 lost rows, every row numbered once, no client lock wait over
# 100 ms, the key (id, ts) on the parent and on every partition (the new ones too), each leaf's key
# checked against its heap by amcheck. Then crashes (immediate stop; the launcher resumes the job):
# in the middle of a partitioned backfill, while a partition's key index is built (an INVALID
# leftover, dropped and built again), and after the attach committed: each job ends with every row
# numbered once and every partition's key valid.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineLoad;

my $rows       = 1_000_000;
my $clients    = 4;
my $round_secs = 4;
my $max_secs   = 240;

my $node = PkonlineLoad::busy_node('parted');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $base = sql("SELECT (CURRENT_DATE - 4)::text");
sql(qq{
	CREATE EXTENSION pkonline;
	CREATE EXTENSION amcheck;
	CREATE SCHEMA partman;
	CREATE EXTENSION pg_partman SCHEMA partman;
	CREATE TABLE events (k bigint NOT NULL, ts timestamptz NOT NULL, balance int NOT NULL, filler text)
	  PARTITION BY RANGE (ts);
	SELECT partman.create_parent('public.events', 'ts', 'native', 'daily', p_premake := 3,
	                             p_start_partition := '$base', p_jobmon := false);
	INSERT INTO events SELECT g, TIMESTAMPTZ '$base' + (g % 8) * interval '1 day' + (g % 86000) * interval '1 s',
	                          0, repeat(md5(g::text), 2)
	  FROM generate_series(1, $rows) g;
	CREATE INDEX events_k ON events (k);
	CREATE SEQUENCE new_k;
	CREATE TABLE load_log (kind "char" NOT NULL, k bigint NOT NULL, delta int NOT NULL);
	CREATE ROLE app LOGIN;
	GRANT SELECT, INSERT, UPDATE, DELETE ON events, load_log TO app;
	GRANT USAGE ON SEQUENCE new_k TO app;
	VACUUM ANALYZE events;
});
my $leaves_before = sql("SELECT count(*) FROM pg_partition_tree('events') WHERE isleaf");
is($leaves_before, 9, 'pg_partman made 8 daily partitions and a default one');

# Each client works on its own keys (k = client_id + 1, modulo 4), so no two clients ever touch the
# same row; one update in ten moves its row to another day's partition.
my $load = PkonlineLoad->new(node => $node, clients => $clients, round_secs => $round_secs, args => ['-U', 'app'],
	script => qq{
\\set n 4 * random(0, @{[ $rows / 4 - 1 ]}) + :client_id + 1
\\set delta random(-1000, 1000)
\\set move random(0, 9)
\\set day random(0, 7)
\\set back random(0, 100)
WITH u AS (UPDATE events SET balance = balance + :delta,
                  ts = CASE WHEN :move = 0 THEN TIMESTAMPTZ '$base' + :day * interval '1 day' + interval '1 hour' ELSE ts END
            WHERE k = :n RETURNING k)
INSERT INTO load_log SELECT 'u', k, :delta FROM u;
SELECT $rows + 4 * nextval('new_k') + :client_id + 1 AS nid \\gset
WITH i AS (INSERT INTO events VALUES (:nid, TIMESTAMPTZ '$base' + :day * interval '1 day', 0, 'new') RETURNING k)
INSERT INTO load_log SELECT 'i', k, 0 FROM i;
WITH d AS (DELETE FROM events WHERE k = :nid - 4 * :back AND k > $rows RETURNING k)
INSERT INTO load_log SELECT 'd', k, 0 FROM d;
});

$load->start_round;
ok($node->poll_query_until('postgres', "SELECT count(*) >= 100 FROM load_log WHERE kind = 'i'"), 'load is running');

my $job = sql(q{
	SET client_min_messages = warning;
	SET pkonline.batch_size = 50;
	SELECT pkonline.add_int_pk('events');
});
like($job, qr/^\d+$/, "add_int_pk returned job id $job");

# pg_partman's maintenance, mid-backfill: two more daily partitions (CREATE TABLE … LIKE, ATTACH).
ok($node->poll_query_until('postgres', "SELECT rows_done > 0 FROM pkonline.jobs WHERE id = $job"),
	'the backfill is under way');
sql(q{
	UPDATE partman.part_config SET premake = 5 WHERE parent_table = 'public.events';
	SELECT partman.run_maintenance('public.events', p_jobmon := false);
});
my $leaves_after = sql("SELECT count(*) FROM pg_partition_tree('events') WHERE isleaf");
cmp_ok($leaves_after, '>=', $leaves_before + 2, "run_maintenance() created partitions while the job ran ($leaves_after now)");
is(sql("SELECT state IN ('running', 'queued') FROM pkonline.jobs WHERE id = $job"), 't',
	'(the job was still running then)');
sql(qq{INSERT INTO events SELECT $rows * 10 + g, CURRENT_DATE + 4 + g * interval '1 min', 0, 'late' FROM generate_series(1, 100) g});

my $ended = $load->run_until(sub {
	return sql("SELECT state IN ('done', 'failed', 'cancelled', 'paused') FROM pkonline.jobs WHERE id = $job") eq 't';
}, $max_secs);
ok($ended, 'the job ended while the load ran');
is(sql("SELECT state FROM pkonline.jobs WHERE id = $job"), 'done', 'the job is done')
  or diag(sql("SELECT last_error FROM pkonline.jobs WHERE id = $job"));
note('report: ' . sql(qq{SELECT string_agg(step || ' ' || wall || ' ' || coalesce(longest_lock, '-') || ' '
	|| lock_ms || ' ms', '; ' ORDER BY step_no NULLS LAST) FROM pkonline.report($job)}));

$load->check_rounds(500);

# --- the key ----------------------------------------------------------------------------------------
is(sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'events'::regclass AND contype = 'p'"),
	'PRIMARY KEY (id, ts)', 'the parent has the primary key (id, ts)');
is(sql(q{
	SELECT count(*) FROM pg_partition_tree('events') t WHERE t.isleaf AND NOT EXISTS (
	  SELECT 1 FROM pg_constraint c JOIN pg_constraint p ON p.oid = c.conparentid
	   WHERE c.conrelid = t.relid AND c.contype = 'p' AND p.conrelid = 'events'::regclass)}),
	'0', 'every partition (the two new ones too) has its key, attached to the parent\'s');
is(sql(q{
	WITH leaf_keys AS MATERIALIZED (
	  SELECT i.indexrelid FROM pg_partition_tree('events') t JOIN pg_index i ON i.indrelid = t.relid
	   WHERE t.isleaf AND i.indisprimary AND i.indisvalid)
	SELECT count(*) FROM leaf_keys, LATERAL bt_index_check(indexrelid, heapallindexed => true)}), $leaves_after,
	'amcheck: each partition\'s key index is sound and holds every row of its partition');
is(sql('SELECT count(*) = count(id) AND count(id) = count(DISTINCT id) FROM events'), 't', 'every row has its own id');
is(sql(q{
	SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid IN (SELECT relid FROM pg_partition_tree('events')) AND NOT tgisinternal)
	     + (SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pkonline%')
	     + (SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%')}), '0', 'no helper left');
is(sql("INSERT INTO events (k, ts, balance) VALUES (-1, CURRENT_DATE, 0) RETURNING id > 0"), 't',
	'a row inserted afterwards gets an id');

# --- every row where the load left it ---------------------------------------------------------------
my $expected = sql("SELECT $rows + 100 + count(*) FILTER (WHERE kind = 'i') - count(*) FILTER (WHERE kind = 'd') FROM load_log");
is(sql('SELECT count(*) FROM events WHERE k > 0'), $expected, "row count = original + inserted - deleted ($expected)");
is(sql(qq{
	SELECT count(*) FROM events e
	  LEFT JOIN (SELECT k, sum(delta) AS d FROM load_log WHERE kind = 'u' GROUP BY k) u USING (k)
	 WHERE e.k BETWEEN 1 AND $rows AND (e.balance IS DISTINCT FROM coalesce(u.d, 0)
	                                   OR e.filler IS DISTINCT FROM repeat(md5(e.k::text), 2))}),
	'0', 'original rows: each balance = the updates the load logged; data unchanged');

PkonlineLoad::check_no_client_lock_waits($node);

# --- a crash in the middle of a partitioned backfill ------------------------------------------------
sql(q{
	CREATE TABLE crashy (a int NOT NULL, b text) PARTITION BY LIST (a);
	CREATE TABLE crashy_0 PARTITION OF crashy FOR VALUES IN (0);
	CREATE TABLE crashy_1 PARTITION OF crashy FOR VALUES IN (1);
	CREATE TABLE crashy_2 PARTITION OF crashy FOR VALUES IN (2);
	INSERT INTO crashy SELECT g % 3, md5(g::text) FROM generate_series(1, 150000) g;
});
my $sum = sql("SELECT md5(string_agg(a || b, ',' ORDER BY b)) FROM crashy");
my $cjob = sql(q{
	SET client_min_messages = warning;
	SET pkonline.batch_size = 10; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = 20;
	SELECT pkonline.add_int_pk('crashy');
});
ok($node->poll_query_until('postgres',
	"SELECT jsonb_array_length(options -> 'walked') >= 1 AND cursor_block > (options ->> 'leaf_base')::bigint FROM pkonline.jobs WHERE id = $cjob"),
	'crash: the backfill is in its second partition');
$node->stop('immediate');
$node->start;
ok($node->poll_query_until('postgres', "SELECT state IN ('done', 'failed') FROM pkonline.jobs WHERE id = $cjob"),
	'crash: the launcher resumed the job to its end');
is(sql("SELECT state FROM pkonline.jobs WHERE id = $cjob"), 'done', 'crash: the job is done')
  or diag(sql("SELECT last_error FROM pkonline.jobs WHERE id = $cjob"));
cmp_ok(sql("SELECT attempts FROM pkonline.jobs WHERE id = $cjob"), '>=', 2, 'crash: it ran in more than one worker');
is(sql('SELECT count(*) = 150000 AND count(*) = count(DISTINCT id) AND count(id) = count(*) FROM crashy'), 't',
	'crash: every row kept and numbered once');
is(sql("SELECT md5(string_agg(a || b, ',' ORDER BY b)) FROM crashy"), $sum, 'crash: every row\'s data unchanged');
is(sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'crashy'::regclass"), 'PRIMARY KEY (id, a)',
	'crash: the key is attached');

# --- crashes in the partitions' keys and after the attach ------------------------------------------
# (a) while the second partition's CREATE UNIQUE INDEX CONCURRENTLY waits for an old snapshot (the
# first partition has its key): the crash leaves an INVALID index, which the resumed job drops and
# builds again; (b) at 'attach_committed': the key is attached, the step not yet recorded done.
sub hold_wait_point {
	my ($name) = @_;
	my $s = $node->background_psql('postgres', timeout => 60);
	$s->query_safe("SELECT pkonline.hold_wait_point('$name')");
	return $s;
}
sub at_wait_point {
	my ($job, $step, $label) = @_;
	ok($node->poll_query_until('postgres',
		"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'pkonline job $job' "
		  . "AND wait_event_type = 'Lock' AND wait_event = 'advisory') "
		  . "AND (SELECT step = '$step' FROM pkonline.status WHERE job = $job)"),
		"$label: the worker waits in step $step");
}
sub crash_and_restart {
	my (@sessions) = @_;
	$node->stop('immediate');
	for my $s (@sessions) { eval { $s->quit; 1 } or eval { $s->{run}->kill_kill; 1 }; }
	$node->start;
}
sub check_tree {
	my ($job, $table, $label) = @_;
	ok($node->poll_query_until('postgres', "SELECT state IN ('done', 'failed') FROM pkonline.jobs WHERE id = $job"),
		"$label: the launcher resumed the job to its end");
	is(sql("SELECT state FROM pkonline.jobs WHERE id = $job"), 'done', "$label: the job is done")
	  or diag(sql("SELECT last_error FROM pkonline.jobs WHERE id = $job"));
	is(sql("SELECT count(*) = 30000 AND count(*) = count(DISTINCT id) FROM $table"), 't', "$label: every row numbered once");
	is(sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '$table'::regclass"),
		'PRIMARY KEY (id, a)', "$label: the key is attached");
	is(sql(qq{SELECT count(*) FROM pg_partition_tree('$table') t JOIN pg_index i ON i.indrelid = t.relid
	           WHERE t.isleaf AND i.indisprimary AND i.indisvalid}), '3', "$label: each partition has its valid key");
	is(sql(qq{SELECT count(*) FROM pg_partition_tree('$table') t JOIN pg_index i ON i.indrelid = t.relid
	           WHERE NOT i.indisvalid OR NOT i.indisprimary}), '0', "$label: no other index left (no INVALID one)");
	is(sql("SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pkonline%'"), '0', "$label: no check left");
}
for my $case (['(a) create_index', 'create_index', 'partition_keys'], ['(b) attach_committed', 'attach_committed', 'attach'])
{
	my ($label, $point, $step) = @$case;
	my $table = $point eq 'create_index' ? 'ck_a' : 'ck_b';
	sql(qq{
		CREATE TABLE $table (a int NOT NULL, b text) PARTITION BY LIST (a);
		CREATE TABLE ${table}_0 PARTITION OF $table FOR VALUES IN (0);
		CREATE TABLE ${table}_1 PARTITION OF $table FOR VALUES IN (1);
		CREATE TABLE ${table}_2 PARTITION OF $table FOR VALUES IN (2);
		INSERT INTO $table SELECT g % 3, md5(g::text) FROM generate_series(1, 30000) g;
	});
	my $hold = hold_wait_point($point);
	my $job = sql("SET client_min_messages = warning; SET pkonline.debug_wait_points = on; SELECT pkonline.add_int_pk('$table')");
	at_wait_point($job, $step, $label);
	my @sessions = ($hold);
	if ($point eq 'create_index')
	{
		# the first partition through, the second held before its build, then an old snapshot
		# for the build to wait for
		$hold->query_safe("SELECT pkonline.release_wait_point('create_index')");
		$hold->query_safe("SELECT pkonline.hold_wait_point('create_index')");
		at_wait_point($job, $step, "$label, second partition");
		my $snap = $node->background_psql('postgres', timeout => 60);
		$snap->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM crashy;');
		$hold->query_safe("SELECT pkonline.release_wait_point('create_index')");
		ok($node->poll_query_until('postgres', "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index "
			  . "WHERE command = 'CREATE INDEX CONCURRENTLY' AND phase = 'waiting for old snapshots')"),
			"$label: the second partition's build waits for the old snapshot");
		is(sql(qq{SELECT count(*) FROM pg_partition_tree('$table') t JOIN pg_index i ON i.indrelid = t.relid
		           WHERE i.indisprimary}), '1', "$label: the first partition has its key");
		push @sessions, $snap;
	}
	crash_and_restart(@sessions);
	check_tree($job, $table, $label);
	if ($point eq 'create_index')
	{
		is(sql("SELECT count(*) FROM pkonline.events WHERE job_id = $job AND message LIKE 'dropping INVALID index%'"), '1',
			"$label: the resumed job dropped the INVALID leftover and built it again");
	}
}

$node->stop;
done_testing();
