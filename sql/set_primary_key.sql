-- set_primary_key: existing columns become the primary key (or it moves there), online.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- job ids from 1, whatever ran before
DROP EXTENSION pkonline CASCADE;
CREATE EXTENSION pkonline;
-- a schema of its own: other tests' tables have the same names
CREATE SCHEMA spk;
SET search_path = spk, public;

CREATE OR REPLACE FUNCTION try(cmd text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text; det text;
BEGIN
  EXECUTE cmd;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT, det = PG_EXCEPTION_DETAIL;
  RETURN st || ': ' || msg || CASE WHEN det <> '' THEN ' | DETAIL: ' || det ELSE '' END
            || CASE WHEN hint <> '' THEN ' | HINT: ' || hint ELSE '' END;
END $$;
-- the table's keys and the foreign keys that reference it, as the catalog has them
CREATE FUNCTION keys(t regclass) RETURNS TABLE (k text) LANGUAGE sql AS $$
  SELECT c.conrelid::regclass || ' ' || c.conname || ': ' || pg_get_constraintdef(c.oid)
         || CASE WHEN c.convalidated THEN '' ELSE ' (not validated)' END
    FROM pg_constraint c WHERE (c.conrelid = t OR c.confrelid = t) AND c.contype IN ('p', 'u', 'f', 'c')
   ORDER BY c.contype, c.conname
$$;
CREATE FUNCTION helpers_left() RETURNS bigint LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%')
       + (SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pkonline%')
$$;

-- 1. a table without a primary key: a nullable column becomes it
CREATE TABLE users (email text, name text);
INSERT INTO users SELECT 'u' || g || '@example.com', 'n' || g FROM generate_series(1, 3000) g;
SELECT pkonline.set_primary_key('users', '{email}', start => false) AS job \gset
SELECT step_no, step, action, lock FROM pkonline.steps(:job);
SELECT pkonline.start(:job);
CALL pkonline.wait(:job);
SELECT * FROM keys('users');
SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email';
SELECT helpers_left();

-- 2. move the primary key while a foreign key references the old one (old_pk => 'unique'):
--    the old key stays as a unique constraint, the foreign key moves to it (and is validated),
--    the replica identity too; ON DELETE CASCADE still works
CREATE TABLE accounts (id int PRIMARY KEY, account_no text NOT NULL, owner text);
INSERT INTO accounts SELECT g, 'A-' || g, 'o' || g FROM generate_series(1, 2000) g;
CREATE TABLE payments (pid int, account_id int REFERENCES accounts ON DELETE CASCADE, amount int);
INSERT INTO payments SELECT g, 1 + g % 2000, g FROM generate_series(1, 4000) g;
ALTER TABLE accounts REPLICA IDENTITY USING INDEX accounts_pkey;
SELECT * FROM keys('accounts');
SELECT pkonline.set_primary_key('accounts', '{account_no}') AS job \gset
CALL pkonline.wait(:job);
SELECT step, state FROM pkonline.steps(:job);
SELECT * FROM keys('accounts');
SELECT indexrelid::regclass AS replica_identity FROM pg_index WHERE indrelid = 'accounts'::regclass AND indisreplident;
SELECT try($$INSERT INTO payments VALUES (0, 999999, 1)$$);   -- the moved foreign key is enforced
DELETE FROM accounts WHERE id = 7;
SELECT count(*) AS payments_of_deleted_account FROM payments WHERE account_id = 7;
SELECT try($$INSERT INTO accounts VALUES (3000, 'A-1', 'x')$$);  -- the new key is enforced
SELECT try($$INSERT INTO accounts VALUES (1, 'A-new', 'x')$$);   -- and the old one, as a unique key
SELECT helpers_left();

-- 3. old_pk => 'drop', a composite key, and an existing unique index reused
CREATE TABLE lines (order_id int NOT NULL, line_no int NOT NULL, sku text, surrogate serial PRIMARY KEY);
INSERT INTO lines (order_id, line_no, sku) SELECT g / 10, g % 10, 's' || g FROM generate_series(1, 3000) g;
CREATE UNIQUE INDEX lines_order_line ON lines (order_id, line_no);
SELECT pkonline.set_primary_key('lines', '{order_id,line_no}', old_pk => 'drop') AS job \gset
SELECT step, action FROM pkonline.steps(:job) WHERE step = 'create_index';
CALL pkonline.wait(:job);
SELECT * FROM keys('lines');
SELECT indexrelid::regclass, indisprimary FROM pg_index WHERE indrelid = 'lines'::regclass ORDER BY 1;

-- 4. duplicates and NULLs: the job fails in its preflight with samples, and changes nothing
CREATE TABLE dup (k int, v text);
INSERT INTO dup SELECT g % 1000, 'v' FROM generate_series(1, 1500) g;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'dup'::regclass;
-- check() finds them first, and says how to list them
SELECT level, detail, advice FROM pkonline.check('dup', 'set_primary_key', '{"columns": ["k"]}') WHERE item = 'data';
SELECT pkonline.set_primary_key('dup', '{k}') AS job \gset
CALL pkonline.wait(:job);
SELECT state, step, last_sqlstate, last_error FROM pkonline.status WHERE job = :job;
SELECT detail ->> 'detail' FROM pkonline.events WHERE job_id = :job AND kind = 'error';
SELECT count(*) AS constraints, (SELECT count(*) FROM pg_index WHERE indrelid = 'dup'::regclass) AS indexes
  FROM pg_constraint WHERE conrelid = 'dup'::regclass;
-- fix the data, resume: the preflight runs again and the job completes
DELETE FROM dup WHERE ctid NOT IN (SELECT min(ctid) FROM dup GROUP BY k);
SELECT pkonline.resume(:job);
CALL pkonline.wait(:job);
SELECT * FROM keys('dup');
CREATE TABLE nul (k int, v text);
INSERT INTO nul SELECT CASE WHEN g % 100 = 0 THEN NULL ELSE g END, 'v' FROM generate_series(1, 1000) g;
SELECT level, detail FROM pkonline.check('nul', 'set_primary_key', '{"columns": ["k"]}') WHERE item = 'data';
-- NULLs and duplicates at once: both in one error, one round of fixes
INSERT INTO nul VALUES (1, 'again'), (2, 'again');
SELECT level, detail FROM pkonline.check('nul', 'set_primary_key', '{"columns": ["k"]}') WHERE item = 'data';
SELECT pkonline.set_primary_key('nul', '{k}') AS job \gset
CALL pkonline.wait(:job);
SELECT state, last_sqlstate, last_error FROM pkonline.status WHERE job = :job;
SELECT pkonline.cancel(:job);
SELECT count(*) AS constraints FROM pg_constraint WHERE conrelid = 'nul'::regclass;

-- 5. a duplicate written after the preflight: the index build fails, the job is 'failed', and
--    cancel undoes everything it built, never touching what was there before
CREATE TABLE c1 (id int PRIMARY KEY, code text NOT NULL);
INSERT INTO c1 SELECT g, 'c' || g FROM generate_series(1, 500) g;
-- (a procedure that commits between polls: a snapshot held meanwhile would stall the index build)
CREATE PROCEDURE wait_for_step(tbl text, step_name text) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. 600 LOOP
    EXIT WHEN (SELECT step FROM pkonline.status WHERE table_name = tbl AND state = 'running') = step_name;
    COMMIT;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SET pkonline.debug_wait_points = on;
SELECT pkonline.hold_wait_point('create_index');
SELECT pkonline.set_primary_key('c1', '{code}') AS job \gset
CALL wait_for_step('spk.c1', 'create_index');
INSERT INTO c1 VALUES (501, 'c1');
SELECT pkonline.release_wait_point('create_index');
-- (the helper index's name ends in a tag from the job's secret: shown without it)
SET client_min_messages = error;
CALL pkonline.wait(:job);
SET client_min_messages = warning;
SELECT state, step, last_sqlstate, regexp_replace(last_error, '_[0-9a-f]{8}"', '_<tag>"') AS last_error
  FROM pkonline.status WHERE job = :job;
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job);
SELECT * FROM keys('c1');
SELECT helpers_left(), (SELECT count(*) FROM pg_index WHERE indrelid = 'c1'::regclass) AS indexes;
-- once the swap has begun, cancel refuses: the job finishes
CREATE TABLE c2 (id int PRIMARY KEY, code text NOT NULL);
INSERT INTO c2 SELECT g, 'c' || g FROM generate_series(1, 500) g;
SELECT pkonline.hold_wait_point('swap');
SELECT pkonline.set_primary_key('c2', '{code}') AS job \gset
CALL wait_for_step('spk.c2', 'swap');
SELECT try(format('SELECT pkonline.cancel(%s)', :job));
SELECT pkonline.release_wait_point('swap');
CALL pkonline.wait(:job);
RESET pkonline.debug_wait_points;
SELECT * FROM keys('c2');
SELECT helpers_left();

-- 6. bad input: a clear error, and nothing changes
SELECT count(*) AS jobs_before FROM pkonline.jobs \gset
SELECT try($$SELECT pkonline.set_primary_key('users', '{}')$$);
SELECT try($$SELECT pkonline.set_primary_key('users', NULL)$$);
SELECT try($$SELECT pkonline.set_primary_key('users', ARRAY['email', NULL])$$);
SELECT try($$SELECT pkonline.set_primary_key('users', '{name,name}')$$);
SELECT try($$SELECT pkonline.set_primary_key('users', '{nope}')$$);
SELECT try($$SELECT pkonline.set_primary_key('users', '{ctid}')$$);
SELECT try($$SELECT pkonline.set_primary_key('users', '{email}')$$);
SELECT try($$SELECT pkonline.set_primary_key('users', '{name}', old_pk => 'keep')$$);
SELECT try($$SELECT pkonline.set_primary_key('users', '{name}', old_pk => NULL)$$);
CREATE TABLE shapes (p point, j json, n int);
SELECT try($$SELECT pkonline.set_primary_key('shapes', '{p}')$$);
SELECT try($$SELECT pkonline.set_primary_key('shapes', '{j}')$$);
CREATE TABLE parent (id int PRIMARY KEY, code text NOT NULL);
CREATE TABLE kid (parent_id int REFERENCES parent);
SELECT try($$SELECT pkonline.set_primary_key('parent', '{code}', old_pk => 'drop')$$);  -- a FK references it
CREATE TABLE ri (id int PRIMARY KEY, x int NOT NULL);
ALTER TABLE ri REPLICA IDENTITY USING INDEX ri_pkey;
SELECT try($$SELECT pkonline.set_primary_key('ri', '{x}', old_pk => 'drop')$$);
SELECT try($$SELECT pkonline.set_primary_key('no_such', '{a}')$$);
CREATE VIEW users_v AS SELECT * FROM users;
SELECT try($$SELECT pkonline.set_primary_key('users_v', '{email}')$$);
CREATE TABLE part (a int, b int) PARTITION BY RANGE (a);
SELECT try($$SELECT pkonline.set_primary_key('part', '{b}')$$);  -- a partitioned table's key lacking its partition key
SELECT pkonline.set_primary_key('shapes', '{n}', start => false) AS job \gset
SELECT try($$SELECT pkonline.set_primary_key('shapes', '{n}')$$);  -- a job is pending on it
SELECT pkonline.cancel(:job);
SELECT count(*) - :jobs_before AS jobs_added FROM pkonline.jobs;  -- the one created on purpose
SELECT * FROM keys('shapes');

-- 7. a UNIQUE constraint the new key makes redundant: check() says so; replace_unique drops it in
-- the swap, and the foreign keys and the replica identity that used it move to the key
CREATE TABLE acct (region int NOT NULL, num int NOT NULL, note text, CONSTRAINT acct_region_num UNIQUE (region, num));
INSERT INTO acct SELECT g % 7, g, 'n' FROM generate_series(1, 2000) g;
ALTER TABLE acct REPLICA IDENTITY USING INDEX acct_region_num;
CREATE TABLE acct_ref (region int, num int, FOREIGN KEY (num, region) REFERENCES acct (num, region));
INSERT INTO acct_ref SELECT g % 7, g FROM generate_series(1, 50) g;
SELECT level, detail, advice FROM pkonline.check('acct', 'set_primary_key', '{"columns": ["region", "num"]}')
 WHERE item = 'redundant unique';
SELECT level, detail FROM pkonline.check('acct', 'set_primary_key', '{"columns": ["region", "num"], "replace_unique": true}')
 WHERE item = 'redundant unique';
SELECT pkonline.set_primary_key('acct', '{region,num}', replace_unique => true, start => false) AS job \gset
SELECT action FROM pkonline.steps(:job) WHERE step = 'swap';
SELECT pkonline.start(:job);
CALL pkonline.wait(:job);
SELECT state FROM pkonline.jobs WHERE id = :job;
SELECT * FROM keys('acct');
SELECT c.relname AS replica_identity FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'acct'::regclass AND i.indisreplident;
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'acct'::regclass;
SELECT try($$INSERT INTO acct_ref VALUES (1, 999999)$$);  -- the moved foreign key holds
SELECT try($$INSERT INTO acct VALUES (1, 1, 'again')$$);  -- and the key
-- a partitioned table's foreign key on the replaced constraint: PostgreSQL 15 cannot add it NOT
-- VALID, so it is refused up front (nothing changes)
CREATE TABLE acct2 (region int NOT NULL, num int NOT NULL, CONSTRAINT acct2_u UNIQUE (num));
INSERT INTO acct2 SELECT g % 7, g FROM generate_series(1, 300) g;
CREATE TABLE acct2_ref (num int REFERENCES acct2 (num)) PARTITION BY RANGE (num);
CREATE TABLE acct2_ref_1 PARTITION OF acct2_ref FOR VALUES FROM (1) TO (150);
CREATE TABLE acct2_ref_2 PARTITION OF acct2_ref FOR VALUES FROM (150) TO (400);
INSERT INTO acct2_ref SELECT g FROM generate_series(1, 300, 3) g;
SELECT try($$SELECT pkonline.set_primary_key('acct2', '{num}', replace_unique => true)$$);
SELECT * FROM keys('acct2');
-- a bare unique index in the key's order becomes the key itself
CREATE TABLE bare (a int NOT NULL, b text);
CREATE UNIQUE INDEX bare_a ON bare (a);
SELECT level, detail FROM pkonline.check('bare', 'set_primary_key', '{"columns": ["a"]}') WHERE item = 'redundant unique';
-- bad input: nothing to replace, a DEFERRABLE one, a partitioned table; nothing changes
SELECT count(*) AS jobs_before FROM pkonline.jobs \gset
SELECT try($$SELECT pkonline.set_primary_key('bare', '{a}', replace_unique => true)$$);
CREATE TABLE defer (a int NOT NULL UNIQUE DEFERRABLE);
SELECT try($$SELECT pkonline.set_primary_key('defer', '{a}', replace_unique => true)$$);
CREATE TABLE part2 (a int NOT NULL, CONSTRAINT part2_a UNIQUE (a)) PARTITION BY RANGE (a);
SELECT try($$SELECT pkonline.set_primary_key('part2', '{a}', replace_unique => true)$$);
SELECT count(*) - :jobs_before AS jobs_added FROM pkonline.jobs;
SELECT * FROM keys('defer');
