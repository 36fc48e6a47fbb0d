-- add_column, method => 'copy': the table is written once more, into a copy whose new column is
-- filled, and the storages are swapped. Rows written during the job reach the copy through a
-- change log keyed by the primary key (inserts, updates, deletes, a key changed); every row kept,
-- every index checked by amcheck; cancel undoes it; what the method cannot do is refused before
-- anything changes.
SET client_min_messages = error;
SET pkonline.debug_wait_points = on;
SET pkonline.batch_size = 4;       -- several batches even on small tables
SET pkonline.batch_time = 0;
SET pkonline.batch_sleep = 0;
CREATE EXTENSION IF NOT EXISTS amcheck;
\set hold 'SELECT pkonline.hold_wait_point(''backfill_batch'')'
\set release 'SELECT pkonline.release_wait_point(''backfill_batch'')'

\i sql/include/wait_for_step.sql

-- 1. A uuid column, unique, on a table with what a real one has: a dropped column, TOASTed
-- values, a foreign key that references it, a CHECK, a user trigger, an index, a grant.
CREATE ROLE acopy_writer;
CREATE TABLE docs (id int PRIMARY KEY, gone int, title text, body text, n int CHECK (n >= 0), touched int DEFAULT 0);
INSERT INTO docs SELECT g, g, 'T' || g, CASE WHEN g % 50 = 0 THEN repeat(md5(g::text), 200) ELSE 'b' || g END, g
  FROM generate_series(1, 3000) g;
ALTER TABLE docs DROP COLUMN gone;
CREATE INDEX docs_title ON docs (lower(title)) WHERE n > 100;
CREATE TABLE doc_refs (doc int REFERENCES docs, k int);
INSERT INTO doc_refs SELECT g, g FROM generate_series(1, 3000, 10) g;
CREATE FUNCTION docs_touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN NEW.touched := NEW.touched + 1; RETURN NEW; END';
CREATE TRIGGER docs_touch BEFORE UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION docs_touch();
GRANT SELECT, INSERT, UPDATE, DELETE ON docs TO acopy_writer;
CREATE TABLE docs_before AS SELECT id, title, body, n, touched FROM docs;
SELECT pg_relation_filenode('docs') AS filenode_before \gset

SELECT pkonline.add_uuid_column('docs', 'ref', method => 'copy', start => false) AS job \gset
SELECT step_no, step, lock FROM pkonline.steps(:job);
SELECT pkonline.start(:job);

-- held in the copy, writes by a role that may only write the table: a new row (its DEFAULT value
-- is kept), an update, a key moved, a delete, a value given by the writer
:hold;
CALL wait_for_step(:job, 'copy');
SET ROLE acopy_writer;
INSERT INTO docs (id, title, body, n) VALUES (5001, 'new', repeat('t', 5000), 1) RETURNING ref IS NOT NULL AS new_row_has_ref \gset
CREATE TEMP TABLE new_ref AS SELECT ref FROM docs WHERE id = 5001;
UPDATE docs SET n = n + 1000 WHERE id IN (1, 2999);
UPDATE docs SET id = 6000 WHERE id = 2998;
DELETE FROM docs WHERE id = 3;
UPDATE docs SET ref = '00000000-0000-0000-0000-00000000abcd' WHERE id = 4;
RESET ROLE;
SELECT :'new_row_has_ref' AS new_row_has_ref;
INSERT INTO docs_before VALUES (5001, 'new', repeat('t', 5000), 1, 0);
UPDATE docs_before SET n = n + 1000, touched = touched + 1 WHERE id IN (1, 2999);
UPDATE docs_before SET id = 6000, touched = touched + 1 WHERE id = 2998;
UPDATE docs_before SET touched = touched + 1 WHERE id = 4;
DELETE FROM docs_before WHERE id = 3;
:release;
CALL pkonline.wait(:job, '60s');
SELECT state, last_error FROM pkonline.jobs WHERE id = :job;
SELECT step, state FROM pkonline.steps(:job);

SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid IN ('docs'::regclass, 'doc_refs'::regclass) ORDER BY conrelid::regclass::text, conname;
SELECT indexrelid::regclass, indisprimary, indisunique, indisvalid
  FROM pg_index WHERE indrelid = 'docs'::regclass ORDER BY indexrelid::regclass::text;
SELECT attname, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(d.adbin, d.adrelid) AS "default"
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE attrelid = 'docs'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'docs'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT has_table_privilege('acopy_writer', 'docs', 'INSERT') AS writer_may_insert;
-- new storage; every row kept with its values, each with its own uuid; the writers' values kept
SELECT pg_relation_filenode('docs') <> :filenode_before AS new_storage;
SELECT count(*) AS changed_rows FROM (
  (SELECT id, title, body, n, touched FROM docs EXCEPT ALL SELECT * FROM docs_before)
  UNION ALL
  (SELECT * FROM docs_before EXCEPT ALL SELECT id, title, body, n, touched FROM docs)) d;
SELECT count(*), count(ref), count(DISTINCT ref) FROM docs;
SELECT ref = (SELECT ref FROM new_ref) AS inserted_row_kept_its_default FROM docs WHERE id = 5001;
SELECT ref FROM docs WHERE id = 4;
-- heap, TOAST and every index agree (amcheck); nothing of the job is left
SELECT count(*) AS heap_problems FROM verify_heapam('docs');
SELECT count(bt_index_check(indexrelid, true)) AS indexes_checked FROM pg_index WHERE indrelid = 'docs'::regclass;
SELECT count(*) AS helpers_left FROM pg_class WHERE relname LIKE 'pkonline\_' || :job || '\_%';
-- a new row gets its value from the DEFAULT; the foreign key still holds
INSERT INTO docs (id, title, n) VALUES (7000, 'later', 1);
SELECT ref IS NOT NULL AS later_row_has_ref FROM docs WHERE id = 7000;
INSERT INTO doc_refs VALUES (424242, 1);

-- 2. A value computed from the row (it cannot be a DEFAULT): rows updated during the copy get
-- the value of their new version.
SELECT pkonline.add_column('docs', 'slug', 'text', 'lower(title) || ''-'' || id', not_null => false,
                           method => 'copy') AS job2 \gset
:hold;
CALL wait_for_step(:job2, 'copy');
UPDATE docs SET title = 'Renamed' WHERE id = 10;
INSERT INTO docs (id, title, n) VALUES (7001, 'Inserted', 1);
:release;
CALL pkonline.wait(:job2, '60s');
SELECT state, last_error FROM pkonline.jobs WHERE id = :job2;
SELECT count(*) FILTER (WHERE slug = lower(title) || '-' || id) AS right, count(*) FILTER (WHERE slug IS DISTINCT FROM lower(title) || '-' || id) AS wrong FROM docs;
SELECT slug FROM docs WHERE id IN (10, 7001) ORDER BY id;
SELECT attnotnull FROM pg_attribute WHERE attrelid = 'docs'::regclass AND attname = 'slug';

-- 3. cancel in the copy: the column, the copy, the log and the trigger are gone
SELECT pkonline.add_column('docs', 'c3', 'timestamptz', 'clock_timestamp()', method => 'copy') AS job3 \gset
:hold;
CALL wait_for_step(:job3, 'copy');
SELECT pkonline.cancel(:job3);
:release;
CALL pkonline.wait(:job3, '60s');
SELECT count(*) AS column_left FROM pg_attribute WHERE attrelid = 'docs'::regclass AND attname = 'c3' AND NOT attisdropped;
SELECT count(*) AS helpers_left FROM pg_class WHERE relname LIKE 'pkonline\_' || :job3 || '\_%';
SELECT tgname FROM pg_trigger WHERE tgrelid = 'docs'::regclass AND NOT tgisinternal ORDER BY 1;

-- 4. what would make the copy wrong stops the job (cancel then undoes it):
\set hold_swap 'SELECT pkonline.hold_wait_point(''pre_swap'')'
\set release_swap 'SELECT pkonline.release_wait_point(''pre_swap'')'
-- (a) the change log's trigger disabled, a row written, the trigger enabled again: that write is
-- in no log
SELECT pkonline.add_column('docs', 'c4a', 'uuid', 'gen_random_uuid()', method => 'copy') AS job4a \gset
:hold_swap;
CALL wait_for_step(:job4a, 'swap');
DO $$ DECLARE tg name; BEGIN
  SELECT tgname INTO tg FROM pg_trigger WHERE tgrelid = 'docs'::regclass AND tgname LIKE 'pkonline%';
  EXECUTE format('ALTER TABLE docs DISABLE TRIGGER %I', tg);
  UPDATE docs SET n = n + 1 WHERE id = 5;
  EXECUTE format('ALTER TABLE docs ENABLE ALWAYS TRIGGER %I', tg);
END $$;
:release_swap;
CALL pkonline.wait(:job4a, '60s');
SELECT state, replace(last_error, 'job ' || :job4a, 'job N') AS last_error FROM pkonline.jobs WHERE id = :job4a;
SELECT pkonline.cancel(:job4a);
CALL pkonline.wait(:job4a, '60s');
-- (b) the copy's column made nullable (the swap would have set NOT NULL over NULLs)
SELECT pkonline.add_column('docs', 'c4b', 'uuid', 'gen_random_uuid()', method => 'copy') AS job4b \gset
SELECT set_config('pkonline_test.job', :'job4b', false) <> '' AS noted;
:hold_swap;
CALL wait_for_step(:job4b, 'swap');
DO $$ BEGIN
  EXECUTE format('ALTER TABLE %s ALTER COLUMN c4b DROP NOT NULL',
                 (SELECT oid::regclass FROM pg_class WHERE relname LIKE 'pkonline\_' || current_setting('pkonline_test.job') || '\_copy%'));
END $$;
:release_swap;
CALL pkonline.wait(:job4b, '60s');
SELECT state, replace(last_error, 'job ' || :job4b, 'job N') AS last_error FROM pkonline.jobs WHERE id = :job4b;
SELECT pkonline.cancel(:job4b);
CALL pkonline.wait(:job4b, '60s');
SELECT count(*) AS columns_left FROM pg_attribute WHERE attrelid = 'docs'::regclass AND attname IN ('c4a', 'c4b') AND NOT attisdropped;
SELECT count(*) AS changed_rows FROM (SELECT n FROM docs WHERE id = 5 EXCEPT SELECT 6) d;
-- (c) the unique constraint's name taken by another relation meanwhile: the swap picks a free one
SELECT pkonline.add_column('docs', 'c4c', 'uuid', 'gen_random_uuid()', is_unique => true, method => 'copy') AS job4c \gset
:hold_swap;
CALL wait_for_step(:job4c, 'swap');
CREATE TABLE docs_c4c_key (x int);
:release_swap;
CALL pkonline.wait(:job4c, '60s');
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'docs'::regclass AND contype = 'u' AND conname LIKE 'docs_c4c%';
DROP TABLE docs_c4c_key;

-- 5. the primary key replaced while the job runs: the job stops, saying why
SELECT pkonline.add_column('docs', 'c4', 'uuid', 'gen_random_uuid()', method => 'copy') AS job4 \gset
:hold;
CALL wait_for_step(:job4, 'copy');
ALTER TABLE doc_refs DROP CONSTRAINT doc_refs_doc_fkey;
ALTER TABLE docs DROP CONSTRAINT docs_pkey;
CREATE UNIQUE INDEX docs_id ON docs (id);
:release;
CALL pkonline.wait(:job4, '60s');
SELECT state, replace(last_error, 'job ' || :job4, 'job N') AS last_error FROM pkonline.jobs WHERE id = :job4;
SELECT pkonline.cancel(:job4);
CALL pkonline.wait(:job4, '60s');
SELECT count(*) AS column_left FROM pg_attribute WHERE attrelid = 'docs'::regclass AND attname = 'c4' AND NOT attisdropped;

-- 6. refused before anything changes (SQLSTATE, message, hint)
\set VERBOSITY default
SET client_min_messages = warning;
CREATE TABLE acopy_nokey (a int);
CREATE TABLE acopy_twokey (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE acopy_textkey (a text PRIMARY KEY);
CREATE TABLE acopy_parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE acopy_pubbed (id int PRIMARY KEY);
SET client_min_messages = error;  -- (wal_level may be too low to publish: the publication is all this needs)
CREATE PUBLICATION acopy_pub FOR TABLE acopy_pubbed;
SET client_min_messages = warning;
\set ON_ERROR_STOP 0
SELECT pkonline.add_column('acopy_nokey', 'u', 'uuid', 'gen_random_uuid()', method => 'copy');
SELECT pkonline.add_column('acopy_twokey', 'u', 'uuid', 'gen_random_uuid()', method => 'copy');
SELECT pkonline.add_column('acopy_textkey', 'u', 'uuid', 'gen_random_uuid()', method => 'copy');
SELECT pkonline.add_column('acopy_parted', 'u', 'uuid', 'gen_random_uuid()', method => 'copy');
SELECT pkonline.add_column('acopy_pubbed', 'u', 'uuid', 'gen_random_uuid()', method => 'copy');
SELECT pkonline.add_column('docs', 'u', 'uuid', 'gen_random_uuid()', method => 'rewrite');
\set ON_ERROR_STOP 1
SELECT count(*) AS jobs_made FROM pkonline.jobs WHERE relid IN ('acopy_nokey'::regclass, 'acopy_twokey'::regclass, 'acopy_textkey'::regclass, 'acopy_parted'::regclass, 'acopy_pubbed'::regclass);
SELECT count(*) AS columns_added FROM pg_attribute WHERE attname = 'u' AND attrelid IN ('acopy_nokey'::regclass, 'acopy_twokey'::regclass, 'acopy_textkey'::regclass, 'acopy_parted'::regclass, 'acopy_pubbed'::regclass, 'docs'::regclass);
-- a value that is not volatile: catalog only, whatever the method
SELECT pkonline.add_column('acopy_nokey', 'k', 'int', '42', method => 'copy') AS job5 \gset
CALL pkonline.wait(:job5, '60s');
SELECT step FROM pkonline.steps(:job5);
-- check() and estimate() know the method
SELECT level, item, detail FROM pkonline.check('acopy_nokey', 'add_column', '{"column_name": "u", "column_type": "uuid", "fill": "gen_random_uuid()", "method": "copy"}') WHERE level <> 'ok';
SELECT basis LIKE 'add_column, copy:%' AS copy_basis FROM pkonline.estimate('docs', 'add_column', '{"column_type": "uuid", "fill": "gen_random_uuid()", "method": "copy"}');
\set ON_ERROR_STOP 0
SELECT * FROM pkonline.estimate('docs', 'set_primary_key', '{"method": "copy", "columns": ["id"]}');
\set ON_ERROR_STOP 1

DROP PUBLICATION acopy_pub;
DROP TABLE acopy_nokey, acopy_twokey, acopy_textkey, acopy_parted, acopy_pubbed, doc_refs, docs, docs_before;
DROP FUNCTION docs_touch();
DROP OWNED BY acopy_writer;
DROP ROLE acopy_writer;
