# add_column on a busy table: a uuid column, filled with gen_random_uuid(), unique, is added to a
# 200,000-row table while pgbench — connected as a role that may only read and write the table —
# updates accounts, inserts accounts and deletes some of those it inserted.
# Afterwards: the job is done, pgbench saw no failed transaction, every row has its own uuid, the
# column is NOT NULL with DEFAULT gen_random_uuid() and a UNIQUE constraint, every row is where
# the load left it, and no client waited for a lock longer than pkonline.lock_timeout.
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
my $round_secs = 4;
my $max_secs   = 90;

my $node = PkonlineLoad::busy_node('addcol');

$node->safe_psql('postgres', qq{
	CREATE EXTENSION pkonline;
	CREATE TABLE accounts (id int NOT NULL, account_no text NOT NULL, abalance int NOT NULL, filler text);
	INSERT INTO accounts SELECT g, 'ACC-' || g, 0, repeat(md5(g::text), 2) FROM generate_series(1, $rows) g;
	CREATE INDEX accounts_id ON accounts (id);
	CREATE SEQUENCE new_acc START @{[ $rows + 1 ]};
	CREATE TABLE load_log (kind "char" NOT NULL, id int NOT NULL, delta int NOT NULL);
	CREATE ROLE app LOGIN;
	GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, load_log TO app;
	GRANT USAGE ON SEQUENCE new_acc TO app;
	VACUUM ANALYZE accounts;
});

# Each statement changes at most one account and logs what it did in the same statement.
my $load = PkonlineLoad->new(node => $node, clients => $clients, round_secs => $round_secs, args => ['-U', 'app'],
	script => qq{
\\set n random(1, $rows)
\\set delta random(-1000, 1000)
\\set back random(0, 300)
WITH u AS (UPDATE accounts SET abalance = abalance + :delta WHERE id = :n RETURNING id)
INSERT INTO load_log SELECT 'u', id, :delta FROM u;
SELECT nextval('new_acc') AS nid \\gset
WITH i AS (INSERT INTO accounts VALUES (:nid, 'ACC-' || :nid, 0, 'new') RETURNING id)
INSERT INTO load_log SELECT 'i', id, 0 FROM i;
WITH d AS (DELETE FROM accounts WHERE id = :nid - :back AND id > $rows RETURNING id)
INSERT INTO load_log SELECT 'd', id, 0 FROM d;
});

$load->start_round;
ok($node->poll_query_until('postgres', "SELECT count(*) >= 100 FROM load_log WHERE kind = 'i'"), 'load is running');

my $job = $node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SET pkonline.batch_size = 20;
	SELECT pkonline.add_column('accounts', 'uid', 'uuid', fill => 'gen_random_uuid()', is_unique => true);
});
like($job, qr/^\d+$/, "add_column returned job id $job");

my $ended = $load->run_until(sub {
	return $node->safe_psql('postgres',
		"SELECT state IN ('done', 'failed', 'cancelled', 'paused') FROM pkonline.jobs WHERE id = $job") eq 't';
}, $max_secs);
ok($ended, 'the job ended while the load ran');
is($node->safe_psql('postgres', "SELECT state FROM pkonline.jobs WHERE id = $job"), 'done', 'the job is done');
note('step durations: ' . $node->safe_psql('postgres', qq{
	SELECT string_agg(step || ' ' || round(extract(epoch FROM finished_at - started_at)::numeric, 3) || 's', ', '
	                  ORDER BY step_no) FROM pkonline.job_steps WHERE job_id = $job}));
note('lock retries: ' . $node->safe_psql('postgres', "SELECT lock_retries FROM pkonline.jobs WHERE id = $job"));

$load->check_rounds(500);

# --- the column -----------------------------------------------------------------------------------
is($node->safe_psql('postgres', q{
	SELECT format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' ' || pg_get_expr(d.adbin, d.adrelid)
	  FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	 WHERE a.attrelid = 'accounts'::regclass AND a.attname = 'uid'}),
	'uuid true gen_random_uuid()', 'uid is uuid NOT NULL DEFAULT gen_random_uuid()');
is($node->safe_psql('postgres', q{
	SELECT string_agg(pg_get_constraintdef(oid), '; ') FROM pg_constraint WHERE conrelid = 'accounts'::regclass}),
	'UNIQUE (uid)', 'the unique constraint is in place, and nothing else');
is($node->safe_psql('postgres', 'SELECT count(*) = count(uid) AND count(uid) = count(DISTINCT uid) FROM accounts'),
	't', 'every row has its own uuid');
is($node->safe_psql('postgres', q{
	SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = 'accounts'::regclass}), 't', 'every index valid');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'accounts'::regclass)
	     + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'pkonline%')
	     + (SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pkonline%')}), '0', 'no helper left');
my $fresh = $node->safe_psql('postgres',
	"INSERT INTO accounts (id, account_no, abalance) VALUES (-1, 'after', 0) RETURNING uid IS NOT NULL");
is($fresh, 't', 'a row inserted after the job gets a uuid from the default');

# --- every row where the load left it ---------------------------------------------------------------
my $expected = $node->safe_psql('postgres',
	"SELECT $rows + count(*) FILTER (WHERE kind = 'i') - count(*) FILTER (WHERE kind = 'd') FROM load_log");
is($node->safe_psql('postgres', 'SELECT count(*) FROM accounts WHERE id > 0'), $expected,
	"row count = original + inserted - deleted ($expected)");
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM accounts a
	  LEFT JOIN (SELECT id, sum(delta) AS d FROM load_log WHERE kind = 'u' GROUP BY id) u USING (id)
	 WHERE a.id BETWEEN 1 AND $rows AND (a.abalance IS DISTINCT FROM coalesce(u.d, 0)
	                         OR a.account_no IS DISTINCT FROM 'ACC-' || a.id)}),
	'0', 'original rows: each balance = the updates the load logged; account_no unchanged');
is($node->safe_psql('postgres', "SELECT count(*) FROM accounts WHERE id > $rows AND filler IS DISTINCT FROM 'new'"),
	'0', 'inserted rows: data as inserted');

# --- lock waits: no client waited longer than pkonline.lock_timeout (100 ms) -------------------------
PkonlineLoad::check_no_client_lock_waits($node);

$node->stop;
done_testing();
