-- The benchmark/demo table: `orders`, :rows rows, no primary key, an index on customer.
-- psql -v rows=N -f bench/orders_table.sql
-- With -v parts=N: the same table partitioned by HASH (customer) into N partitions.
\set cols '(order_no bigint NOT NULL, customer integer NOT NULL, amount numeric(10,2) NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())'
\if :{?parts}
CREATE TABLE orders :cols PARTITION BY HASH (customer);
SELECT pg_catalog.format('CREATE TABLE orders_%s PARTITION OF orders FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
                         r, :parts, r) FROM generate_series(0, :parts - 1) r \gexec
\else
CREATE TABLE orders :cols;
\endif
CREATE SEQUENCE orders_order_no_seq OWNED BY orders.order_no;
ALTER TABLE orders ALTER order_no SET DEFAULT nextval('orders_order_no_seq');
INSERT INTO orders (order_no, customer, amount, status)
  SELECT g, g % 100000, (g % 100000) / 100.0, 'new' FROM generate_series(1, :rows) g;
SELECT setval('orders_order_no_seq', :rows);
CREATE INDEX orders_customer ON orders (customer);
VACUUM ANALYZE orders;
CHECKPOINT;
