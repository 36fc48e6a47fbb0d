# Crashes at the delicate points of the last two steps: a server crash (immediate stop) and the
# automatic resume by the preloaded launcher end exactly like an uninterrupted run.
#  (a) during step 6's CREATE UNIQUE INDEX CONCURRENTLY, while it waits for an old snapshot: the
#      crash leaves an INVALID index, which the resumed job drops and builds again;
#  (b) at the 'attach' wait point, before the attach transaction;
#  (c) at the 'attach_committed' wait point: the primary key is attached but step 7 is not yet
#      recorded as done; the resumed job must see that it is done rather than fail.
#  (d) with method => 'copy', at the 'swap' wait point: the copy is built and caught up, a write
#      is logged, the swap has not begun;
#  (e) with method => 'copy', at 'swap_committed': the storages are swapped and the key attached,
#      the old storage not dropped yet.
# Every case is compared with a reference table that got its primary key without a crash.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# Nothing here should take long: bound every poll and background session.
$PostgreSQL::Test::Utils::timeout_default = 60;

my $rows    = 50_000;
my $t_start = time;

my $node = PostgreSQL::Test::Cluster->new('crash_steps');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pkonline'\nmax_worker_processes = 16\n");
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
	CREATE EXTENSION pkonline;
	CREATE EXTENSION amcheck;
	CREATE TABLE other_table (x int);
	INSERT INTO other_table VALUES (1), (2), (3);
});

# A table without a primary key; returns the checksum of its data.
sub make_table {
	my ($table) = @_;
	sql(qq{
		CREATE TABLE $table (a int, b text, c timestamptz);
		INSERT INTO $table
		  SELECT g, CASE WHEN g % 97 = 0 THEN NULL ELSE md5(g::text) END,
		         '2026-01-01'::timestamptz + g * interval '1 s'
		    FROM generate_series(1, $rows) g;
	});
	return checksum($table);
}

sub checksum {
	my ($table) = @_;
	return sql("SELECT md5(string_agg(format('%s|%s|%s', a, b, c), ',' ORDER BY a)) FROM $table");
}

# The table's definition, its name replaced by T: columns, constraints, indexes, triggers,
# the column's sequence.
sub shape {
	my ($table) = @_;
	return sql(qq{
		SELECT replace(concat_ws(E'\\n',
		  (SELECT string_agg(format('%s %s notnull=%s identity=%s default=%s', attname,
		                            format_type(atttypid, atttypmod), attnotnull, attidentity,
		                            pg_get_expr(d.adbin, d.adrelid)), ', ' ORDER BY attnum)
		     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		    WHERE a.attrelid = '$table'::regclass AND a.attnum > 0 AND NOT a.attisdropped),
		  (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ', ' ORDER BY conname)
		     FROM pg_constraint WHERE conrelid = '$table'::regclass),
		  (SELECT string_agg(pg_get_indexdef(i.indexrelid) || ' valid=' || i.indisvalid
		                     || ' ready=' || i.indisready || ' primary=' || i.indisprimary, ', '
		                     ORDER BY i.indexrelid::regclass::text)
		     FROM pg_index i WHERE i.indrelid = '$table'::regclass),
		  (SELECT 'triggers=' || count(*) FROM pg_trigger WHERE tgrelid = '$table'::regclass),
		  'sequence=' || pg_get_serial_sequence('$table', 'id')), '$table', 'T')
	});
}

# --- wait points and sessions ----------------------------------------------------------------

# A session holding the named wait point.
sub hold_wait_point {
	my ($name) = @_;
	my $s = $node->background_psql('postgres', timeout => 60);
	$s->query_safe("SELECT pkonline.hold_wait_point('$name')");
	return $s;
}

sub start_job {
	my ($table, $method) = @_;
	$method //= 'in_place';
	return sql("SET pkonline.debug_wait_points = on; SELECT pkonline.add_int_pk('$table', method => '$method')");
}

sub poll {
	my ($query, $what) = @_;
	ok($node->poll_query_until('postgres', $query), $what);
}

sub at_wait_point {
	my ($job, $step, $label) = @_;
	poll("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pkonline worker' "
		  . "AND application_name = 'pkonline job $job' AND wait_event_type = 'Lock' AND wait_event = 'advisory') "
		  . "AND (SELECT state = 'running' AND step = '$step' FROM pkonline.status WHERE job = $job)",
		"$label: the worker waits at the wait point in step $step");
}

# The crash kills every session; their psql processes just need to exit.
sub crash_and_restart {
	my ($label, @sessions) = @_;
	$node->stop('immediate');
	for my $s (@sessions) {
		eval { $s->quit; 1 } or eval { $s->{run}->kill_kill; 1 };
	}
	$node->start;
}

sub wait_end {
	my ($job, $label) = @_;
	poll("SELECT state IN ('done', 'failed', 'cancelled', 'paused') FROM pkonline.status WHERE job = $job",
		"$label: after the restart the launcher resumed the job to its end");
}

# --- the result of an uninterrupted run, and the checks ----------------------------------------

my $ref_sum = make_table('ref');
my $ref_job = sql("SELECT pkonline.add_int_pk('ref')");
my ($ret, $out, $err) = $node->psql('postgres', "CALL pkonline.wait($ref_job, '60 s')");
is($out, 'done', 'reference: uninterrupted job done');
is(checksum('ref'), $ref_sum, 'reference: data unchanged');
my $ref_shape = shape('ref');
like($ref_shape, qr/PRIMARY KEY \(id\)/, 'reference: primary key attached');
note "reference shape:\n$ref_shape";

sub check_result {
	my ($job, $table, $sum, $label) = @_;
	is(sql("SELECT state || coalesce(' ' || last_error, '') FROM pkonline.status WHERE job = $job"),
		'done', "$label: job done")
	  or diag(sql("SELECT string_agg(format('%s %s %s %s %s', at, kind, step, message, detail), E'\\n' ORDER BY id) "
			  . "FROM pkonline.events WHERE job_id = $job"));
	is(sql("SELECT count(*) FROM $table"), $rows, "$label: no row lost or added");
	is(checksum($table), $sum, "$label: every row's data unchanged");
	is(sql("SELECT count(*) = count(id) AND count(id) = count(DISTINCT id) FROM $table"),
		't', "$label: every row has its own id, none NULL");
	is(sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '$table'::regclass AND contype = 'p'"),
		'PRIMARY KEY (id)', "$label: primary key attached");
	is(sql("SELECT count(*) FROM pg_index WHERE indrelid = '$table'::regclass AND NOT (indisvalid AND indisready)"),
		'0', "$label: no INVALID index left");
	is(sql("SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%') || ' '"
		  . " || (SELECT count(*) FROM pg_proc WHERE proname LIKE 'pkonline%') || ' '"
		  . " || (SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pkonline%') || ' '"
		  . " || (SELECT count(*) FROM pg_trigger WHERE tgrelid = '$table'::regclass)"),
		'0 0 0 0', "$label: no helper relation, function, constraint or trigger left");
	is(shape($table), $ref_shape, "$label: table definition identical to the uninterrupted run's");
	cmp_ok(sql("SELECT attempts FROM pkonline.jobs WHERE id = $job"), '>=', 2,
		"$label: the job ran in more than one worker");
	is(sql("SELECT count(*) FROM pkonline.events WHERE job_id = $job AND kind = 'error'"), '0',
		"$label: no error recorded");
	# New rows are numbered after the existing ones.
	my $max = sql("SELECT max(id) FROM $table");
	my $new = sql("INSERT INTO $table (a) VALUES (-1) RETURNING id");
	cmp_ok($new, '>', $max, "$label: a new row gets an id after the highest one");
	sql("DELETE FROM $table WHERE a = -1");
}

# --- (a) crash while CREATE UNIQUE INDEX CONCURRENTLY waits for an old snapshot -----------------

{
	my $label = '(a) create_index';
	my $sum   = make_table('t_a');
	my $hold  = hold_wait_point('create_index');
	my $job   = start_job('t_a');
	at_wait_point($job, 'create_index', $label);

	# A transaction with a snapshot older than the build, on another table.
	my $snap = $node->background_psql('postgres', timeout => 60);
	$snap->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM other_table;');
	$hold->query_safe("SELECT pkonline.release_wait_point('create_index')");

	poll("SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index WHERE relid = 't_a'::regclass "
		  . "AND command = 'CREATE INDEX CONCURRENTLY' AND phase = 'waiting for old snapshots')",
		"$label: the concurrent build waits for the old snapshot");
	is(sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a_pkey'::regclass"), 'f',
		"$label: the index is not valid yet");

	crash_and_restart($label, $hold, $snap);
	wait_end($job, $label);
	is(sql("SELECT count(*) FROM pkonline.events WHERE job_id = $job AND message LIKE 'dropping INVALID index t_a_pkey%'"),
		'1', "$label: the resumed job dropped the INVALID leftover and built it again");
	check_result($job, 't_a', $sum, $label);
}

# --- (b) crash at the 'attach' wait point ---------------------------------------------------------

{
	my $label = '(b) attach';
	my $sum   = make_table('t_b');
	my $hold  = hold_wait_point('attach');
	my $job   = start_job('t_b');
	at_wait_point($job, 'attach', $label);
	is(sql("SELECT (SELECT count(*) FROM pg_constraint WHERE conrelid = 't_b'::regclass AND contype = 'p') || ' ' "
		  . "|| (SELECT indisvalid FROM pg_index WHERE indexrelid = 't_b_pkey'::regclass)"),
		'0 true', "$label: before the crash the index is valid and not attached");

	crash_and_restart($label, $hold);
	wait_end($job, $label);
	check_result($job, 't_b', $sum, $label);
}

# --- (c) crash at the 'attach_committed' wait point -----------------------------------------------

{
	my $label = '(c) attach_committed';
	my $sum   = make_table('t_c');
	my $hold  = hold_wait_point('attach_committed');
	my $job   = start_job('t_c');
	at_wait_point($job, 'attach', $label);
	is(sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 't_c'::regclass AND contype = 'p'"),
		'PRIMARY KEY (id)', "$label: before the crash the primary key is attached");
	is(sql("SELECT state FROM pkonline.job_steps WHERE job_id = $job AND step_no = 7"), 'running',
		"$label: before the crash step 7 (attach) is not recorded as done");

	crash_and_restart($label, $hold);
	wait_end($job, $label);
	check_result($job, 't_c', $sum, $label);
}

# --- (d) copy method: crash at the 'swap' wait point, the copy built and caught up ---------------

{
	my $label = '(d) copy, swap';
	my $sum   = make_table('t_d');
	my $hold  = hold_wait_point('swap');
	my $job   = start_job('t_d', 'copy');
	at_wait_point($job, 'swap', $label);
	my $copy = sql("SELECT relname FROM pg_class WHERE relname LIKE 'pkonline\\_${job}\\_copy%' AND relkind = 'r'");
	is(sql("SELECT (SELECT count(*) FROM pg_constraint WHERE conrelid = 't_d'::regclass AND contype = 'p') || ' ' "
		  . "|| (SELECT count(*) FROM $copy)"),
		"0 $rows", "$label: before the crash the copy holds every row and nothing is attached");
	sql("UPDATE t_d SET b = b WHERE a <= 10");  # logged, applied by the resumed job

	crash_and_restart($label, $hold);
	wait_end($job, $label);
	check_result($job, 't_d', $sum, $label);
}

# --- (e) copy method: crash at 'swap_committed', storage swapped, cleanup not run ---------------

{
	my $label = '(e) copy, swap_committed';
	my $sum   = make_table('t_e');
	my $hold  = hold_wait_point('swap_committed');
	my $job   = start_job('t_e', 'copy');
	at_wait_point($job, 'swap', $label);
	is(sql("SELECT (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 't_e'::regclass AND contype = 'p') "
		  . "|| ' ' || (SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline\\_${job}\\_copy%')"),
		'PRIMARY KEY (id) 1', "$label: before the crash the key is attached and the old storage not dropped yet");

	crash_and_restart($label, $hold);
	wait_end($job, $label);
	check_result($job, 't_e', $sum, $label);
	is(sql("SELECT count(*) FROM verify_heapam('t_e')"), '0', "$label: amcheck: heap and TOAST intact");
	is(sql("SELECT count(bt_index_check(indexrelid, true)) FROM pg_index WHERE indrelid = 't_e'::regclass"), '1',
		"$label: amcheck: the key's index agrees with the heap");
}

$node->stop;
note sprintf('elapsed: %.1f s', time - $t_start);
done_testing();
