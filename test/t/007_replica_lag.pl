# The backfill waits for a lagging physical standby: with replay paused on a real streaming
# standby, the job's backfill stops advancing (a 'throttle' event says it waits) until replay
# resumes; then it goes on, the job completes, and the standby replays the primary key too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time);
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pkonline'
max_worker_processes = 16
});
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION pkonline;
	CREATE TABLE t (a int, b text);
	INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100000) g;
});
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->append_conf('postgresql.conf', "wal_receiver_status_interval = '1s'");
$standby->start;
$primary->wait_for_catchup($standby);

# replay stops on the standby; WAL still streams to it
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
ok($standby->poll_query_until('postgres', "SELECT pg_get_wal_replay_pause_state() = 'paused'"), 'replay paused');

my $job = $primary->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SET pkonline.max_replica_lag = '1s';
	SET pkonline.batch_size = 10;
	SET pkonline.batch_time = 0;
	SET pkonline.batch_sleep = 20;
	SELECT pkonline.add_int_pk('t');
});
like($job, qr/^\d+$/, "job $job started");

my $waits = "SELECT count(*) > 0 FROM pkonline.events WHERE job_id = $job AND kind = 'throttle' AND message LIKE '%the backfill waits'";
ok($primary->poll_query_until('postgres', $waits), 'a throttle event says the backfill waits for the standby');
note('waits: ' . $primary->safe_psql('postgres',
	"SELECT message FROM pkonline.events WHERE job_id = $job AND kind = 'throttle' ORDER BY id LIMIT 1"));
my $cursor1 = $primary->safe_psql('postgres', "SELECT cursor_block FROM pkonline.jobs WHERE id = $job");
sleep 3;
my $cursor2 = $primary->safe_psql('postgres', "SELECT cursor_block FROM pkonline.jobs WHERE id = $job");
is($cursor2, $cursor1, "the backfill does not advance while the standby lags (cursor at block $cursor1)");
is($primary->safe_psql('postgres', "SELECT state || ' ' || step FROM pkonline.status WHERE job = $job"),
	'running backfill', 'the job is still running its backfill');
cmp_ok($primary->safe_psql('postgres', "SELECT end_block FROM pkonline.jobs WHERE id = $job"), '>', $cursor1,
	'the backfill is not finished');

my $paused_at = time;
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
my $goes_on = "SELECT count(*) > 0 FROM pkonline.events WHERE job_id = $job AND kind = 'throttle' AND message LIKE '%goes on'";
ok($primary->poll_query_until('postgres', $goes_on), 'once replay resumes, a throttle event says the backfill goes on');
note(sprintf('the backfill went on %.1f s after replay resumed', time - $paused_at));
ok($primary->poll_query_until('postgres', "SELECT state = 'done' FROM pkonline.jobs WHERE id = $job"), 'the job is done');

$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres',
	"SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 't'::regclass"),
	'PRIMARY KEY (id)', 'the standby has the primary key');
is($standby->safe_psql('postgres', 'SELECT count(*) = count(DISTINCT id) FROM t'), 't',
	'every row has its own id on the standby');

# with max_replica_lag = 0 a job does not wait, even while replay is paused
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$primary->safe_psql('postgres', 'CREATE TABLE u AS SELECT g AS a FROM generate_series(1, 20000) g');
my $job2 = $primary->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SET pkonline.max_replica_lag = 0;
	SET pkonline.batch_size = 10;
	SELECT pkonline.add_int_pk('u');
});
ok($primary->poll_query_until('postgres', "SELECT state = 'done' FROM pkonline.jobs WHERE id = $job2"),
	'with max_replica_lag = 0 the job completes while replay is paused');
# (the clients' latency throttle may pause it on a busy machine: only a wait for the standby counts)
is($primary->safe_psql('postgres', "SELECT count(*) FROM pkonline.events WHERE job_id = $job2 AND kind = 'throttle' AND message LIKE '%standby%'"),
	'0', 'and it never waited for the standby');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');

$standby->stop;
$primary->stop;
done_testing();
