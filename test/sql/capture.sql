--
-- Capture: INSERT and COPY write encoded rows to the outbox in the
-- inserting transaction; everything else is refused.
--
CREATE EXTENSION sfexport;
\set VERBOSITY default
CREATE SERVER sf FOREIGN DATA WRAPPER sfexport
  OPTIONS (account 'acct', database 'DB', location 's3://bucket/prefix/');
CREATE FOREIGN TABLE ev (id int, name text, note text) SERVER sf;

-- a view of the outbox as text, for checking what was captured
CREATE VIEW captured AS
  SELECT relid::regclass AS tbl, sfexport.outbox_record(relid, shape, line) AS line
    FROM sfexport.outbox;

-- single row, multi-row VALUES, INSERT ... SELECT
INSERT INTO ev VALUES (1, 'one', NULL);
INSERT INTO ev VALUES (2, 'two', ''), (3, 'three', 'x');
INSERT INTO ev SELECT g, 'gen' || g, NULL FROM generate_series(4, 6) g;
SELECT * FROM captured ORDER BY line;
SELECT foreign_table, server, pending_rows, pending_bytes,
       oldest_pending IS NOT NULL AS has_oldest FROM sfexport.status;

-- RETURNING gives back the inserted row
INSERT INTO ev VALUES (7, 'seven', 'r') RETURNING *;

-- a rolled-back transaction leaves nothing
BEGIN;
INSERT INTO ev SELECT g, 'rolled back', NULL FROM generate_series(100, 199) g;
SELECT count(*) FROM captured WHERE line LIKE '%rolled back%';
ROLLBACK;
SELECT count(*) FROM captured WHERE line LIKE '%rolled back%';

-- a rolled-back savepoint leaves nothing; the rest of the transaction stays
BEGIN;
INSERT INTO ev VALUES (8, 'before savepoint', NULL);
SAVEPOINT s1;
INSERT INTO ev VALUES (9, 'in savepoint', NULL);
ROLLBACK TO SAVEPOINT s1;
INSERT INTO ev VALUES (10, 'after savepoint', NULL);
COMMIT;
SELECT line FROM captured WHERE line LIKE '%savepoint%' ORDER BY line;

-- a failing statement leaves nothing of its own rows
INSERT INTO ev SELECT g, 'fails', (1 / (g - 3))::text FROM generate_series(1, 5) g;
\echo SQLSTATE :SQLSTATE
SELECT count(*) FROM captured WHERE line LIKE '%fails%';

-- COPY FROM
COPY ev FROM STDIN WITH (FORMAT csv);
11,copied,"with ""quotes"", commas"
12,copied,
\.
SELECT line FROM captured WHERE line LIKE '%copied%' ORDER BY line;

-- batched inserts (ExecForeignBatchInsert), more rows than one batch
ALTER FOREIGN TABLE ev OPTIONS (ADD batch_size '7');
INSERT INTO ev SELECT g, 'batched', NULL FROM generate_series(1, 50) g;
SELECT count(*) FROM captured WHERE line LIKE '%batched%';
SET sfexport.batch_size = 3;
ALTER FOREIGN TABLE ev OPTIONS (DROP batch_size);
INSERT INTO ev SELECT g, 'small batches', NULL FROM generate_series(1, 10) g;
SELECT count(*) FROM captured WHERE line LIKE '%small batches%';
RESET sfexport.batch_size;

-- invalidations in the middle of a statement (here: GRANT/REVOKE on the
-- foreign table from inside the SELECT) must not pull the encoder away
-- from the running INSERT
CREATE FUNCTION poke(i int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF i % 50 = 0 THEN
        EXECUTE 'GRANT SELECT ON ev TO PUBLIC';
        EXECUTE 'REVOKE SELECT ON ev FROM PUBLIC';
        EXECUTE 'ANALYZE sfexport.outbox';
    END IF;
    RETURN i;
END $$;
INSERT INTO ev SELECT poke(g), 'invalidated ' || g, repeat('z', g % 7) FROM generate_series(1, 500) g;
SELECT count(*), count(DISTINCT line) FROM captured WHERE line LIKE '%"invalidated %';
DROP FUNCTION poke(int);

-- tuple routing into a foreign partition
CREATE TABLE parted (id int, name text, note text) PARTITION BY RANGE (id);
CREATE FOREIGN TABLE parted_sf PARTITION OF parted FOR VALUES FROM (0) TO (1000) SERVER sf;
CREATE TABLE parted_local PARTITION OF parted FOR VALUES FROM (1000) TO (2000);
INSERT INTO parted VALUES (1, 'routed', NULL), (1500, 'local', NULL);
COPY parted FROM STDIN WITH (FORMAT csv);
2,routed by copy,
\.
SELECT tbl, line FROM captured WHERE tbl = 'parted_sf'::regclass ORDER BY line;
SELECT * FROM parted_local;

-- column_name options and dropped columns shape the record
ALTER FOREIGN TABLE ev DROP COLUMN note;
ALTER FOREIGN TABLE ev ALTER COLUMN name OPTIONS (ADD column_name 'NAME');
ALTER FOREIGN TABLE ev ADD COLUMN extra boolean;
INSERT INTO ev VALUES (20, 'reshaped', true);
SELECT line FROM captured WHERE line LIKE '%reshaped%';
SELECT relid::regclass, columns, types FROM sfexport.shapes ORDER BY relid::regclass::text, registered_at;

-- everything but INSERT is refused
SELECT * FROM ev;
\echo SQLSTATE :SQLSTATE
SELECT count(*) FROM ev;
\echo SQLSTATE :SQLSTATE
UPDATE ev SET name = 'x';
\echo SQLSTATE :SQLSTATE
DELETE FROM ev;
\echo SQLSTATE :SQLSTATE
TRUNCATE ev;
\echo SQLSTATE :SQLSTATE
INSERT INTO ev VALUES (1, 'x', true) ON CONFLICT DO NOTHING;
\echo SQLSTATE :SQLSTATE
MERGE INTO ev USING (SELECT 1 AS id) s ON ev.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'm', NULL);
\echo SQLSTATE :SQLSTATE
COPY ev TO STDOUT;
\echo SQLSTATE :SQLSTATE
EXPLAIN (COSTS OFF) INSERT INTO ev VALUES (1, 'x', NULL);

-- the status view counts per table; dropping the extension cleans up
SELECT foreign_table, pending_rows FROM sfexport.status ORDER BY 1;
DROP VIEW captured;
DROP TABLE parted;
DROP EXTENSION sfexport CASCADE;
