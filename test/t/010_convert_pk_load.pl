# convert_pk_to_bigint on busy tables: the integer key of a 200,000-row table and the integer column
# of a 400,000-row table referencing it become bigint while pgbench inserts, updates and deletes
# in both (items moving from one order to another, orders deleted with their items cascading).
# Afterwards: the job is done, pgbench saw no failed transaction, both columns are bigint, the
# foreign key validated and enforced, every row where the load left it (compared with a log the
# load wrote in the same statements), no client waited for a lock longer than 100 ms, and the
# sequence goes past 2^31 in both tables. Then a crash (immediate stop) before the swap, inside its
# transaction and right after its commit: the job resumes and ends like an uninterrupted run.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PkonlineLoad;

my $orders     = 200_000;
my $items      = 400_000;
my $clients    = 4;
my $round_secs = 4;
my $max_secs   = 150;

my $node = PkonlineLoad::busy_node('convert');

$node->safe_psql('postgres', qq{
	CREATE EXTENSION pkonline;
	CREATE TABLE orders (id serial PRIMARY KEY, code text NOT NULL, total int NOT NULL DEFAULT 0);
	INSERT INTO orders (code) SELECT 'O-' || g FROM generate_series(1, $orders) g;
	CREATE INDEX orders_code_id ON orders (code, id);
	CREATE TABLE items (item_id bigserial PRIMARY KEY, order_id int NOT NULL REFERENCES orders ON DELETE CASCADE,
	                    qty int NOT NULL);
	INSERT INTO items (order_id, qty) SELECT 1 + g % $orders, 1 FROM generate_series(1, $items) g;
	CREATE INDEX items_order ON items (order_id);
	-- what the load did, written by the same statements
	-- (seq: two moves of one item are serialized by its row lock, so their seq order is their order)
	CREATE TABLE load_log (seq bigserial, kind "char" NOT NULL, id bigint NOT NULL, order_id bigint, delta int NOT NULL);
	VACUUM ANALYZE orders;
	VACUUM ANALYZE items;
});

my $load = PkonlineLoad->new(node => $node, clients => $clients, round_secs => $round_secs,
	script => qq{
\\set o random(1, $orders)
\\set o2 random(1, $orders)
\\set i random(1, $items)
\\set d random(1, 100)
WITH u AS (UPDATE orders SET total = total + :d WHERE id = :o RETURNING id)
INSERT INTO load_log (kind, id, order_id, delta) SELECT 'u', id, NULL, :d FROM u;
WITH n AS (INSERT INTO orders (code) VALUES ('new') RETURNING id)
INSERT INTO load_log (kind, id, order_id, delta) SELECT 'o', id, NULL, 0 FROM n;
WITH n AS (INSERT INTO items (order_id, qty) VALUES (:o2, :d) RETURNING item_id, order_id, qty)
INSERT INTO load_log (kind, id, order_id, delta) SELECT 'i', item_id, order_id, qty FROM n;
WITH m AS (UPDATE items SET order_id = :o2 WHERE item_id = :i RETURNING item_id, order_id)
INSERT INTO load_log (kind, id, order_id, delta) SELECT 'm', item_id, order_id, 0 FROM m;
});

$load->start_round;
ok($node->poll_query_until('postgres', "SELECT count(*) >= 100 FROM load_log WHERE kind = 'i'"), 'load is running');

# With the default settings: each table's walk starts small by itself (0.5 needed batch_size = 20
# here; with 200 the first batch of each table held clients 186-228 ms behind its row locks).
my $job = $node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SELECT pkonline.convert_pk_to_bigint('orders');
});
like($job, qr/^\d+$/, "convert_pk_to_bigint returned job id $job");

my $ended = $load->run_until(sub {
	return $node->safe_psql('postgres',
		"SELECT state IN ('done', 'failed', 'cancelled', 'paused') FROM pkonline.jobs WHERE id = $job") eq 't';
}, $max_secs);
ok($ended, 'the job ended while the load ran');
is($node->safe_psql('postgres', "SELECT state FROM pkonline.jobs WHERE id = $job"), 'done', 'the job is done')
  or diag($node->safe_psql('postgres', "SELECT last_error FROM pkonline.jobs WHERE id = $job"));
note('step durations: ' . $node->safe_psql('postgres', qq{
	SELECT string_agg(step || ' ' || round(extract(epoch FROM finished_at - started_at)::numeric, 3) || 's', ', '
	                  ORDER BY step_no) FROM pkonline.job_steps WHERE job_id = $job}));
note('lock retries: ' . $node->safe_psql('postgres', "SELECT lock_retries FROM pkonline.jobs WHERE id = $job"));

$load->check_rounds(500);

# The first batch of each table: a probe for the first, a quarter of where the first ended for the next.
my %walk = map { my @f = split /\|/; ($f[0] => { first => $f[1], next => $f[2], batches => $f[3] }) }
  split /\n/, $node->safe_psql('postgres', qq{
	SELECT (e.detail->>'relid')::oid::regclass, e.detail->>'first_blocks', e.detail->>'next_blocks', e.detail->>'batches'
	  FROM pkonline.events e WHERE e.job_id = $job AND e.detail ? 'first_blocks' ORDER BY e.id});
ok($walk{orders} && $walk{orders}{first} <= 8, "the first table's first batch is a probe of at most 8 blocks")
  or diag(explain \%walk);
ok($walk{items} && $walk{items}{first} <= ($walk{orders}{next} >= 8 ? int($walk{orders}{next} / 4) : 1),
	"the next table's first batch is at most a quarter of the size the first ended with (smaller after a lock retry)")
  or diag(explain \%walk);

# --- the columns and keys ----------------------------------------------------------------------
is($node->safe_psql('postgres', q{
	SELECT string_agg(attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, NULL)
	                  || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attrelid, attname)
	  FROM pg_attribute WHERE attrelid IN ('orders'::regclass, 'items'::regclass) AND attname IN ('id', 'order_id')}),
	'orders.id bigint not null, items.order_id bigint not null', 'both columns are bigint and NOT NULL');
is($node->safe_psql('postgres', q{
	SELECT string_agg(conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated,
	                  '; ' ORDER BY conrelid, conname)
	  FROM pg_constraint WHERE conrelid IN ('orders'::regclass, 'items'::regclass)}),
	'orders orders_pkey PRIMARY KEY (id) true; items items_order_id_fkey FOREIGN KEY (order_id) REFERENCES '
	  . 'orders(id) ON DELETE CASCADE true; items items_pkey PRIMARY KEY (item_id) true',
	'the key kept its name; the foreign key its name and action, validated');
is($node->safe_psql('postgres', q{
	SELECT string_agg(indexrelid::regclass || ' ' || indisvalid, ', ' ORDER BY indexrelid::regclass::text)
	  FROM pg_index WHERE indrelid IN ('orders'::regclass, 'items'::regclass)}),
	'items_order true, items_pkey true, orders_code_id true, orders_pkey true', 'every index there again, valid');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%')
	     + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%pkonline%')
	     + (SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pkonline%')
	     + (SELECT count(*) FROM pg_attribute WHERE attname LIKE 'pkonline%' AND NOT attisdropped)}),
	'0', 'nothing left behind');

# --- every row where the load left it -------------------------------------------------------------
my $expected_orders = $node->safe_psql('postgres', "SELECT $orders + count(*) FROM load_log WHERE kind = 'o'");
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), $expected_orders,
	"orders: original + inserted ($expected_orders)");
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM orders o
	  LEFT JOIN (SELECT id, sum(delta) AS d FROM load_log WHERE kind = 'u' GROUP BY id) u USING (id)
	 WHERE o.id <= $orders AND (o.total IS DISTINCT FROM coalesce(u.d, 0) OR o.code IS DISTINCT FROM 'O-' || o.id)}),
	'0', 'orders: each total = the updates the load logged; codes unchanged');
my $expected_items = $node->safe_psql('postgres', "SELECT $items + count(*) FROM load_log WHERE kind = 'i'");
is($node->safe_psql('postgres', 'SELECT count(*) FROM items'), $expected_items,
	"items: original + inserted ($expected_items)");
is($node->safe_psql('postgres', qq{
	WITH last_move AS (
	  SELECT DISTINCT ON (id) id, order_id FROM load_log WHERE kind IN ('i', 'm') ORDER BY id, seq DESC)
	SELECT count(*) FROM items i LEFT JOIN last_move m ON m.id = i.item_id
	 WHERE i.order_id IS DISTINCT FROM coalesce(m.order_id, 1 + i.item_id % $orders)}),
	'0', 'items: each in the order the load last put it in');
is($node->safe_psql('postgres', 'SELECT count(*) FROM items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL'),
	'0', 'no orphan item');

# --- enforced, and past 2^31 -----------------------------------------------------------------------
my ($rc, $out, $err) = $node->psql('postgres', 'INSERT INTO items (order_id, qty) VALUES (-1, 1)');
like($err, qr/violates foreign key constraint "items_order_id_fkey"/, 'the foreign key is enforced');
is($node->safe_psql('postgres', q{
	SELECT setval('orders_id_seq', 2147483647);
	WITH o AS (INSERT INTO orders (code) VALUES ('big') RETURNING id)
	INSERT INTO items (order_id, qty) SELECT id, 1 FROM o RETURNING order_id}),
	"2147483647\n2147483648", 'the sequence goes past 2^31, in both tables');
is($node->safe_psql('postgres', q{SELECT format_type(seqtypid, NULL) FROM pg_sequence WHERE seqrelid = 'orders_id_seq'::regclass}),
	'bigint', 'the sequence is bigint');

PkonlineLoad::check_no_client_lock_waits($node);

# --- a crash before the swap, inside its transaction (every change made, none committed), and
# right after its commit ---------------------------------------------------------------------------
for my $point ('swap', 'swap_locked', 'swap_committed')
{
	$node->safe_psql('postgres', qq{
		CREATE TABLE k_$point (id serial PRIMARY KEY, v int);
		INSERT INTO k_$point (v) SELECT g FROM generate_series(1, 20000) g;
		CREATE TABLE r_$point (k int REFERENCES k_$point, w int);
		INSERT INTO r_$point SELECT 1 + g % 20000, g FROM generate_series(1, 20000) g;
	});
	my $sums = "SELECT (SELECT sum(id) || '/' || sum(v) FROM k_$point) || '/' || (SELECT sum(k) || '/' || sum(w) FROM r_$point)";
	my $before = $node->safe_psql('postgres', $sums);
	my $holder = $node->background_psql('postgres');
	$holder->query_safe("SELECT pkonline.hold_wait_point('$point')");
	my $j = $node->safe_psql('postgres', qq{
		SET client_min_messages = warning;
		SET pkonline.debug_wait_points = on;
		SELECT pkonline.convert_pk_to_bigint('k_$point');
	});
	ok($node->poll_query_until('postgres', qq{
		SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'pkonline job $j'
		               AND wait_event = 'advisory')}), "$point: the job waits at its wait point");
	$node->stop('immediate');
	eval { $holder->quit };
	$node->start;
	ok($node->poll_query_until('postgres', "SELECT state = 'done' FROM pkonline.jobs WHERE id = $j"),
		"$point: the job resumed after the crash and is done")
	  or diag($node->safe_psql('postgres', "SELECT state, last_error FROM pkonline.jobs WHERE id = $j"));
	is($node->safe_psql('postgres', qq{
		SELECT string_agg(attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, NULL), ', ' ORDER BY attrelid)
		  FROM pg_attribute WHERE attrelid IN ('k_$point'::regclass, 'r_$point'::regclass) AND attname IN ('id', 'k')}),
		"k_$point.id bigint, r_$point.k bigint", "$point: both columns bigint");
	is($node->safe_psql('postgres', qq{
		SELECT string_agg(conname || ' ' || convalidated, ', ' ORDER BY conname) FROM pg_constraint
		 WHERE conrelid IN ('k_$point'::regclass, 'r_$point'::regclass)}),
		"k_${point}_pkey true, r_${point}_k_fkey true", "$point: key and foreign key as before, validated");
	is($node->safe_psql('postgres', $sums), $before, "$point: every value as before");
	is($node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%pkonline%')
		     + (SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pkonline%')
		     + (SELECT count(*) FROM pg_attribute WHERE attname LIKE 'pkonline%' AND NOT attisdropped)}),
		'0', "$point: nothing left behind");
}

$node->stop;
done_testing();
