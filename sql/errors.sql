-- Bad input gets a clear error (with SQLSTATE and hint) and changes nothing.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;

\i sql/include/try.sql

CREATE TABLE plain (a int, b text);
INSERT INTO plain SELECT g, 'r' || g FROM generate_series(1, 100) g;

-- unknown table: the regclass argument refuses it
SELECT pkonline.add_int_pk('no_such_table');
SELECT try($$SELECT pkonline.add_int_pk('no_such_table')$$);
SELECT try($$SELECT pkonline.add_int_pk(424242::oid)$$);
-- NULL arguments
SELECT try($$SELECT pkonline.add_int_pk(NULL)$$);
SELECT try($$SELECT pkonline.add_int_pk('plain', NULL)$$);
SELECT try($$SELECT pkonline.add_int_pk('plain', 'id', NULL)$$);
-- wrong column type
SELECT try($$SELECT pkonline.add_int_pk('plain', column_type => 'text')$$);
SELECT try($$SELECT pkonline.add_int_pk('plain', column_type => 'numeric')$$);
-- column name taken, also by a system column
SELECT try($$SELECT pkonline.add_int_pk('plain', column_name => 'a')$$);
SELECT try($$SELECT pkonline.add_int_pk('plain', column_name => 'ctid')$$);
SELECT try($$SELECT pkonline.add_int_pk('plain', column_name => '')$$);
-- a table that already has a primary key
CREATE TABLE has_pk (k int PRIMARY KEY, v text);
SELECT try($$SELECT pkonline.add_int_pk('has_pk')$$);
-- objects that are not plain tables
CREATE VIEW v AS SELECT * FROM plain;
CREATE MATERIALIZED VIEW mv AS SELECT * FROM plain;
CREATE SEQUENCE s;
CREATE INDEX plain_a ON plain (a);
CREATE FOREIGN DATA WRAPPER dummy_fdw;
CREATE SERVER dummy_srv FOREIGN DATA WRAPPER dummy_fdw;
CREATE FOREIGN TABLE ft (a int) SERVER dummy_srv;
CREATE TEMP TABLE tmp (a int);
CREATE TABLE parted (a int, b text) PARTITION BY RANGE (a);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TYPE pair AS (x int, y int);
CREATE TABLE typed OF pair;
SELECT try($$SELECT pkonline.add_int_pk('v')$$);
SELECT try($$SELECT pkonline.add_int_pk('mv')$$);
SELECT try($$SELECT pkonline.add_int_pk('s')$$);
SELECT try($$SELECT pkonline.add_int_pk('plain_a')$$);
SELECT try($$SELECT pkonline.add_int_pk('ft')$$);
SELECT regexp_replace(try($$SELECT pkonline.add_int_pk('tmp')$$), 'pg_temp_\d+', 'pg_temp_N');
SELECT try($$SELECT pkonline.add_int_pk('parted', method => 'copy')$$);
SELECT try($$SELECT pkonline.add_int_pk('parted_1')$$);
SELECT try($$SELECT pkonline.add_int_pk('typed')$$);
-- system catalogs
SELECT try($$SELECT pkonline.add_int_pk('pg_class')$$);
SELECT try($$SELECT pkonline.add_int_pk('information_schema.sql_features')$$);
-- a smallint cannot number 40,000 rows
CREATE TABLE big (a int);
INSERT INTO big SELECT generate_series(1, 40000);
ANALYZE big;
SELECT try($$SELECT pkonline.add_int_pk('big', column_type => 'smallint')$$);

-- someone else's table; a schema where the owner may not create
CREATE ROLE pk_alice LOGIN;
CREATE ROLE pk_bob LOGIN;
CREATE SCHEMA locked;
CREATE TABLE locked.t (a int);
ALTER TABLE locked.t OWNER TO pk_alice;
GRANT USAGE ON SCHEMA locked TO pk_alice, pk_bob;
CREATE TABLE alice_t (a int);
ALTER TABLE alice_t OWNER TO pk_alice;
SET ROLE pk_bob;
SELECT try($$SELECT pkonline.add_int_pk('alice_t')$$);
RESET ROLE;
SET ROLE pk_alice;
SELECT try($$SELECT pkonline.add_int_pk('locked.t')$$);
RESET ROLE;

-- a second job on a table that has one
SELECT pkonline.add_int_pk('plain', start => false) AS job \gset
SELECT try($$SELECT pkonline.add_int_pk('plain', column_name => 'id2')$$) ~ '^55006: table public.plain already has pkonline job \d+ \(created\)' AS refused;
-- another role cannot see or control it
SET ROLE pk_bob;
SELECT count(*) AS visible_jobs FROM pkonline.jobs;
SELECT count(*) AS visible_status FROM pkonline.status;
SELECT try(format('SELECT pkonline.cancel(%s)', :job)) ~ '^42704: pkonline job \d+ does not exist' AS refused;
SELECT try(format('SELECT pkonline.start(%s)', :job)) ~ '^42704' AS refused;
SELECT try($$UPDATE pkonline.jobs SET state = 'done'$$);
SELECT try($$INSERT INTO pkonline.events (job_id, kind, message) VALUES (1, 'x', 'y')$$);
RESET ROLE;
SELECT pkonline.cancel(:job);  -- it never started: cancelled at once
SELECT state FROM pkonline.jobs WHERE id = :job;

-- control functions on jobs that do not exist or are finished
SELECT try($$SELECT pkonline.pause(987654)$$);
SELECT try($$SELECT pkonline.resume(NULL)$$);
SELECT try(format('SELECT pkonline.pause(%s)', :job));
SELECT try(format('SELECT pkonline.resume(%s)', :job));
SELECT try(format('SELECT pkonline.start(%s)', :job));
SELECT pkonline.cancel(:job);  -- cancelling a cancelled job is a no-op

-- wait: not inside a transaction block, not for a missing job
BEGIN;
CALL pkonline.wait(:job);
ROLLBACK;
CALL pkonline.wait(:job);  -- ended already
CALL pkonline.wait(987654);
CALL pkonline.wait(NULL);

-- nothing above changed anything
SELECT relname, (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                  WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped) AS columns
  FROM pg_class c WHERE relname IN ('plain', 'has_pk', 'big', 'alice_t', 'typed') ORDER BY relname;
SELECT count(*) AS helper_objects FROM pg_class WHERE relname LIKE 'pkonline%';
SELECT count(*) AS helper_functions FROM pg_proc WHERE proname LIKE 'pkonline%';
SELECT state, count(*) FROM pkonline.jobs GROUP BY state ORDER BY state;

DROP TABLE alice_t, locked.t;
DROP SCHEMA locked;
DROP ROLE pk_alice, pk_bob;
