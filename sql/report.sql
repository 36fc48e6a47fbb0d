-- pkonline.report(job): what a job did, per step and in total, measured by its worker and stored
-- with the job; wait() ends with its summary.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET pkonline.debug_wait_points = on;
CREATE SCHEMA rep;
SET search_path = rep, public;

\i sql/include/wait_for_step.sql

-- Blocks until the job's worker waits at a wait point (commits between polls, at most 30 s).
CREATE PROCEDURE wait_for_wait_point() LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. 300 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted);
    COMMIT;
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;

CREATE TABLE measured (v int);
INSERT INTO measured SELECT g FROM generate_series(1, 20000) g;
ANALYZE measured;
SELECT pkonline.add_int_pk('measured') AS job \gset
CALL pkonline.wait(:job);

-- One row per step, then the total. Times, sizes and WAL vary: their shape is checked.
SELECT step_no, step, state, longest_lock, lock_retries, blocked_by,
       batches > 0 AS batched, rows, rows_per_sec > 0 AS has_rate, wal ~ '^\d+ (bytes|kB|MB)$' AS wal_shape,
       wall >= interval '0' AS timed, table_size
  FROM pkonline.report(:job) WHERE step_no IS NOT NULL ORDER BY step_no;
SELECT step, state, longest_lock, lock_retries, rows, wall > interval '0' AS timed,
       table_size ~ '^\d+ kB -> \d+ kB$' AS size_shape,
       (SELECT sum(wal_bytes) FROM pkonline.job_steps WHERE job_id = :job) > 0 AS wrote_wal
  FROM pkonline.report(:job) WHERE step_no IS NULL;
-- The brief steps block writes for milliseconds; the concurrent index build blocks none.
SELECT step, lock_ms > 0 AS measured, writes_blocked_ms > 0 AS blocks_writes, writes_blocked_ms < 1000 AS brief
  FROM pkonline.report(:job) WHERE step IN ('add_column', 'attach', 'create_index') ORDER BY step;
-- The table grew by the new column and the key's index.
SELECT size_after > size_before AS grew FROM pkonline.jobs WHERE id = :job;

-- A lock hold is measured from the statement that took it to the commit: convert_pk_to_bigint's
-- swap is held at a wait point inside its transaction (ACCESS EXCLUSIVE taken) for 0.5 s.
CREATE TABLE parent (id int PRIMARY KEY, v int);
INSERT INTO parent SELECT g, g FROM generate_series(1, 2000) g;
CREATE TABLE child (parent_id int REFERENCES parent);
INSERT INTO child SELECT g FROM generate_series(1, 2000) g;
SELECT pkonline.hold_wait_point('swap_locked');
SELECT pkonline.convert_pk_to_bigint('parent') AS job2 \gset
CALL wait_for_step(:job2, 'swap');
CALL wait_for_wait_point();
SELECT pg_sleep(0.5);
SELECT pkonline.release_wait_point('swap_locked');
CALL pkonline.wait(:job2);
SELECT step, longest_lock, lock_ms >= 500 AS held_half_a_second, writes_blocked_ms >= 500 AS writes_blocked
  FROM pkonline.report(:job2) WHERE step = 'swap';
-- Its other steps blocked writes far less; the total names the swap's hold.
SELECT bool_and(writes_blocked_ms < 500) AS others_brief FROM pkonline.report(:job2)
 WHERE step_no IS NOT NULL AND step <> 'swap';
SELECT longest_lock, writes_blocked_ms >= 500 AS total_names_it FROM pkonline.report(:job2) WHERE step_no IS NULL;
-- Rows of both tables are counted in the backfill.
SELECT rows FROM pkonline.report(:job2) WHERE step = 'backfill';

-- Bad input; other roles' jobs are not theirs to read.
CREATE FUNCTION sqlstate_of(cmd text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE cmd;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d+', 'N');
END $$;
SELECT sqlstate_of('SELECT * FROM pkonline.report(424242)');
SELECT sqlstate_of('SELECT * FROM pkonline.report(NULL)');
CREATE ROLE report_stranger;
GRANT USAGE ON SCHEMA rep TO report_stranger;
SET ROLE report_stranger;
SELECT sqlstate_of('SELECT * FROM pkonline.report(' || :job || ')');
RESET ROLE;
REVOKE USAGE ON SCHEMA rep FROM report_stranger;
DROP ROLE report_stranger;

SET search_path = public;
DROP SCHEMA rep CASCADE;
