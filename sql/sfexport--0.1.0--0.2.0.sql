/* sfexport--0.1.0--0.2.0.sql: upgrade sfexport 0.1.0 to 0.2.0 */

\echo Use "ALTER EXTENSION sfexport UPDATE TO '0.2.0'" to load this file. \quit

-- Every change to the objects of sfexport--0.2.0.sql is repeated here, so
-- that an upgraded database ends with the same objects as a new install
-- (test/t/003_upgrade.pl compares the two).

-- The test surface leaves the extension: the SigV4 signer, the storage
-- primitives and the Hive type mapping are now in the separate extension
-- sfexport_test, which a production install does not have
-- (docs/ARCHITECTURE.md, "Test surface").  The C symbols stay in the library.
DROP FUNCTION sfexport._sigv4_sign(text, text, text[], bytea, text, text, text, text, text, boolean);
DROP FUNCTION sfexport._storage_put(name, text, bytea, integer, boolean);
DROP FUNCTION sfexport._storage_get(name, text);
DROP FUNCTION sfexport._storage_head(name, text);
DROP FUNCTION sfexport._storage_delete(name, text);
DROP FUNCTION sfexport._storage_list(name, text);
DROP FUNCTION sfexport._hive_to_snowflake(text);

-- retry(): the privilege check also holds for a dropped table, whose OID
-- has no pg_class row (0.1.0 compared with a NULL owner and let anyone in).
-- Who may: a superuser for every table; for one table, its owner; for a
-- table that was dropped (its files outlive it), the owner of the server
-- of every one of its files.  Checked against session_user: a SECURITY
-- DEFINER function sees itself as current_user.
CREATE OR REPLACE FUNCTION sfexport.retry(foreign_table regclass DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
    owner oid;
    is_super boolean := (SELECT rolsuper FROM pg_catalog.pg_roles
                          WHERE rolname OPERATOR(pg_catalog.=) session_user);
BEGIN
    IF foreign_table IS NULL THEN
        IF NOT is_super THEN
            RAISE EXCEPTION 'permission denied to retry the files of every table'
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'Name a foreign table you own.';
        END IF;
    ELSE
        SELECT c.relowner INTO owner FROM pg_catalog.pg_class c
         WHERE c.oid OPERATOR(pg_catalog.=) foreign_table;
        IF owner IS NULL THEN
            -- the table is gone: its files belong to their servers' owners
            IF NOT is_super AND EXISTS (
                   SELECT 1 FROM sfexport.files f
                     LEFT JOIN pg_catalog.pg_foreign_server s
                            ON s.oid OPERATOR(pg_catalog.=) f.server
                    WHERE f.relid OPERATOR(pg_catalog.=) foreign_table
                      AND NOT coalesce(pg_catalog.pg_has_role(session_user, s.srvowner, 'USAGE'),
                                       false)) THEN
                RAISE EXCEPTION 'must be owner of the server of the files of dropped table %',
                                foreign_table::pg_catalog.oid
                  USING ERRCODE = 'insufficient_privilege',
                        DETAIL = 'The foreign table no longer exists; its files are loaded with the user mapping of their server''s owner.';
            END IF;
        ELSIF NOT pg_catalog.pg_has_role(session_user, owner, 'USAGE') THEN
            RAISE EXCEPTION 'must be owner of foreign table %', foreign_table
              USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    -- A file Snowpipe failed to load is retried with COPY: Snowpipe skips a
    -- file name its pipe has seen, and the failed load inserted nothing
    -- (ON_ERROR = SKIP_FILE), so COPY cannot duplicate it (README, "Choosing
    -- copy or snowpipe").
    UPDATE sfexport.files
       SET state = 'staged', next_attempt_at = NULL,
           load_via = CASE WHEN state = 'failed' AND load_via = 'snowpipe'
                           THEN 'copy' ELSE load_via END
     WHERE (state = 'failed' OR (state = 'staged' AND next_attempt_at IS NOT NULL))
       AND (foreign_table IS NULL OR relid OPERATOR(pg_catalog.=) foreign_table);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- sfexport.files.in_doubt_since (load.c; docs/reliability.md, "Files
-- Snowflake may skip").  A staged file pinned to COPY may have been named
-- by a COPY whose outcome was never recorded: its doubt is taken to begin
-- when it was staged, the earliest such a COPY can have run.
ALTER TABLE sfexport.files ADD COLUMN in_doubt_since timestamptz;
UPDATE sfexport.files SET in_doubt_since = staged_at
 WHERE state = 'staged' AND load_via = 'copy';
