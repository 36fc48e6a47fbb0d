-- Job control: pause and resume between batches, cancel with undo.
-- Wait points (pkonline.debug_wait_points) make the worker stop where a test holds an
-- advisory lock, so the interleavings are deterministic.
SET client_min_messages = warning;
SET pkonline.debug_wait_points = on;
SET pkonline.batch_size = 2;
SET pkonline.batch_time = 0;
SET pkonline.batch_sleep = 0;

\i sql/include/wait_for_step.sql

CREATE TABLE ctl (a int, b text);
INSERT INTO ctl SELECT g, 'b' || g FROM generate_series(1, 3000) g;
CREATE TABLE ctl_before AS SELECT * FROM ctl;

-- cancel during the backfill: everything the job added is undone
SELECT pkonline.hold_wait_point('backfill_batch');
SELECT pkonline.add_int_pk('ctl') AS job \gset
CALL wait_for_step(:job, 'backfill');
SELECT attname FROM pg_attribute WHERE attrelid = 'ctl'::regclass AND attname = 'id';
SELECT count(*) AS fill_triggers FROM pg_trigger WHERE tgrelid = 'ctl'::regclass;
SELECT pkonline.cancel(:job);
SELECT pkonline.release_wait_point('backfill_batch');
CALL pkonline.wait(:job);
SELECT step, state FROM pkonline.steps(:job);
SELECT string_agg(attname, ',' ORDER BY attnum) AS columns
  FROM pg_attribute WHERE attrelid = 'ctl'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'ctl'::regclass;
SELECT count(*) AS helpers_left FROM pg_class WHERE relname LIKE 'pkonline%';
SELECT count(*) AS functions_left FROM pg_proc WHERE proname LIKE 'pkonline%';
SELECT count(*) AS constraints FROM pg_constraint WHERE conrelid = 'ctl'::regclass;
SELECT (SELECT count(*) FROM (TABLE ctl EXCEPT ALL TABLE ctl_before) x) +
       (SELECT count(*) FROM (TABLE ctl_before EXCEPT ALL TABLE ctl) y) AS changed_rows;
SELECT kind, message FROM pkonline.events WHERE job_id = :job AND kind IN ('cancel', 'step_undone') ORDER BY id;

-- pause during the backfill, then resume: it goes on from where it stopped
SELECT pkonline.hold_wait_point('backfill_batch');
SELECT pkonline.add_int_pk('ctl') AS job \gset
CALL wait_for_step(:job, 'backfill');
SELECT pkonline.pause(:job);
SELECT pkonline.release_wait_point('backfill_batch');
CALL pkonline.wait(:job);
SELECT state, step FROM pkonline.status WHERE job = :job;
SELECT pkonline.pause(:job);   -- already paused
SELECT pkonline.resume(:job);
CALL pkonline.wait(:job);
SELECT state, rows_done, last_error FROM pkonline.status WHERE job = :job;
SELECT count(*), count(DISTINCT id), min(id), max(id) FROM ctl;
SELECT kind, message FROM pkonline.events WHERE job_id = :job AND kind IN ('pause', 'resume') ORDER BY id;

-- past the point of no return, cancel refuses and says why
DO $$
DECLARE msg text; det text; hint text;
BEGIN
  PERFORM pkonline.cancel((SELECT max(id) FROM pkonline.jobs WHERE relid = 'ctl'::regclass));
EXCEPTION WHEN object_not_in_prerequisite_state THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  RAISE WARNING '%', regexp_replace(msg, 'job \d+', 'job N') USING DETAIL = det, HINT = hint;
END $$;

-- cancel just before the concurrent index build: column, check and trigger are undone
CREATE TABLE ctl2 (a int);
INSERT INTO ctl2 SELECT generate_series(1, 1000);
SELECT pkonline.hold_wait_point('create_index');
SELECT pkonline.add_int_pk('ctl2') AS job \gset
CALL wait_for_step(:job, 'create_index');
SELECT pkonline.cancel(:job);
SELECT pkonline.release_wait_point('create_index');
CALL pkonline.wait(:job);
SELECT string_agg(attname, ',' ORDER BY attnum) AS columns
  FROM pg_attribute WHERE attrelid = 'ctl2'::regclass AND attnum > 0 AND NOT attisdropped;
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'ctl2'::regclass;
SELECT count(*) AS constraints FROM pg_constraint WHERE conrelid = 'ctl2'::regclass;

-- a job created with start => false waits for start(): run_pending() leaves it alone
SELECT pkonline.add_int_pk('ctl2', start => false) AS job \gset
SELECT pkonline.run_pending();
CALL pkonline.wait(:job);
SELECT pkonline.start(:job);
CALL pkonline.wait(:job);
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'ctl2'::regclass;

-- pkonline.max_workers: further jobs wait in the queue and start when a worker ends. The server's
-- own setting is left as it is (installcheck changes nothing of the server's): as many jobs as it
-- allows are held in their backfill, and one more waits.
SELECT current_setting('pkonline.max_workers')::int AS slots \gset
DO $$
BEGIN
  FOR g IN 0..current_setting('pkonline.max_workers')::int LOOP
    EXECUTE format('CREATE TABLE q%s (a int); INSERT INTO q%s SELECT generate_series(1, 500)', g, g);
  END LOOP;
END $$;
SELECT pkonline.hold_wait_point('backfill_batch');
SELECT count(pkonline.add_int_pk(format('q%s', g)::regclass)) = :slots AS held_jobs FROM generate_series(1, :slots) g;
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN (SELECT count(*) FROM pkonline.status WHERE table_name ~ '^public\.q[1-9]' AND step = 'backfill' AND worker_alive)
              = current_setting('pkonline.max_workers')::int;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT pkonline.add_int_pk('q0') AS job2 \gset
SELECT pg_sleep(0.5);
SELECT state, worker_alive, waiting_for ~ '^a worker to take it' AS says_why FROM pkonline.status WHERE job = :job2;
SELECT pkonline.release_wait_point('backfill_batch');
CALL pkonline.wait(:job2);
DO $$
BEGIN
  FOR i IN 1..1200 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM pkonline.status WHERE table_name ~ '^public\.q[1-9]' AND state <> 'done');
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT count(*) = :slots AS all_done FROM pkonline.status WHERE table_name ~ '^public\.q[1-9]' AND state = 'done';

-- a job resumes by step name: a saved plan that is not the one this version runs fails the job
-- before any step runs (never the wrong step), and cancel then has nothing to undo
CREATE TABLE ctl3 (a int);
INSERT INTO ctl3 SELECT generate_series(1, 100);
SELECT pkonline.add_int_pk('ctl3', start => false) AS job \gset
UPDATE pkonline.job_steps SET step = 'renamed_step' WHERE job_id = :job AND step_no = 2;
SELECT pkonline.start(:job);
SET client_min_messages = error;  -- (wait's warning names the job's id)
CALL pkonline.wait(:job);
RESET client_min_messages;
SELECT state, last_sqlstate, regexp_replace(last_error, 'job \d+', 'job N') AS last_error, last_detail
  FROM pkonline.jobs WHERE id = :job;
SELECT string_agg(attname, ',' ORDER BY attnum) AS columns FROM pg_attribute WHERE attrelid = 'ctl3'::regclass AND attnum > 0;
SELECT pkonline.cancel(:job);

-- what a DBA finds with \df+ and \d+: every function, view and table of pkonline says what it is
SELECT count(*) AS functions_without_comment FROM pg_proc p
 WHERE p.pronamespace IN ('pkonline'::regnamespace, 'pkonline_internal'::regnamespace)
   AND obj_description(p.oid, 'pg_proc') IS NULL;
-- \df pkonline.* lists what a DBA calls: the internals are in a schema of their own
SELECT string_agg(proname, ', ') AS internals_in_pkonline FROM pg_proc
 WHERE pronamespace = 'pkonline'::regnamespace AND proname LIKE '\_%';
SELECT count(*) > 5 AS internals_elsewhere FROM pg_proc WHERE pronamespace = 'pkonline_internal'::regnamespace;
SELECT count(*) AS relations_without_comment FROM pg_class c
 WHERE c.relnamespace = 'pkonline'::regnamespace AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL;
-- status in job order; active: the unfinished ones; metrics: per state, for an exporter
SELECT array_agg(job) = array_agg(job ORDER BY job) AS status_in_job_order FROM pkonline.status;
SELECT count(*) = (SELECT count(*) FROM pkonline.status WHERE state NOT IN ('done', 'cancelled')) AS active_is_unfinished
  FROM pkonline.active;
SELECT state, jobs = (SELECT count(*) FROM pkonline.status s WHERE s.state = m.state) AS counted,
       rows_done >= 0 AND wal_bytes > 0 AS measured
  FROM pkonline.metrics m ORDER BY state;
