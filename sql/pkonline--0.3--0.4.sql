-- pkonline 0.3 -> 0.4: security, second round.
\echo Use "ALTER EXTENSION pkonline UPDATE TO '0.4'" to load this file. \quit

-- The job tables are no longer configuration tables (0.2 made them so): pg_dump left every role but
-- their owner unable to dump the database — even the database's owner — as it may not read the
-- sequences, and the tables' row security refuses pg_dump's row_security = off. Dropped from the
-- extension and added again, they are ordinary members: CREATE EXTENSION in a dump, no rows. The
-- history is kept where it is; pkonline.forget() trims it.
ALTER EXTENSION pkonline DROP TABLE pkonline.jobs;
ALTER EXTENSION pkonline ADD TABLE pkonline.jobs;
ALTER EXTENSION pkonline DROP TABLE pkonline.job_steps;
ALTER EXTENSION pkonline ADD TABLE pkonline.job_steps;
ALTER EXTENSION pkonline DROP TABLE pkonline.events;
ALTER EXTENSION pkonline ADD TABLE pkonline.events;
ALTER EXTENSION pkonline DROP SEQUENCE pkonline.jobs_id_seq;
ALTER EXTENSION pkonline ADD SEQUENCE pkonline.jobs_id_seq;
ALTER EXTENSION pkonline DROP SEQUENCE pkonline.events_id_seq;
ALTER EXTENSION pkonline ADD SEQUENCE pkonline.events_id_seq;

-- History: a finished job's records removed by the role that created it (or a superuser).
CREATE FUNCTION pkonline.forget(job bigint) RETURNS text LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_forget';
COMMENT ON FUNCTION pkonline.forget(bigint) IS
  'Removes a done or cancelled job, its steps and its events; only the role that created it (and its '
  'members, superusers among them) may. Returns ''forgotten''';
CREATE FUNCTION pkonline.forget(older_than interval) RETURNS bigint LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'pkonline_forget_older';
COMMENT ON FUNCTION pkonline.forget(interval) IS
  'Removes the done and cancelled jobs that finished more than older_than ago and that the caller may '
  'forget (it created them, or is a member of the role that did; a superuser: all). Returns how many';

-- A job row restored from a dump made by 0.2 or 0.3 (their dumps carry the job tables) names its
-- creator and the table's owner by OID: in this cluster that may be another role, or a role made
-- later under a dropped one's OID, which would then see the job and could close it. Such a row
-- (from another cluster or database) is given to the extension's owner, who alone sees it, may
-- cancel and forget it; an unfinished one comes back failed, as before.
CREATE OR REPLACE FUNCTION pkonline._restored_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NEW.origin IS DISTINCT FROM pkonline._origin() THEN
    NEW.owner := (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'pkonline')::pg_catalog.regrole;
    NEW.run_as := NEW.owner;
  END IF;
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
