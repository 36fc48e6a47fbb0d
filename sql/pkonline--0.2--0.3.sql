-- pkonline 0.2 -> 0.3: partitioned tables.
\echo Use "ALTER EXTENSION pkonline UPDATE TO '0.3'" to load this file. \quit

-- add_int_pk works on partitioned tables: the key contains the partition key columns (or the
-- DBA's pk_columns); identity NULL (the default) means true, except on a partitioned table, where
-- the column keeps a sequence DEFAULT (a PostgreSQL 15 identity does not reach the partitions).
DROP FUNCTION pkonline.add_int_pk(regclass, name, regtype, boolean, boolean, text);
CREATE FUNCTION pkonline.add_int_pk(tbl regclass, column_name name DEFAULT 'id',
                                    column_type regtype DEFAULT 'bigint', identity boolean DEFAULT NULL,
                                    start boolean DEFAULT true, method text DEFAULT 'in_place',
                                    pk_columns name[] DEFAULT NULL)
RETURNS bigint LANGUAGE c VOLATILE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pkonline_add_int_pk';
COMMENT ON FUNCTION pkonline.add_int_pk(regclass, name, regtype, boolean, boolean, text, name[]) IS
  'Adds an integer primary key column to a table that has none, online; returns the job id. '
  'method: in_place (fill the rows where they are) or copy (copy them once, ids filled, and swap storage). '
  'On a partitioned table the key is (column, partition key columns) unless pk_columns names it';
