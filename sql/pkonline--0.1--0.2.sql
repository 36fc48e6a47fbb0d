-- pkonline 0.1 -> 0.2: check(), report(), run windows, jobs that survive pg_dump / pg_restore as
-- failed ones. From the last 0.1 that main shipped (with convert_pk_to_bigint and the security
-- fixes); an earlier 0.1 is refused: finish or cancel its jobs, DROP EXTENSION, CREATE EXTENSION.
\echo Use "ALTER EXTENSION pkonline UPDATE" to load this file. \quit

DO $guard$
BEGIN
  IF pg_catalog.to_regprocedure('pkonline.hold_wait_point(text)') IS NULL
     OR pg_catalog.to_regprocedure('pkonline.convert_pk_to_bigint(regclass,boolean,boolean)') IS NULL THEN
    RAISE EXCEPTION 'this database has an early pkonline 0.1, which cannot be updated in place'
      USING ERRCODE = '55000',
            DETAIL = 'Its job tables and functions predate the 0.1 that version 0.2 updates from.',
            HINT = 'Let its jobs finish (SELECT * FROM pkonline.status), then DROP EXTENSION pkonline; CREATE EXTENSION pkonline;';
  END IF;
END
$guard$;

-- A job may wait for its run window.
ALTER TABLE pkonline.jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE pkonline.jobs ADD CONSTRAINT jobs_state_check
  CHECK (state IN ('created', 'queued', 'running', 'waiting', 'paused', 'cancelling', 'cancelled', 'failed', 'done'));

-- What a job did (pkonline.report), measured by its worker.
ALTER TABLE pkonline.jobs
  ADD COLUMN size_before bigint,   -- pg_total_relation_size of the job's tables, at its start
  ADD COLUMN size_after  bigint;   -- and when it is done
ALTER TABLE pkonline.job_steps   -- summed over the step's runs
  ADD COLUMN busy_ms      float8 NOT NULL DEFAULT 0,     -- its own running time (pauses between runs excluded)
  ADD COLUMN batches      bigint NOT NULL DEFAULT 0,
  ADD COLUMN rows         bigint NOT NULL DEFAULT 0,
  ADD COLUMN wal_bytes    bigint NOT NULL DEFAULT 0,     -- WAL the worker wrote
  ADD COLUMN lock_retries integer NOT NULL DEFAULT 0,
  ADD COLUMN blocked_by   text[] NOT NULL DEFAULT '{}',  -- sessions holding the table when a lock was retried
  ADD COLUMN lock_mode    text,                          -- the strongest lock above ROW EXCLUSIVE in the longest hold
  ADD COLUMN lock_ms      float8 NOT NULL DEFAULT 0,     -- that hold: from the statement taking it to its commit
  ADD COLUMN writes_blocked_ms float8 NOT NULL DEFAULT 0; -- the longest hold of a lock blocking writes (SHARE or stronger)

-- Where a job was created: this cluster (its system identifier) and this database. A job row
-- restored from a dump elsewhere is not that job: pkonline never acts on it (see below).
CREATE FUNCTION pkonline._origin() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system())::text || '/' ||
         (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())::text
$$;
REVOKE EXECUTE ON FUNCTION pkonline._origin() FROM PUBLIC;
ALTER TABLE pkonline.jobs ADD COLUMN origin text;
UPDATE pkonline.jobs SET origin = pkonline._origin();
ALTER TABLE pkonline.jobs ALTER COLUMN origin SET DEFAULT pkonline._origin(), ALTER COLUMN origin SET NOT NULL;

-- pg_dump keeps the jobs, their steps and events (the history, and what the tables went through);
-- pg_restore brings an unfinished job back as failed, with a message: its table, OIDs and helpers
-- in the restored database are not the ones it recorded, so it is never resumed there.
CREATE FUNCTION pkonline._restored_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NEW.origin IS DISTINCT FROM pkonline._origin() AND NEW.state NOT IN ('done', 'cancelled', 'failed') THEN
    NEW.state := 'failed';
    NEW.worker_pid := NULL;
    NEW.pause_requested := false;
    NEW.last_sqlstate := '55000';
    NEW.last_error := format('pkonline job %s was restored from a dump: it is not resumed on a table that may differ', NEW.id);
    NEW.last_detail := 'The job''s records name objects by the OIDs they had where it ran.';
    NEW.last_hint := format('pkonline.cancel(%s) closes it; drop the helpers it had made on %s (named ~pkonline_%s_* or pkonline_%s_*) by hand, or run the operation again after DROP of the half-made column.',
                            NEW.id, NEW.table_name, NEW.id, NEW.id);
  END IF;
  RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION pkonline._restored_job() FROM PUBLIC;
CREATE TRIGGER restored_job BEFORE INSERT ON pkonline.jobs FOR EACH ROW EXECUTE FUNCTION pkonline._restored_job();
SELECT pg_catalog.pg_extension_config_dump('pkonline.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('pkonline.jobs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pkonline.job_steps', '');
SELECT pg_catalog.pg_extension_config_dump('pkonline.events', '');
SELECT pg_catalog.pg_extension_config_dump('pkonline.events_id_seq', '');

-- check: before a job, one row per finding (ok / warning / blocker). The operation's own checks
-- run dry with `args` (its arguments by name, e.g. '{"method": "copy"}'), in a subtransaction
-- rolled back; the rest reads sizes, free disk space, a timed sample of the table, old and
-- prepared transactions, replication and what is attached to the table, as the caller, under
-- ACCESS SHARE at most. (The caller's search_path travels with it, for add_column's fill.)
CREATE FUNCTION pkonline._check(tbl regclass, operation text, args text, search_path text)
RETURNS TABLE (level text, item text, detail text, advice text)
LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pkonline_check';

CREATE FUNCTION pkonline.check(tbl regclass, operation text DEFAULT 'add_int_pk', args jsonb DEFAULT '{}')
RETURNS TABLE (level text, item text, detail text, advice text) LANGUAGE sql VOLATILE AS $$
  SELECT * FROM pkonline._check(tbl, operation, args::pg_catalog.text, pg_catalog.current_setting('search_path'))
$$;
COMMENT ON FUNCTION pkonline.check(regclass, text, jsonb) IS
  'Before a job: is the table ready, and what will it cost? One row per finding (ok, warning, blocker); changes nothing';

CREATE FUNCTION pkonline.set_run_window(job bigint, run_window text) RETURNS text LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_set_run_window';
COMMENT ON FUNCTION pkonline.set_run_window(bigint, text) IS
  'Changes when a job may work: spans of the day in the server''s time zone, e.g. ''01:00-05:00''; '''' for always';

-- What a job did to the table, step by step, and in total: measured by its worker, stored with
-- the job (pkonline.job_steps, pkonline.jobs), so it outlives the worker and restarts.
CREATE FUNCTION pkonline.report(job bigint)
RETURNS TABLE (step_no integer, step text, state text, wall interval, longest_lock text, lock_ms numeric,
               writes_blocked_ms numeric, lock_retries bigint, blocked_by text, batches bigint, rows bigint, rows_per_sec bigint,
               wal text, table_size text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF report.job IS NULL THEN
    RAISE EXCEPTION 'job must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pkonline.jobs j WHERE j.id = report.job) THEN
    RAISE EXCEPTION 'pkonline job % does not exist', report.job USING ERRCODE = '42704';
  END IF;
  RETURN QUERY
  SELECT s.step_no, s.step, s.state,
         date_trunc('milliseconds', COALESCE(s.finished_at, CASE WHEN s.state = 'running' THEN clock_timestamp() END)
                                    - s.started_at),
         s.lock_mode, round(s.lock_ms::numeric, 1), round(s.writes_blocked_ms::numeric, 1), s.lock_retries::bigint,
         NULLIF(array_to_string(s.blocked_by, ', '), ''), s.batches, s.rows,
         CASE WHEN s.busy_ms > 0 AND s.rows > 0 THEN (s.rows / (s.busy_ms / 1000))::bigint END,
         pg_size_pretty(s.wal_bytes), NULL::text
    FROM pkonline.job_steps s WHERE s.job_id = report.job
  UNION ALL
  SELECT NULL::integer, 'total', j.state,
         date_trunc('milliseconds', COALESCE(j.finished_at, clock_timestamp()) - j.started_at),
         (SELECT s.lock_mode FROM pkonline.job_steps s WHERE s.job_id = j.id ORDER BY s.lock_ms DESC LIMIT 1),
         (SELECT round(max(s.lock_ms)::numeric, 1) FROM pkonline.job_steps s WHERE s.job_id = j.id),
         (SELECT round(max(s.writes_blocked_ms)::numeric, 1) FROM pkonline.job_steps s WHERE s.job_id = j.id),
         (SELECT sum(s.lock_retries)::bigint FROM pkonline.job_steps s WHERE s.job_id = j.id),
         NULL, (SELECT sum(s.batches)::bigint FROM pkonline.job_steps s WHERE s.job_id = j.id),
         (SELECT sum(s.rows)::bigint FROM pkonline.job_steps s WHERE s.job_id = j.id), NULL,
         (SELECT pg_size_pretty(sum(s.wal_bytes)) FROM pkonline.job_steps s WHERE s.job_id = j.id),
         COALESCE(pg_size_pretty(j.size_before), '?') || ' -> ' || COALESCE(pg_size_pretty(j.size_after), '?')
    FROM pkonline.jobs j WHERE j.id = report.job
  ORDER BY 1 NULLS LAST;
END
$$;
COMMENT ON FUNCTION pkonline.report(bigint) IS
  'What a job did, per step and in total: wall time, longest strong lock, lock retries and blockers, rows, WAL, table size';

-- wait() prints the report's summary when a job is done.
DROP FUNCTION pkonline._wait_poll(bigint, timestamptz, interval, text, timestamptz, integer);
-- One poll of wait(): what to print and whether to stop. All of wait()'s comparisons live here,
-- under a pinned search_path (wait itself cannot pin one: a procedure with SET cannot COMMIT).
CREATE FUNCTION pkonline._wait_poll(job bigint, started timestamptz, timeout interval,
                                    last_step text, last_at timestamptz, dead_polls integer,
                                    OUT state text, OUT finished boolean, OUT msg text, OUT warn text,
                                    OUT hint text, OUT next_step text, OUT next_at timestamptz,
                                    OUT next_dead_polls integer, OUT report text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  SELECT s.state, s.step, s.step_of, s.backfill_pct, s.rows_done, s.rows_total, s.rows_per_sec,
         s.backfill_eta, s.lock_retries, s.worker_alive, s.last_error
    INTO r FROM pkonline.status s WHERE s.job = _wait_poll.job;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pkonline job % does not exist', _wait_poll.job USING ERRCODE = '42704';
  END IF;
  state := r.state;
  finished := false;
  next_step := last_step;
  next_at := last_at;
  next_dead_polls := 0;
  IF r.state IN ('done', 'failed', 'cancelled', 'paused', 'created') THEN
    finished := true;
    IF r.state = 'failed' THEN
      warn := format('pkonline job %s failed: %s', _wait_poll.job, r.last_error);
      hint := format('Fix the cause, then SELECT pkonline.resume(%s); or pkonline.cancel(%s).', _wait_poll.job, _wait_poll.job);
    ELSIF r.state = 'created' THEN
      msg := format('pkonline job %s has not been started: SELECT pkonline.start(%s)', _wait_poll.job, _wait_poll.job);
    ELSE
      msg := format('pkonline job %s: %s', _wait_poll.job, r.state);
    END IF;
    IF r.state = 'done' THEN
      SELECT format('pkonline job %s report: %s in %s steps; writes blocked %s ms at most; longest lock %s; '
                    '%s lock retries; WAL %s; table size %s', _wait_poll.job, t.wall,
                    (SELECT count(*) FROM pkonline.job_steps s WHERE s.job_id = _wait_poll.job),
                    COALESCE(t.writes_blocked_ms, 0),
                    COALESCE(t.longest_lock || ' held ' || t.lock_ms || ' ms', 'none above ROW EXCLUSIVE'),
                    COALESCE(t.lock_retries, 0), t.wal, t.table_size)
        INTO report FROM pkonline.report(_wait_poll.job) t WHERE t.step = 'total' AND t.step_no IS NULL;
      report := report || format(' (SELECT * FROM pkonline.report(%s): each step)', _wait_poll.job);
    END IF;
    RETURN;
  END IF;
  -- a line when the step changes, else at most every 5 seconds
  IF r.step IS DISTINCT FROM last_step OR last_at IS NULL OR clock_timestamp() - last_at >= interval '5 s' THEN
    msg := format('pkonline job %s: %s, step %s %s', _wait_poll.job, r.state, r.step_of, r.step);
    IF r.step IN ('backfill', 'copy') THEN
      msg := msg || format(', %s%% (%s of ~%s rows, %s rows/s, ETA %s)', r.backfill_pct, r.rows_done,
                           r.rows_total, COALESCE(r.rows_per_sec, 0), COALESCE(r.backfill_eta::text, '?'));
    END IF;
    IF r.lock_retries > 0 THEN
      msg := msg || format(', %s lock retries', r.lock_retries);
    END IF;
    next_step := r.step;
    next_at := clock_timestamp();
  END IF;
  IF r.state IN ('running', 'cancelling') AND NOT r.worker_alive THEN
    next_dead_polls := dead_polls + 1;
    IF next_dead_polls >= 25 THEN
      finished := true;
      warn := format('pkonline job %s is %s but has no worker (was the server restarted?)', _wait_poll.job, r.state);
      hint := 'SELECT pkonline.run_pending(); starts it again.';
      RETURN;
    END IF;
  END IF;
  -- A job queued with no worker for 5 s: say why it may be waiting, once, and keep waiting.
  IF r.state = 'queued' AND NOT r.worker_alive THEN
    next_dead_polls := dead_polls + 1;
    IF next_dead_polls = 25 THEN
      warn := format('pkonline job %s is queued and no worker has taken it for 5 s', _wait_poll.job);
      hint := 'It starts when one of the pkonline.max_workers running jobs ends (SELECT * FROM pkonline.status), '
              'or, if no worker slot was free, with SELECT pkonline.run_pending();';
    END IF;
  END IF;
  IF timeout IS NOT NULL AND clock_timestamp() >= started + timeout THEN
    finished := true;
  END IF;
END
$$;

-- Blocks until the job ends; commits between polls so this session never holds a snapshot
-- that the job's CREATE INDEX CONCURRENTLY would have to wait for. It runs as its caller and
-- uses no operator of its own, so the caller's search_path cannot redirect it.
CREATE OR REPLACE PROCEDURE pkonline.wait(job bigint, timeout interval DEFAULT NULL, INOUT state text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
  started timestamptz := pg_catalog.clock_timestamp();
  r record;
  last_step text;
  last_at timestamptz;
  dead_polls integer := 0;
BEGIN
  IF job IS NULL THEN
    RAISE EXCEPTION 'job must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF pkonline._in_transaction_block() THEN
    RAISE EXCEPTION 'pkonline.wait cannot run inside a transaction block'
      USING ERRCODE = '25001',
            DETAIL = 'It commits between polls so that the job''s concurrent index build is not held up by this session.',
            HINT = 'CALL it outside BEGIN ... COMMIT, or poll pkonline.status instead.';
  END IF;
  LOOP
    SELECT * INTO r FROM pkonline._wait_poll(job, started, timeout, last_step, last_at, dead_polls);
    IF r.msg IS NOT NULL THEN
      RAISE NOTICE '%', r.msg;
    END IF;
    IF r.warn IS NOT NULL THEN
      RAISE WARNING '%', r.warn USING HINT = r.hint;
    END IF;
    IF r.report IS NOT NULL THEN
      RAISE NOTICE '%', r.report;
    END IF;
    IF r.finished THEN
      state := r.state;
      RETURN;
    END IF;
    last_step := r.next_step;
    last_at := r.next_at;
    dead_polls := r.next_dead_polls;
    COMMIT;
    PERFORM pg_catalog.pg_sleep(0.2);
  END LOOP;
END
$$;
