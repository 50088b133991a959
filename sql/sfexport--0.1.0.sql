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

-- Snowflake SQL API (src/snowflake.c).

-- Run a trivial statement as the current user's mapping and report what
-- Snowflake saw.
CREATE FUNCTION sfexport.test_connection(
    server name,
    OUT account text, OUT user_name text, OUT role text,
    OUT warehouse text, OUT version text)
RETURNS record
AS 'MODULE_PATHNAME', 'sfexport_test_connection'
LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION sfexport.test_connection(name) IS
  'connect to Snowflake as the current user''s mapping and report account, user, role, warehouse and version';

-- The public-key fingerprint of the current user's private key, as DESC
-- USER shows it in RSA_PUBLIC_KEY_FP.  Not a secret.
CREATE FUNCTION sfexport.public_key_fingerprint(server name)
RETURNS text
AS 'MODULE_PATHNAME', 'sfexport_public_key_fingerprint'
LANGUAGE C STRICT STABLE;

-- Run any statement in Snowflake as the mapped user; rows as text arrays.
-- Administrators only: grant EXECUTE explicitly where wanted.
CREATE FUNCTION sfexport.snowflake_query(server name, statement text,
                                         binds text[] DEFAULT NULL)
RETURNS SETOF text[]
AS 'MODULE_PATHNAME', 'sfexport_snowflake_query'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION sfexport.snowflake_query(name, text, text[]) FROM PUBLIC;
