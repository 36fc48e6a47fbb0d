# set_primary_key on a busy table: the primary key of a 200,000-row table moves from id to
# account_no while pgbench updates accounts, inserts accounts, inserts transfers that reference
# accounts(id) through a foreign key, and deletes some of the accounts it inserted.
# Afterwards: the job is done, pgbench saw no failed transaction, account_no is the primary key,
# id stays unique (the foreign key now references that unique constraint, validated), every row is
# where the load left it, and no client waited for a lock longer than pkonline.lock_timeout.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Time::HiRes qw(time);
use Test::More;

my $rows       = 200_000;
my $clients    = 4;
my $round_secs = 4;
my $max_secs   = 90;

my $node = PostgreSQL::Test::Cluster->new('setpk');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pkonline'
max_worker_processes = 16
max_connections = 30
log_lock_waits = on
deadlock_timeout = '100ms'
log_line_prefix = '%m [%p] %a: '
});
$node->start;

$node->safe_psql('postgres', qq{
	CREATE EXTENSION pkonline;
	CREATE TABLE accounts (id int PRIMARY KEY, account_no text NOT NULL, abalance int NOT NULL, filler text);
	INSERT INTO accounts SELECT g, 'ACC-' || g, 0, repeat(md5(g::text), 2) FROM generate_series(1, $rows) g;
	CREATE INDEX accounts_no ON accounts (account_no);  -- not unique: the job builds its own index
	CREATE TABLE transfers (tid bigserial, account_id int NOT NULL REFERENCES accounts ON DELETE CASCADE, amount int);
	INSERT INTO transfers (account_id, amount) SELECT 1 + g % $rows, g FROM generate_series(1, 20000) g;
	CREATE SEQUENCE new_acc START @{[ $rows + 1 ]};
	CREATE TABLE load_log (kind "char" NOT NULL, id int NOT NULL, delta int NOT NULL);
	VACUUM ANALYZE accounts;
	VACUUM ANALYZE transfers;
});

# Each statement changes at most one account and logs what it did in the same statement.
my $script = $node->basedir . '/load.sql';
PostgreSQL::Test::Utils::append_to_file($script, qq{
\\set n random(1, $rows)
\\set delta random(-1000, 1000)
\\set back random(0, 300)
WITH u AS (UPDATE accounts SET abalance = abalance + :delta WHERE account_no = 'ACC-' || :n RETURNING id)
INSERT INTO load_log SELECT 'u', id, :delta FROM u;
INSERT INTO transfers (account_id, amount) VALUES (:n, :delta);
SELECT nextval('new_acc') AS nid \\gset
WITH i AS (INSERT INTO accounts VALUES (:nid, 'ACC-' || :nid, 0, 'new') RETURNING id)
INSERT INTO load_log SELECT 'i', id, 0 FROM i;
WITH d AS (DELETE FROM accounts WHERE id = :nid - :back AND id > $rows RETURNING id)
INSERT INTO load_log SELECT 'd', id, 0 FROM d;
});

my $pgbench = $node->config_data('--bindir') . '/pgbench';
$pgbench = 'pgbench' unless -x $pgbench;

my (@rounds, $cur);
sub start_round
{
	my $r = { out => '', err => '' };
	$r->{h} = IPC::Run::start(
		[ $pgbench, '-n', '-c', $clients, '-j', $clients, '-T', $round_secs, '-f', $script,
		  $node->connstr('postgres') ],
		'>', \$r->{out}, '2>', \$r->{err});
	push @rounds, $r;
	return $r;
}
sub finish_round
{
	my ($r) = @_;
	$r->{h}->finish;
	$r->{rc} = $r->{h}->result(0);
	($r->{processed}) = $r->{out} =~ /^number of transactions actually processed: (\d+)/m;
	($r->{failed})    = $r->{out} =~ /^number of failed transactions: (\d+)/m;
	return;
}

my $load_start = time;
$cur = start_round();
ok($node->poll_query_until('postgres', "SELECT count(*) >= 100 FROM load_log WHERE kind = 'i'"), 'load is running');

my $job = $node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SELECT pkonline.set_primary_key('accounts', ARRAY['account_no']);
});
like($job, qr/^\d+$/, "set_primary_key returned job id $job");

my $ended = 0;
while (1)
{
	finish_round($cur);
	$ended = $node->safe_psql('postgres',
		"SELECT state IN ('done', 'failed', 'cancelled', 'paused') FROM pkonline.jobs WHERE id = $job") eq 't';
	last if $ended || time - $load_start > $max_secs;
	$cur = start_round();
}
ok($ended, 'the job ended while the load ran');
is($node->safe_psql('postgres', "SELECT state FROM pkonline.jobs WHERE id = $job"), 'done', 'the job is done');
note('step durations: ' . $node->safe_psql('postgres', qq{
	SELECT string_agg(step || ' ' || round(extract(epoch FROM finished_at - started_at)::numeric, 3) || 's', ', '
	                  ORDER BY step_no) FROM pkonline.job_steps WHERE job_id = $job}));
note('lock retries: ' . $node->safe_psql('postgres', "SELECT lock_retries FROM pkonline.jobs WHERE id = $job"));

my ($processed, $failed, $bad) = (0, 0, 0);
for my $r (@rounds)
{
	$processed += $r->{processed} // 0;
	$failed += $r->{failed} // 1;
	if ($r->{rc} != 0 || "$r->{out}$r->{err}" =~ /aborted/i)
	{
		$bad++;
		diag("pgbench output:\n$r->{out}\nstderr:\n$r->{err}");
	}
}
is($bad, 0, sprintf('pgbench exited 0 without aborted clients in all %d rounds', scalar @rounds));
is($failed, 0, 'pgbench: no failed transaction');
cmp_ok($processed, '>', 500, "pgbench processed $processed transactions");

# --- the keys -------------------------------------------------------------------------------------
is($node->safe_psql('postgres', q{
	SELECT string_agg(conrelid::regclass || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated, '; '
	                  ORDER BY contype, conname)
	  FROM pg_constraint WHERE conrelid IN ('accounts'::regclass, 'transfers'::regclass)}),
	'transfers FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE true; '
	  . 'accounts PRIMARY KEY (account_no) true; accounts UNIQUE (id) true',
	'account_no is the primary key; id is unique; the foreign key moved to it and is validated');
is($node->safe_psql('postgres', q{
	SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = 'accounts'::regclass}), 't', 'every index valid');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%'}), '0',
	'no helper index left');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pkonline%'}), '0',
	'no helper check left');

# --- every row where the load left it ---------------------------------------------------------------
my $expected = $node->safe_psql('postgres',
	"SELECT $rows + count(*) FILTER (WHERE kind = 'i') - count(*) FILTER (WHERE kind = 'd') FROM load_log");
is($node->safe_psql('postgres', 'SELECT count(*) FROM accounts'), $expected,
	"row count = original + inserted - deleted ($expected)");
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM accounts a
	  LEFT JOIN (SELECT id, sum(delta) AS d FROM load_log WHERE kind = 'u' GROUP BY id) u USING (id)
	 WHERE a.id <= $rows AND (a.abalance IS DISTINCT FROM coalesce(u.d, 0)
	                         OR a.account_no IS DISTINCT FROM 'ACC-' || a.id)}),
	'0', 'original rows: each balance = the updates the load logged; account_no unchanged');
is($node->safe_psql('postgres', 'SELECT count(*) FROM transfers t LEFT JOIN accounts a ON a.id = t.account_id WHERE a.id IS NULL'),
	'0', 'no orphan transfer');

# --- lock waits: no client waited longer than pkonline.lock_timeout (100 ms) -------------------------
# With deadlock_timeout = lock_timeout = 100 ms, the server logs every lock wait that lasts longer.
my $log = slurp_file($node->logfile);
my @client_waits = grep { !/pkonline job/ } ($log =~ /^(.*still waiting for .*)$/mg);
is(scalar(@client_waits), 0, 'no client waited for a lock longer than 100 ms')
  or diag(join("\n", @client_waits[0 .. ($#client_waits < 9 ? $#client_waits : 9)]));
unlike($log, qr/deadlock detected/, 'no deadlock');

$node->stop;
done_testing();
