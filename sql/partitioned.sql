-- Partitioned tables. add_int_pk: range with a default partition and a partition whose columns are
-- in another order (and a dropped one), list over range (two levels), hash; partitions created,
-- attached, detached and dropped while the job runs; cancel; the refusals. set_primary_key and
-- add_column on partitioned tables.
SET client_min_messages = error;   -- wait()'s notices and warnings name job ids
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE SCHEMA pt;
SET search_path = pt, public;
\i sql/include/try.sql
\i sql/include/wait_for_step.sql
-- Blocks until the job's worker waits at a held wait point (an advisory lock not granted).
CREATE PROCEDURE wait_for_wait_point() LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. 600 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted);
    COMMIT;
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;

-- Every leaf of a tree: rows, rows with an id, distinct ids, and its primary key.
CREATE FUNCTION leaves(root regclass, col name DEFAULT 'id')
RETURNS TABLE (leaf text, nrows bigint, with_id bigint, distinct_ids bigint, pk text)
LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT relid FROM pg_partition_tree(root) WHERE isleaf ORDER BY relid::regclass::text LOOP
    leaf := r.relid::regclass::text;
    EXECUTE format('SELECT count(*), count(%1$I), count(DISTINCT %1$I) FROM %2$s', col, r.relid::regclass)
      INTO nrows, with_id, distinct_ids;
    SELECT conname || ' ' || pg_get_constraintdef(c.oid) INTO pk FROM pg_constraint c
     WHERE conrelid = r.relid AND contype = 'p';
    RETURN NEXT;
  END LOOP;
END $$;
-- What the job left: constraints other than keys, triggers, helper objects (none).
CREATE FUNCTION leftovers(root regclass) RETURNS TABLE (what text) LANGUAGE sql AS $$
  SELECT 'constraint ' || conrelid::regclass || '.' || conname FROM pg_constraint
   WHERE conrelid IN (SELECT relid FROM pg_partition_tree(root)) AND contype <> 'p'
  UNION ALL SELECT 'trigger ' || tgrelid::regclass || '.' || tgname FROM pg_trigger
   WHERE tgrelid IN (SELECT relid FROM pg_partition_tree(root))
  UNION ALL SELECT 'object ' || relname FROM pg_class WHERE relname LIKE 'pkonline%'
  ORDER BY 1
$$;

-- 1. range, a default partition, a partition with its columns in another order and one dropped
CREATE TABLE pt_events (ts date NOT NULL, payload text) PARTITION BY RANGE (ts);
CREATE TABLE pt_events_2024_01 PARTITION OF pt_events FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE pt_events_2024_02 (payload text, junk int, ts date NOT NULL);
ALTER TABLE pt_events_2024_02 DROP COLUMN junk;
ALTER TABLE pt_events ATTACH PARTITION pt_events_2024_02 FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE pt_events_other PARTITION OF pt_events DEFAULT;
INSERT INTO pt_events SELECT DATE '2024-01-01' + (g % 75), 'e' || g FROM generate_series(1, 3000) g;
SELECT pkonline.add_int_pk('pt_events') AS job \gset
CALL pkonline.wait(:job, '60s');
SELECT step_no, step, state FROM pkonline.steps(:job);
SELECT * FROM leaves('pt_events');
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'pt_events'::regclass;
-- the leaves' keys are the partitions of the parent's key
SELECT c.conrelid::regclass AS leaf, p.conname AS attached_to FROM pg_constraint c
  JOIN pg_constraint p ON p.oid = c.conparentid WHERE c.conrelid IN (SELECT relid FROM pg_partition_tree('pt_events'))
  ORDER BY 1;
SELECT pg_get_expr(d.adbin, d.adrelid) AS default_of_id, a.attidentity = '' AS not_identity FROM pg_attribute a
  JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = 'pt_events'::regclass AND a.attname = 'id';
SELECT * FROM leftovers('pt_events');
-- new rows get ids, through the parent and straight into a partition; a new partition has the column
INSERT INTO pt_events (ts, payload) VALUES ('2024-01-15', 'new via parent');
INSERT INTO pt_events_2024_02 (ts, payload) VALUES ('2024-02-15', 'new direct');
CREATE TABLE pt_events_2024_04 PARTITION OF pt_events FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
INSERT INTO pt_events (ts, payload) VALUES ('2024-04-02', 'new partition');
SELECT payload, id > 3000 AS fresh_id FROM pt_events WHERE payload LIKE 'new%' ORDER BY payload;
SELECT try($$INSERT INTO pt_events (id, ts, payload) SELECT id, ts, 'dup' FROM pt_events LIMIT 1$$);

-- 2. two levels: list by region, then range by day; the key holds both partition keys
CREATE TABLE pt_sales (region text NOT NULL, day date NOT NULL, amount int) PARTITION BY LIST (region);
CREATE TABLE pt_sales_eu PARTITION OF pt_sales FOR VALUES IN ('eu') PARTITION BY RANGE (day);
CREATE TABLE pt_sales_eu_h1 PARTITION OF pt_sales_eu FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
CREATE TABLE pt_sales_eu_h2 PARTITION OF pt_sales_eu FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
CREATE TABLE pt_sales_us PARTITION OF pt_sales FOR VALUES IN ('us');
INSERT INTO pt_sales SELECT CASE WHEN g % 3 = 0 THEN 'us' ELSE 'eu' END, DATE '2024-01-01' + (g % 360), g
  FROM generate_series(1, 2000) g;
SELECT pkonline.add_int_pk('pt_sales', column_name => 'sale_id') AS job \gset
CALL pkonline.wait(:job, '60s');
SELECT * FROM leaves('pt_sales', 'sale_id');
SELECT relid::regclass, (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = relid AND contype = 'p')
  FROM pg_partition_tree('pt_sales') ORDER BY level, relid::regclass::text;

-- 3. hash, with the DBA's own key column order
CREATE TABLE pt_accounts (tenant int NOT NULL, name text) PARTITION BY HASH (tenant);
CREATE TABLE pt_accounts_0 PARTITION OF pt_accounts FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE pt_accounts_1 PARTITION OF pt_accounts FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO pt_accounts SELECT g % 50, 'a' || g FROM generate_series(1, 1000) g;
SELECT pkonline.add_int_pk('pt_accounts', pk_columns => '{tenant,id}') AS job \gset
CALL pkonline.wait(:job, '60s');
SELECT * FROM leaves('pt_accounts');
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'pt_accounts'::regclass;
SELECT step, lock FROM pkonline.steps(:job) WHERE step IN ('partition_keys', 'attach');

-- 4. partitions that come and go while the job runs. Held before its backfill batches: a
-- partition is created (with rows), a table is attached (its rows without ids, its columns in
-- another order), one is detached
-- and one dropped. Held before the first partition's key index: that partition is detached (it
-- has the job's check by then) and one more created. Held before the attach: one more created,
-- which gets its key before the parent's.
SET pkonline.debug_wait_points = on;
CREATE TABLE pt_logs (at int NOT NULL, msg text) PARTITION BY RANGE (at);
CREATE TABLE pt_logs_a PARTITION OF pt_logs FOR VALUES FROM (0) TO (1000);
CREATE TABLE pt_logs_b PARTITION OF pt_logs FOR VALUES FROM (1000) TO (2000);
CREATE TABLE pt_logs_c PARTITION OF pt_logs FOR VALUES FROM (2000) TO (3000);
CREATE TABLE pt_logs_d PARTITION OF pt_logs FOR VALUES FROM (3000) TO (4000);
INSERT INTO pt_logs SELECT g, 'm' || g FROM generate_series(0, 3999) g;
SELECT pkonline.hold_wait_point('backfill_batch');
SELECT pkonline.hold_wait_point('create_index');
SELECT pkonline.hold_wait_point('attach');
SELECT pkonline.add_int_pk('pt_logs') AS job \gset
CALL wait_for_step(:job, 'backfill');
CALL wait_for_wait_point();
CREATE TABLE pt_logs_e PARTITION OF pt_logs FOR VALUES FROM (4000) TO (5000);
INSERT INTO pt_logs SELECT g, 'm' || g FROM generate_series(4000, 4499) g;
CREATE TABLE pt_logs_f (msg text, junk int, at int NOT NULL, id bigint);
ALTER TABLE pt_logs_f DROP COLUMN junk;
INSERT INTO pt_logs_f (at, msg) SELECT g, 'm' || g FROM generate_series(5000, 5299) g;
ALTER TABLE pt_logs ATTACH PARTITION pt_logs_f FOR VALUES FROM (5000) TO (6000);
-- an explicit NULL id, into that partition (its id is its 3rd live column, the parent's 3rd too,
-- but attnum 4) and through the parent: the job's trigger fills both
INSERT INTO pt_logs_f (at, msg, id) VALUES (5300, 'null direct', NULL);
INSERT INTO pt_logs (at, msg, id) VALUES (5301, 'null routed', NULL);
SELECT at, msg, id IS NOT NULL AS has_id FROM pt_logs WHERE msg LIKE 'null%' ORDER BY at;
ALTER TABLE pt_logs DETACH PARTITION pt_logs_c;
DROP TABLE pt_logs_d;
SELECT pkonline.release_wait_point('backfill_batch');
CALL wait_for_step(:job, 'partition_keys');
CALL wait_for_wait_point();
SELECT regexp_replace(regexp_replace(conname, '_[0-9a-f]{8}$', ''), '_\d+_', '_N_') AS conname FROM pg_constraint WHERE conrelid = 'pt_logs_a'::regclass;
ALTER TABLE pt_logs DETACH PARTITION pt_logs_a;
CREATE TABLE pt_logs_g PARTITION OF pt_logs FOR VALUES FROM (6000) TO (7000);
INSERT INTO pt_logs SELECT g, 'm' || g FROM generate_series(6000, 6099) g;
SELECT pkonline.release_wait_point('create_index');
CALL wait_for_step(:job, 'attach');
CALL wait_for_wait_point();
CREATE TABLE pt_logs_h PARTITION OF pt_logs FOR VALUES FROM (7000) TO (8000);
INSERT INTO pt_logs SELECT g, 'm' || g FROM generate_series(7000, 7049) g;
-- the keys of the partitions there before, as they are now: the attach must not build new ones
CREATE TEMP TABLE keys_before AS SELECT indrelid::regclass::text AS leaf, indexrelid, pg_relation_filenode(indexrelid) AS node
  FROM pg_index WHERE indisprimary AND indrelid IN (SELECT relid FROM pg_partition_tree('pt_logs'));
SELECT pkonline.release_wait_point('attach');
CALL pkonline.wait(:job, '60s');
SELECT * FROM leaves('pt_logs');
SELECT count(*) AS all_rows, count(DISTINCT id) AS distinct_ids FROM pt_logs;
-- the table attached during the job gets the column's DEFAULT too: a row inserted into it directly
-- after the job has an id
INSERT INTO pt_logs_f (at, msg) VALUES (5400, 'direct after') RETURNING id IS NOT NULL AS has_id;
SELECT k.leaf, i.indexrelid = k.indexrelid AND pg_relation_filenode(i.indexrelid) = k.node AS same_index
  FROM keys_before k JOIN pg_index i ON i.indrelid = k.leaf::regclass AND i.indisprimary ORDER BY 1;
SELECT step, longest_lock FROM pkonline.report(:job) WHERE step = 'attach';
SELECT regexp_replace(message, 'OID \d+', 'OID N') FROM pkonline.events WHERE job_id = :job AND kind = 'info'
  AND message NOT LIKE 'catch-up%' ORDER BY id;
-- the partitions that left: nothing of the job is left on them (pt_logs_c left before its turn: no
-- ids; pt_logs_a had its ids and the job's check, and the index the job built just then)
SELECT count(*) AS rows, count(id) AS with_id FROM pt_logs_c;
SELECT count(*) AS rows, count(id) AS with_id FROM pt_logs_a;
SELECT conrelid::regclass, conname FROM pg_constraint WHERE conrelid IN ('pt_logs_a'::regclass, 'pt_logs_c'::regclass);
SELECT indexrelid::regclass FROM pg_index WHERE indrelid IN ('pt_logs_a'::regclass, 'pt_logs_c'::regclass);
SELECT tgname FROM pg_trigger WHERE tgrelid IN ('pt_logs_a'::regclass, 'pt_logs_c'::regclass);
SELECT * FROM leftovers('pt_logs');
RESET pkonline.debug_wait_points;

-- 5. cancel while partitions get their keys: the column goes from every partition, and with it
-- the job's checks
CREATE TABLE pt_undo (k int NOT NULL, v text) PARTITION BY LIST (k);
CREATE TABLE pt_undo_1 PARTITION OF pt_undo FOR VALUES IN (1);
CREATE TABLE pt_undo_2 PARTITION OF pt_undo FOR VALUES IN (2);
INSERT INTO pt_undo SELECT 1 + g % 2, 'v' FROM generate_series(1, 200) g;
SET pkonline.debug_wait_points = on;
SELECT pkonline.hold_wait_point('create_index');
SELECT pkonline.add_int_pk('pt_undo') AS job \gset
CALL wait_for_step(:job, 'partition_keys');
CALL wait_for_wait_point();
SELECT count(*) AS job_checks FROM pg_constraint WHERE conrelid IN (SELECT relid FROM pg_partition_tree('pt_undo')) AND contype = 'c';
SELECT pkonline.cancel(:job);
SELECT pkonline.release_wait_point('create_index');
CALL pkonline.wait(:job, '60s');
RESET pkonline.debug_wait_points;
SELECT attrelid::regclass, attname FROM pg_attribute WHERE attrelid IN (SELECT relid FROM pg_partition_tree('pt_undo'))
  AND attnum > 0 AND NOT attisdropped ORDER BY 1, attnum;
SELECT * FROM leftovers('pt_undo');
SELECT indexrelid::regclass FROM pg_index WHERE indrelid IN (SELECT relid FROM pg_partition_tree('pt_undo'));

-- 5b. cancel after a partition got its key and another was detached: the key goes, the partition
-- key column is nullable again as it was, the detached table keeps its rows and column (its
-- DEFAULT, which named the job's sequence, goes with the sequence)
CREATE TABLE pt_undo2 (k int, v text) PARTITION BY LIST (k);
CREATE TABLE pt_undo2_1 PARTITION OF pt_undo2 FOR VALUES IN (1);
CREATE TABLE pt_undo2_2 PARTITION OF pt_undo2 FOR VALUES IN (2);
CREATE TABLE pt_undo2_3 PARTITION OF pt_undo2 FOR VALUES IN (3);
INSERT INTO pt_undo2 SELECT 1 + g % 3, 'v' FROM generate_series(1, 300) g;
SET pkonline.debug_wait_points = on;
SELECT pkonline.hold_wait_point('create_index');
SELECT pkonline.add_int_pk('pt_undo2') AS job \gset
CALL wait_for_step(:job, 'partition_keys');
CALL wait_for_wait_point();
-- let the first partition through, then hold the second before its index
SELECT pkonline.release_wait_point('create_index');
SELECT pkonline.hold_wait_point('create_index');
CALL wait_for_wait_point();
SELECT relid::regclass AS part, (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = relid AND contype = 'p') AS pk
  FROM pg_partition_tree('pt_undo2') WHERE isleaf ORDER BY 1;
ALTER TABLE pt_undo2 DETACH PARTITION pt_undo2_3;
SELECT pkonline.cancel(:job);
SELECT pkonline.release_wait_point('create_index');
CALL pkonline.wait(:job, '60s');
RESET pkonline.debug_wait_points;
SELECT a.attrelid::regclass AS rel, a.attname, a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid IN ('pt_undo2'::regclass, 'pt_undo2_1'::regclass, 'pt_undo2_2'::regclass, 'pt_undo2_3'::regclass)
   AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, a.attnum;
SELECT count(*) AS rows, count(id) AS with_id FROM pt_undo2_3;
SELECT * FROM leftovers('pt_undo2');
SELECT conrelid::regclass, conname FROM pg_constraint WHERE conrelid = 'pt_undo2_3'::regclass;
SELECT indexrelid::regclass FROM pg_index WHERE indrelid IN ('pt_undo2_1'::regclass, 'pt_undo2_2'::regclass, 'pt_undo2_3'::regclass);

-- 5c. a NULL in a partition key column: the job stops in its preflight, before it changes anything
CREATE TABLE pt_nullkey (k int, v text) PARTITION BY LIST (k);
CREATE TABLE pt_nullkey_1 PARTITION OF pt_nullkey FOR VALUES IN (1);
CREATE TABLE pt_nullkey_n PARTITION OF pt_nullkey FOR VALUES IN (NULL);
INSERT INTO pt_nullkey VALUES (1, 'a'), (NULL, 'b');
SELECT pkonline.add_int_pk('pt_nullkey') AS job \gset
CALL pkonline.wait(:job, '60s');
SELECT (SELECT step FROM pkonline.status WHERE job = :job), last_sqlstate, last_error FROM pkonline.jobs WHERE id = :job;
SELECT count(*) AS id_columns FROM pg_attribute WHERE attname = 'id' AND attrelid IN (SELECT relid FROM pg_partition_tree('pt_nullkey'));
SELECT pkonline.cancel(:job);

-- 5d. attack: a table attached mid-job, sub-partitioned by an expression whose function refuses
-- to run under session_replication_role = replica (where triggers and foreign keys of every other
-- table are off): the job must not run it so (it stops: such a partition cannot be in the key)
CREATE FUNCTION pt_bucket(a int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF current_setting('session_replication_role') = 'replica' THEN
    RAISE EXCEPTION 'user code ran in replica mode';
  END IF;
  RETURN a % 2;
END $$;
CREATE TABLE pt_sneaky (a int NOT NULL, v text) PARTITION BY RANGE (a);
CREATE TABLE pt_sneaky_1 PARTITION OF pt_sneaky FOR VALUES FROM (0) TO (1000);
INSERT INTO pt_sneaky SELECT g, 'v' FROM generate_series(0, 999) g;
SET pkonline.debug_wait_points = on;
SELECT pkonline.hold_wait_point('backfill_batch');
SELECT pkonline.add_int_pk('pt_sneaky') AS job \gset
CALL wait_for_step(:job, 'backfill');
CALL wait_for_wait_point();
CREATE TABLE pt_sneaky_2 (a int NOT NULL, v text, id bigint) PARTITION BY LIST (pt_bucket(a));
CREATE TABLE pt_sneaky_2a PARTITION OF pt_sneaky_2 FOR VALUES IN (0);
CREATE TABLE pt_sneaky_2b PARTITION OF pt_sneaky_2 FOR VALUES IN (1);
INSERT INTO pt_sneaky_2 SELECT g, 'w' FROM generate_series(1000, 1999) g;
ALTER TABLE pt_sneaky ATTACH PARTITION pt_sneaky_2 FOR VALUES FROM (1000) TO (2000);
SELECT pkonline.release_wait_point('backfill_batch');
CALL pkonline.wait(:job, '60s');
RESET pkonline.debug_wait_points;
SELECT last_sqlstate, regexp_replace(last_error, 'job \d+', 'job N') AS error FROM pkonline.jobs WHERE id = :job;
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');

-- 7. set_primary_key on a partitioned table: existing columns, the partition key among them
CREATE TABLE pt_spk (region text NOT NULL, n int, v text) PARTITION BY LIST (region);
CREATE TABLE pt_spk_eu PARTITION OF pt_spk FOR VALUES IN ('eu');
CREATE TABLE pt_spk_us (v text, n int, region text NOT NULL);
ALTER TABLE pt_spk ATTACH PARTITION pt_spk_us FOR VALUES IN ('us');
INSERT INTO pt_spk SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g, 'v' FROM generate_series(1, 1000) g;
SELECT pkonline.set_primary_key('pt_spk', '{n,region}') AS job \gset
CALL pkonline.wait(:job, '60s');
SELECT step_no, step FROM pkonline.steps(:job);
SELECT relid::regclass AS rel, (SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = relid AND contype = 'p') AS pk,
       (SELECT attnotnull FROM pg_attribute WHERE attrelid = relid AND attname = 'n') AS n_not_null
  FROM pg_partition_tree('pt_spk') ORDER BY 1;
SELECT * FROM leftovers('pt_spk');
-- duplicates and NULLs stop it in its preflight, changing nothing; a key without the partition
-- key, or a table that has a key, is refused at once
CREATE TABLE pt_spk2 (region text NOT NULL, n int) PARTITION BY LIST (region);
CREATE TABLE pt_spk2_eu PARTITION OF pt_spk2 FOR VALUES IN ('eu');
INSERT INTO pt_spk2 VALUES ('eu', 1), ('eu', 1), ('eu', NULL);
SELECT pkonline.set_primary_key('pt_spk2', '{n,region}') AS job \gset
CALL pkonline.wait(:job, '60s');
SELECT last_sqlstate, regexp_replace(last_error, 'job \d+', 'job N') AS error FROM pkonline.jobs WHERE id = :job;
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');
SELECT count(*) AS constraints FROM pg_constraint WHERE conrelid IN (SELECT relid FROM pg_partition_tree('pt_spk2'));
SELECT try($$SELECT pkonline.set_primary_key('pt_spk2', '{n}')$$);
SELECT try($$SELECT pkonline.set_primary_key('pt_spk', '{v,region}')$$);

-- 8. add_column on a partitioned table: a volatile value, NOT NULL; a partition created and a
-- table attached while it fills (the attached table's rows have no value yet)
CREATE TABLE pt_ac (ts date NOT NULL, name text) PARTITION BY RANGE (ts);
CREATE TABLE pt_ac_1 PARTITION OF pt_ac FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE pt_ac_2 (name text, ts date NOT NULL);
ALTER TABLE pt_ac ATTACH PARTITION pt_ac_2 FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE pt_ac_d PARTITION OF pt_ac DEFAULT;
INSERT INTO pt_ac SELECT DATE '2024-01-01' + g % 70, 'N' || g FROM generate_series(1, 2000) g;
SET pkonline.debug_wait_points = on;
SELECT pkonline.hold_wait_point('backfill_batch');
SELECT pkonline.add_column('pt_ac', 'uid', 'uuid', 'gen_random_uuid()') AS job \gset
CALL wait_for_step(:job, 'backfill');
CALL wait_for_wait_point();
CREATE TABLE pt_ac_4 PARTITION OF pt_ac FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
INSERT INTO pt_ac (ts, name) VALUES ('2024-04-02', 'new partition');
CREATE TABLE pt_ac_5 (name text, ts date NOT NULL, uid uuid);
INSERT INTO pt_ac_5 (ts, name) SELECT DATE '2024-05-01' + g % 20, 'A' || g FROM generate_series(1, 50) g;
ALTER TABLE pt_ac ATTACH PARTITION pt_ac_5 FOR VALUES FROM ('2024-05-01') TO ('2024-06-01');
INSERT INTO pt_ac_2 (ts, name, uid) VALUES ('2024-02-03', 'explicit null', NULL);
SELECT pkonline.release_wait_point('backfill_batch');
CALL pkonline.wait(:job, '60s');
RESET pkonline.debug_wait_points;
SELECT step_no, step FROM pkonline.steps(:job);
SELECT tableoid::regclass AS part, count(*) AS rows, count(uid) AS with_value, count(DISTINCT uid) AS distinct_values
  FROM pt_ac GROUP BY 1 ORDER BY 1;
SELECT a.attrelid::regclass AS rel, a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid IN (SELECT relid FROM pg_partition_tree('pt_ac')) AND a.attname = 'uid' ORDER BY 1;
SELECT * FROM leftovers('pt_ac');
SELECT try($$INSERT INTO pt_ac_1 (ts, name, uid) VALUES ('2024-01-09', 'null after', NULL)$$);

-- a value from the row's columns, nullable; a value that is not volatile (catalog only, one step)
CREATE TABLE pt_ac2 (k int NOT NULL, name text) PARTITION BY HASH (k);
CREATE TABLE pt_ac2_0 PARTITION OF pt_ac2 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE pt_ac2_1 PARTITION OF pt_ac2 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO pt_ac2 SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'Name' || g END FROM generate_series(1, 1000) g;
SELECT pkonline.add_column('pt_ac2', 'lname', 'text', 'lower(name)', not_null => false) AS job \gset
CALL pkonline.wait(:job, '60s');
SELECT count(*) FILTER (WHERE lname IS DISTINCT FROM lower(name)) AS wrong, count(lname) AS with_value FROM pt_ac2;
SELECT pkonline.add_column('pt_ac2', 'flag', 'int', '7') AS job \gset
CALL pkonline.wait(:job, '60s');
SELECT step FROM pkonline.steps(:job);
SELECT count(*) FILTER (WHERE flag = 7) AS sevens FROM pt_ac2;
SELECT * FROM leftovers('pt_ac2');
-- nullable: a table attached just before the finish is filled there (nothing checks it later), and
-- so is one detached and attached again
CREATE TABLE pt_late (k int NOT NULL, name text) PARTITION BY LIST (k);
CREATE TABLE pt_late_1 PARTITION OF pt_late FOR VALUES IN (1);
INSERT INTO pt_late SELECT 1, 'Name' || g FROM generate_series(1, 200) g;
SET pkonline.debug_wait_points = on;
SELECT pkonline.hold_wait_point('finish');
SELECT pkonline.add_column('pt_late', 'lname', 'text', 'lower(name)', not_null => false) AS job \gset
CALL wait_for_step(:job, 'finish');
CALL wait_for_wait_point();
CREATE TABLE pt_late_2 (k int NOT NULL, name text, lname text);
INSERT INTO pt_late_2 (k, name) SELECT 2, 'Late' || g FROM generate_series(1, 50) g;
ALTER TABLE pt_late ATTACH PARTITION pt_late_2 FOR VALUES IN (2);
-- and one filled already, detached (it loses the job's trigger), written to, attached again
ALTER TABLE pt_late DETACH PARTITION pt_late_1;
INSERT INTO pt_late_1 (k, name) VALUES (1, 'While Detached');
ALTER TABLE pt_late ATTACH PARTITION pt_late_1 FOR VALUES IN (1);
SELECT pkonline.release_wait_point('finish');
CALL pkonline.wait(:job, '60s');
RESET pkonline.debug_wait_points;
SELECT tableoid::regclass AS part, count(*) AS rows, count(lname) AS filled FROM pt_late GROUP BY 1 ORDER BY 1;
-- a fill that comes out NULL for a column that is to be NOT NULL: the job stops; cancel removes
-- the column from every partition
SELECT pkonline.add_column('pt_ac2', 'must', 'text', 'upper(name)', not_null => true) AS job \gset
CALL pkonline.wait(:job, '60s');
SELECT last_sqlstate FROM pkonline.jobs WHERE id = :job;
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');
SELECT count(*) AS must_columns FROM pg_attribute WHERE attname = 'must' AND attrelid IN (SELECT relid FROM pg_partition_tree('pt_ac2'));
SELECT * FROM leftovers('pt_ac2');
SELECT try($$SELECT pkonline.add_column('pt_ac2', 'u', 'uuid', 'gen_random_uuid()', is_unique => true)$$);
SELECT try($$SELECT pkonline.add_column('pt_ac2', 'w', 'int', 'length(pt_ac2::text)')$$);
SELECT try($$SELECT pkonline.add_column('pt_ac2', 'w', 'int', '(SELECT length(pt_ac2::text))')$$);
SELECT try($$SELECT pkonline.check('pt_ac2', 'add_column', '{"column_name": "w", "column_type": "int", "fill": "(SELECT k + 1)"}')$$);
CREATE DOMAIN pt_posint AS int CHECK (VALUE > 0);
SELECT try($$SELECT pkonline.add_column('pt_ac2', 'p', 'pt_posint', '5')$$);

-- 6. refusals: each says why, and nothing changes
CREATE TABLE r_parted (ts date NOT NULL, v text) PARTITION BY RANGE (ts);
CREATE TABLE r_parted_1 PARTITION OF r_parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
SELECT try($$SELECT pkonline.add_int_pk('r_parted', method => 'copy')$$);
SELECT try($$SELECT pkonline.add_int_pk('r_parted', identity => true)$$);
SELECT try($$SELECT pkonline.add_int_pk('r_parted', pk_columns => '{id}')$$);
SELECT try($$SELECT pkonline.add_int_pk('r_parted', pk_columns => '{ts,v}')$$);
SELECT try($$SELECT pkonline.add_int_pk('r_parted', pk_columns => '{id,ts,id}')$$);
SELECT try($$SELECT pkonline.add_int_pk('r_parted', pk_columns => '{id,ts,nope}')$$);
SELECT try($$SELECT pkonline.add_int_pk('r_parted_1')$$);
CREATE TABLE r_plain (a int);
SELECT try($$SELECT pkonline.add_int_pk('r_plain', pk_columns => '{id,a}')$$);
SELECT try($$SELECT pkonline.add_column('r_plain', 'p', 'pt_posint', '5')$$);  -- an ordinary table too
CREATE TABLE r_expr (ts timestamptz NOT NULL) PARTITION BY RANGE (date_trunc('day', ts AT TIME ZONE 'UTC'));
SELECT try($$SELECT pkonline.add_int_pk('r_expr')$$);
CREATE TABLE r_own (k int NOT NULL) PARTITION BY LIST (k);
CREATE TABLE r_own_1 PARTITION OF r_own FOR VALUES IN (1);
ALTER TABLE r_own_1 ADD PRIMARY KEY (k);
SELECT try($$SELECT pkonline.add_int_pk('r_own')$$);
CREATE ROLE pk_part_owner;
CREATE TABLE r_owner (k int NOT NULL) PARTITION BY LIST (k);
CREATE TABLE r_owner_1 PARTITION OF r_owner FOR VALUES IN (1);
ALTER TABLE r_owner_1 OWNER TO pk_part_owner;
SELECT try($$SELECT pkonline.add_int_pk('r_owner')$$);
CREATE FOREIGN DATA WRAPPER part_fdw;
CREATE SERVER part_srv FOREIGN DATA WRAPPER part_fdw;
CREATE TABLE r_ft (k int NOT NULL) PARTITION BY LIST (k);
CREATE FOREIGN TABLE r_ft_1 PARTITION OF r_ft FOR VALUES IN (1) SERVER part_srv;
SELECT try($$SELECT pkonline.add_int_pk('r_ft')$$);
CREATE TABLE r_forced (k int NOT NULL) PARTITION BY LIST (k);
CREATE TABLE r_forced_1 PARTITION OF r_forced FOR VALUES IN (1);
ALTER TABLE r_forced_1 FORCE ROW LEVEL SECURITY;
SELECT try($$SELECT pkonline.add_int_pk('r_forced')$$);
CREATE TABLE r_coll (t text NOT NULL) PARTITION BY LIST (t COLLATE "C");
CREATE TABLE r_coll_1 PARTITION OF r_coll FOR VALUES IN ('a');
SELECT try($$SELECT pkonline.add_int_pk('r_coll')$$);
SELECT try($$SELECT pkonline.set_primary_key('r_coll', '{t}')$$);
CREATE TABLE r_xid (x xid NOT NULL) PARTITION BY HASH (x);
CREATE TABLE r_xid_1 PARTITION OF r_xid FOR VALUES WITH (MODULUS 1, REMAINDER 0);
SELECT try($$SELECT pkonline.add_int_pk('r_xid')$$);
CREATE TABLE r_small (k int NOT NULL) PARTITION BY LIST (k);
CREATE TABLE r_small_1 PARTITION OF r_small FOR VALUES IN (1);
INSERT INTO r_small SELECT 1 FROM generate_series(1, 40000);
ANALYZE r_small;
SELECT try($$SELECT pkonline.add_int_pk('r_small', column_type => 'smallint')$$);
CREATE ROLE pk_part_nocreate;
CREATE SCHEMA r_locked;
GRANT CREATE, USAGE ON SCHEMA pt TO pk_part_nocreate;
GRANT USAGE ON SCHEMA r_locked TO pk_part_nocreate;
CREATE TABLE r_schema (k int NOT NULL) PARTITION BY LIST (k);
CREATE TABLE r_locked.r_schema_1 PARTITION OF r_schema FOR VALUES IN (1);
ALTER TABLE r_schema OWNER TO pk_part_nocreate;
ALTER TABLE r_locked.r_schema_1 OWNER TO pk_part_nocreate;
SELECT try($$SELECT pkonline.add_int_pk('r_schema')$$);
-- nothing changed by any of them
SELECT count(*) AS jobs FROM pkonline.jobs WHERE table_name LIKE '%r\_%';
SELECT count(*) AS id_columns FROM pg_attribute WHERE attname = 'id' AND attrelid IN
  (SELECT relid FROM pg_partition_tree('r_parted') UNION ALL SELECT relid FROM pg_partition_tree('r_own')
   UNION ALL SELECT relid FROM pg_partition_tree('r_owner') UNION ALL SELECT 'r_plain'::regclass);
-- check() says the same
SELECT level, detail FROM pkonline.check('r_parted', 'add_int_pk', '{"method": "copy"}') WHERE item = 'operation';
-- and what a job would do: partitions, the largest, the key
INSERT INTO r_parted SELECT DATE '2024-01-01' + g % 300, 'v' FROM generate_series(1, 500) g;
CREATE TABLE r_parted_2 PARTITION OF r_parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
ANALYZE r_parted;
SELECT level, item, regexp_replace(detail, '\d+ (bytes|kB)', 'N', 'g') AS detail, advice
  FROM pkonline.check('r_parted', 'add_int_pk') WHERE item IN ('operation', 'partitions', 'key');
SELECT level, item, detail FROM pkonline.check('r_parted', 'add_int_pk', '{"pk_columns": ["ts", "id"]}') WHERE item = 'key';
SELECT level, item, detail FROM pkonline.check('r_parted', 'set_primary_key', '{"columns": ["v", "ts"]}') WHERE item IN ('operation', 'key');

DROP SERVER part_srv CASCADE;
DROP FOREIGN DATA WRAPPER part_fdw;
DROP TABLE r_owner, r_schema;
DROP SCHEMA r_locked;
REVOKE ALL ON SCHEMA pt FROM pk_part_nocreate;
DROP ROLE pk_part_owner, pk_part_nocreate;
