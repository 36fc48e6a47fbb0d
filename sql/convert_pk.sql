-- convert_pk_to_bigint: an integer primary key, and the integer columns referencing it, to bigint.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- job ids from 1, whatever ran before
DROP EXTENSION pkonline CASCADE;
CREATE EXTENSION pkonline;
CREATE SCHEMA cpk;
SET search_path = cpk, public;

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
-- A table as the catalog describes it: columns (type, NOT NULL, default, identity, comment,
-- statistics target, grants), indexes, constraints in and out, replica identity.
CREATE FUNCTION shape(t regclass) RETURNS TABLE (item text) LANGUAGE sql AS $$
  SELECT 'column ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || COALESCE(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
         || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity by default' ELSE '' END
         || COALESCE(' comment ' || col_description(a.attrelid, a.attnum), '')
         || CASE WHEN a.attstattarget >= 0 THEN ' statistics ' || a.attstattarget ELSE '' END
         || COALESCE(' grants ' || array_to_string(a.attacl, ','), '')
    FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE a.attrelid = t AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisreplident THEN ' (replica identity)' ELSE '' END
    FROM pg_index i WHERE i.indrelid = t
  UNION ALL
  SELECT 'constraint ' || c.conrelid::regclass || ' ' || c.conname || ': ' || pg_get_constraintdef(c.oid)
         || CASE WHEN c.convalidated THEN '' ELSE ' (not validated)' END
    FROM pg_constraint c WHERE (c.conrelid = t OR c.confrelid = t) AND c.contype IN ('p', 'u', 'f', 'c')
  ORDER BY 1
$$;
-- A sequence's type, bounds and where it stands.
CREATE FUNCTION seq(s regclass) RETURNS text LANGUAGE sql AS $$
  SELECT format_type(seqtypid, NULL) || ' max ' || seqmax || ' owned by ' ||
         COALESCE((SELECT refobjid::regclass || '.' || attname FROM pg_depend d JOIN pg_attribute a
                    ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                   WHERE d.objid = s AND d.classid = 'pg_class'::regclass AND d.refobjsubid > 0
                     AND d.deptype IN ('a', 'i')), 'nobody')
    FROM pg_sequence WHERE seqrelid = s
$$;
CREATE FUNCTION helpers_left() RETURNS bigint LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'pkonline%')
       + (SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pkonline%')
       + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%pkonline%')
       + (SELECT count(*) FROM pg_attribute WHERE attname LIKE 'pkonline%' AND NOT attisdropped)
$$;

-- 1. serial key, a referencing table (ON DELETE CASCADE) with its own identity key, composite,
--    partial, expression and unique indexes containing the key, comment, grant, statistics target
CREATE ROLE cpk_reader;
CREATE TABLE orders (id serial PRIMARY KEY, code text NOT NULL, amount int);
COMMENT ON COLUMN orders.id IS 'the order number';
ALTER TABLE orders ALTER COLUMN id SET STATISTICS 500;
GRANT SELECT (id) ON orders TO cpk_reader;
CREATE INDEX orders_id_code ON orders (id, code) WHERE amount > 10;
CREATE INDEX orders_twice ON orders ((id * 2));
COMMENT ON INDEX orders_twice IS 'for the doubling report';
ALTER TABLE orders ADD CONSTRAINT orders_code_id UNIQUE (code, id);
CLUSTER orders USING orders_code_id;
INSERT INTO orders (code, amount) SELECT 'c' || g, g % 100 FROM generate_series(1, 3000) g;
CREATE TABLE items (item_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    order_id int NOT NULL REFERENCES orders ON DELETE CASCADE, qty int);
CREATE INDEX items_order ON items (order_id);
INSERT INTO items (order_id, qty) SELECT 1 + g % 3000, g FROM generate_series(1, 6000) g;
CREATE TABLE before_orders AS SELECT * FROM orders;
CREATE TABLE before_items AS SELECT * FROM items;
SELECT * FROM shape('orders');
SELECT pkonline.convert_pk_to_bigint('orders', start => false) AS job \gset
SELECT step_no, step, action, lock FROM pkonline.steps(:job);
SELECT pkonline.start(:job);
CALL pkonline.wait(:job);
SELECT * FROM shape('orders');
SELECT * FROM shape('items');
SELECT seq('orders_id_seq');
SELECT obj_description('orders_twice'::regclass, 'pg_class') AS index_comment,
       (SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'orders'::regclass AND indisclustered) AS clustered_on;
-- every row as it was (columns compared by name: the key moved to the end of the column list)
SELECT count(*) AS orders_changed FROM (SELECT id, code, amount FROM orders EXCEPT SELECT id, code, amount FROM before_orders) d;
SELECT count(*) AS items_changed FROM (SELECT item_id, order_id, qty FROM items EXCEPT SELECT item_id, order_id, qty FROM before_items) d;
SELECT helpers_left();
-- the sequence goes on; past 2^31 too
INSERT INTO orders (code) VALUES ('next') RETURNING id;
SELECT setval('orders_id_seq', 2147483647);
INSERT INTO orders (code) VALUES ('big') RETURNING id;
INSERT INTO items (order_id) SELECT id FROM orders WHERE code = 'big' RETURNING order_id;
-- the foreign key is enforced, and cascades
SELECT try($$INSERT INTO items (order_id) VALUES (-1)$$);
DELETE FROM orders WHERE id = 5;
SELECT count(*) AS items_of_5 FROM items WHERE order_id = 5;

-- 2. identity key (ALWAYS), nullable referencing column, a self-reference (deferrable),
--    a referencing column already bigint, referencing => false leaves the others integer
CREATE TABLE nodes (id int GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY 5) PRIMARY KEY,
                    parent int REFERENCES nodes DEFERRABLE INITIALLY DEFERRED, label text);
INSERT INTO nodes (label) SELECT 'n' || g FROM generate_series(1, 500) g;
UPDATE nodes SET parent = id - 5 WHERE id > 10;
CREATE TABLE links (node_id bigint REFERENCES nodes, other int REFERENCES nodes);
INSERT INTO links SELECT id, id FROM nodes WHERE id % 3 = 0;
ALTER TABLE nodes REPLICA IDENTITY USING INDEX nodes_pkey;
SELECT pkonline.convert_pk_to_bigint('nodes', referencing => false) AS job \gset
CALL pkonline.wait(:job);
SELECT * FROM shape('nodes');
SELECT format_type(atttypid, NULL) AS links_other FROM pg_attribute WHERE attrelid = 'links'::regclass AND attname = 'other';
INSERT INTO nodes (label) VALUES ('next') RETURNING id;
SELECT try($$INSERT INTO nodes (id, label) VALUES (1, 'x')$$);
SELECT helpers_left();
-- now with referencing (the default): the self-reference converts with the key
CREATE TABLE tree (id int PRIMARY KEY, up int REFERENCES tree);
INSERT INTO tree SELECT g, NULLIF(g - 1, 0) FROM generate_series(1, 200) g;
SELECT pkonline.convert_pk_to_bigint('tree') AS job \gset
CALL pkonline.wait(:job);
SELECT * FROM shape('tree');
SELECT count(*) AS tree_links FROM tree t JOIN tree u ON u.id = t.up;

-- two converted columns in one table, each with its index; a join table whose composite primary
-- key contains its referencing column; a BEFORE trigger of the application's (it fires before
-- the job's, which is named to fire last)
CREATE TABLE accounts (id int PRIMARY KEY, name text);
INSERT INTO accounts SELECT g, 'a' || g FROM generate_series(1, 300) g;
CREATE TABLE transfers (from_id int NOT NULL REFERENCES accounts, to_id int REFERENCES accounts, amount int);
CREATE INDEX transfers_from ON transfers (from_id);
CREATE INDEX transfers_to ON transfers (to_id) WHERE to_id IS NOT NULL;
INSERT INTO transfers SELECT 1 + g % 300, 1 + (g * 7) % 300, g FROM generate_series(1, 900) g;
CREATE TABLE account_tags (account_id int REFERENCES accounts, tag text, PRIMARY KEY (account_id, tag));
INSERT INTO account_tags SELECT g, 't' || (g % 3) FROM generate_series(1, 300) g;
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.amount := coalesce(NEW.amount, 0); RETURN NEW; END $$;
CREATE TRIGGER set_amount BEFORE INSERT OR UPDATE ON transfers FOR EACH ROW EXECUTE FUNCTION stamp();
SELECT pkonline.convert_pk_to_bigint('accounts') AS job \gset
CALL pkonline.wait(:job);
SELECT * FROM shape('transfers');
SELECT * FROM shape('account_tags');
SELECT count(*) AS transfers_ok FROM transfers t JOIN accounts f ON f.id = t.from_id JOIN accounts o ON o.id = t.to_id;
SELECT helpers_left();

-- 3. a plain sequence default (not owned), smallint key
CREATE SEQUENCE small_seq AS smallint;
CREATE TABLE small (id smallint PRIMARY KEY DEFAULT nextval('small_seq'), v text);
INSERT INTO small (v) SELECT 'v' || g FROM generate_series(1, 100) g;
SELECT pkonline.convert_pk_to_bigint('small') AS job \gset
CALL pkonline.wait(:job);
SELECT * FROM shape('small');
SELECT seq('small_seq');

-- 4. cancel before the swap, with one of the new indexes built: every table as it was
--    (catalog and data)
CREATE TABLE keep (id int PRIMARY KEY, v int);
INSERT INTO keep SELECT g, g FROM generate_series(1, 1000) g;
CREATE INDEX keep_v_id ON keep (v, id);
CREATE TABLE keep_ref (kid int REFERENCES keep);
INSERT INTO keep_ref SELECT g FROM generate_series(1, 1000) g;
CREATE TEMP TABLE keep_shape AS SELECT * FROM shape('keep') UNION ALL SELECT * FROM shape('keep_ref');
-- (a procedure that commits between looks: the index builds wait for older transactions)
CREATE PROCEDURE wait_for(j bigint, cond text) LANGUAGE plpgsql AS $$
DECLARE done boolean;
BEGIN
  FOR i IN 1 .. 600 LOOP
    EXECUTE cond USING j INTO done;
    EXIT WHEN done;
    COMMIT;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT pkonline.hold_wait_point('create_index');
SET pkonline.debug_wait_points = on;
SELECT pkonline.convert_pk_to_bigint('keep') AS job \gset
RESET pkonline.debug_wait_points;
-- (until its worker waits at the point: released before, it would meet the point held again)
CALL wait_for(:job, 'SELECT step = ''create_indexes'' AND waiting_for LIKE ''% on advisory,%'' FROM pkonline.status WHERE job = $1');
-- let the first index be built; the worker stops again before the second
SELECT pkonline.release_wait_point('create_index'), pkonline.hold_wait_point('create_index');
CALL wait_for(:job, $$SELECT count(*) = 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                      WHERE c.relname LIKE 'pkonline\_' || $1 || '\_ix%' AND i.indisvalid$$);
SELECT count(*) AS new_indexes_built FROM pg_class WHERE relname LIKE 'pkonline\_' || :job || '\_ix%';
SELECT helpers_left() > 0 AS helpers_while_running;
SELECT pkonline.cancel(:job);
SELECT pkonline.release_wait_point('create_index');
CALL pkonline.wait(:job);
(SELECT * FROM shape('keep') UNION ALL SELECT * FROM shape('keep_ref')) EXCEPT SELECT * FROM keep_shape;
SELECT * FROM keep_shape EXCEPT (SELECT * FROM shape('keep') UNION ALL SELECT * FROM shape('keep_ref'));
SELECT count(*), sum(id), sum(v) FROM keep;
SELECT helpers_left();

-- 5. refused, changing nothing
CREATE TABLE nokey (a int);
SELECT try($$SELECT pkonline.convert_pk_to_bigint('nokey')$$);
CREATE TABLE twokeys (a int, b int, PRIMARY KEY (a, b));
SELECT try($$SELECT pkonline.convert_pk_to_bigint('twokeys')$$);
CREATE TABLE textkey (a text PRIMARY KEY);
SELECT try($$SELECT pkonline.convert_pk_to_bigint('textkey')$$);
SELECT try($$SELECT pkonline.convert_pk_to_bigint('orders')$$);
CREATE TABLE viewed (id int PRIMARY KEY, v int);
CREATE VIEW viewed_v AS SELECT id FROM viewed;
SELECT try($$SELECT pkonline.convert_pk_to_bigint('viewed')$$);
CREATE TABLE many (id int PRIMARY KEY);
CREATE MATERIALIZED VIEW many_mv AS SELECT id FROM many;
CREATE POLICY many_pos ON many USING (id > 0);
CREATE FUNCTION many_max() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT max(id) FROM many; END;
SELECT try($$SELECT pkonline.convert_pk_to_bigint('many')$$);
CREATE TABLE checked (id int PRIMARY KEY CHECK (id > 0), g int GENERATED ALWAYS AS (id * 2) STORED);
SELECT try($$SELECT pkonline.convert_pk_to_bigint('checked')$$);
CREATE TABLE published (id int PRIMARY KEY);
CREATE PUBLICATION cpk_pub FOR TABLE published;
SELECT try($$SELECT pkonline.convert_pk_to_bigint('published')$$);
DROP PUBLICATION cpk_pub;
CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
SELECT try($$SELECT pkonline.convert_pk_to_bigint('parted')$$);
-- a referencing table another role owns
CREATE ROLE cpk_other;
CREATE TABLE mine (id int PRIMARY KEY);
CREATE TABLE theirs (mine_id int REFERENCES mine);
ALTER TABLE theirs OWNER TO cpk_other;
SELECT try($$SELECT pkonline.convert_pk_to_bigint('mine')$$);
-- an index whose expression calls a function that is not built in (built again on bigint, the
-- function would be looked up anew)
CREATE FUNCTION bucket(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 / 10';
CREATE TABLE bucketed (id int PRIMARY KEY);
CREATE INDEX bucketed_bucket ON bucketed (bucket(id));
SELECT try($$SELECT pkonline.convert_pk_to_bigint('bucketed')$$);
-- a referencing table with inheritance children; one with FORCE ROW LEVEL SECURITY
CREATE TABLE inh_key (id int PRIMARY KEY);
CREATE TABLE inh_ref (k int REFERENCES inh_key);
CREATE TABLE inh_ref_child () INHERITS (inh_ref);
SELECT try($$SELECT pkonline.convert_pk_to_bigint('inh_key')$$);
CREATE TABLE rls_key (id int PRIMARY KEY);
CREATE TABLE rls_ref (k int REFERENCES rls_key);
ALTER TABLE rls_ref ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
SELECT try($$SELECT pkonline.convert_pk_to_bigint('rls_key')$$);
-- a BEFORE trigger that would fire after the job's: the job fails at its first step, cancel
-- leaves the table as it was
CREATE TABLE late (id int PRIMARY KEY);
CREATE TRIGGER "~zz" BEFORE INSERT ON late FOR EACH ROW EXECUTE FUNCTION stamp();
SELECT pkonline.convert_pk_to_bigint('late') AS job \gset
CALL pkonline.wait(:job);
SELECT last_sqlstate, last_error FROM pkonline.jobs WHERE id = :job;
SELECT pkonline.cancel(:job);
CALL pkonline.wait(:job);
SELECT * FROM shape('late');
-- a sequence another role owns behind the key's default
CREATE SEQUENCE their_seq;
ALTER SEQUENCE their_seq OWNER TO cpk_other;
CREATE TABLE theirseq (id int PRIMARY KEY DEFAULT nextval('their_seq'));
SELECT try($$SELECT pkonline.convert_pk_to_bigint('theirseq')$$);
-- a foreign key to another unique key of the table
CREATE TABLE twouniq (id int PRIMARY KEY, code int UNIQUE);
CREATE TABLE refcode (c int REFERENCES twouniq (code));
SELECT try($$SELECT pkonline.convert_pk_to_bigint('twouniq')$$);
-- a job on a referencing table already
SELECT pkonline.convert_pk_to_bigint('keep', start => false) AS job \gset
SELECT try($$SELECT pkonline.add_column('keep_ref', 'x', 'timestamptz', 'now()')$$);
SELECT pkonline.cancel(:job);
SELECT count(*) AS jobs_refused_left FROM pkonline.jobs WHERE relid IN ('nokey'::regclass, 'twokeys'::regclass,
  'textkey'::regclass, 'viewed'::regclass, 'checked'::regclass, 'published'::regclass, 'mine'::regclass, 'twouniq'::regclass,
  'theirseq'::regclass, 'many'::regclass, 'bucketed'::regclass, 'inh_key'::regclass, 'rls_key'::regclass);

DROP SCHEMA cpk CASCADE;
DROP ROLE cpk_reader;
DROP ROLE cpk_other;
