-- add_int_pk end to end on small tables: the result is a real primary key, every row kept.
SET client_min_messages = warning;
SET pkonline.batch_size = 3;      -- several batches even on small tables
SET pkonline.batch_sleep = 0;
SET pkonline.vacuum_every = 6;    -- and VACUUM between them (every 6 blocks)

CREATE TABLE orders (customer int, note text, amount numeric);
INSERT INTO orders SELECT g % 97, repeat('n', g % 50), g * 1.5 FROM generate_series(1, 5000) g;
CREATE INDEX orders_customer ON orders (customer);
CREATE TABLE orders_before AS SELECT * FROM orders;

-- the plan, before it runs
SELECT pkonline.add_int_pk('orders', start => false) AS job \gset
SELECT step_no, step, action, lock, state FROM pkonline.steps(:job);
SELECT state, step, step_of FROM pkonline.status WHERE job = :job;
SELECT pkonline.start(:job);
-- waiting across the concurrent index build completes (wait commits between polls)
CALL pkonline.wait(:job);
SELECT state, step_of, backfill_pct, rows_done, rows_total, last_error FROM pkonline.status WHERE job = :job;
SELECT step, state FROM pkonline.steps(:job);

-- a real primary key on a NOT NULL identity column, the index valid
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'orders'::regclass;
SELECT attname, format_type(atttypid, atttypmod), attnotnull, attidentity
  FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 ORDER BY attnum;
SELECT indexrelid::regclass, indisprimary, indisvalid FROM pg_index WHERE indrelid = 'orders'::regclass ORDER BY 1;
-- every row kept, unchanged, numbered 1..n
SELECT count(*), count(id), count(DISTINCT id), min(id), max(id) FROM orders;
SELECT count(*) AS changed_rows FROM (
  (SELECT customer, note, amount FROM orders EXCEPT ALL SELECT * FROM orders_before)
  UNION ALL
  (SELECT * FROM orders_before EXCEPT ALL SELECT customer, note, amount FROM orders)) d;
-- new rows continue after the highest id; helpers are gone
INSERT INTO orders (customer, note, amount) VALUES (1, 'new', 1) RETURNING id;
SELECT count(*) AS helpers_left FROM pg_class WHERE relname LIKE 'pkonline%';
SELECT count(*) AS functions_left FROM pg_proc WHERE proname LIKE 'pkonline%';
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'orders'::regclass;
SELECT pg_get_serial_sequence('orders', 'id');
-- the audit log tells the story
SELECT kind, step, message FROM pkonline.events
 WHERE job_id = :job AND kind IN ('created', 'step_start', 'step_done', 'done') ORDER BY id;

-- integer column, no identity: a plain sequence default named like serial's
CREATE TABLE plain_int (v text);
INSERT INTO plain_int SELECT 'v' || g FROM generate_series(1, 300) g;
SELECT pkonline.add_int_pk('plain_int', column_name => 'n', column_type => 'integer', identity => false) AS job \gset
CALL pkonline.wait(:job);
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'plain_int'::regclass;
SELECT format_type(atttypid, atttypmod), attnotnull, attidentity, pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'plain_int'::regclass AND a.attname = 'n';
SELECT count(DISTINCT n), max(n) FROM plain_int;
INSERT INTO plain_int (v) VALUES ('next') RETURNING n;

-- hostile identifiers: quotes, semicolons, spaces, mixed case, in schema, table and column
CREATE SCHEMA "we;ird ""s""";
CREATE TABLE "we;ird ""s"""."Ta ble; DROP TABLE orders;--" ("x y" int);
INSERT INTO "we;ird ""s"""."Ta ble; DROP TABLE orders;--" SELECT generate_series(1, 200);
SELECT pkonline.add_int_pk('"we;ird ""s"""."Ta ble; DROP TABLE orders;--"', column_name => 'My "Id"; --') AS job \gset
CALL pkonline.wait(:job);
SELECT table_name, state FROM pkonline.status WHERE job = :job;
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = '"we;ird ""s"""."Ta ble; DROP TABLE orders;--"'::regclass;
SELECT count(DISTINCT "My ""Id""; --") FROM "we;ird ""s"""."Ta ble; DROP TABLE orders;--";
SELECT count(*) AS orders_still_there FROM orders;

-- an empty table
CREATE TABLE empty_t (a int);
SELECT pkonline.add_int_pk('empty_t') AS job \gset
CALL pkonline.wait(:job);
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'empty_t'::regclass;

-- a rolled-back creation leaves nothing, and no worker acts on it
CREATE TABLE rolled (a int);
INSERT INTO rolled VALUES (1), (2);
BEGIN;
SELECT pkonline.add_int_pk('rolled') IS NOT NULL AS created;
ROLLBACK;
SELECT pg_sleep(1);
SELECT count(*) AS jobs_on_rolled FROM pkonline.jobs WHERE relid = 'rolled'::regclass;
SELECT string_agg(attname, ',') AS columns FROM pg_attribute WHERE attrelid = 'rolled'::regclass AND attnum > 0;

-- the worker waits for the creating transaction to commit before it starts
CREATE TABLE slow_commit (a int);
INSERT INTO slow_commit SELECT generate_series(1, 100);
BEGIN;
SELECT pkonline.add_int_pk('slow_commit') AS job \gset
SELECT pg_sleep(1);
COMMIT;
CALL pkonline.wait(:job, '60s');
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'slow_commit'::regclass;

-- a table can get a job again once the previous one is finished
SELECT pkonline.add_int_pk('rolled', column_name => 'rid') AS job \gset
CALL pkonline.wait(:job);
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'rolled'::regclass;

-- the table's own row triggers do not fire for the backfill's UPDATEs (an updated_at trigger would
-- touch every row) unless pkonline.backfill_fires_triggers is on
CREATE TABLE touched (v int, updated_at timestamptz DEFAULT '2000-01-01');
INSERT INTO touched SELECT g FROM generate_series(1, 500) g;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := '2099-01-01'; RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE UPDATE ON touched FOR EACH ROW EXECUTE FUNCTION touch();
SELECT pkonline.add_int_pk('touched') AS job \gset
CALL pkonline.wait(:job);
SELECT count(id) AS with_id, count(*) FILTER (WHERE updated_at > '2001-01-01') AS touched_by_backfill FROM touched;
UPDATE touched SET v = v WHERE v <= 3;  -- the application's updates still fire it
SELECT count(*) FILTER (WHERE updated_at > '2001-01-01') AS touched_by_app FROM touched;
CREATE TABLE touched2 (v int, updated_at timestamptz DEFAULT '2000-01-01');
INSERT INTO touched2 SELECT g FROM generate_series(1, 500) g;
CREATE TRIGGER touch BEFORE UPDATE ON touched2 FOR EACH ROW EXECUTE FUNCTION touch();
SET pkonline.backfill_fires_triggers = on;
SELECT pkonline.add_int_pk('touched2') AS job \gset
RESET pkonline.backfill_fires_triggers;
CALL pkonline.wait(:job);
SELECT count(id) AS with_id, count(*) FILTER (WHERE updated_at > '2001-01-01') AS touched_by_backfill FROM touched2;
