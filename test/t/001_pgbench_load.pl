# add_int_pk on a busy table: a real pgbench write load (UPDATEs of existing rows, INSERTs of new
# rows, DELETEs of inserted rows) runs with 4 clients while the job adds the primary key.
# Afterwards: the job is done, pgbench saw no failed transaction, the table has its primary key on a
# NOT NULL identity column with one distinct id per row, and the table holds exactly the original
# rows (with exactly the balance changes the load logged) plus the inserted rows the load did not
# delete.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Time::HiRes qw(time);
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineLoad;

my $rows     = 200_000;    # original rows, aid 1..$rows
my $new_base = 1_000_000;  # rows the load inserts get aid > $new_base
my $clients  = 4;
my $round_secs = 4;        # pgbench -T of one load round
my $max_secs   = 90;       # load rounds stop after this even if the job has not ended

my $node = PkonlineLoad::busy_node('load', "log_statement = none\n");

# --- the table, without a primary key, and a copy of its original data ---------------------------
$node->safe_psql('postgres', qq{
	CREATE EXTENSION pkonline;
	CREATE TABLE accounts (aid int, abalance int, filler text);
	INSERT INTO accounts
	  SELECT g, (g * 7919) % 100000, repeat(md5(g::text), 2) || ' ' || g FROM generate_series(1, $rows) g;
	CREATE INDEX accounts_aid ON accounts (aid);
	CREATE TABLE accounts_orig AS SELECT * FROM accounts;
	CREATE UNIQUE INDEX ON accounts_orig (aid);
	-- what the load did, logged in the same statement as the change itself
	CREATE TABLE load_log (kind "char" NOT NULL, aid int NOT NULL, delta int NOT NULL,
	                       at timestamptz NOT NULL DEFAULT clock_timestamp());
	CREATE SEQUENCE new_aid START @{[ $new_base + 1 ]};
	VACUUM ANALYZE accounts;
	VACUUM ANALYZE accounts_orig;
});
my $orig_checksum = $node->safe_psql('postgres',
	"SELECT md5(string_agg(aid || ':' || abalance || ':' || filler, ',' ORDER BY aid)) FROM accounts");
my $orig_fill_checksum = $node->safe_psql('postgres',
	"SELECT md5(string_agg(aid || ':' || filler, ',' ORDER BY aid)) FROM accounts");
is($node->safe_psql('postgres', 'SELECT count(*) FROM accounts'), $rows, "table has $rows rows");
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_constraint WHERE conrelid = 'accounts'::regclass"),
	'0', 'no primary key yet');
note('heap blocks: ' . $node->safe_psql('postgres', "SELECT pg_relation_size('accounts') / 8192"));

# --- the load --------------------------------------------------------------------------------------
# Each statement changes at most one row of accounts (so a client never holds two row locks and
# cannot deadlock with the backfill) and logs what it did in the same statement.
# The load runs in back-to-back pgbench rounds of $round_secs seconds until the job has ended (at
# most $max_secs in all): as long as the job needs, each round with its own summary to check.
my $load = PkonlineLoad->new(node => $node, clients => $clients, round_secs => $round_secs, args => ['-P', '1'],
	script => qq{
\\set aid random(1, $rows)
\\set delta random(-1000, 1000)
\\set back random(0, 300)
WITH u AS (UPDATE accounts SET abalance = abalance + :delta WHERE aid = :aid RETURNING aid)
INSERT INTO load_log (kind, aid, delta) SELECT 'u', aid, :delta FROM u;
SELECT nextval('new_aid') AS naid \\gset
WITH i AS (INSERT INTO accounts (aid, abalance, filler) VALUES (:naid, :delta, 'new ' || :naid) RETURNING aid)
INSERT INTO load_log (kind, aid, delta) SELECT 'i', aid, 0 FROM i;
WITH d AS (DELETE FROM accounts WHERE aid = :naid - :back RETURNING aid)
INSERT INTO load_log (kind, aid, delta) SELECT 'd', aid, 0 FROM d;
});

my $psql = $node->config_data('--bindir') . '/psql';
$psql = 'psql' unless -x $psql;

my $load_start = time;
$load->start_round;

# Let the load run a little before the job starts (rows inserted now get no id from the DEFAULT:
# the backfill must number them).
ok($node->poll_query_until('postgres', "SELECT count(*) >= 200 FROM load_log WHERE kind = 'i'"),
	'load is running');

# --- the job, under load ---------------------------------------------------------------------------
my $job = $node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SET pkonline.batch_size = 20;
	SET pkonline.batch_time = 0;
	SET pkonline.batch_sleep = 20;
	SET pkonline.vacuum_every = 500;
	SELECT pkonline.add_int_pk('accounts');
});
like($job, qr/^\d+$/, "add_int_pk returned job id $job");
my ($wait_out, $wait_err) = ('', '');
my $waiter = IPC::Run::start(
	[ $psql, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
	  '-c', 'SET client_min_messages = warning', '-c', "CALL pkonline.wait($job, interval '100 s')" ],
	'>', \$wait_out, '2>', \$wait_err);

my $ended = $load->run_until(sub {
	return $node->safe_psql('postgres',
		"SELECT state IN ('done', 'failed', 'cancelled', 'paused') FROM pkonline.jobs WHERE id = $job") eq 't';
}, $max_secs);
ok($ended, 'the job ended while the load ran');
$waiter->finish;
chomp(my $state = $wait_out);
is($waiter->result(0), 0, 'CALL pkonline.wait() succeeded');
is($state, 'done', 'the job ended done');
note("job $job duration: " . $node->safe_psql('postgres', qq{
	SELECT finished_at - started_at || ' (backfill ' || rows_done || ' rows, ' || batch_blocks || '-block batches)'
	  FROM pkonline.jobs WHERE id = $job}));
note('step durations: ' . $node->safe_psql('postgres', qq{
	SELECT string_agg(step || ' ' || round(extract(epoch FROM finished_at - started_at)::numeric, 3) || 's', ', '
	                  ORDER BY step_no) FROM pkonline.job_steps WHERE job_id = $job}));
if ($state ne 'done')
{
	diag("wait() stderr: $wait_err");
	diag($node->safe_psql('postgres', "SELECT * FROM pkonline.status WHERE job = $job"));
	diag($node->safe_psql('postgres',
		"SELECT kind, step, message, detail FROM pkonline.events WHERE job_id = $job ORDER BY id"));
}

# --- pgbench: every round exited 0, with no failed transaction --------------------------------------
my $processed = $load->check_rounds(1000);
my $load_secs = time - $load_start;
note(sprintf('pgbench: %d transactions in %.1f s, %.0f tps overall', $processed, $load_secs,
	$processed / $load_secs));

# The load really ran during the job's online steps.
my $during = $node->safe_psql('postgres', qq{
	SELECT string_agg(s.step || '=' || (SELECT count(*) FROM load_log l
	                                      WHERE l.at BETWEEN s.started_at AND s.finished_at), ' ' ORDER BY s.step_no)
	  FROM pkonline.job_steps s WHERE s.job_id = $job});
note("load statements logged during each step: $during");
my %during = map { split /=/ } split / /, $during;
cmp_ok($during{backfill} // 0, '>', 100, 'load statements ran during the backfill');
cmp_ok(($during{validate} // 0) + ($during{create_index} // 0), '>', 0,
	'load statements ran during validate/create_index');
note('load log: ' . $node->safe_psql('postgres',
	"SELECT string_agg(kind::text || '=' || n, ' ' ORDER BY kind) FROM (SELECT kind, count(*) n FROM load_log GROUP BY kind) x"));

# --- the primary key -------------------------------------------------------------------------------
is($node->safe_psql('postgres',
	"SELECT string_agg(pg_get_constraintdef(oid), ';') FROM pg_constraint WHERE conrelid = 'accounts'::regclass"),
	'PRIMARY KEY (id)', 'accounts has a primary key on id (and no leftover constraint)');
is($node->safe_psql('postgres', q{
	SELECT i.indisprimary AND i.indisvalid AND i.indisready
	  FROM pg_index i JOIN pg_constraint c ON c.conindid = i.indexrelid
	 WHERE c.conrelid = 'accounts'::regclass AND c.contype = 'p'}), 't', 'the primary key index is valid');
is($node->safe_psql('postgres', q{
	SELECT format_type(atttypid, atttypmod) || ' ' || attnotnull || ' ' || attidentity::text
	  FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'id'}),
	'bigint true d', 'id is bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY');
is($node->safe_psql('postgres', 'SELECT count(*) FROM accounts WHERE id IS NULL'), '0', 'no NULL id');
is($node->safe_psql('postgres', 'SELECT count(*) = count(DISTINCT id) FROM accounts'), 't', 'every id distinct');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_trigger WHERE tgrelid = 'accounts'::regclass}), '0', 'the fill trigger is gone');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%'}), '0',
	'no helper objects left');

# --- every row: originals kept with exactly the logged updates, inserts minus deletes --------------
my $expected = $node->safe_psql('postgres',
	"SELECT $rows + count(*) FILTER (WHERE kind = 'i') - count(*) FILTER (WHERE kind = 'd') FROM load_log");
is($node->safe_psql('postgres', 'SELECT count(*) FROM accounts'), $expected,
	"row count = original + inserted - deleted ($expected)");
is($node->safe_psql('postgres', "SELECT count(*), count(DISTINCT aid) FROM accounts WHERE aid <= $rows"),
	"$rows|$rows", 'every original row is there, once');
is($node->safe_psql('postgres',
	"SELECT md5(string_agg(aid || ':' || filler, ',' ORDER BY aid)) FROM accounts WHERE aid <= $rows"),
	$orig_fill_checksum, 'original rows: aid and filler unchanged');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM accounts_orig o
	  FULL JOIN (SELECT * FROM accounts WHERE aid <= $rows) a USING (aid)
	  LEFT JOIN (SELECT aid, sum(delta) AS d FROM load_log WHERE kind = 'u' GROUP BY aid) u USING (aid)
	 WHERE o.aid IS NULL OR a.aid IS NULL
	    OR a.abalance IS DISTINCT FROM o.abalance + coalesce(u.d, 0)
	    OR a.filler IS DISTINCT FROM o.filler}),
	'0', 'original rows: each balance = original + the updates the load logged');
is($node->safe_psql('postgres',
	"SELECT md5(string_agg(aid || ':' || abalance || ':' || filler, ',' ORDER BY aid)) FROM accounts_orig"),
	$orig_checksum, 'the copy of the original data is intact');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM (
	  (SELECT aid FROM accounts WHERE aid > $new_base
	   EXCEPT ALL
	   (SELECT aid FROM load_log WHERE kind = 'i' EXCEPT ALL SELECT aid FROM load_log WHERE kind = 'd'))
	  UNION ALL
	  ((SELECT aid FROM load_log WHERE kind = 'i' EXCEPT ALL SELECT aid FROM load_log WHERE kind = 'd')
	   EXCEPT ALL
	   SELECT aid FROM accounts WHERE aid > $new_base)) x}),
	'0', 'inserted rows: exactly those inserted and not deleted');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM accounts WHERE aid > $new_base AND filler IS DISTINCT FROM 'new ' || aid"),
	'0', 'inserted rows: data as inserted');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM accounts WHERE aid > $rows AND aid <= $new_base"), '0', 'no stray rows');

# --- new rows continue after the highest id --------------------------------------------------------
my $max_id = $node->safe_psql('postgres', 'SELECT max(id) FROM accounts');
my $new_id = $node->safe_psql('postgres',
	"INSERT INTO accounts (aid, abalance, filler) VALUES (-1, 0, 'after') RETURNING id");
cmp_ok($new_id, '>', $max_id, "a new row gets id $new_id > max(id) $max_id");
is($node->safe_psql('postgres', "SELECT pg_get_serial_sequence('accounts', 'id') IS NOT NULL"), 't',
	'id is backed by its identity sequence');

my $log = slurp_file($node->logfile);
unlike($log, qr/deadlock detected/, 'no deadlock in the server log');
my @errors = $log =~ /^(.* (?:ERROR|FATAL|PANIC):.*)$/mg;
note(scalar(@errors) . " ERROR/FATAL lines in the server log" . join('', map { "\n  $_" } @errors[0 .. ($#errors < 9 ? $#errors : 9)]));
note('job events: ' . $node->safe_psql('postgres', qq{
	SELECT string_agg(kind, ',' ORDER BY id) FROM pkonline.events WHERE job_id = $job AND kind NOT IN ('progress')}));

$node->stop;
done_testing();
