/* sfexport_test--1.0.sql: the test surface of sfexport (docs/ARCHITECTURE.md, "Test surface") */

\echo Use "CREATE EXTENSION sfexport_test" to load this file. \quit

-- SQL entry points to internals of the sfexport library ($libdir/sfexport)
-- for its tests: a production install has none of them, since "make
-- install" installs this extension only with SFEXPORT_TEST_SURFACE=1.  The
-- tests that need them run CREATE EXTENSION sfexport_test.  Never upgraded:
-- tests create it fresh, so this script is edited in place.
--
-- Superuser only: the schema and the functions are granted to no one.
-- (sfexport 0.1.0 had the same functions as sfexport._sigv4_sign,
-- sfexport._storage_* and sfexport._hive_to_snowflake; 0.2.0 dropped them.)

-- The SigV4 signer (src/sigv4.c): signs the request described by method,
-- URL (path and query as sent) and "Name: value" headers, for comparison
-- with published test vectors (test/t/010_sigv4_vectors.pl).
CREATE FUNCTION sfexport_test.sigv4_sign(
    method text, url text, headers text[], payload bytea,
    access_key_id text, secret_access_key text, region text, service text,
    amz_date text, s3 boolean,
    OUT canonical_request text, OUT string_to_sign text, OUT authorization_header text)
RETURNS record
AS 'MODULE_PATHNAME', 'sfexport_sigv4_sign'
LANGUAGE C STRICT IMMUTABLE;

-- Storage primitives (src/storage.c) with the current user's mapping of a
-- server; object names are relative to the server's location.
CREATE FUNCTION sfexport_test.storage_put(server name, object text, data bytea,
    chunk integer DEFAULT 65536, abort boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sfexport_storage_put'
LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION sfexport_test.storage_get(server name, object text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'sfexport_storage_get'
LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION sfexport_test.storage_head(server name, object text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sfexport_storage_head'
LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION sfexport_test.storage_delete(server name, object text)
RETURNS void
AS 'MODULE_PATHNAME', 'sfexport_storage_delete'
LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION sfexport_test.storage_list(server name, prefix text DEFAULT '')
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'sfexport_storage_list'
LANGUAGE C STRICT VOLATILE;

-- The Snowflake type glue_sync uses for a Hive type string (src/hive_types.c).
CREATE FUNCTION sfexport_test.hive_to_snowflake(hive_type text)
RETURNS text
AS 'MODULE_PATHNAME', 'sfexport_hive_to_snowflake'
LANGUAGE C STRICT IMMUTABLE;

-- The compressor of staged files (src/compress.c): one stream of data
-- repeated times times, written in pieces of chunk bytes; level 0 is the
-- compression's default.
CREATE FUNCTION sfexport_test.compress(compression text, level integer, data bytea,
    chunk integer DEFAULT 65536, times integer DEFAULT 1)
RETURNS bytea
AS 'MODULE_PATHNAME', 'sfexport_compress'
LANGUAGE C STRICT VOLATILE;

-- The worker's plan (src/flush.c, sf_flush_pending): per table and shape
-- the rows of the outbox segments, their payload bytes (+ 1 a row) and the
-- oldest inserted_at, from a heap scan of the segments; the tests compare
-- it with the same aggregate in SQL (test/t/002_outbox_segments.pl).
CREATE FUNCTION sfexport_test.outbox_pending(
    OUT relid oid, OUT shape bigint, OUT rows bigint, OUT bytes bigint,
    OUT oldest timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'sfexport_outbox_pending'
LANGUAGE C STRICT VOLATILE;

REVOKE ALL ON FUNCTION sfexport_test.sigv4_sign, sfexport_test.storage_put,
    sfexport_test.storage_get, sfexport_test.storage_head,
    sfexport_test.storage_delete, sfexport_test.storage_list,
    sfexport_test.hive_to_snowflake, sfexport_test.compress,
    sfexport_test.outbox_pending
  FROM PUBLIC;
