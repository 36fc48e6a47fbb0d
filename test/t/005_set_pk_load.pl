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
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineLoad;

my $rows       = 200_000;
my $clients    = 4;
my $round_secs = 4;
my $max_secs   = 90;

my $node = PkonlineLoad::busy_node('setpk');

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
my $load = PkonlineLoad->new(node => $node, clients => $clients, round_secs => $round_secs,
	script => qq{
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

$load->start_round;
ok($node->poll_query_until('postgres', "SELECT count(*) >= 100 FROM load_log WHERE kind = 'i'"), 'load is running');

my $job = $node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SELECT pkonline.set_primary_key('accounts', ARRAY['account_no']);
});
like($job, qr/^\d+$/, "set_primary_key returned job id $job");

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
PkonlineLoad::check_no_client_lock_waits($node);

$node->stop;
done_testing();
