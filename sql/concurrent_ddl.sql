-- DDL by others while a job runs: the job notices, fails cleanly with a clear message, nothing
-- crashes, and cancel still cleans up. The job is held at the backfill_batch wait point while
-- the DDL happens.
SET client_min_messages = error;   -- wait()'s warnings name job ids
SET pkonline.debug_wait_points = on;
SET pkonline.batch_size = 2;
SET pkonline.batch_time = 0;
SET pkonline.batch_sleep = 0;
\set hold 'SELECT pkonline.hold_wait_point(''backfill_batch'')'
\set release 'SELECT pkonline.release_wait_point(''backfill_batch'')'

\i sql/include/wait_for_step.sql

-- What a job and its table look like: state, error, columns, triggers, pkonline objects left.
CREATE FUNCTION job_outcome(j bigint, tbl text) RETURNS TABLE (k text, v text) LANGUAGE sql AS $$
  SELECT 'state', state FROM pkonline.jobs WHERE id = j
  UNION ALL SELECT 'error', last_sqlstate || ': ' || regexp_replace(last_error, '(job|oid) \d+', '\1 N', 'g') FROM pkonline.jobs WHERE id = j
  UNION ALL SELECT 'columns', (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                                WHERE attrelid = to_regclass(tbl) AND attnum > 0 AND NOT attisdropped)
  UNION ALL SELECT 'triggers', (SELECT count(*)::text FROM pg_trigger WHERE tgrelid = to_regclass(tbl))
  UNION ALL SELECT 'constraints', (SELECT string_agg(regexp_replace(regexp_replace(conname, '_[0-9a-f]{8}$', ''), 'pkonline_\d+_', 'pkonline_N_') || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname)
                                    FROM pg_constraint WHERE conrelid = to_regclass(tbl))
  UNION ALL SELECT 'pkonline objects', (SELECT count(*)::text FROM pg_class WHERE relname LIKE 'pkonline%')
                                      || '+' || (SELECT count(*)::text FROM pg_proc WHERE proname LIKE 'pkonline%')
$$;

-- 1. the table renamed: the job follows it (it works by OID) and succeeds
CREATE TABLE d1 (a int);
INSERT INTO d1 SELECT generate_series(1, 1000);
:hold;
SELECT pkonline.add_int_pk('d1') AS job \gset
CALL wait_for_step(:job, 'backfill');
ALTER TABLE d1 RENAME TO d1_renamed;
:release;
CALL pkonline.wait(:job, '60s');
SELECT * FROM job_outcome(:job, 'd1_renamed');

-- 2. the new column renamed: the job fails clearly; cancel drops the column under its new name
CREATE TABLE d2 (a int);
INSERT INTO d2 SELECT generate_series(1, 1000);
:hold;
SELECT pkonline.add_int_pk('d2') AS job \gset
CALL wait_for_step(:job, 'backfill');
ALTER TABLE d2 RENAME COLUMN id TO renamed_id;
:release;
CALL pkonline.wait(:job, '60s');
SELECT * FROM job_outcome(:job, 'd2');
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');
SELECT * FROM job_outcome(:job, 'd2');

-- 3. the new column dropped
CREATE TABLE d3 (a int);
INSERT INTO d3 SELECT generate_series(1, 1000);
:hold;
SELECT pkonline.add_int_pk('d3') AS job \gset
CALL wait_for_step(:job, 'backfill');
ALTER TABLE d3 DROP COLUMN id CASCADE;
:release;
CALL pkonline.wait(:job, '60s');
SELECT * FROM job_outcome(:job, 'd3');
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');
SELECT * FROM job_outcome(:job, 'd3');

-- 4. the table dropped
CREATE TABLE d4 (a int);
INSERT INTO d4 SELECT generate_series(1, 1000);
:hold;
SELECT pkonline.add_int_pk('d4') AS job \gset
CALL wait_for_step(:job, 'backfill');
DROP TABLE d4;
:release;
CALL pkonline.wait(:job, '60s');
SELECT k, v FROM job_outcome(:job, 'd4') WHERE k IN ('state', 'error', 'pkonline objects');
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');
SELECT k, v FROM job_outcome(:job, 'd4') WHERE k IN ('state', 'pkonline objects');

-- 5. a primary key added by hand (it takes the name the job chose for its own): the job fails
--    before building its index, and cancel leaves the hand-made key alone
CREATE TABLE d5 (a int NOT NULL);
INSERT INTO d5 SELECT generate_series(1, 1000);
:hold;
SELECT pkonline.add_int_pk('d5') AS job \gset
CALL wait_for_step(:job, 'backfill');
ALTER TABLE d5 ADD PRIMARY KEY (a);
:release;
CALL pkonline.wait(:job, '60s');
SELECT * FROM job_outcome(:job, 'd5');
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');
SELECT * FROM job_outcome(:job, 'd5');

-- 6. a primary key added by hand under another name: the job fails at its last step
CREATE TABLE d6 (a int NOT NULL);
INSERT INTO d6 SELECT generate_series(1, 1000);
:hold;
SELECT pkonline.add_int_pk('d6') AS job \gset
CALL wait_for_step(:job, 'backfill');
ALTER TABLE d6 ADD CONSTRAINT d6_by_hand PRIMARY KEY (a);
:release;
CALL pkonline.wait(:job, '60s');
SELECT * FROM job_outcome(:job, 'd6');
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job, '60s');
SELECT * FROM job_outcome(:job, 'd6');

-- 7. the extension dropped while a job runs: the job's fill trigger uses the extension's C
--    function, so a plain DROP EXTENSION is refused; with CASCADE (the trigger goes too) the
--    worker stops with an error in the server log, nothing crashes, and the job's column and
--    sequence stay on the table for the DBA to drop (README: Safety)
CREATE TABLE d7 (a int);
INSERT INTO d7 SELECT generate_series(1, 1000);
:hold;
SELECT pkonline.add_int_pk('d7') AS job \gset
CALL wait_for_step(:job, 'backfill');
\set VERBOSITY terse
DROP EXTENSION pkonline;
\set VERBOSITY default
DROP EXTENSION pkonline CASCADE;
-- (the release helper went with the extension)
SELECT pg_advisory_unlock_all();
SELECT pg_sleep(1);
SELECT count(*) AS pkonline_workers FROM pg_stat_activity WHERE backend_type = 'pkonline worker';
SELECT string_agg(attname, ',' ORDER BY attnum) AS columns
  FROM pg_attribute WHERE attrelid = 'd7'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT count(*) AS rows FROM d7;
CREATE EXTENSION pkonline;
