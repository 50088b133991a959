/* sfexport--0.1.0.sql: objects of sfexport 0.1.0 */

\echo Use "CREATE EXTENSION sfexport" to load this file. \quit

-- The foreign-data wrapper.
CREATE FUNCTION sfexport.fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'sfexport_fdw_handler'
LANGUAGE C STRICT;

CREATE FUNCTION sfexport.fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'sfexport_fdw_validator'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER sfexport
  HANDLER sfexport.fdw_handler
  VALIDATOR sfexport.fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER sfexport IS
  'write-only foreign tables whose rows are exported to Snowflake';

-- The outbox: one encoded CSV record per captured row, written by the
-- insert path in the inserting transaction (src/outbox.c).  No indexes:
-- the insert path writes it through the table AM and maintains none.
CREATE TABLE sfexport.outbox (
    relid       oid         NOT NULL,   -- the foreign table
    shape       bigint      NOT NULL,   -- column shape, see sfexport.shapes
    inserted_at timestamptz NOT NULL,   -- start of the inserting transaction
    line        bytea       NOT NULL    -- UTF-8 CSV record, no newline
);
ALTER TABLE sfexport.outbox ALTER COLUMN line SET STORAGE EXTERNAL;

COMMENT ON TABLE sfexport.outbox IS
  'rows captured from sfexport foreign tables and not yet staged';

-- Column shapes rows were written with: which target columns, of which
-- types, a record holds.  Registered by the insert path on first use.
CREATE TABLE sfexport.shapes (
    relid         oid         NOT NULL,
    shape         bigint      NOT NULL,
    columns       text[]      NOT NULL, -- Snowflake column names, in record order
    types         text[]      NOT NULL, -- PostgreSQL types, as format_type prints them
    registered_at timestamptz NOT NULL
);

COMMENT ON TABLE sfexport.shapes IS
  'target columns and types of each record shape written to the outbox';

REVOKE ALL ON sfexport.outbox, sfexport.shapes FROM PUBLIC;

-- One row per sfexport foreign table.
CREATE VIEW sfexport.status AS
SELECT c.oid::regclass                  AS foreign_table,
       s.srvname                        AS server,
       coalesce(o.pending_rows, 0)      AS pending_rows,
       coalesce(o.pending_bytes, 0)     AS pending_bytes,
       o.oldest_pending                 AS oldest_pending
  FROM pg_catalog.pg_foreign_table ft
  JOIN pg_catalog.pg_class c ON c.oid = ft.ftrelid
  JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
  LEFT JOIN (SELECT relid,
                    count(*)                              AS pending_rows,
                    sum(pg_catalog.octet_length(line) + 1) AS pending_bytes,
                    min(inserted_at)                      AS oldest_pending
               FROM sfexport.outbox
              GROUP BY relid) o ON o.relid = c.oid
 WHERE w.fdwname = 'sfexport';

COMMENT ON VIEW sfexport.status IS
  'per foreign table: rows captured and waiting in the outbox';

GRANT USAGE ON SCHEMA sfexport TO PUBLIC;
GRANT SELECT ON sfexport.status TO PUBLIC;

-- Test entry point of the SigV4 signer (src/sigv4.c): signs the request
-- described by method, URL (path and query as sent) and "Name: value"
-- headers, for comparison with published test vectors.  Superuser only.
CREATE FUNCTION sfexport._sigv4_sign(
    method text, url text, headers text[], payload bytea,
    access_key_id text, secret_access_key text, region text, service text,
    amz_date text, s3 boolean,
    OUT canonical_request text, OUT string_to_sign text, OUT authorization_header text)
RETURNS record
AS 'MODULE_PATHNAME', 'sfexport_sigv4_sign'
LANGUAGE C STRICT IMMUTABLE;
REVOKE ALL ON FUNCTION sfexport._sigv4_sign FROM PUBLIC;

-- Check a server's storage with the current user's credentials: write,
-- stat, read back and delete a probe object (src/storage.c).
CREATE FUNCTION sfexport.test_storage(server name,
    OUT step text, OUT ok boolean, OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'sfexport_test_storage'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION sfexport.test_storage(name) IS
  'write, read back and delete a probe object in the storage location of a server';
GRANT EXECUTE ON FUNCTION sfexport.test_storage(name) TO PUBLIC;

-- Storage primitives for tests and troubleshooting (superuser only).
-- Object names are relative to the server's location.
CREATE FUNCTION sfexport._storage_put(server name, object text, data bytea,
    chunk integer DEFAULT 65536, abort boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sfexport_storage_put'
LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION sfexport._storage_get(server name, object text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'sfexport_storage_get'
LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION sfexport._storage_head(server name, object text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sfexport_storage_head'
LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION sfexport._storage_delete(server name, object text)
RETURNS void
AS 'MODULE_PATHNAME', 'sfexport_storage_delete'
LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION sfexport._storage_list(server name, prefix text DEFAULT '')
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'sfexport_storage_list'
LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION sfexport._storage_put, sfexport._storage_get,
    sfexport._storage_head, sfexport._storage_delete, sfexport._storage_list
  FROM PUBLIC;
