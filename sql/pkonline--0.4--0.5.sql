-- pkonline 0.4 -> 0.5: a DBA can take pkonline at its word.
\echo Use "ALTER EXTENSION pkonline UPDATE TO '0.5'" to load this file. \quit

-------------------------------------------------------------------------------------------------
-- The internals move out of the DBA's way: `\df pkonline.*` lists what a DBA calls. The schema is
-- made here (CREATE fails if one of that name exists: nothing is adopted) and belongs to the
-- extension. SET SCHEMA keeps each function's OID and privileges, so the triggers of a job that is
-- running right now, which call their function by OID, go on as they were. PUBLIC needs USAGE:
-- wait(), check() and add_column() call into it with the caller's rights, the copy method's row
-- key is evaluated as the table's owner; each function's own EXECUTE privilege still decides.
-------------------------------------------------------------------------------------------------
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pkonline_internal') THEN
    RAISE EXCEPTION 'schema "pkonline_internal" already exists'
      USING ERRCODE = '42P06',
            DETAIL = pg_catalog.format('pkonline keeps its internal functions there, in a schema it makes itself; this one belongs to %s.',
                       (SELECT nspowner::pg_catalog.regrole FROM pg_catalog.pg_namespace WHERE nspname = 'pkonline_internal')),
            HINT = 'Rename or drop that schema, then install or update pkonline again.';
  END IF;
END
$$;
CREATE SCHEMA pkonline_internal;
COMMENT ON SCHEMA pkonline_internal IS 'pkonline''s internal functions (not called by DBAs; most not executable by PUBLIC)';
GRANT USAGE ON SCHEMA pkonline_internal TO PUBLIC;
ALTER FUNCTION pkonline._worker_alive(bigint) SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._tid_key(tid) SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._copy_fill() SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._copy_log() SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._fill_nextval() SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._sync_bigint() SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._add_column(regclass, name, regtype, text, boolean, boolean, boolean, boolean, text) SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._origin() SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._restored_job() SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._check(regclass, text, text, text) SET SCHEMA pkonline_internal;
ALTER FUNCTION pkonline._wait_poll(bigint, timestamptz, interval, text, timestamptz, integer) SET SCHEMA pkonline_internal;
-- The PL/pgSQL wait() of 0.4 was its only caller (wait() is a C procedure now).
DROP FUNCTION pkonline._in_transaction_block();

-- Bodies written as text find their callees by name: those not written again below say the new one.
CREATE OR REPLACE FUNCTION pkonline_internal._restored_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NEW.origin IS DISTINCT FROM pkonline_internal._origin() THEN
    NEW.owner := (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'pkonline')::pg_catalog.regrole;
    NEW.run_as := NEW.owner;
  END IF;
  IF NEW.origin IS DISTINCT FROM pkonline_internal._origin() AND NEW.state NOT IN ('done', 'cancelled', 'failed') THEN
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
CREATE OR REPLACE FUNCTION pkonline.add_uuid_column(tbl regclass, column_name name DEFAULT 'uuid',
                                                    is_unique boolean DEFAULT true, start boolean DEFAULT true)
RETURNS bigint LANGUAGE sql AS $$
  SELECT pkonline_internal._add_column(tbl, column_name, 'pg_catalog.uuid'::pg_catalog.regtype,
                                       'pg_catalog.gen_random_uuid()', true, is_unique, true, start, 'pg_catalog')
$$;
CREATE OR REPLACE FUNCTION pkonline.add_created_at(tbl regclass, column_name name DEFAULT 'created_at',
                                                   start boolean DEFAULT true)
RETURNS bigint LANGUAGE sql AS $$
  SELECT pkonline_internal._add_column(tbl, column_name, 'pg_catalog.timestamptz'::pg_catalog.regtype,
                                       'pg_catalog.now()', true, false, true, start, 'pg_catalog')
$$;
CREATE OR REPLACE FUNCTION pkonline."check"(tbl regclass, operation text DEFAULT 'add_int_pk', args jsonb DEFAULT '{}')
RETURNS TABLE(level text, item text, detail text, advice text) LANGUAGE sql AS $$
  SELECT * FROM pkonline_internal._check(tbl, operation, args::pg_catalog.text, pg_catalog.current_setting('search_path'))
$$;

-------------------------------------------------------------------------------------------------
-- Why a job is not moving, while it is not moving: status.waiting_for.
-------------------------------------------------------------------------------------------------
-- What the worker holds back for by itself (a throttle: standby lag, the WAL rate, a long
-- batch_sleep); lock and snapshot waits are seen from outside (pg_locks).
ALTER TABLE pkonline.jobs ADD COLUMN waiting_for text;

-- pkonline.waiting_for(job), also status.waiting_for. Read as the caller: pg_locks and
-- pg_blocking_pids show every session, pg_stat_activity a
-- session's state and transaction age only to those who may see them (the rest get its pid and
-- role, which every role may see).
CREATE FUNCTION pkonline.waiting_for(job bigint) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH j AS (
    SELECT j.id, j.state, j.worker_pid, j.waiting_for, pkonline_internal._worker_alive(j.id) AS alive,
           COALESCE(j.options ->> 'run_window', '') AS run_window
      FROM pkonline.jobs j WHERE j.id = waiting_for.job),
  lockwait AS (
    SELECT l.locktype, l.mode, l.relation
      FROM j JOIN pg_catalog.pg_locks l ON l.pid = j.worker_pid AND NOT l.granted
     WHERE j.alive LIMIT 1),
  blockers AS (
    SELECT pg_catalog.string_agg(pg_catalog.format('pid %s (role %s%s)', a.pid, COALESCE(a.usename::text, '?'),
             CASE WHEN a.state IS NULL THEN ''
                  ELSE pg_catalog.format(', %s, transaction open %s', a.state,
                         COALESCE(pg_catalog.date_trunc('second', pg_catalog.clock_timestamp() - a.xact_start)::text, '?')) END),
             ', ' ORDER BY a.pid) AS who
      FROM j CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.pg_blocking_pids(j.worker_pid)) AS b(pid)
      JOIN pg_catalog.pg_stat_activity a ON a.pid = b.pid
     WHERE j.alive),
  win AS (
    SELECT ev.at + pg_catalog.make_interval(secs => (ev.detail ->> 'opens_in_s')::float8) AS opens
      FROM j JOIN pkonline.events ev ON ev.job_id = j.id AND ev.kind = 'window' AND ev.detail ? 'opens_in_s'
     ORDER BY ev.id DESC LIMIT 1)
  SELECT CASE
    WHEN j.state = 'queued' AND NOT j.alive THEN
      pg_catalog.format('a worker to take it (at most pkonline.max_workers = %s jobs run at once in a database)',
                        pg_catalog.current_setting('pkonline.max_workers'))
    WHEN j.state = 'waiting' THEN
      pg_catalog.format('the run window %s%s', j.run_window,
                        COALESCE(pg_catalog.format(', which opens in %s',
                                   pg_catalog.date_trunc('second', GREATEST(w.opens - pg_catalog.clock_timestamp(), interval '0')))::text, ''))
    WHEN j.state = 'paused' THEN j.waiting_for  -- (stopped before its final step: complete() runs it)
    WHEN NOT j.alive OR j.state NOT IN ('running', 'cancelling') THEN NULL
    WHEN l.locktype = 'virtualxid' THEN
      'old snapshots: its concurrent index build (or validation) waits for the transactions older than itself to end: '
      || COALESCE(b.who, 'a session you may not see')
    WHEN l.locktype = 'transactionid' THEN
      'a row lock: ' || COALESCE(b.who, 'a session you may not see')
    WHEN l.locktype IS NOT NULL THEN
      pg_catalog.format('a %s on %s, held or queued for by: %s', l.mode,
                        COALESCE(l.relation::pg_catalog.regclass::text, l.locktype), COALESCE(b.who, 'a session you may not see'))
    ELSE j.waiting_for
  END
  FROM j LEFT JOIN lockwait l ON true LEFT JOIN blockers b ON true LEFT JOIN win w ON true
$$;
-- (executable by every role: it reads, as the caller, only what the caller may read)


-------------------------------------------------------------------------------------------------
-- status: a job whose worker is gone says so ('orphaned'), never an empty step, the job's own
-- detail, in job order.
-------------------------------------------------------------------------------------------------
-- (replaced, not dropped: views a DBA built on it stay; new columns come last)
CREATE OR REPLACE VIEW pkonline.status WITH (security_invoker = true) AS
SELECT j.id AS job,
       j.table_name,
       j.operation,
       -- (no worker for 3 s since the job last changed: one that is merely on its way is not missed)
       CASE WHEN j.state IN ('running', 'cancelling') AND NOT w.alive
                 AND j.updated_at < clock_timestamp() - interval '3 seconds' THEN 'orphaned'
            ELSE j.state END AS state,
       COALESCE(s.step, CASE WHEN j.step_no > n.steps AND j.state NOT IN ('done', 'cancelled') THEN 'finishing' END) AS step,
       pg_catalog.format('%s/%s', LEAST(j.step_no, n.steps), n.steps) AS step_of,
       CASE WHEN j.state = 'done' THEN 100.0
            WHEN j.end_block IS NULL THEN 0.0
            WHEN j.end_block = 0 THEN 100.0
            ELSE round(100.0 * LEAST(j.cursor_block, j.end_block) / j.end_block, 1) END AS backfill_pct,
       j.rows_done,
       GREATEST(j.rows_estimate, j.rows_done) AS rows_total,
       CASE WHEN e.secs > 0 THEN round(j.rows_done / e.secs) END AS rows_per_sec,
       CASE WHEN j.state IN ('running', 'queued') AND j.end_block > j.cursor_block AND j.cursor_block > 0 AND e.secs > 0
            THEN pg_catalog.make_interval(secs => round((e.secs * (j.end_block - j.cursor_block) / j.cursor_block)::numeric, 0)::double precision) END AS backfill_eta,
       j.lock_retries,
       (SELECT ev.detail -> 'blocking_pids' FROM pkonline.events ev
         WHERE ev.job_id = j.id AND ev.kind = 'lock_retry' ORDER BY ev.id DESC LIMIT 1) AS last_blockers,
       w.alive AS worker_alive,
       j.owner,
       j.created_at,
       j.started_at,
       j.finished_at,
       COALESCE(j.finished_at, now()) - j.started_at AS elapsed,
       j.last_sqlstate,
       j.last_error,
       j.last_hint,
       j.last_detail,
       CASE WHEN j.state IN ('queued', 'waiting', 'running', 'cancelling', 'paused') THEN pkonline.waiting_for(j.id) END AS waiting_for,
       p.pct,
       CASE WHEN j.state IN ('running', 'waiting', 'queued') AND p.pct >= 1 AND j.started_at IS NOT NULL
            THEN pg_catalog.make_interval(secs => round(EXTRACT(epoch FROM clock_timestamp() - j.started_at)::numeric
                                                        * (100 - p.pct) / p.pct)::float8) END AS eta
  FROM pkonline.jobs j
  CROSS JOIN LATERAL (SELECT count(*)::int AS steps FROM pkonline.job_steps x WHERE x.job_id = j.id) n
  CROSS JOIN LATERAL (SELECT pkonline_internal._worker_alive(j.id) AS alive) w
  LEFT JOIN pkonline.job_steps s ON s.job_id = j.id AND s.step_no = j.step_no
  CROSS JOIN LATERAL (SELECT EXTRACT(epoch FROM COALESCE(j.finished_at, clock_timestamp()) - j.backfill_started_at)::float8 AS secs) e
  CROSS JOIN LATERAL (
    SELECT CASE WHEN j.state = 'done' THEN 100.0
                WHEN sum(x.w) > 0 THEN LEAST(99.9, round((100 * (COALESCE(sum(x.w) FILTER (WHERE x.step_no < j.step_no), 0)
                       + COALESCE(max(x.w * CASE WHEN j.end_block > 0 THEN LEAST(j.cursor_block, j.end_block)::float8 / j.end_block ELSE 0 END)
                                  FILTER (WHERE x.step_no = j.step_no AND x.step IN ('backfill', 'copy')), 0))
                       / sum(x.w))::numeric, 1))
                ELSE 0.0 END AS pct
      -- (each step weighs what it costs, in parts of a walk over the table(s), measured on the bench
      -- table, 1M rows: backfill 9.7 s, catch_up 0.08 s, validate 0.04 s, create_index 0.5 s, the
      -- brief steps milliseconds; the walk — backfill or copy, over every table of
      -- convert_pk_to_bigint and every partition under one cursor — counts by its blocks)
      FROM (SELECT y.step_no, y.step,
                   CASE WHEN y.step IN ('backfill', 'copy') THEN 1.0
                        WHEN y.lock LIKE '%catalog only%' THEN 0.005
                        WHEN y.step IN ('create_index', 'create_indexes', 'build_indexes', 'partition_keys') THEN 0.06
                        WHEN y.step IN ('catch_up', 'validate', 'validate_fks', 'partition_checks') THEN 0.02
                        ELSE 0.01 END AS w
              FROM pkonline.job_steps y WHERE y.job_id = j.id) x) p
 ORDER BY j.id;
COMMENT ON VIEW pkonline.status IS
  'One row per job the caller may see: state (orphaned: its worker is gone), step, progress (pct and eta: the whole job), why it waits (waiting_for), last error with its detail and hint';

-------------------------------------------------------------------------------------------------
-- wait(): a C procedure that holds no snapshot between its polls (the PL/pgSQL one held one while
-- it slept, and every concurrent index build of the job waited for it).
-------------------------------------------------------------------------------------------------
DROP FUNCTION pkonline_internal._wait_poll(bigint, timestamptz, interval, text, timestamptz, integer);
CREATE FUNCTION pkonline_internal._wait_poll(job bigint, started timestamptz, timeout interval,
                                    last_step text, last_at timestamptz, dead_polls integer,
                                    OUT state text, OUT finished boolean, OUT msg text, OUT warn text,
                                    OUT detail text, OUT hint text, OUT next_step text, OUT next_at timestamptz,
                                    OUT next_dead_polls integer, OUT report text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  SELECT s.state, s.step, s.step_of, s.backfill_pct, s.rows_done, s.rows_total, s.rows_per_sec,
         s.backfill_eta, s.lock_retries, s.worker_alive, s.last_error, s.last_detail, s.last_hint,
         s.waiting_for, s.pct, s.eta, s.step || '|' || COALESCE(pg_catalog.split_part(s.waiting_for, ':', 1), '') AS shown
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
      detail := r.last_detail;
      hint := COALESCE(r.last_hint,
                       format('Fix the cause, then SELECT pkonline.resume(%s); or pkonline.cancel(%s).', _wait_poll.job, _wait_poll.job));
    ELSIF r.state = 'created' THEN
      msg := format('pkonline job %s has not been started: SELECT pkonline.start(%s)', _wait_poll.job, _wait_poll.job);
    ELSE
      msg := format('pkonline job %s: %s', _wait_poll.job, r.state)
             || COALESCE(', waiting for ' || r.waiting_for, '');
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
  -- a line when the step or what it waits for changes, else at most every 5 seconds
  IF r.shown IS DISTINCT FROM last_step OR last_at IS NULL OR clock_timestamp() - last_at >= interval '5 s' THEN
    msg := format('pkonline job %s: %s, step %s %s', _wait_poll.job, r.state, r.step_of, r.step);
    IF r.state <> 'orphaned' THEN
      -- (no ETA while it waits: nobody knows for how long)
      msg := msg || format(', %s%% of the job (ETA %s)', r.pct,
                           COALESCE(CASE WHEN r.waiting_for IS NULL THEN r.eta::text END, '?'));
    END IF;
    IF r.step IN ('backfill', 'copy') AND r.state <> 'orphaned' THEN
      msg := msg || format(', %s of ~%s rows, %s rows/s', r.rows_done, r.rows_total, COALESCE(r.rows_per_sec, 0));
    END IF;
    IF r.lock_retries > 0 THEN
      msg := msg || format(', %s lock retries', r.lock_retries);
    END IF;
    IF r.waiting_for IS NOT NULL THEN
      msg := msg || ', waiting for ' || r.waiting_for;
    END IF;
    next_step := r.shown;
    next_at := clock_timestamp();
  END IF;
  -- A job whose worker is gone: a worker may be on its way (a restart's resume scan); after 5 s
  -- say so and stop waiting.
  IF r.state = 'orphaned' THEN
    next_dead_polls := dead_polls + 1;
    IF next_dead_polls >= 25 THEN
      finished := true;
      warn := format('pkonline job %s is orphaned: its worker is gone (was the server restarted?)', _wait_poll.job);
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
-- (executable by every role, as before: it reads only what the caller may read)

DROP PROCEDURE pkonline.wait(bigint, interval, text);
CREATE PROCEDURE pkonline.wait(job bigint, timeout interval DEFAULT NULL, INOUT state text DEFAULT NULL)
LANGUAGE c AS 'MODULE_PATHNAME', 'pkonline_wait';
COMMENT ON PROCEDURE pkonline.wait(bigint, interval, text) IS
  'Waits for a job to end (or the timeout), printing its progress and why it waits; commits between polls and holds no snapshot while it sleeps';

-------------------------------------------------------------------------------------------------
-- Steering a job: its settings changed while it runs, is paused or has failed.
-------------------------------------------------------------------------------------------------
CREATE FUNCTION pkonline.set_option(job bigint, name text, value text) RETURNS text LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_set_option';
COMMENT ON FUNCTION pkonline.set_option(bigint, text, text) IS
  'Changes lock_timeout, lock_retries, batch_time, batch_sleep, max_wal_rate, max_replica_lag, load_rise, run_window or '
  'stop_before_final of an unfinished job (its creator or a superuser); the worker takes it at its next batch or retry. '
  'Returns the value set';

-- A gate before the point of no return (pgroll's start / complete): a job created with
-- pkonline.stop_before_final = on pauses just before its final step; complete() runs it.
CREATE FUNCTION pkonline.complete(job bigint) RETURNS text LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_complete';
COMMENT ON FUNCTION pkonline.complete(bigint) IS
  'Runs the final step of a job that stopped before it (pkonline.stop_before_final), or lets a running one go through '
  'it; for the role that created the job and its members';

-------------------------------------------------------------------------------------------------
-- add_column: a fill that cannot be the column's DEFAULT (it reads the row) with the column NOT
-- NULL would make the application's INSERTs fail when the job ends. not_null now defaults to
-- "decide": NOT NULL when the column gets a DEFAULT; otherwise the DBA must say which end they want.
-------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pkonline.add_column(tbl regclass, column_name name, column_type regtype, fill text,
                                               not_null boolean DEFAULT NULL, is_unique boolean DEFAULT false,
                                               set_default boolean DEFAULT true, start boolean DEFAULT true)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT pkonline_internal._add_column(tbl, column_name, column_type, fill, not_null, is_unique, set_default, start,
                              pg_catalog.current_setting('search_path'))
$$;
COMMENT ON FUNCTION pkonline.add_column(regclass, name, regtype, text, boolean, boolean, boolean, boolean) IS
  'Adds a column filled per row by an SQL expression (volatile ones too), online; returns the job id. '
  'not_null: NULL (default) makes it NOT NULL when it gets a DEFAULT, and refuses a fill that cannot be one';


-------------------------------------------------------------------------------------------------
-- report(): per step, how long the job waited and for what (its 'wait' events: lock waits of a
-- second or more, old snapshots an index build waited out; the run window; standbys).
-------------------------------------------------------------------------------------------------
DROP FUNCTION pkonline.report(bigint);
CREATE FUNCTION pkonline.report(job bigint)
RETURNS TABLE (step_no integer, step text, state text, wall interval, longest_lock text, lock_ms numeric,
               writes_blocked_ms numeric, lock_retries bigint, blocked_by text, batches bigint, rows bigint, rows_per_sec bigint,
               wal text, table_size text, waited interval, waited_for text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF report.job IS NULL THEN
    RAISE EXCEPTION 'job must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pkonline.jobs j WHERE j.id = report.job) THEN
    RAISE EXCEPTION 'pkonline job % does not exist', report.job USING ERRCODE = '42704';
  END IF;
  RETURN QUERY
  WITH waits AS (
    SELECT e.step AS wstep, sum((e.detail ->> 'waited_ms')::float8) AS ms,
           string_agg(DISTINCT e.detail ->> 'for', ', ') AS what
      FROM pkonline.events e
     WHERE e.job_id = report.job AND e.detail ? 'waited_ms' AND e.kind IN ('wait', 'window', 'throttle')
     GROUP BY e.step)
  SELECT s.step_no, s.step, s.state,
         date_trunc('milliseconds', COALESCE(s.finished_at, CASE WHEN s.state = 'running' THEN clock_timestamp() END)
                                    - s.started_at),
         s.lock_mode, round(s.lock_ms::numeric, 1), round(s.writes_blocked_ms::numeric, 1), s.lock_retries::bigint,
         NULLIF(array_to_string(s.blocked_by, ', '), ''), s.batches, s.rows,
         CASE WHEN s.busy_ms > 0 AND s.rows > 0 THEN (s.rows / (s.busy_ms / 1000))::bigint END,
         pg_size_pretty(s.wal_bytes), NULL::text,
         date_trunc('milliseconds', make_interval(secs => w.ms / 1000)), w.what
    FROM pkonline.job_steps s LEFT JOIN waits w ON w.wstep = s.step
   WHERE s.job_id = report.job
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
         COALESCE(pg_size_pretty(j.size_before), '?') || ' -> ' || COALESCE(pg_size_pretty(j.size_after), '?'),
         (SELECT date_trunc('milliseconds', make_interval(secs => sum(w.ms) / 1000)) FROM waits w),
         (SELECT string_agg(DISTINCT w.what, ', ') FROM waits w)
    FROM pkonline.jobs j WHERE j.id = report.job
  ORDER BY 1 NULLS LAST;
END
$$;
COMMENT ON FUNCTION pkonline.report(bigint) IS
  'What a job did, per step and in total: wall time, longest strong lock, lock retries and blockers, rows, WAL, table size, and how long it waited and for what';

-------------------------------------------------------------------------------------------------
-- What a DBA finds with \df+ and \d+: every function, view and table says what it is; the
-- internal ones (named _*) say they are internal.
-------------------------------------------------------------------------------------------------
CREATE VIEW pkonline.active WITH (security_invoker = true) AS
SELECT * FROM pkonline.status WHERE state NOT IN ('done', 'cancelled');
GRANT SELECT ON pkonline.active TO PUBLIC;
COMMENT ON VIEW pkonline.active IS 'The jobs of pkonline.status that are not finished (done or cancelled)';

-- For postgres_exporter and friends: one row per job state, of the jobs the caller may see.
CREATE VIEW pkonline.metrics WITH (security_invoker = true) AS
SELECT s.state,
       count(*) AS jobs,
       COALESCE(sum(s.rows_done), 0)::bigint AS rows_done,
       COALESCE(sum(s.rows_per_sec) FILTER (WHERE s.state = 'running'), 0)::bigint AS rows_per_sec,
       COALESCE(sum((SELECT sum((e.detail ->> 'waited_ms')::float8) FROM pkonline.events e
                      WHERE e.job_id = s.job AND e.detail ? 'waited_ms')), 0)::bigint AS waited_ms,
       COALESCE(sum(s.lock_retries), 0)::bigint AS lock_retries,
       COALESCE(sum((SELECT sum(x.wal_bytes) FROM pkonline.job_steps x WHERE x.job_id = s.job)), 0)::bigint AS wal_bytes
  FROM pkonline.status s
 GROUP BY s.state;
GRANT SELECT ON pkonline.metrics TO PUBLIC;
COMMENT ON VIEW pkonline.metrics IS
  'Per job state: jobs, rows written, rows per second (running jobs), time waited (locks, snapshots, windows, standbys), '
  'lock retries, WAL bytes written; of the jobs the caller may see';

-- History: purge() is forget(older_than) under the name DBAs look for.
CREATE FUNCTION pkonline.purge(older_than interval) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$ SELECT pkonline.forget(older_than) $$;
COMMENT ON FUNCTION pkonline.purge(interval) IS
  'Removes the done and cancelled jobs that finished more than older_than ago (as forget(older_than)); returns how many';

COMMENT ON TABLE pkonline.jobs IS 'One row per job (row security: the roles that created them see them); written by pkonline only';
COMMENT ON TABLE pkonline.job_steps IS 'Each job''s plan: its steps, their state and what each measured (report())';
COMMENT ON TABLE pkonline.events IS 'Each job''s audit log: steps, lock retries, waits, throttles, pauses, errors';
COMMENT ON FUNCTION pkonline.start(bigint) IS 'Starts a job created with start => false; returns its state';
COMMENT ON FUNCTION pkonline.pause(bigint) IS 'Asks a job to stop at its next safe point (resume() goes on from there); returns its state';
COMMENT ON FUNCTION pkonline.resume(bigint) IS 'Continues a paused or failed job where it stopped; returns its state';
COMMENT ON FUNCTION pkonline.cancel(bigint) IS 'Undoes what a job did, up to its point of no return; returns its state';
COMMENT ON FUNCTION pkonline.run_pending() IS 'Starts workers for queued jobs and for jobs whose worker died; returns how many (pg_cron calls it)';
COMMENT ON FUNCTION pkonline.steps(bigint) IS 'A job''s plan: each step, what it runs, the lock it takes, its state';
COMMENT ON FUNCTION pkonline.hold_wait_point(text) IS 'Testing only (superuser): makes jobs created with pkonline.debug_wait_points stop at the named point';
COMMENT ON FUNCTION pkonline.release_wait_point(text) IS 'Testing only (superuser): lets jobs go on past the named point';
COMMENT ON FUNCTION pkonline_internal._worker_alive(bigint) IS 'Internal: does a live worker hold the job''s claim';
COMMENT ON FUNCTION pkonline_internal._tid_key(tid) IS 'Internal (copy method): a row''s id from its position';
COMMENT ON FUNCTION pkonline_internal._copy_fill() IS 'Internal (copy method): the trigger that fills new rows'' ids';
COMMENT ON FUNCTION pkonline_internal._copy_log() IS 'Internal (copy method): the trigger that logs changes for the twin';
COMMENT ON FUNCTION pkonline_internal._fill_nextval() IS 'Internal (add_int_pk): the trigger that fills the new column from its sequence';
COMMENT ON FUNCTION pkonline_internal._sync_bigint() IS 'Internal (convert_pk_to_bigint): the trigger that copies the key into its bigint column';
COMMENT ON FUNCTION pkonline_internal._add_column(regclass, name, regtype, text, boolean, boolean, boolean, boolean, text) IS 'Internal: add_column with the caller''s search_path';
COMMENT ON FUNCTION pkonline_internal._origin() IS 'Internal: this cluster''s and database''s identity, stamped on jobs';
COMMENT ON FUNCTION pkonline_internal._restored_job() IS 'Internal: marks job rows restored from another cluster''s dump';
COMMENT ON FUNCTION pkonline_internal._check(regclass, text, text, text) IS 'Internal: check() with the caller''s search_path';
COMMENT ON FUNCTION pkonline.waiting_for(bigint) IS
  'Why a job is not moving, while it is not moving (status.waiting_for); NULL when it moves. Read with the caller''s rights';
COMMENT ON FUNCTION pkonline_internal._wait_poll(bigint, timestamptz, interval, text, timestamptz, integer) IS 'Internal: one poll of wait()';

-- steps() of a job the caller may not see says what report(), wait() and the control functions
-- say (it returned no row).
CREATE OR REPLACE FUNCTION pkonline.steps(job bigint)
RETURNS TABLE (step_no integer, step text, action text, lock text, state text,
               started_at timestamptz, finished_at timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pkonline.jobs j WHERE j.id = steps.job) THEN
    RAISE EXCEPTION 'pkonline job % does not exist', steps.job USING ERRCODE = '42704';
  END IF;
  RETURN QUERY
  SELECT s.step_no, s.step, s.action, s.lock, s.state, s.started_at, s.finished_at
    FROM pkonline.job_steps s WHERE s.job_id = steps.job ORDER BY s.step_no;
END
$$;

-------------------------------------------------------------------------------------------------
-- estimate(): the numbers a change is approved by — disk at its peak and after, WAL, duration —
-- from the table's own sizes and a model measured per operation and method (bench/estimate.sh
-- prints the model against what jobs did: docs/benchmarks.md). Read as the caller.
-------------------------------------------------------------------------------------------------
CREATE FUNCTION pkonline.estimate(tbl regclass, operation text DEFAULT 'add_int_pk', args jsonb DEFAULT '{}',
                                  OUT disk_peak_bytes bigint, OUT disk_after_bytes bigint, OUT wal_bytes bigint,
                                  OUT seconds_low numeric, OUT seconds_high numeric, OUT basis text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  method text := COALESCE(args ->> 'method', 'in_place');
  col_bytes float8;                 -- the new column's bytes per row
  key_bytes float8;                 -- one entry of the new key's btree index
  vac bigint := (SELECT setting FROM pg_settings WHERE name = 'pkonline.vacuum_every')::bigint;
  sleep_ms float8 := (SELECT setting FROM pg_settings WHERE name = 'pkonline.batch_sleep')::float8;    -- in ms (the GUC's unit)
  batch_ms float8 := GREATEST((SELECT setting FROM pg_settings WHERE name = 'pkonline.batch_time')::float8, 1);
  wal_rate_kb float8 := (SELECT setting FROM pg_settings WHERE name = 'pkonline.max_wal_rate')::float8;
  rate float8;                      -- WAL bytes per second jobs write here
  rate_from text;
  t record;
  peak float8 := 0; after float8 := 0; wal float8 := 0; mid float8;
  catalog_only boolean := false;
  n_tables int := 0;
  n_jobs bigint;
BEGIN
  IF tbl IS NULL OR operation IS NULL OR args IS NULL THEN
    RAISE EXCEPTION 'tbl, operation and args must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '42809';
  END IF;
  IF operation NOT IN ('add_int_pk', 'add_column', 'set_primary_key', 'convert_pk_to_bigint') THEN
    RAISE EXCEPTION 'pkonline has no operation "%"', operation USING ERRCODE = '22023',
      HINT = 'estimate() knows add_int_pk, add_column, set_primary_key, convert_pk_to_bigint.';
  END IF;
  IF method NOT IN ('in_place', 'copy') THEN
    RAISE EXCEPTION 'method must be ''in_place'' or ''copy''' USING ERRCODE = '22023';
  END IF;
  col_bytes := CASE operation
    WHEN 'add_int_pk' THEN 8
    WHEN 'add_column' THEN COALESCE((SELECT NULLIF(typlen, -1) FROM pg_type
                                      WHERE oid = (COALESCE(args ->> 'column_type', 'text'))::regtype), 16)
    ELSE 0 END;
  IF operation = 'add_column' AND args ? 'catalog_only' THEN
    catalog_only := (args ->> 'catalog_only')::boolean;  -- check() knows it exactly
  ELSIF operation = 'add_column' AND args ? 'fill' THEN
    -- a fill whose words name no volatile function and no column of the table: a catalog-only
    -- change (the fast default); check() and the operation decide it exactly
    catalog_only := NOT EXISTS (
      SELECT 1 FROM regexp_split_to_table(lower(args ->> 'fill'), '[^[:alnum:]_$]+') w(tok)
       WHERE tok <> ''
         AND (EXISTS (SELECT 1 FROM pg_proc p WHERE p.provolatile = 'v' AND lower(p.proname) = w.tok)
              OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = tbl AND a.attnum > 0
                            AND NOT a.attisdropped AND lower(a.attname) = w.tok)));
  END IF;
  key_bytes := CASE operation
    WHEN 'add_int_pk' THEN 22.5
    WHEN 'set_primary_key' THEN 12 + COALESCE((SELECT sum(CASE WHEN a.attlen > 0 THEN a.attlen ELSE 16 END)
                                                 FROM pg_attribute a WHERE a.attrelid = tbl AND a.attnum > 0
                                                  AND a.attname IN (SELECT jsonb_array_elements_text(args -> 'columns'))), 8) * 1.25
    WHEN 'add_column' THEN CASE WHEN COALESCE((args ->> 'is_unique')::boolean, false) THEN (12 + col_bytes) * 1.25 ELSE 0 END
    ELSE 0 END;
  -- the tables: the table's leaves (itself unless partitioned); convert_pk_to_bigint: and the
  -- tables whose foreign keys reference it
  FOR t IN
    WITH tabs AS (
      SELECT tbl::oid AS relid WHERE (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) = 'r'
      UNION
      SELECT l.relid FROM pg_partition_tree(tbl) l WHERE l.isleaf
      UNION
      SELECT c.conrelid FROM pg_constraint c WHERE operation = 'convert_pk_to_bigint' AND c.contype = 'f'
         AND c.confrelid = tbl AND COALESCE((args ->> 'referencing')::boolean, true))
    SELECT pg_relation_size(x.relid)::float8 AS heap,
           COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0)::float8 AS toast,
           pg_indexes_size(x.relid)::float8 AS idx,
           (SELECT count(*) FROM pg_index i WHERE i.indrelid = x.relid) AS n_idx,
           GREATEST(CASE WHEN c.reltuples >= 0 THEN c.reltuples ELSE pg_relation_size(x.relid) / 8192 * 100 END, 0)::float8 AS n,
           pg_relation_size(x.relid)::float8 / 8192 AS blocks,
           (SELECT COALESCE(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_index i
             WHERE i.indrelid = x.relid AND i.indisprimary)::float8 AS pk_idx
      FROM tabs x JOIN pg_class c ON c.oid = x.relid
  LOOP
    n_tables := n_tables + 1;
    IF catalog_only THEN
      CONTINUE;
    ELSIF operation = 'set_primary_key' THEN
      after := after + t.n * key_bytes;
      peak := peak + t.n * key_bytes;
      wal := wal + 0.5 * t.n * key_bytes;
    ELSIF method = 'copy' THEN
      -- a twin written once with its indexes, storages swapped: the old one is freed at the end
      after := after + t.n * (col_bytes + key_bytes);
      peak := peak + t.heap + t.toast + t.n * col_bytes + t.idx + 0.5 * t.n * key_bytes;
      wal := wal + 1.2 * (t.heap + t.toast + t.n * col_bytes) + t.idx + 0.5 * t.n * key_bytes;
    ELSIF operation = 'convert_pk_to_bigint' THEN
      -- every row written again in place (the heap grows as add_int_pk's does, by a bigint per
      -- row), each other index growing by a row's entry; the key's indexes are built again, new
      -- for old, about their size
      after := after + 8192 * CASE WHEN vac = 0 THEN t.blocks ELSE LEAST(t.blocks, GREATEST(vac, t.blocks / 10)) END
               + t.n * 8 + (t.idx - t.pk_idx);
      peak := peak + 0.9 * (t.heap + t.idx);
      wal := wal + 4.5 * t.heap + 80 * t.n * t.n_idx + 0.5 * t.pk_idx;
    ELSE
      -- add_int_pk, add_column in place: every row gets a new version; VACUUM, every
      -- vacuum_every blocks (a tenth of the table at least), lets them reuse the space of the old
      -- ones, so the heap grows by one such stretch and the new column; every index takes each
      -- row's new entry
      after := after + 8192 * CASE WHEN vac = 0 THEN t.blocks ELSE LEAST(t.blocks, GREATEST(vac, t.blocks / 10)) END
               + t.n * col_bytes + t.idx + t.n * key_bytes;
      peak := after;
      wal := wal + 3.3 * t.heap + 80 * t.n * t.n_idx + 0.5 * t.n * key_bytes;
    END IF;
  END LOOP;
  IF n_tables = 0 THEN
    RAISE EXCEPTION '% has no partition to estimate', tbl USING ERRCODE = '22023';
  END IF;
  -- duration: the WAL at the rate jobs wrote it on this server (done jobs of 10 MB of WAL or
  -- more that the caller may see), else 55 MB/s (the bench machine: 45-75 MB/s by operation),
  -- stretched by batch_sleep and capped by max_wal_rate
  SELECT sum(s.wal_bytes)::float8 / NULLIF(sum(s.busy_ms) / 1000, 0), count(DISTINCT s.job_id)
    INTO rate, n_jobs
    FROM pkonline.job_steps s JOIN pkonline.jobs j ON j.id = s.job_id
   WHERE j.state = 'done' AND j.finished_at > now() - interval '90 days'
     AND (SELECT sum(x.wal_bytes) FROM pkonline.job_steps x WHERE x.job_id = j.id) >= 10 * 1048576;
  IF rate IS NULL OR rate <= 0 OR COALESCE(n_jobs, 0) < 3 THEN
    rate := 55 * 1048576;
    rate_from := 'an assumed 55 MB/s of WAL (fewer than 3 finished jobs here to measure from)';
  ELSE
    rate_from := format('%s MB/s of WAL, as %s finished jobs here wrote it', round((rate / 1048576)::numeric, 1), n_jobs);
  END IF;
  mid := 0.05 + wal / rate * (batch_ms + sleep_ms) / batch_ms;
  IF operation = 'add_column' THEN
    mid := mid * 1.25;  -- the fill is computed per row (gen_random_uuid(): 45 MB/s where others write 55)
  ELSIF operation = 'set_primary_key' THEN
    mid := 0.05 + after / (20 * 1048576);  -- an index build: it writes little WAL (compressed pages)
  END IF;
  IF wal_rate_kb > 0 THEN
    mid := GREATEST(mid, wal / (wal_rate_kb * 1024));
  END IF;
  IF catalog_only THEN mid := 0.05; END IF;
  disk_after_bytes := round(after);
  -- WAL kept until a checkpoint recycles it (more with archiving, replication slots, wal_keep_size)
  wal_bytes := round(wal);
  disk_peak_bytes := round(peak + LEAST(wal, (SELECT setting::float8 * 1048576 FROM pg_settings WHERE name = 'max_wal_size')));
  seconds_low := round((mid * 0.6)::numeric, 2);
  seconds_high := round((mid * 1.6)::numeric, 2);
  basis := CASE WHEN catalog_only THEN 'a catalog-only change: no row is written'
           ELSE format('%s, %s: %s tables and their indexes as they are now; %s; duration at %s%s',
                 operation, CASE WHEN operation IN ('add_int_pk') THEN method ELSE 'in place' END, n_tables,
                 CASE WHEN method = 'copy' THEN 'a twin of each table, its indexes, then the old storage freed'
                      ELSE 'a new version of every row, space reused after each VACUUM, each index growing by a row''s entry' END,
                 rate_from,
                 CASE WHEN wal_rate_kb > 0 THEN format(', at most pkonline.max_wal_rate (%s kB/s)', wal_rate_kb) ELSE '' END) END;
END
$$;
COMMENT ON FUNCTION pkonline.estimate(regclass, text, jsonb) IS
  'What a job would take: disk at its peak (with the WAL kept) and after, WAL written, a duration range, and what the numbers rest on';

-------------------------------------------------------------------------------------------------
-- set_primary_key(..., replace_unique => true): the UNIQUE constraint on the new key's columns,
-- which the key makes redundant, is dropped in the swap; foreign keys on it move to the key.
-------------------------------------------------------------------------------------------------
DROP FUNCTION pkonline.set_primary_key(regclass, name[], text, boolean);
CREATE FUNCTION pkonline.set_primary_key(tbl regclass, columns name[], old_pk text DEFAULT 'unique',
                                         start boolean DEFAULT true, replace_unique boolean DEFAULT false)
RETURNS bigint LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pkonline_set_primary_key';
COMMENT ON FUNCTION pkonline.set_primary_key(regclass, name[], text, boolean, boolean) IS
  'Makes existing columns the primary key (moving it if there is one), online; returns the job id. '
  'replace_unique: drop the UNIQUE constraint on the same columns in the swap (its foreign keys move to the key)';
