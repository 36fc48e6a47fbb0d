-- Included by tests (\i): try(cmd) runs a statement and reports its error as SQLSTATE, message and
-- hint ('ok' if none), in the first schema of the search_path.
CREATE FUNCTION try(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
  EXECUTE cmd;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || CASE WHEN hint <> '' THEN ' | HINT: ' || hint ELSE '' END;
END $$;
