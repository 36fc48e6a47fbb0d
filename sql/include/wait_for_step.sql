-- Included by tests (\i, from the project root, as pg_regress runs them): blocks until the job's
-- current step is `want` (or the job ended), at most 60 s; commits between polls so the worker's
-- progress is visible.
CREATE OR REPLACE PROCEDURE wait_for_step(j bigint, want text) LANGUAGE plpgsql AS $$
DECLARE s text; st text;
BEGIN
  FOR i IN 1 .. 600 LOOP
    SELECT step, state INTO s, st FROM pkonline.status WHERE job = j;
    EXIT WHEN s = want OR st IN ('done', 'failed', 'cancelled', 'paused');
    COMMIT;
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
