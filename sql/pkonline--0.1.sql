-- pkonline 0.1: online primary-key changes run by background workers.
\echo Use "CREATE EXTENSION pkonline" to load this file. \quit

-- The schema pkonline must be the installer's own: CREATE EXTENSION adopts an existing schema of
-- that name, whose owner (or anyone it lets create there) could then plant functions that the
-- README's commands would run, or replace the tables the workers trust. Refused unless the schema
-- is new (created just now, by the installing superuser), or empty, owned by a superuser, and no
-- other role may create in it.
DO $check$
DECLARE
  s record;
BEGIN
  SELECT n.oid, r.rolsuper,
         EXISTS (SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) a
                  WHERE a.privilege_type = 'CREATE' AND a.grantee <> n.nspowner) AS others_create,
         EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid)
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid)
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid)
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_operator o WHERE o.oprnamespace = n.oid) AS has_objects,
         n.nspowner::pg_catalog.regrole AS owner
    INTO s
    FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
   WHERE n.nspname = 'pkonline';
  IF NOT s.rolsuper OR s.others_create OR s.has_objects THEN
    RAISE EXCEPTION 'schema pkonline exists already and is not safe to install into'
      USING ERRCODE = '42501',
            DETAIL = pg_catalog.format('It is owned by %s%s%s.', s.owner,
                       CASE WHEN s.others_create THEN ', other roles may create objects in it' ELSE '' END,
                       CASE WHEN s.has_objects THEN ', it holds objects' ELSE '' END),
            HINT = 'pkonline installs into a schema pkonline of its own: drop or rename the existing schema, then CREATE EXTENSION pkonline again.';
  END IF;
END
$check$;

-------------------------------------------------------------------------------------------------
-- Job store. Written only by pkonline's own code (as the extension owner); each role reads the
-- jobs it may manage (row-level security).
-------------------------------------------------------------------------------------------------
CREATE TABLE pkonline.jobs (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  relid            oid NOT NULL,
  table_name       text NOT NULL,          -- schema-qualified, as at creation
  operation        text NOT NULL,
  options          jsonb NOT NULL DEFAULT '{}',
  owner            regrole NOT NULL,       -- the role that created the job (it and its members control it)
  run_as           regrole NOT NULL,       -- the work runs as this role: the table's owner at creation
  state            text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('created', 'queued', 'running', 'paused', 'cancelling', 'cancelled', 'failed', 'done')),
  step_no          integer NOT NULL DEFAULT 1,
  pause_requested  boolean NOT NULL DEFAULT false,
  cancel_requested boolean NOT NULL DEFAULT false,
  cursor_block     bigint NOT NULL DEFAULT 0,  -- next heap block the backfill fills
  end_block        bigint,                      -- blocks in the table when the backfill began
  rows_done        bigint NOT NULL DEFAULT 0,
  rows_estimate    bigint,
  batch_blocks     integer,
  lock_retries     integer NOT NULL DEFAULT 0,
  attempts         integer NOT NULL DEFAULT 0,
  worker_pid       integer,
  created_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  backfill_started_at timestamptz,
  finished_at      timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  last_sqlstate    text,
  last_error       text,
  last_detail      text,
  last_hint        text
);
-- Job ids name the jobs' helper objects (pkonline_<id>_*). Helpers left by jobs of an earlier
-- installation (DROP EXTENSION … CASCADE drops the job rows, not what a job added to a table)
-- must not share a new job's names: ids go on above the highest one such a leftover carries (up
-- to nine digits: a name planted to push ids out of range is not followed).
DO $ids$
DECLARE
  top bigint;
BEGIN
  SELECT max(pg_catalog.substring(n.name, '^pkonline_([0-9]{1,9})_')::bigint) INTO top
    FROM (SELECT relname::text AS name FROM pg_catalog.pg_class
          UNION ALL SELECT proname::text FROM pg_catalog.pg_proc
          UNION ALL SELECT tgname::text FROM pg_catalog.pg_trigger
          UNION ALL SELECT conname::text FROM pg_catalog.pg_constraint) n
   WHERE n.name ~ '^pkonline_[0-9]{1,9}_';
  IF top IS NOT NULL THEN
    EXECUTE pg_catalog.format('ALTER TABLE pkonline.jobs ALTER COLUMN id RESTART WITH %s', top + 1);
  END IF;
END
$ids$;
-- One unfinished job per table.
CREATE UNIQUE INDEX jobs_one_active_per_table ON pkonline.jobs (relid) WHERE state NOT IN ('done', 'cancelled');

CREATE TABLE pkonline.job_steps (
  job_id      bigint NOT NULL REFERENCES pkonline.jobs ON DELETE CASCADE,
  step_no     integer NOT NULL,
  step        text NOT NULL,
  action      text NOT NULL,
  lock        text NOT NULL,
  state       text NOT NULL DEFAULT 'pending'
              CHECK (state IN ('pending', 'running', 'done', 'failed', 'undone')),
  started_at  timestamptz,
  finished_at timestamptz,
  PRIMARY KEY (job_id, step_no)
);

CREATE TABLE pkonline.events (
  id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id  bigint NOT NULL REFERENCES pkonline.jobs ON DELETE CASCADE,
  at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  kind    text NOT NULL,
  step    text,
  message text NOT NULL,
  detail  jsonb
);
CREATE INDEX events_job ON pkonline.events (job_id, id);

ALTER TABLE pkonline.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE pkonline.job_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE pkonline.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_jobs ON pkonline.jobs FOR SELECT
  USING (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY own_steps ON pkonline.job_steps FOR SELECT
  USING (EXISTS (SELECT 1 FROM pkonline.jobs j WHERE j.id = job_id));
CREATE POLICY own_events ON pkonline.events FOR SELECT
  USING (EXISTS (SELECT 1 FROM pkonline.jobs j WHERE j.id = job_id));
REVOKE ALL ON pkonline.jobs, pkonline.job_steps, pkonline.events FROM PUBLIC;
GRANT SELECT ON pkonline.jobs, pkonline.job_steps, pkonline.events TO PUBLIC;
GRANT USAGE ON SCHEMA pkonline TO PUBLIC;

-- Does a live worker hold the job's claim? (A dead worker's is gone.) The claim is a session lock of
-- a kind no SQL function takes (src/pg/job_lock.cpp), so nobody else can hold it.
CREATE FUNCTION pkonline._worker_alive(job bigint) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_locks l
     WHERE l.locktype = 'userlock' AND l.classid = 1886089070::oid
       AND l.objid = job::oid AND l.objsubid = 2 AND l.granted
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                          WHERE d.datname = pg_catalog.current_database()))
$$;

-------------------------------------------------------------------------------------------------
-- Views a DBA watches.
-------------------------------------------------------------------------------------------------
CREATE VIEW pkonline.status WITH (security_invoker = true) AS
SELECT j.id AS job,
       j.table_name,
       j.operation,
       j.state,
       s.step,
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
       pkonline._worker_alive(j.id) AS worker_alive,
       j.owner,
       j.created_at,
       j.started_at,
       j.finished_at,
       COALESCE(j.finished_at, now()) - j.started_at AS elapsed,
       j.last_sqlstate,
       j.last_error,
       j.last_hint
  FROM pkonline.jobs j
  CROSS JOIN LATERAL (SELECT count(*)::int AS steps FROM pkonline.job_steps x WHERE x.job_id = j.id) n
  LEFT JOIN pkonline.job_steps s ON s.job_id = j.id AND s.step_no = j.step_no
  CROSS JOIN LATERAL (SELECT EXTRACT(epoch FROM COALESCE(j.finished_at, clock_timestamp()) - j.backfill_started_at)::float8 AS secs) e;
GRANT SELECT ON pkonline.status TO PUBLIC;

-------------------------------------------------------------------------------------------------
-- Operations. Each returns the new job's id.
-------------------------------------------------------------------------------------------------
CREATE FUNCTION pkonline.add_int_pk(tbl regclass, column_name name DEFAULT 'id',
                                    column_type regtype DEFAULT 'bigint', identity boolean DEFAULT true,
                                    start boolean DEFAULT true, method text DEFAULT 'in_place')
RETURNS bigint LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pkonline_add_int_pk';
COMMENT ON FUNCTION pkonline.add_int_pk(regclass, name, regtype, boolean, boolean, text) IS
  'Adds an integer primary key column to a table that has none, online; returns the job id. '
  'method: in_place (fill the rows where they are) or copy (copy them once, ids filled, and swap storage)';

-- The copy method's internals (src/pg/capture.cpp): a row's id from its position, and the two
-- row triggers a copy job puts on its table.
CREATE FUNCTION pkonline._tid_key(tid) RETURNS bigint
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'pkonline_tid_key';
CREATE FUNCTION pkonline._copy_fill() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'pkonline_copy_fill';
CREATE FUNCTION pkonline._copy_log() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'pkonline_copy_log';
-- The in-place add_int_pk's fill trigger: NEW.<column> := nextval(<sequence>) when it is NULL.
CREATE FUNCTION pkonline._fill_nextval() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'pkonline_fill_nextval';
-- convert_pk_to_bigint's trigger: NEW.<bigint column> := NEW.<integer column>.
CREATE FUNCTION pkonline._sync_bigint() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'pkonline_sync_bigint';
-- Only the job's worker attaches them (as the extension's owner): PostgreSQL checks EXECUTE on a
-- trigger function only at CREATE TRIGGER, and the C code checks, too, that a trigger calling them
-- is the one its job made.
REVOKE EXECUTE ON FUNCTION pkonline._copy_fill(), pkonline._copy_log(), pkonline._fill_nextval(),
  pkonline._sync_bigint() FROM PUBLIC;

-- Testing hooks. A job created with pkonline.debug_wait_points on (superuser only) makes its worker
-- stop before each named wait point ('backfill_batch', 'create_index', 'attach', 'swap', ...) while
-- a session holds it: hold_wait_point takes the point's session-level advisory lock, whose key the
-- worker shares (jobs::kAdvisoryClass + 1 = 1886089071, test/unit checks the two agree);
-- release_wait_point lets the worker go on.
CREATE FUNCTION pkonline.hold_wait_point(point text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.pg_advisory_lock(1886089071, pg_catalog.hashtext(point)) $$;
CREATE FUNCTION pkonline.release_wait_point(point text) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.pg_advisory_unlock(1886089071, pg_catalog.hashtext(point)) $$;
REVOKE EXECUTE ON FUNCTION pkonline.hold_wait_point(text), pkonline.release_wait_point(text) FROM PUBLIC;

-- add_column: the caller's search_path travels with the call, so names in `fill` resolve as they
-- would in the caller's own query; the C function (pinned like every other) analyses the
-- expression as the caller and stores it with every name outside pg_catalog schema-qualified.
-- (`unique` is a reserved word, so `unique => true` could not be written: the flag is is_unique.)
CREATE FUNCTION pkonline._add_column(tbl regclass, column_name name, column_type regtype, fill text,
                                     not_null boolean, is_unique boolean, set_default boolean,
                                     start boolean, search_path text)
RETURNS bigint LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pkonline_add_column';

CREATE FUNCTION pkonline.add_column(tbl regclass, column_name name, column_type regtype, fill text,
                                    not_null boolean DEFAULT true, is_unique boolean DEFAULT false,
                                    set_default boolean DEFAULT true, start boolean DEFAULT true)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT pkonline._add_column(tbl, column_name, column_type, fill, not_null, is_unique, set_default, start,
                              pg_catalog.current_setting('search_path'))
$$;
COMMENT ON FUNCTION pkonline.add_column(regclass, name, regtype, text, boolean, boolean, boolean, boolean) IS
  'Adds a column filled per row by an SQL expression (volatile ones too), online; returns the job id';

CREATE FUNCTION pkonline.add_uuid_column(tbl regclass, column_name name DEFAULT 'uuid',
                                         is_unique boolean DEFAULT true, start boolean DEFAULT true)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT pkonline._add_column(tbl, column_name, 'pg_catalog.uuid'::pg_catalog.regtype,
                              'pg_catalog.gen_random_uuid()', true, is_unique, true, start, 'pg_catalog')
$$;
COMMENT ON FUNCTION pkonline.add_uuid_column(regclass, name, boolean, boolean) IS
  'Adds a uuid column NOT NULL DEFAULT gen_random_uuid() (unique by default), every row filled, online';

CREATE FUNCTION pkonline.add_created_at(tbl regclass, column_name name DEFAULT 'created_at',
                                        start boolean DEFAULT true)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT pkonline._add_column(tbl, column_name, 'pg_catalog.timestamptz'::pg_catalog.regtype,
                              'pg_catalog.now()', true, false, true, start, 'pg_catalog')
$$;
COMMENT ON FUNCTION pkonline.add_created_at(regclass, name, boolean) IS
  'Adds a creation-time column timestamptz NOT NULL DEFAULT now(); existing rows get the time it was added (catalog only, instant)';

CREATE FUNCTION pkonline.set_primary_key(tbl regclass, columns name[], old_pk text DEFAULT 'unique',
                                         start boolean DEFAULT true)
RETURNS bigint LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pkonline_set_primary_key';
COMMENT ON FUNCTION pkonline.set_primary_key(regclass, name[], text, boolean) IS
  'Makes existing columns the primary key (moving it if there is one), online; returns the job id';

CREATE FUNCTION pkonline.convert_pk_to_bigint(tbl regclass, referencing boolean DEFAULT true,
                                              start boolean DEFAULT true)
RETURNS bigint LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pkonline_convert_pk_to_bigint';
COMMENT ON FUNCTION pkonline.convert_pk_to_bigint(regclass, boolean, boolean) IS
  'Makes a smallint/integer primary key, and the columns of foreign keys referencing it, bigint, online; returns the job id';

-------------------------------------------------------------------------------------------------
-- Job control.
-------------------------------------------------------------------------------------------------
CREATE FUNCTION pkonline.start(job bigint) RETURNS text LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_start';
CREATE FUNCTION pkonline.pause(job bigint) RETURNS text LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_pause';
CREATE FUNCTION pkonline.resume(job bigint) RETURNS text LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_resume';
CREATE FUNCTION pkonline.cancel(job bigint) RETURNS text LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_cancel';
CREATE FUNCTION pkonline.run_pending() RETURNS integer LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_run_pending';
CREATE FUNCTION pkonline._in_transaction_block() RETURNS boolean LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_in_transaction_block';

CREATE FUNCTION pkonline.steps(job bigint)
RETURNS TABLE (step_no integer, step text, action text, lock text, state text,
               started_at timestamptz, finished_at timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT s.step_no, s.step, s.action, s.lock, s.state, s.started_at, s.finished_at
    FROM pkonline.job_steps s WHERE s.job_id = steps.job ORDER BY s.step_no
$$;

-- One poll of wait(): what to print and whether to stop. All of wait()'s comparisons live here,
-- under a pinned search_path (wait itself cannot pin one: a procedure with SET cannot COMMIT).
CREATE FUNCTION pkonline._wait_poll(job bigint, started timestamptz, timeout interval,
                                    last_step text, last_at timestamptz, dead_polls integer,
                                    OUT state text, OUT finished boolean, OUT msg text, OUT warn text,
                                    OUT hint text, OUT next_step text, OUT next_at timestamptz,
                                    OUT next_dead_polls integer)
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
CREATE PROCEDURE pkonline.wait(job bigint, timeout interval DEFAULT NULL, INOUT state text DEFAULT NULL)
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
