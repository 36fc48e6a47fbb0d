# pg_cron, the real extension (Debian's postgresql-15-cron), running the README's recipes:
#  (a) a job created with start => false and started by a cron job that a non-superuser scheduled;
#  (b) a cron job calling an operation on a table that is not the scheduling role's: refused, and
#      cron.job_run_details says why;
#  (c) without pkonline preloaded (no launcher), a job orphaned by a crash is resumed by
#      pkonline.run_pending() from cron, and ends with every row intact.
# pg_cron 1.4 schedules by the minute: each case waits for the next minute's run.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $cron_wait = 150;    # seconds: the next minute's run, and the job

sub cron_node
{
	my ($name, $preload) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$preload'
max_worker_processes = 24
cron.database_name = 'postgres'
cron.use_background_workers = on
});
	$node->start;
	$node->safe_psql('postgres', q{
		CREATE EXTENSION pg_cron;
		CREATE EXTENSION pkonline;
		CREATE ROLE alice LOGIN;
		CREATE ROLE bob LOGIN;
		GRANT USAGE ON SCHEMA cron TO alice;
		GRANT CREATE ON SCHEMA public TO alice, bob;
	});
	return $node;
}

sub as
{
	my ($node, $role, $sql) = @_;
	return $node->safe_psql('postgres', "SET ROLE $role; SET client_min_messages = warning; $sql");
}

# --- (a) and (b): pg_cron and pkonline preloaded ---------------------------------------------------
my $node = cron_node('cron', 'pg_cron,pkonline');

as($node, 'alice', q{
	CREATE TABLE public.nightly (a int, b text);
	INSERT INTO public.nightly SELECT g, 'r' || g FROM generate_series(1, 20000) g;
});
my $job = as($node, 'alice', q{SELECT pkonline.add_int_pk('public.nightly', start => false)});
is($node->safe_psql('postgres', "SELECT state FROM pkonline.jobs WHERE id = $job"), 'created', '(a) the job waits, created');
# (docs/scheduling.md's recipe: it starts the job, and unschedules itself once the job is over)
as($node, 'alice', qq{SELECT cron.schedule('pk-nightly', '* * * * *', \$\$
  SELECT CASE WHEN s.state = 'created' THEN pkonline.start($job)
              WHEN s.state IN ('done', 'cancelled') THEN cron.unschedule('pk-nightly')::text END
    FROM pkonline.status s WHERE s.job = $job \$\$)});
ok($node->poll_query_until('postgres', "SELECT state = 'done' FROM pkonline.jobs WHERE id = $job", 't', $cron_wait),
	'(a) the cron job alice scheduled started it, and it is done')
  or diag($node->safe_psql('postgres', 'SELECT status, return_message FROM cron.job_run_details'));
is($node->safe_psql('postgres', q{
	SELECT d.status || ' ' || d.username FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	 WHERE j.jobname = 'pk-nightly' ORDER BY d.runid LIMIT 1}), 'succeeded alice', '(a) the run succeeded, as alice');
is($node->safe_psql('postgres', q{
	SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || count(*) FILTER (WHERE id IS NULL) FROM public.nightly}),
	'20000 20000 0', '(a) every row has its own id');
is($node->safe_psql('postgres', "SELECT owner::text FROM pkonline.jobs WHERE id = $job"), 'alice',
	'(a) the job is alice\'s');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM cron.job WHERE jobname = 'pk-nightly'}, 't', $cron_wait),
	'(a) and the cron job unscheduled itself once the job was done');

# (b) a table that is not alice's: the operation refuses it, the cron run fails and says why
as($node, 'bob', q{CREATE TABLE public.bobs (a int); INSERT INTO public.bobs SELECT generate_series(1, 100)});
as($node, 'alice', q{SELECT cron.schedule('pk-bobs', '* * * * *', 'SELECT pkonline.add_int_pk(''public.bobs'')')});
ok($node->poll_query_until('postgres', q{
	SELECT EXISTS (SELECT 1 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	                WHERE j.jobname = 'pk-bobs' AND d.status = 'failed')}, 't', $cron_wait),
	'(b) the cron run on bob\'s table failed');
like($node->safe_psql('postgres', q{
	SELECT d.return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	 WHERE j.jobname = 'pk-bobs' ORDER BY d.runid LIMIT 1}),
	qr/must be owner of table public\.bobs/, '(b) job_run_details says why: must be owner');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pkonline.jobs WHERE relid = 'public.bobs'::regclass}), '0',
	'(b) no job was created on bob\'s table');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.bobs'::regclass AND attnum > 0}),
	'1', '(b) bob\'s table is unchanged');
as($node, 'alice', q{SELECT cron.unschedule('pk-bobs')});
$node->stop;

# --- (c) pkonline not preloaded: run_pending() from cron resumes an orphaned job ------------------
my $bare = cron_node('cron_bare', 'pg_cron');
as($bare, 'alice', q{
	CREATE TABLE public.big (a int, b text);
	INSERT INTO public.big SELECT g, md5(g::text) FROM generate_series(1, 100000) g;
});
my $sum = $bare->safe_psql('postgres', q{SELECT md5(string_agg(a || b, ',' ORDER BY a)) FROM public.big});
# small batches with pauses: the crash lands in the backfill
my $j2 = as($bare, 'alice', q{
	SET pkonline.batch_size = 5; SET pkonline.batch_time = 0; SET pkonline.batch_sleep = 20;
	SELECT pkonline.add_int_pk('public.big');
});
ok($bare->poll_query_until('postgres',
		"SELECT step_no = 2 AND cursor_block > 0 FROM pkonline.jobs WHERE id = $j2", 't', 60),
	'(c) the backfill is under way');
$bare->stop('immediate');
$bare->start;
sleep 2;
is($bare->safe_psql('postgres', "SELECT state FROM pkonline.jobs WHERE id = $j2"), 'running',
	'(c) after the crash the job is orphaned (no launcher)');
as($bare, 'alice', q{SELECT cron.schedule('pk-resume', '* * * * *', 'SELECT pkonline.run_pending()')});
ok($bare->poll_query_until('postgres', "SELECT state = 'done' FROM pkonline.jobs WHERE id = $j2", 't', $cron_wait + 120),
	'(c) run_pending() from cron resumed it, and it is done')
  or diag($bare->safe_psql('postgres', "SELECT state, step_no, last_error FROM pkonline.jobs WHERE id = $j2"));
is($bare->safe_psql('postgres', q{SELECT md5(string_agg(a || b, ',' ORDER BY a)) FROM public.big}), $sum,
	'(c) every row intact');
is($bare->safe_psql('postgres', q{SELECT count(*) || ' ' || count(DISTINCT id) FROM public.big}), '100000 100000',
	'(c) every row has its own id');
as($bare, 'alice', q{SELECT cron.unschedule('pk-resume')});
$bare->stop;

done_testing();
