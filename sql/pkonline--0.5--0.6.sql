-- pkonline 0.5 -> 0.6: write once, and gently — add_column(…, method => 'copy'),
-- convert_pk_to_bigint(…, method => 'copy').
\echo Use "ALTER EXTENSION pkonline UPDATE TO '0.6'" to load this file. \quit

-------------------------------------------------------------------------------------------------
-- add_column(…, method => 'copy'): the table written once more, into a twin whose new column is
-- filled, and swapped in (src/ops/add_column_copy.cpp). The internal entry takes the method as a
-- tenth argument; the nine-argument one stays for calls made before the update.
-------------------------------------------------------------------------------------------------
CREATE FUNCTION pkonline_internal._add_column(tbl regclass, column_name name, column_type regtype, fill text,
                                              not_null boolean, is_unique boolean, set_default boolean,
                                              start boolean, search_path text, method text)
RETURNS bigint LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pkonline_add_column';
COMMENT ON FUNCTION pkonline_internal._add_column(regclass, name, regtype, text, boolean, boolean, boolean, boolean, text, text) IS
  'Internal: add_column with the caller''s search_path and a method';

DROP FUNCTION pkonline.add_column(regclass, name, regtype, text, boolean, boolean, boolean, boolean);
CREATE FUNCTION pkonline.add_column(tbl regclass, column_name name, column_type regtype, fill text,
                                    not_null boolean DEFAULT NULL, is_unique boolean DEFAULT false,
                                    set_default boolean DEFAULT true, start boolean DEFAULT true,
                                    method text DEFAULT 'in_place')
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT pkonline_internal._add_column(tbl, column_name, column_type, fill, not_null, is_unique, set_default, start,
                                       pg_catalog.current_setting('search_path'), method)
$$;
COMMENT ON FUNCTION pkonline.add_column(regclass, name, regtype, text, boolean, boolean, boolean, boolean, text) IS
  'Adds a column filled per row by an SQL expression (volatile ones too), online; returns the job id. '
  'not_null: NULL (default) makes it NOT NULL when it gets a DEFAULT, and refuses a fill that cannot be one. '
  'method: in_place (default) fills the rows where they are; copy writes the table once, filled, into a twin '
  'swapped in at the end (needs a one-column integer primary key)';

DROP FUNCTION pkonline.add_uuid_column(regclass, name, boolean, boolean);
CREATE FUNCTION pkonline.add_uuid_column(tbl regclass, column_name name DEFAULT 'uuid',
                                         is_unique boolean DEFAULT true, start boolean DEFAULT true,
                                         method text DEFAULT 'in_place')
RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT pkonline_internal._add_column(tbl, column_name, 'pg_catalog.uuid'::pg_catalog.regtype,
                                       'pg_catalog.gen_random_uuid()', true, is_unique, true, start, 'pg_catalog',
                                       method)
$$;
COMMENT ON FUNCTION pkonline.add_uuid_column(regclass, name, boolean, boolean, text) IS
  'Adds a uuid column NOT NULL DEFAULT gen_random_uuid() (unique by default), every row filled, online; '
  'method => ''copy'' writes the table once, filled, into a twin swapped in at the end';

-------------------------------------------------------------------------------------------------
-- The copy method's guard: a statement trigger on each copy that refuses every write but the
-- job's own (src/pg/capture.cpp). Not executable by PUBLIC (the job creates its trigger as the
-- extension's owner).
-------------------------------------------------------------------------------------------------
CREATE FUNCTION pkonline_internal._copy_guard() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'pkonline_copy_guard';
REVOKE EXECUTE ON FUNCTION pkonline_internal._copy_guard() FROM PUBLIC;
COMMENT ON FUNCTION pkonline_internal._copy_guard() IS 'Internal (copy method): the trigger that lets only the job write its copy';

-------------------------------------------------------------------------------------------------
-- convert_pk_to_bigint(…, method => 'copy'): the table written once more, into a twin whose bigint
-- column holds the key, and swapped in (src/ops/convert_pk_copy.cpp). The C entry reads the
-- method when it is given a fourth argument.
-------------------------------------------------------------------------------------------------
DROP FUNCTION pkonline.convert_pk_to_bigint(regclass, boolean, boolean);
CREATE FUNCTION pkonline.convert_pk_to_bigint(tbl regclass, referencing boolean DEFAULT true,
                                              start boolean DEFAULT true, method text DEFAULT 'in_place')
RETURNS bigint LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pkonline_convert_pk_to_bigint';
COMMENT ON FUNCTION pkonline.convert_pk_to_bigint(regclass, boolean, boolean, text) IS
  'Makes a smallint/integer primary key, and the columns of foreign keys referencing it, bigint, online; returns the job id. '
  'method: in_place (default) writes every row again where it is; copy writes the table once into a twin swapped in at '
  'the end (for now a key no foreign key references, with no other index on its column)';

-------------------------------------------------------------------------------------------------
-- estimate(): the copy methods says so in its basis; a method an operation lacks is refused.
-------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pkonline.estimate(tbl regclass, operation text DEFAULT 'add_int_pk', args jsonb DEFAULT '{}',
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
  IF method = 'copy' AND operation NOT IN ('add_int_pk', 'add_column', 'convert_pk_to_bigint') THEN
    RAISE EXCEPTION '% has no copy method', operation USING ERRCODE = '22023',
      HINT = 'add_int_pk, add_column and convert_pk_to_bigint have one; leave method out.';
  END IF;
  col_bytes := CASE operation
    WHEN 'add_int_pk' THEN 8
    WHEN 'convert_pk_to_bigint' THEN CASE WHEN method = 'copy' THEN 8 ELSE 0 END  -- the bigint beside the old value
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
                 operation, CASE WHEN operation IN ('add_int_pk', 'add_column', 'convert_pk_to_bigint') THEN method ELSE 'in place' END, n_tables,
                 CASE WHEN method = 'copy' THEN 'a twin of each table, its indexes, then the old storage freed'
                      ELSE 'a new version of every row, space reused after each VACUUM, each index growing by a row''s entry' END,
                 rate_from,
                 CASE WHEN wal_rate_kb > 0 THEN format(', at most pkonline.max_wal_rate (%s kB/s)', wal_rate_kb) ELSE '' END) END;
END
$$;
