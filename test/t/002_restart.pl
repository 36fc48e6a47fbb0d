# Restarts: a job interrupted by a crash (immediate stop) resumes and ends with every row intact —
# by itself when the library is preloaded (the launcher), through run_pending() when it is not.
# A paused job stays paused across a restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $rows = 200_000;

sub make_table {
	my ($node) = @_;
	$node->safe_psql('postgres', qq{
		CREATE EXTENSION pkonline;
		CREATE TABLE big (a int, b text, c timestamptz);
		INSERT INTO big SELECT g, md5(g::text), '2026-01-01'::timestamptz + g * interval '1 s'
		  FROM generate_series(1, $rows) g;
	});
	return $node->safe_psql('postgres', 'SELECT md5(string_agg(a || b || c, \',\' ORDER BY a)) FROM big');
}

sub make_table_again {
	my ($node) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE big (a int, b text, c timestamptz);
		INSERT INTO big SELECT g, md5(g::text), '2026-01-01'::timestamptz + g * interval '1 s'
		  FROM generate_series(1, $rows) g;
	});
	return $node->safe_psql('postgres', 'SELECT md5(string_agg(a || b || c, \',\' ORDER BY a)) FROM big');
}

# A slow job: small batches with pauses, so the crash lands in the middle of the backfill.
sub start_slow_job {
	my ($node) = @_;
	return $node->safe_psql('postgres', q{
		SET pkonline.batch_size = 10; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = 20;
		SELECT pkonline.add_int_pk('big');
	});
}

sub wait_until {
	my ($node, $sql, $what) = @_;
	ok($node->poll_query_until('postgres', $sql), $what);
}

sub check_result {
	my ($node, $job, $checksum, $label) = @_;
	is($node->safe_psql('postgres', "SELECT state FROM pkonline.status WHERE job = $job"), 'done', "$label: job done");
	is($node->safe_psql('postgres', 'SELECT count(*) = count(DISTINCT id) AND count(id) = count(*) FROM big'),
		't', "$label: every row has its own id");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM big'), $rows, "$label: no row lost");
	is($node->safe_psql('postgres', 'SELECT md5(string_agg(a || b || c, \',\' ORDER BY a)) FROM big'),
		$checksum, "$label: every row's data unchanged");
	is($node->safe_psql('postgres',
		"SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'big'::regclass"),
		'PRIMARY KEY (id)', "$label: primary key attached");
	cmp_ok($node->safe_psql('postgres', "SELECT attempts FROM pkonline.jobs WHERE id = $job"), '>=', 2,
		"$label: the job ran in more than one worker");
}

# 1. Preloaded: the launcher resumes the orphaned job after a crash.
my $pre = PostgreSQL::Test::Cluster->new('preloaded');
$pre->init;
$pre->append_conf('postgresql.conf', "shared_preload_libraries = 'pkonline'\nmax_worker_processes = 16\n");
$pre->start;
my $sum = make_table($pre);
my $job = start_slow_job($pre);
wait_until($pre, "SELECT backfill_pct > 5 FROM pkonline.status WHERE job = $job", 'preloaded: backfill under way');
$pre->stop('immediate');
$pre->start;
wait_until($pre, "SELECT state IN ('done', 'failed') FROM pkonline.status WHERE job = $job",
	'preloaded: the launcher resumed the job to its end');
check_result($pre, $job, $sum, 'preloaded');

# 2. A paused job stays paused across a restart, and resumes when asked.
$pre->safe_psql('postgres', 'DROP TABLE big');
$sum = make_table_again($pre);
$job = start_slow_job($pre);
wait_until($pre, "SELECT backfill_pct > 5 FROM pkonline.status WHERE job = $job", 'pause: backfill under way');
$pre->safe_psql('postgres', "SELECT pkonline.pause($job)");
wait_until($pre, "SELECT state = 'paused' FROM pkonline.status WHERE job = $job", 'pause: job paused');
my $done_before = $pre->safe_psql('postgres', "SELECT rows_done FROM pkonline.jobs WHERE id = $job");
$pre->restart;
sleep 3;
is($pre->safe_psql('postgres', "SELECT state FROM pkonline.status WHERE job = $job"), 'paused',
	'pause: still paused after a restart');
is($pre->safe_psql('postgres', "SELECT rows_done FROM pkonline.jobs WHERE id = $job"), $done_before,
	'pause: no work done while paused');
$pre->safe_psql('postgres', "SELECT pkonline.resume($job)");
wait_until($pre, "SELECT state IN ('done', 'failed') FROM pkonline.status WHERE job = $job", 'pause: resumed job ended');
check_result($pre, $job, $sum, 'paused and resumed');
$pre->stop;

# 3. Not preloaded: the job shows as orphaned after a crash; run_pending() resumes it.
my $plain = PostgreSQL::Test::Cluster->new('not_preloaded');
$plain->init;
$plain->append_conf('postgresql.conf', "max_worker_processes = 16\n");
$plain->start;
$sum = make_table($plain);
$job = start_slow_job($plain);
wait_until($plain, "SELECT backfill_pct > 5 FROM pkonline.status WHERE job = $job", 'not preloaded: backfill under way');
$plain->stop('immediate');
$plain->start;
ok($plain->poll_query_until('postgres', "SELECT state || ' ' || worker_alive = 'orphaned false' FROM pkonline.status WHERE job = $job"),
	'not preloaded: the job is visibly orphaned after the crash');
is($plain->safe_psql('postgres', 'SELECT pkonline.run_pending()'), '1', 'not preloaded: run_pending() starts it');
wait_until($plain, "SELECT state IN ('done', 'failed') FROM pkonline.status WHERE job = $job",
	'not preloaded: the job ended');
check_result($plain, $job, $sum, 'not preloaded');
$plain->stop;

done_testing();
