-- pkonline.check(): one row per finding before a job; changes nothing, locks at most ACCESS SHARE.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA chk;
SET search_path = chk, public;

\i sql/include/try.sql

CREATE TABLE ready (a int NOT NULL, b text);
INSERT INTO ready SELECT g, 'row ' || g FROM generate_series(1, 5000) g;
CREATE INDEX ready_b ON ready (b);
ANALYZE ready;

-- Bad input to check() itself is an error of check().
SELECT try($$SELECT * FROM pkonline.check('ready', 'add_pk')$$);
SELECT try($$SELECT * FROM pkonline.check('ready', 'add_int_pk', '[1]')$$);
SELECT try($$SELECT * FROM pkonline.check('ready', 'add_int_pk', '{"colum_name": "x"}')$$);
SELECT try($$SELECT * FROM pkonline.check('ready', 'add_int_pk', '{"identity": "yes"}')$$);
SELECT try($$SELECT * FROM pkonline.check('ready', 'add_int_pk', '{"column_type": "no_such_type"}')$$);
SELECT try($$SELECT * FROM pkonline.check('ready', 'set_primary_key', '{"columns": "a"}')$$);
SELECT try($$SELECT * FROM pkonline.check('ready', NULL)$$);

-- A table ready for add_int_pk: every item, each ok. Sizes, the disk and the duration vary, so
-- their shape is checked.
-- (transaction: whatever else runs on the server may hold a snapshot; its shape is checked below)
SELECT level, item FROM pkonline.check('ready') WHERE item <> 'transaction';
SELECT count(*) >= 1 AS transactions_looked_at FROM pkonline.check('ready') WHERE item = 'transaction';
SELECT item, detail FROM pkonline.check('ready')
 WHERE item NOT IN ('size', 'disk', 'duration', 'transaction', 'standby');
SELECT detail ~ '^table \d+ kB, indexes \d+ kB, about 5000 rows in \d+ blocks$' AS size_shape
  FROM pkonline.check('ready') WHERE item = 'size';
SELECT detail ~ '^add_int_pk needs about \d+ (bytes|kB) more at its peak, \d+ (bytes|kB) after the job; '
               'pkonline.estimate\(\) for what it rests on; the file system of tablespace pg_default has \d+ [kMGT]?B free$' AS disk_shape
  FROM pkonline.check('ready') WHERE item = 'disk';
SELECT detail ~ '^between \d\d:\d\d:\d\d and \d\d:\d\d:\d\d \(add_int_pk, in_place: 1 tables .*\)$' AS duration_shape
  FROM pkonline.check('ready') WHERE item = 'duration';
-- The copy method needs a second copy: more room than in place (where VACUUM lets the rows'
-- new versions reuse the old ones' space: on a table this small, only when it runs often).
SET pkonline.vacuum_every = 1;
SELECT (SELECT substring(detail FROM 'needs about (\d+ \w+)') FROM pkonline.check('ready', 'add_int_pk',
          '{"method": "copy"}') WHERE item = 'disk') AS copy_needs,
       (SELECT substring(detail FROM 'needs about (\d+ \w+)') FROM pkonline.check('ready') WHERE item = 'disk')
          AS in_place_needs;
RESET pkonline.vacuum_every;

-- check() changes nothing: no job, no column, no lock left but ACCESS SHARE; the operation's dry
-- run took the job id sequence no further.
SELECT last_value AS job_seq_before, (SELECT count(*) FROM pkonline.jobs) AS jobs_before
  FROM pkonline.jobs_id_seq \gset
BEGIN;
SELECT count(*) > 0 AS findings FROM pkonline.check('ready', 'add_int_pk', '{"method": "copy"}');
SELECT count(*) > 0 AS findings FROM pkonline.check('ready', 'add_column',
  '{"column_name": "c", "column_type": "uuid", "fill": "gen_random_uuid()", "is_unique": true}');
SELECT DISTINCT mode FROM pg_locks WHERE relation = 'ready'::regclass AND pid = pg_backend_pid();
COMMIT;
SELECT count(*) = :jobs_before AS no_new_job FROM pkonline.jobs;
SELECT last_value = :job_seq_before AS job_seq_unchanged FROM pkonline.jobs_id_seq;
SELECT count(*) AS columns FROM pg_attribute WHERE attrelid = 'ready'::regclass AND attnum > 0;

-- Blockers carry the operation's own message, SQLSTATE and hint.
CREATE TABLE keyed (id int PRIMARY KEY, t text);
SELECT level, detail, advice FROM pkonline.check('keyed') WHERE item = 'operation';
SELECT level, detail, advice FROM pkonline.check('ready', 'add_int_pk', '{"column_name": "b"}')
 WHERE item = 'operation';
SELECT level, detail, advice FROM pkonline.check('ready', 'add_int_pk', '{"method": "sideways"}')
 WHERE item = 'operation';
SELECT level, detail FROM pkonline.check('keyed', 'convert_pk_to_bigint') WHERE item = 'operation';
CREATE TABLE text_key (k text PRIMARY KEY);
SELECT level, detail FROM pkonline.check('text_key', 'convert_pk_to_bigint') WHERE item = 'operation';
SELECT level, detail FROM pkonline.check('ready', 'set_primary_key', '{"columns": ["nope"]}')
 WHERE item = 'operation';
SELECT level, detail FROM pkonline.check('ready', 'set_primary_key', '{"columns": ["a"]}') WHERE item = 'operation';
-- add_column's fill is parsed and analysed as the operation would.
SELECT level, detail FROM pkonline.check('ready', 'add_column',
  '{"column_name": "c", "column_type": "int", "fill": "a +"}') WHERE item = 'operation';
SELECT level, detail FROM pkonline.check('ready', 'add_column',
  '{"column_name": "c", "column_type": "int", "fill": "no_such_column * 2"}') WHERE item = 'operation';
-- A constant fill is a catalog-only change: no time, no room.
SELECT item, detail FROM pkonline.check('ready', 'add_column',
  '{"column_name": "c", "column_type": "int", "fill": "42"}') WHERE item IN ('operation', 'disk', 'duration')
 ORDER BY item;
SELECT item, detail FROM pkonline.check('ready', 'add_column',
  '{"column_name": "c", "column_type": "int", "fill": "random() * 10"}') WHERE item = 'disk' AND detail LIKE '%no room%';
-- Without the arguments it needs, the operation's own checks are not run, and it says how.
SELECT level, detail, advice FROM pkonline.check('ready', 'add_column') WHERE item = 'operation';
SELECT level, detail FROM pkonline.check('ready', 'set_primary_key') WHERE item = 'operation';

-- Not a table: the operation's refusal is the only finding.
CREATE VIEW ready_view AS SELECT * FROM ready;
SELECT level, item, detail FROM pkonline.check('ready_view');

-- What is attached to the table, named.
CREATE TABLE parent_t (p int);
CREATE TABLE child_t (c int) INHERITS (parent_t);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER ready_touch BEFORE UPDATE ON ready FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER ready_always BEFORE INSERT ON ready FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE ready ENABLE ALWAYS TRIGGER ready_always;
CREATE RULE ready_no_delete AS ON DELETE TO ready DO INSTEAD NOTHING;
ALTER TABLE keyed ADD COLUMN a int;
ALTER TABLE ready ADD CONSTRAINT ready_a_key UNIQUE (a);
ALTER TABLE keyed ADD CONSTRAINT keyed_a_fkey FOREIGN KEY (a) REFERENCES ready (a);
CREATE TABLE ready_ref (x int REFERENCES keyed);
SELECT item, detail FROM pkonline.check('ready')
 WHERE item IN ('triggers', 'rules', 'foreign keys out', 'foreign keys in', 'inheritance') ORDER BY item;
SELECT item, detail FROM pkonline.check('keyed')
 WHERE item IN ('foreign keys out', 'foreign keys in') ORDER BY item;
SELECT level, detail FROM pkonline.check('child_t') WHERE item IN ('operation', 'inheritance') ORDER BY item;

-- Publications: the new column must reach the subscribers first.
CREATE PUBLICATION ready_pub FOR TABLE ready;
SELECT level, detail, advice FROM pkonline.check('ready') WHERE item = 'publication';
SELECT level, detail FROM pkonline.check('ready', 'add_int_pk', '{"method": "copy"}') WHERE item = 'operation';
DROP PUBLICATION ready_pub;

-- estimate(): the numbers to plan by, for each operation and method; bad input is refused
SELECT disk_after_bytes > 0 AND wal_bytes > 0 AND disk_peak_bytes >= disk_after_bytes
       AND seconds_low > 0 AND seconds_high > seconds_low AND seconds_high / seconds_low <= 3 AS sane,
       basis ~ '^add_int_pk, in_place: 1 tables' AS basis_says
  FROM pkonline.estimate('ready');
SELECT e.op, e.disk_after_bytes > 0 AS grows, e.wal_bytes > 0 AS writes_wal
  FROM (SELECT 'copy' AS op, * FROM pkonline.estimate('ready', 'add_int_pk', '{"method": "copy"}')
        UNION ALL SELECT 'uuid', * FROM pkonline.estimate('ready', 'add_column', '{"column_type": "uuid", "fill": "gen_random_uuid()"}')
        UNION ALL SELECT 'row', * FROM pkonline.estimate('ready', 'add_column', '{"column_type": "int", "fill": "a + 1"}')
        UNION ALL SELECT 'constant', * FROM pkonline.estimate('ready', 'add_column', '{"column_type": "int", "fill": "42"}')
        UNION ALL SELECT 'set_pk', * FROM pkonline.estimate('ready', 'set_primary_key', '{"columns": ["a"]}')) e;
SELECT try($$SELECT * FROM pkonline.estimate('ready', 'drop_everything')$$);
SELECT try($$SELECT * FROM pkonline.estimate('ready', 'add_int_pk', '{"method": "sideways"}')$$);
SELECT try($$SELECT * FROM pkonline.estimate(NULL)$$);
SELECT try($$SELECT * FROM pkonline.estimate('pg_class_oid_index')$$);

-- A role that does not own the table: refused as the operation refuses it, and nothing read.
CREATE ROLE check_stranger;
GRANT USAGE ON SCHEMA chk TO check_stranger;
SET ROLE check_stranger;
SELECT level, item, detail FROM pkonline.check('ready') WHERE item IN ('operation', 'duration') ORDER BY item;
-- The file system's free space is for pg_monitor to see.
SELECT level, detail ~ 'free space of tablespace pg_default is unknown \(shown to members of pg_monitor only\)$' AS hidden
  FROM pkonline.check('ready') WHERE item = 'disk';
RESET ROLE;
SET search_path = public;
DROP SCHEMA chk CASCADE;
DROP ROLE check_stranger;  -- (after its grant on chk went with the schema: installcheck leaves no role)
