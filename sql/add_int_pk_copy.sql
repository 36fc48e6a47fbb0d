-- add_int_pk, method => 'copy': the rows are written once more, ids filled, into a copy with the
-- same columns, and the storages are swapped. Every row kept, every index working and checked by
-- amcheck, TOAST readable, nothing left behind; cancel undoes it; DDL that moves rows is noticed;
-- what the method cannot do is refused before anything changes.
SET client_min_messages = error;
SET pkonline.debug_wait_points = on;
SET pkonline.batch_size = 4;       -- several batches even on small tables
SET pkonline.batch_time = 0;
SET pkonline.batch_sleep = 0;
CREATE EXTENSION IF NOT EXISTS amcheck;
\set hold 'SELECT pkonline.hold_wait_point(''backfill_batch'')'
\set release 'SELECT pkonline.release_wait_point(''backfill_batch'')'

\i sql/include/wait_for_step.sql

-- A table with what a real one has: a dropped column, TOASTed values, a unique index that a
-- foreign key of another table uses, a partial expression index, a CHECK, a user trigger, a
-- view, a replica identity on an index, a grant.
CREATE ROLE copy_writer;
CREATE TABLE items (sku text NOT NULL, gone int, body text, price numeric CHECK (price >= 0), touched int DEFAULT 0);
INSERT INTO items SELECT 'S' || g, g, CASE WHEN g % 50 = 0 THEN repeat(md5(g::text), 200) ELSE 'b' || g END, g / 4.0
  FROM generate_series(1, 3000) g;
ALTER TABLE items DROP COLUMN gone;
DELETE FROM items WHERE sku LIKE '%7';
CREATE UNIQUE INDEX items_sku ON items (sku);
ALTER TABLE items ADD CONSTRAINT items_sku_key UNIQUE USING INDEX items_sku;
ALTER TABLE items REPLICA IDENTITY USING INDEX items_sku_key;
CREATE INDEX items_body ON items (left(body, 4)) WHERE price > 100;
CREATE TABLE item_orders (sku text REFERENCES items (sku), n int);
INSERT INTO item_orders SELECT 'S' || g, g FROM generate_series(1, 3000, 10) g;
CREATE FUNCTION items_touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN NEW.touched := NEW.touched + 1; RETURN NEW; END';
CREATE TRIGGER items_touch BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION items_touch();
CREATE VIEW cheap_items AS SELECT sku, price FROM items WHERE price < 10;
GRANT SELECT, INSERT, UPDATE, DELETE ON items TO copy_writer;
CREATE TABLE items_before AS SELECT sku, body, price, touched FROM items;
SELECT pg_relation_filenode('items') AS filenode_before \gset

-- the plan
SELECT pkonline.add_int_pk('items', method => 'copy', start => false) AS job \gset
SELECT step_no, step, lock FROM pkonline.steps(:job);
SELECT pkonline.start(:job);

-- held in the copy, writes by a role that may only write the table: they reach the copy
:hold;
CALL wait_for_step(:job, 'copy');
SET ROLE copy_writer;
INSERT INTO items (sku, body, price) VALUES ('NEW1', 'new', 1), ('NEW2', repeat('t', 5000), 2);
UPDATE items SET price = price + 1000 WHERE sku IN ('S1', 'S2999', 'NEW1');
DELETE FROM items WHERE sku IN ('S3', 'S2998');
RESET ROLE;
INSERT INTO items_before VALUES ('NEW1', 'new', 1001, 1), ('NEW2', repeat('t', 5000), 2, 0);
UPDATE items_before SET price = price + 1000, touched = touched + 1 WHERE sku IN ('S1', 'S2999');
DELETE FROM items_before WHERE sku IN ('S3', 'S2998');
:release;
CALL pkonline.wait(:job, '60s');
SELECT state, last_error FROM pkonline.jobs WHERE id = :job;
SELECT step, state FROM pkonline.steps(:job);

-- the primary key; every other constraint, index, trigger, view and grant as it was
SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
 WHERE conrelid IN ('items'::regclass, 'item_orders'::regclass) ORDER BY conrelid::regclass::text, conname;
SELECT indexrelid::regclass, indisprimary, indisunique, indisvalid, indisreplident
  FROM pg_index WHERE indrelid = 'items'::regclass ORDER BY indexrelid::regclass::text;
SELECT attname, format_type(atttypid, atttypmod), attnotnull, attidentity
  FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'items'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT has_table_privilege('copy_writer', 'items', 'INSERT') AS writer_may_insert;
-- new storage; every row kept with its values (the TOASTed ones too), each with its own id
SELECT pg_relation_filenode('items') <> :filenode_before AS new_storage;
SELECT count(*) AS changed_rows FROM (
  (SELECT sku, body, price, touched FROM items EXCEPT ALL SELECT * FROM items_before)
  UNION ALL
  (SELECT * FROM items_before EXCEPT ALL SELECT sku, body, price, touched FROM items)) d;
SELECT count(*), count(id), count(DISTINCT id) FROM items;
SELECT (SELECT count(*) FROM cheap_items) AS view_rows;
-- analysed: the planner knows the new column
SELECT n_distinct FROM pg_stats WHERE schemaname = 'public' AND tablename = 'items' AND attname = 'id';
-- heap, TOAST and every index agree (amcheck)
SELECT count(*) AS heap_problems FROM verify_heapam('items');
SELECT count(bt_index_check(indexrelid, true)) AS indexes_checked FROM pg_index WHERE indrelid = 'items'::regclass;
SELECT t.relname = 'pg_toast_' || 'items'::regclass::oid AS toast_named_for_table
  FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.oid = 'items'::regclass;
-- the indexes answer queries; the foreign key still guards the key it uses
SET enable_seqscan = off;
SELECT sku, price FROM items WHERE sku = 'S2999';
SELECT count(*) FROM items WHERE left(body, 4) = 'b100' AND price > 100;
SELECT sku FROM items WHERE id = (SELECT max(id) FROM items WHERE sku LIKE 'NEW%' AND sku = 'NEW2');
RESET enable_seqscan;
INSERT INTO item_orders VALUES ('NOPE', 1);
-- new rows continue above every id; nothing of the job is left
INSERT INTO items (sku, price) VALUES ('LATER', 1) RETURNING id > (SELECT max(id) FROM items WHERE sku <> 'LATER') AS above;
SELECT count(*) AS helpers_left FROM pg_class WHERE relname LIKE 'pkonline%';

-- writes made while the job waits just before the swap reach the table through the last round,
-- applied under the lock: inserts, updates (twice, and of a row inserted meanwhile), deletes, an
-- explicit id, and writes rolled back
CREATE TABLE w1 (k int, v text);
INSERT INTO w1 SELECT g, 'v' || g FROM generate_series(1, 1000) g;
SELECT pkonline.hold_wait_point('swap');
SET pkonline.max_wal_rate = '10MB';  -- paced batches end the same
SELECT pkonline.add_int_pk('w1', method => 'copy') AS job \gset
RESET pkonline.max_wal_rate;
CALL wait_for_step(:job, 'swap');
SELECT pg_sleep(0.5);  -- the worker is at the swap wait point (the rounds before it are done)
INSERT INTO w1 VALUES (1001, 'new'), (1002, 'new');
UPDATE w1 SET v = v || '+' WHERE k IN (1, 500, 1001);
UPDATE w1 SET v = v || '+' WHERE k IN (1, 1002);
DELETE FROM w1 WHERE k IN (2, 1001);
INSERT INTO w1 (k, v, id) VALUES (1003, 'explicit id', 99000000);
BEGIN;
INSERT INTO w1 VALUES (1004, 'rolled back');
UPDATE w1 SET v = 'rolled back' WHERE k = 3;
DELETE FROM w1 WHERE k = 4;
ROLLBACK;
SELECT pkonline.release_wait_point('swap');
CALL pkonline.wait(:job, '60s');
SELECT substring(message FROM '(\d+) last changes')::int AS applied_under_the_lock
  FROM pkonline.events WHERE job_id = :job AND message LIKE 'storage swapped%';
SELECT count(*), count(DISTINCT id), count(id) FROM w1;
SELECT k, v FROM w1 WHERE k IN (1, 2, 3, 4, 500, 1001, 1002, 1003, 1004) OR v LIKE '%+%' ORDER BY k;
SELECT id FROM w1 WHERE k = 1003;
SELECT count(*) AS unchanged FROM w1 WHERE k BETWEEN 5 AND 1000 AND v = 'v' || k AND k <> 500;
SELECT count(bt_index_check(indexrelid, true)) AS indexes_checked FROM pg_index WHERE indrelid = 'w1'::regclass;

-- cancel in the middle of the copy: the table is as it was
CREATE TABLE c1 (a int, b text);
INSERT INTO c1 SELECT g, 'b' || g FROM generate_series(1, 2000) g;
:hold;
SELECT pkonline.add_int_pk('c1', method => 'copy') AS job \gset
CALL wait_for_step(:job, 'copy');
SELECT pkonline.cancel(:job);
:release;
CALL pkonline.wait(:job, '60s');
SELECT state FROM pkonline.jobs WHERE id = :job;
SELECT string_agg(attname, ',' ORDER BY attnum) AS columns FROM pg_attribute
 WHERE attrelid = 'c1'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'c1'::regclass) AS triggers,
       (SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%') AS helpers;

-- VACUUM FULL during the job moves rows (their position is their id): the job fails before
-- the swap, and cancel undoes it
CREATE TABLE c2 (a int);
INSERT INTO c2 SELECT generate_series(1, 2000);
:hold;
SELECT pkonline.add_int_pk('c2', method => 'copy') AS job \gset
CALL wait_for_step(:job, 'copy');
VACUUM FULL c2;
:release;
CALL pkonline.wait(:job, '60s');
SELECT state, last_sqlstate, regexp_replace(last_error, 'job \d+', 'job N') AS last_error FROM pkonline.jobs WHERE id = :job;
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');
SELECT state FROM pkonline.jobs WHERE id = :job;
SELECT count(*) AS c2_columns FROM pg_attribute WHERE attrelid = 'c2'::regclass AND attnum > 0 AND NOT attisdropped;

-- a column added during the job (no rewrite): the copy no longer has the table's columns; the job
-- fails at the swap, before anything changed, and cancel undoes it
CREATE TABLE c3 (a int);
INSERT INTO c3 SELECT generate_series(1, 2000);
:hold;
SELECT pkonline.add_int_pk('c3', method => 'copy') AS job \gset
CALL wait_for_step(:job, 'copy');
ALTER TABLE c3 ADD COLUMN extra int DEFAULT 5;
:release;
CALL pkonline.wait(:job, '60s');
SELECT state, last_sqlstate, regexp_replace(last_error, 'job \d+', 'job N') AS last_error FROM pkonline.jobs WHERE id = :job;
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');
SELECT string_agg(attname, ',' ORDER BY attnum) AS columns, count(*) FILTER (WHERE attname = 'id') AS id_columns
  FROM pg_attribute WHERE attrelid = 'c3'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT count(*) AS rows, sum(extra) AS extras FROM c3;

-- refused, nothing changed
SET client_min_messages = notice;
\set VERBOSITY default
CREATE TABLE r_plain (a int);
SELECT pkonline.add_int_pk('r_plain', method => 'rewrite');
CREATE TABLE r_parent (a int);
CREATE TABLE r_child () INHERITS (r_parent);
SELECT pkonline.add_int_pk('r_parent', method => 'copy');
SELECT pkonline.add_int_pk('r_child', method => 'copy');
SET client_min_messages = error;  -- its warning depends on wal_level
CREATE PUBLICATION r_pub FOR TABLE r_plain;
SET client_min_messages = notice;
SELECT pkonline.add_int_pk('r_plain', method => 'copy');
DROP PUBLICATION r_pub;
CREATE TABLE r_rls (a int);
ALTER TABLE r_rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE r_rls FORCE ROW LEVEL SECURITY;
SELECT pkonline.add_int_pk('r_rls', method => 'copy');
CREATE TABLE r_excl (a int, EXCLUDE USING btree (a WITH =));
SELECT pkonline.add_int_pk('r_excl', method => 'copy');
CREATE TABLE r_inv (a int);
INSERT INTO r_inv VALUES (1), (1);
CREATE UNIQUE INDEX CONCURRENTLY r_inv_a ON r_inv (a);
SELECT pkonline.add_int_pk('r_inv', method => 'copy');
CREATE TABLE r_small (a int);
INSERT INTO r_small SELECT generate_series(1, 30000);  -- 133 blocks: positions up to 38,703
SELECT pkonline.add_int_pk('r_small', column_type => 'smallint', method => 'copy');
SELECT count(*) AS jobs_for_refused_tables FROM pkonline.jobs WHERE table_name LIKE '%r\_%';
SELECT count(*) AS columns_added FROM pg_attribute
 WHERE attrelid IN ('r_plain'::regclass, 'r_parent'::regclass, 'r_rls'::regclass, 'r_excl'::regclass, 'r_inv'::regclass, 'r_small'::regclass)
   AND attname = 'id';
-- installcheck leaves no role behind
DROP OWNED BY copy_writer;
DROP ROLE copy_writer;
