/* sfexport--0.2.0.sql: objects of sfexport 0.2.0 (the full install script; upgrades from 0.1.0 run sfexport--0.1.0--0.2.0.sql) */

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

-- The outbox: one payload per captured row, written by the insert path in
-- the inserting transaction (src/outbox.c).  No indexes: the insert path
-- writes it through the table AM and maintains none.
--
-- Rows live in two segments, sfexport.outbox_0 and outbox_1, children of
-- sfexport.outbox (which holds no rows itself: the CHECK below refuses any,
-- and the insert path writes the segments directly).  Inserters write into
-- the segment their database's worker calls "current"; the worker flips it
-- and then empties the other segment with one TRUNCATE in the transaction
-- that records its staged files (src/flush.c).  Reading, deleting from and
-- truncating sfexport.outbox cover both segments.
CREATE TABLE sfexport.outbox (
    relid       oid         NOT NULL,   -- the foreign table
    shape       bigint      NOT NULL,   -- column shape, see sfexport.shapes
    inserted_at timestamptz NOT NULL,   -- start of the inserting transaction
    line        bytea       NOT NULL    -- payload: a UTF-8 CSV record (no newline), or
                                        -- 0x01 + binary tuple (src/encode.c); render
                                        -- with sfexport.outbox_record(relid, shape, line)
);
ALTER TABLE sfexport.outbox ALTER COLUMN line SET STORAGE EXTERNAL;
ALTER TABLE sfexport.outbox ADD CONSTRAINT outbox_rows_are_in_segments CHECK (false) NO INHERIT;
CREATE TABLE sfexport.outbox_0 () INHERITS (sfexport.outbox);
CREATE TABLE sfexport.outbox_1 () INHERITS (sfexport.outbox);
ALTER TABLE sfexport.outbox_0 ALTER COLUMN line SET STORAGE EXTERNAL;
ALTER TABLE sfexport.outbox_1 ALTER COLUMN line SET STORAGE EXTERNAL;
COMMENT ON TABLE sfexport.outbox_0 IS 'segment 0 of sfexport.outbox';
COMMENT ON TABLE sfexport.outbox_1 IS 'segment 1 of sfexport.outbox';

COMMENT ON TABLE sfexport.outbox IS
  'rows captured from sfexport foreign tables and not yet staged';

-- Column shapes rows were written with: which target columns, of which
-- types, a record holds.  Registered by the insert path on first use.
CREATE TABLE sfexport.shapes (
    relid         oid         NOT NULL,
    shape         bigint      NOT NULL,
    columns       text[]      NOT NULL, -- Snowflake column names, in record order
    types         text[]      NOT NULL, -- PostgreSQL types, as format_type prints them
    registered_at timestamptz NOT NULL,
    -- what the worker checks before decoding binary payloads: per column the
    -- base type's OID and typmod, and its typlen/typbyval/typalign at capture
    type_oids     oid[]       NOT NULL,
    type_mods     int4[]      NOT NULL,
    type_lens     int2[]      NOT NULL,
    type_byvals   bool[]      NOT NULL,
    type_aligns   "char"[]    NOT NULL
);

COMMENT ON TABLE sfexport.shapes IS
  'target columns and types of each record shape written to the outbox';

REVOKE ALL ON sfexport.outbox, sfexport.outbox_0, sfexport.outbox_1, sfexport.shapes FROM PUBLIC;

-- The CSV record an outbox row stands for, exactly as the worker writes it
-- to a staged file (without the newline).  Superuser only.
CREATE FUNCTION sfexport.outbox_record(relid oid, shape bigint, line bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'sf_outbox_record'
LANGUAGE C STRICT STABLE;
REVOKE ALL ON FUNCTION sfexport.outbox_record(oid, bigint, bytea) FROM PUBLIC;

GRANT USAGE ON SCHEMA sfexport TO PUBLIC;

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

-- The manifest: one row per staged file (src/flush.c, src/load.c).  A file
-- exists here only once its upload completed and the rows it holds were
-- removed from the outbox, in the same transaction.
CREATE TABLE sfexport.files (
    file_id            bigserial   PRIMARY KEY,
    relid              oid         NOT NULL,   -- the foreign table
    server             oid         NOT NULL,
    name               text        NOT NULL UNIQUE, -- object name below the server's location
    target             text        NOT NULL,   -- Snowflake table, quoted and qualified
    shape              bigint      NOT NULL,
    columns            text[]      NOT NULL,   -- Snowflake columns of the records
    types              text[]      NOT NULL,
    compression        text        NOT NULL,
    rows               bigint      NOT NULL,
    bytes              bigint      NOT NULL,   -- compressed size in storage
    raw_bytes          bigint      NOT NULL,
    state              text        NOT NULL
        CHECK (state IN ('staged', 'submitted', 'loaded', 'failed', 'partially_loaded')),
    -- how the file is loaded, fixed at its first attempt (load.c): COPY's
    -- load metadata (per table) and Snowpipe's (per pipe) do not know each
    -- other, so a file never changes path once one may have loaded it
    load_via           text        CHECK (load_via IN ('copy', 'snowpipe')),
    pipe               text,                   -- Snowpipe: the pipe submitted to
    submitted_at       timestamptz,            -- Snowpipe: last insertFiles
    attempts           integer     NOT NULL DEFAULT 0,
    rows_parsed        bigint,
    rows_loaded        bigint,
    errors_seen        bigint,
    first_error        text,
    first_error_line   bigint,
    first_error_column text,
    last_error         text,                   -- error of the last COPY statement
    staged_at          timestamptz NOT NULL,
    last_attempt_at    timestamptz,
    next_attempt_at    timestamptz,
    loaded_at          timestamptz,
    deleted_at         timestamptz,            -- removed from storage after loading
    kept               boolean     NOT NULL DEFAULT false, -- keep_files: left in storage
    -- a COPY naming the file was sent then and may have loaded it, and its
    -- outcome is not recorded yet; NULL: no COPY can have loaded it
    -- (load.c; docs/reliability.md, "Files Snowflake may skip")
    in_doubt_since     timestamptz
);
CREATE INDEX files_pending_idx ON sfexport.files (state, next_attempt_at)
    WHERE state <> 'loaded' OR deleted_at IS NULL;
CREATE INDEX files_relid_idx ON sfexport.files (relid);

COMMENT ON TABLE sfexport.files IS
  'staged files and what Snowflake did with them';

REVOKE ALL ON sfexport.files FROM PUBLIC;
GRANT SELECT ON sfexport.files TO pg_monitor;

-- Snowpipe: where the worker is in each pipe's insertReport (src/load.c).
-- The nextBeginMark of the last report read, written in the transaction
-- that records the outcomes that report carried, so that a restarted worker
-- asks for the events after it instead of re-reading or missing some.
CREATE TABLE sfexport.pipe_reports (
    server      oid         NOT NULL,
    pipe        text        NOT NULL,   -- db.schema.pipe, as sfexport.files.pipe
    begin_mark  text,                   -- insertReport nextBeginMark
    read_at     timestamptz NOT NULL,   -- when that report was read
    PRIMARY KEY (server, pipe)
);
COMMENT ON TABLE sfexport.pipe_reports IS
  'the position of the worker in each Snowpipe pipe''s load report';
REVOKE ALL ON sfexport.pipe_reports FROM PUBLIC;
GRANT SELECT ON sfexport.pipe_reports TO pg_monitor;

-- sfexport.status: at the end of this file, after next_flush_at() and
-- sfexport.stream_batches, which it reads.

-- sfexport.flush(): see "Everyday ergonomics" at the end of this file.

-- Queue failed files again (after fixing the cause), for one table or all.
-- Who may: a superuser for every table; for one table, its owner; for a
-- table that was dropped (its files outlive it), the owner of the server
-- of every one of its files.  Checked against session_user: a SECURITY
-- DEFINER function sees itself as current_user.
CREATE FUNCTION sfexport.retry(foreign_table regclass DEFAULT NULL)
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

COMMENT ON FUNCTION sfexport.retry(regclass) IS
  'queue failed files of a foreign table (or all) for loading again';

-- Files in a server's stage that this database uploaded but whose staging
-- transaction never committed, older than sfexport.orphan_grace (src/sweep.c).
-- The worker deletes them every sfexport.orphan_sweep_interval; this only
-- lists them.  Server owner only: it lists with the owner's credentials.
CREATE FUNCTION sfexport.orphans(server name,
    OUT object text, OUT uploaded_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'sfexport_orphans'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION sfexport.orphans(name) IS
  'files in the stage of a server whose upload never committed (the worker deletes them)';

-- Called below so that a new database gets its worker at once.
CREATE FUNCTION sfexport._launcher_wakeup()
RETURNS void
AS 'MODULE_PATHNAME', 'sfexport_launcher_wakeup'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION sfexport._launcher_wakeup() FROM PUBLIC;


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

-- AWS Glue sync (src/glue.c, docs/glue.md).

-- What glue_sync applied: one row per Glue table and Snowflake target, with
-- the SHA-256 of the CREATE EXTERNAL TABLE statement, so that an unchanged
-- table is left alone and a changed one is re-created.
CREATE TABLE sfexport.glue_sync_state (
    server          oid         NOT NULL,   -- the sfexport server
    glue_database   text        NOT NULL,
    glue_table      text        NOT NULL,
    target_database text        NOT NULL,   -- Snowflake names, unquoted
    target_schema   text        NOT NULL,
    target_table    text        NOT NULL,
    definition_hash text        NOT NULL,   -- hex SHA-256 of the statement applied
    applied_at      timestamptz NOT NULL,
    PRIMARY KEY (server, glue_database, glue_table, target_database, target_schema)
);
COMMENT ON TABLE sfexport.glue_sync_state IS
  'external tables created by sfexport.glue_sync and the definition applied';
REVOKE ALL ON sfexport.glue_sync_state FROM PUBLIC;
GRANT SELECT ON sfexport.glue_sync_state TO pg_monitor;

-- Mirror the tables of an AWS Glue database as Snowflake external tables.
-- Only the server's owner or a superuser may run it (checked in C).
CREATE FUNCTION sfexport.glue_sync(
    server name, glue_database text, table_pattern text DEFAULT '%',
    dry_run boolean DEFAULT false, drop_missing boolean DEFAULT false,
    target_database text DEFAULT NULL, target_schema text DEFAULT NULL,
    OUT glue_table text, OUT action text, OUT reason text, OUT statement text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'sfexport_glue_sync'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sfexport.glue_sync(name, text, text, boolean, boolean, text, text) IS
  'create or update Snowflake external tables for the tables of an AWS Glue database';

-- Last: wake the launcher so that this database gets its worker at once.
SELECT sfexport._launcher_wakeup();

-- Snowflake-side setup (src/setup.c, docs/setup.md).  Each function
-- returns the statements it ran (or, with dry_run, would run), credentials
-- masked.  Only the server's owner or a superuser may call them; the
-- statements run with the user mapping of the server's owner, as the
-- worker's do.
CREATE FUNCTION sfexport.setup_stage(server name, dry_run boolean DEFAULT false)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'sfexport_setup_stage'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION sfexport.setup_stage(name, boolean) IS
  'create the Snowflake file format and stage of a server (IF NOT EXISTS)';

CREATE FUNCTION sfexport.setup_table(foreign_table regclass, dry_run boolean DEFAULT false)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'sfexport_setup_table'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION sfexport.setup_table(regclass, boolean) IS
  'create the Snowflake target table of a foreign table (IF NOT EXISTS) and add the columns it lacks';

CREATE FUNCTION sfexport.setup(server name, dry_run boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ft regclass;
BEGIN
    RETURN QUERY SELECT s FROM sfexport.setup_stage(server, dry_run) s;
    FOR ft IN
        SELECT t.ftrelid::regclass
          FROM pg_foreign_table t
          JOIN pg_foreign_server srv ON srv.oid = t.ftserver
         WHERE srv.srvname = server
         ORDER BY t.ftrelid::regclass::text
    LOOP
        RETURN QUERY SELECT s FROM sfexport.setup_table(ft, dry_run) s;
    END LOOP;
END
$$;
COMMENT ON FUNCTION sfexport.setup(name, boolean) IS
  'set up the Snowflake stage, file format and the target table of every foreign table of a server';

-- Who may decide what a server loads into, and where a superuser's server
-- sends the database server's own credentials (README, Security).  The
-- worker COPYs the rows of a foreign table into the Snowflake table its
-- name and options (table, schema, column_name) point at, and adds columns
-- to it, with the Snowflake role of the server's owner: so only the
-- server's owner (or a member of its role, or a superuser) may create or
-- alter foreign tables on an sfexport server.  A server owned by a
-- superuser may use the host's credentials (environment): so only a
-- superuser may alter it, or make a server a superuser's.
--
-- An event trigger, because the wrapper's validator cannot do it: it is
-- given the option list and the catalog, not the server or the table (as
-- for postgres_fdw), and a rename changes the default target without
-- calling it.  At ddl_command_end every object of the command exists, and
-- an error undoes the command.
CREATE FUNCTION sfexport._ddl_check()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    FOR r IN
        SELECT c.objid::pg_catalog.regclass AS ft, s.srvname
          FROM pg_catalog.pg_event_trigger_ddl_commands() c
          JOIN pg_catalog.pg_foreign_table t ON t.ftrelid OPERATOR(pg_catalog.=) c.objid
          JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) t.ftserver
          JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) s.srvfdw
         WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND w.fdwname OPERATOR(pg_catalog.=) 'sfexport'
           AND NOT pg_catalog.pg_has_role(s.srvowner, 'USAGE')
    LOOP
        RAISE EXCEPTION 'permission denied to create or alter foreign table % of server %', r.ft, r.srvname
          USING ERRCODE = 'insufficient_privilege',
                DETAIL = 'The export worker loads a foreign table''s rows into the Snowflake table its name and options name, with the Snowflake role of the server''s owner.',
                HINT = pg_catalog.format('Only the owner of server %I or a superuser may create or alter foreign tables on it; others get INSERT on them.', r.srvname);
    END LOOP;
    FOR r IN
        SELECT s.srvname
          FROM pg_catalog.pg_event_trigger_ddl_commands() c
          JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) c.objid
          JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) s.srvfdw
          JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) s.srvowner
         WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_foreign_server'::pg_catalog.regclass
           AND w.fdwname OPERATOR(pg_catalog.=) 'sfexport'
           AND o.rolsuper
    LOOP
        RAISE EXCEPTION 'permission denied to alter server %', r.srvname
          USING ERRCODE = 'insufficient_privilege',
                DETAIL = 'A server owned by a superuser may use the database server''s own credentials, so only a superuser may change it or give a server to a superuser.',
                HINT = 'Ask a superuser to make the change.';
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION sfexport._ddl_check() FROM PUBLIC;
CREATE EVENT TRIGGER sfexport_ddl_check ON ddl_command_end
  WHEN TAG IN ('CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'ALTER TABLE',
               'IMPORT FOREIGN SCHEMA', 'CREATE SERVER', 'ALTER SERVER')
  EXECUTE FUNCTION sfexport._ddl_check();

-- Glue sync that stays in sync: partitions refreshed, grants kept, drift repaired
ALTER TABLE sfexport.glue_sync_state
    ADD COLUMN shape_hash text,     -- SHA-256 of the statement without its data columns
    ADD COLUMN columns    text[],   -- the data column definitions applied
    ADD COLUMN partitions text[];   -- partition directories below the location, sorted
                                    -- (NULL: synced before 0.2.0 recorded them)
CREATE TABLE sfexport.glue_sync_log (
    server        oid         NOT NULL,   -- the sfexport server
    glue_database text        NOT NULL,
    glue_table    text        NOT NULL,   -- '' : the Glue database as a whole (it could not be read)
    synced_at     timestamptz NOT NULL,
    action        text        NOT NULL,   -- created, replaced, altered, refreshed, repaired, unchanged, dropped, skipped, failed
    reason        text,                   -- why skipped or failed, or what changed
    periodic      boolean     NOT NULL,   -- run by the worker (else by glue_sync())
    PRIMARY KEY (server, glue_database, glue_table)
);
COMMENT ON TABLE sfexport.glue_sync_log IS
  'what the last glue sync did to each AWS Glue table (read it through sfexport.glue_sync_status)';
REVOKE ALL ON sfexport.glue_sync_log FROM PUBLIC;
GRANT SELECT ON sfexport.glue_sync_log TO pg_monitor;
-- Each server's rows for its owner (and members), every row for pg_monitor.
CREATE VIEW sfexport.glue_sync_status WITH (security_barrier) AS
SELECT s.srvname AS server, l.glue_database, l.glue_table, l.synced_at AS last_sync,
       l.action, l.reason, l.periodic
  FROM sfexport.glue_sync_log l
  JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) l.server
 WHERE pg_catalog.pg_has_role(s.srvowner, 'USAGE')
    OR pg_catalog.pg_has_role('pg_monitor', 'USAGE');
COMMENT ON VIEW sfexport.glue_sync_status IS
  'what the last glue sync (periodic or glue_sync()) did to each AWS Glue table; rows of the servers one owns';
GRANT SELECT ON sfexport.glue_sync_status TO PUBLIC;
-- Everyday ergonomics: flush that waits, long cadences, a JSON events table

-- Ask this database's worker to flush and load everything now; with wait,
-- return once every row committed before the call is loaded (true) or in
-- a file Snowflake rejected (false, a WARNING names the files), or fail
-- after timeout (src/sql_flush.c, docs/flush.md).  NULL foreign_table:
-- every table.  Replaces 0.1.0's flush(), which flush() still calls.
CREATE FUNCTION sfexport.flush(foreign_table regclass DEFAULT NULL,
                               wait boolean DEFAULT false,
                               timeout interval DEFAULT '10 minutes')
RETURNS boolean
AS 'MODULE_PATHNAME', 'sfexport_flush_wait'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sfexport.flush(regclass, boolean, interval) IS
  'wake the export worker: flush pending rows and load staged files now; with wait, until the rows committed before the call are loaded';

-- When the worker flushes a table whose oldest pending row was written at
-- oldest_pending: its flush_interval after, or the next minute of its
-- flush_at schedule (UTC), whichever comes first (src/config.c).
CREATE FUNCTION sfexport.next_flush_at(foreign_table regclass, oldest_pending timestamptz)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'sfexport_next_flush_at'
LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION sfexport.next_flush_at(regclass, timestamptz) IS
  'when the worker flushes a foreign table whose oldest pending row was written at oldest_pending';

-- Seconds from commit to query: Snowpipe Streaming as a load mode
-- (load_mode 'streaming', src/stream_load.c; docs/streaming.md, "The
-- sfexport client").  A batch is a run of outbox rows of one table, as the
-- NDJSON body of one append request; its batch_id is the offset token the
-- channel commits it with.  Rows move here from the outbox in one
-- transaction, and a batch is deleted only once the channel's committed
-- offset token covers it (or kept as 'rejected' when Snowflake refused some
-- of its rows).
CREATE TABLE sfexport.stream_batches (
    batch_id       bigserial   PRIMARY KEY,  -- the offset token
    relid          oid         NOT NULL,     -- the foreign table
    server         oid         NOT NULL,
    database_name  text        NOT NULL,     -- the channel: database, schema,
    schema_name    text        NOT NULL,     -- pipe and name, as in the
    pipe_name      text        NOT NULL,     -- REST API's paths
    channel_name   text        NOT NULL,
    rows           bigint      NOT NULL,
    bytes          bigint      NOT NULL,
    body           bytea       NOT NULL,     -- the NDJSON rows
    state          text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'rejected')),
    rows_rejected  bigint,
    error          text,                     -- Snowflake's last_error_message
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    rejected_at    timestamptz
);
CREATE INDEX stream_batches_channel_idx ON sfexport.stream_batches
    (server, database_name, schema_name, pipe_name, channel_name, batch_id);
COMMENT ON TABLE sfexport.stream_batches IS
  'Snowpipe Streaming: rows taken from the outbox, until their channel commits them';
REVOKE ALL ON sfexport.stream_batches FROM PUBLIC;
REVOKE ALL ON SEQUENCE sfexport.stream_batches_batch_id_seq FROM PUBLIC;

-- Per channel: what the worker last saw of it (the committed offset token
-- and the error counter, to tell which batches Snowflake refused rows of).
CREATE TABLE sfexport.stream_channels (
    server          oid         NOT NULL,
    database_name   text        NOT NULL,
    schema_name     text        NOT NULL,
    pipe_name       text        NOT NULL,
    channel_name    text        NOT NULL,
    committed_token text,                    -- last_committed_offset_token
    rows_inserted   bigint,
    rows_errors     bigint      NOT NULL DEFAULT 0,
    status_code     text,
    seen_at         timestamptz NOT NULL,
    PRIMARY KEY (server, database_name, schema_name, pipe_name, channel_name)
);
COMMENT ON TABLE sfexport.stream_channels IS
  'Snowpipe Streaming: the state of each channel as the worker last saw it';
REVOKE ALL ON sfexport.stream_channels FROM PUBLIC;
GRANT SELECT ON sfexport.stream_channels TO pg_monitor;

-- One row per foreign table with batches: counts for everyone, the error
-- text only for those who may read the table (as in sfexport.status).
CREATE VIEW sfexport.stream_status WITH (security_barrier) AS
SELECT c.oid::pg_catalog.regclass               AS foreign_table,
       b.channel_name                           AS channel,
       b.pending_batches, b.pending_rows,
       b.rejected_batches, b.rejected_rows,
       CASE WHEN pg_catalog.pg_has_role(c.relowner, 'USAGE')
              OR pg_catalog.has_table_privilege(c.oid, 'SELECT')
              OR pg_catalog.pg_has_role('pg_monitor', 'USAGE')
            THEN b.last_error END               AS last_error
  FROM (SELECT relid, channel_name,
               count(*) FILTER (WHERE state = 'pending')          AS pending_batches,
               coalesce(sum(rows) FILTER (WHERE state = 'pending'), 0)::bigint AS pending_rows,
               count(*) FILTER (WHERE state = 'rejected')         AS rejected_batches,
               coalesce(sum(rows_rejected) FILTER (WHERE state = 'rejected'), 0)::bigint AS rejected_rows,
               (array_agg(error ORDER BY batch_id DESC)
                  FILTER (WHERE error IS NOT NULL))[1]            AS last_error
          FROM sfexport.stream_batches
         GROUP BY relid, channel_name) b
  JOIN pg_catalog.pg_class c ON c.oid = b.relid;
COMMENT ON VIEW sfexport.stream_status IS
  'per foreign table in load_mode streaming: batches waiting for their channel, and rejected ones';
GRANT SELECT ON sfexport.stream_status TO PUBLIC;

-- Send rejected batches again (after fixing the cause) with new offset
-- tokens.  Only batches whose every row was rejected, unless partial: the
-- rows Snowflake accepted from a partly rejected batch would land twice.
-- Who may: as sfexport.retry().
CREATE FUNCTION sfexport.stream_retry(foreign_table regclass DEFAULT NULL,
                                      partial boolean DEFAULT false)
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
            RAISE EXCEPTION 'permission denied to retry the batches of every table'
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'Name a foreign table you own.';
        END IF;
    ELSE
        SELECT c.relowner INTO owner FROM pg_catalog.pg_class c
         WHERE c.oid OPERATOR(pg_catalog.=) foreign_table;
        IF NOT is_super AND (owner IS NULL OR
                             NOT pg_catalog.pg_has_role(session_user, owner, 'USAGE')) THEN
            RAISE EXCEPTION 'must be owner of foreign table %', foreign_table
              USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    UPDATE sfexport.stream_batches
       SET batch_id = pg_catalog.nextval('sfexport.stream_batches_batch_id_seq'::pg_catalog.regclass),
           state = 'pending', rows_rejected = NULL, error = NULL, rejected_at = NULL
     WHERE state OPERATOR(pg_catalog.=) 'rejected'
       AND (partial OR rows_rejected OPERATOR(pg_catalog.>=) rows)
       AND (foreign_table IS NULL OR relid OPERATOR(pg_catalog.=) foreign_table);
    -- the worker sends them within sfexport's housekeeping interval (10 s),
    -- or at once after sfexport.flush() (called after this commits)
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION sfexport.stream_retry(regclass, boolean) IS
  'send rejected Snowpipe Streaming batches of a foreign table (or all) again';
-- Mirror ordinary tables: INSERT, UPDATE and DELETE applied in Snowflake with MERGE, no replication slot
-- (docs/tracking.md; src/track.c, src/sql_track.c, src/merge_apply.c).  A
-- tracked table's row and TRUNCATE triggers write each change, in the
-- changing transaction, as a row of its changes foreign table (op, number,
-- the row); the worker loads those like any foreign table's rows, then
-- merges them into the mirror in Snowflake.
CREATE SEQUENCE sfexport.track_seq;
COMMENT ON SEQUENCE sfexport.track_seq IS
  'numbers the changes of tracked tables: two changes of one key are numbered in the order they happened';

CREATE FUNCTION sfexport.track_row_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'sfexport_track_row'
LANGUAGE C;
COMMENT ON FUNCTION sfexport.track_row_trigger() IS
  'row trigger of a tracked table: the change into the outbox (created by sfexport.track)';

CREATE FUNCTION sfexport.track_truncate_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'sfexport_track_truncate'
LANGUAGE C;
COMMENT ON FUNCTION sfexport.track_truncate_trigger() IS
  'TRUNCATE trigger of a tracked table (created by sfexport.track)';

CREATE FUNCTION sfexport.snapshot_chunk(tbl regclass, first_block bigint, nblocks bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sfexport_track_snapshot_chunk'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION sfexport.snapshot_chunk(regclass, bigint, bigint) IS
  'one chunk of the initial snapshot of a tracked table: its rows in a block range, read FOR SHARE, as upserts (sfexport.snapshot)';

CREATE FUNCTION sfexport.track(tbl regclass, server name, target text DEFAULT NULL,
                               snapshot boolean DEFAULT true, history boolean DEFAULT false,
                               mirror boolean DEFAULT true)
RETURNS regclass
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    keys text[];
    cols text;
    changes text;
    upper_names boolean;
BEGIN
    SELECT c.relname, n.nspname, c.relkind, c.relowner INTO r
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;
    IF r.relkind IS DISTINCT FROM 'r' THEN
        RAISE EXCEPTION '"%" is not an ordinary table', tbl
          USING ERRCODE = 'wrong_object_type',
                DETAIL = 'Only ordinary tables can be tracked: their row triggers capture the changes.',
                HINT = 'Track each partition of a partitioned table; export other relations with a foreign table.';
    END IF;
    IF NOT pg_has_role(r.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to track table %', tbl
          USING ERRCODE = 'insufficient_privilege',
                DETAIL = 'Tracking creates triggers on the table.',
                HINT = 'Only the table''s owner (or a member of its role) may track it.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                    WHERE s.srvname = server AND w.fdwname = 'sfexport') THEN
        RAISE EXCEPTION 'server "%" is not an sfexport server', server
          USING ERRCODE = 'undefined_object',
                DETAIL = 'The changes travel through a foreign table of an sfexport server.',
                HINT = 'Name a server created with FOREIGN DATA WRAPPER sfexport.';
    END IF;
    IF NOT mirror AND NOT history THEN
        RAISE EXCEPTION 'a tracked table needs a mirror or a history'
          USING ERRCODE = 'invalid_parameter_value',
                DETAIL = 'With mirror => false the changes go only to the history table.',
                HINT = 'Pass history => true with mirror => false.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'sfexport_track') THEN
        RAISE EXCEPTION 'table % is tracked already', tbl
          USING ERRCODE = 'duplicate_object',
                DETAIL = 'It has the trigger sfexport_track.',
                HINT = 'Stop tracking it first with sfexport.untrack().';
    END IF;

    -- the key: the primary key, else the replica identity index
    SELECT array_agg(a.attname::text ORDER BY k.ord) INTO keys
      FROM pg_index i
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = tbl AND i.indisprimary;
    IF keys IS NULL THEN
        SELECT array_agg(a.attname::text ORDER BY k.ord) INTO keys
          FROM pg_index i
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = tbl AND i.indisreplident;
    END IF;
    IF keys IS NULL THEN
        RAISE EXCEPTION 'table % has no primary key or replica identity index', tbl
          USING ERRCODE = 'object_not_in_prerequisite_state',
                DETAIL = 'Changes are applied in Snowflake by key: each UPDATE and DELETE must name the one row it changes.',
                HINT = 'Add a primary key (ALTER TABLE ... ADD PRIMARY KEY), or a unique index on NOT NULL columns and ALTER TABLE ... REPLICA IDENTITY USING INDEX.';
    END IF;

    SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
      INTO cols
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped;
    changes := left(r.relname, 46) || '_sfexport_changes';
    IF to_regclass(format('%I.%I', r.nspname, changes)) IS NOT NULL THEN
        RAISE EXCEPTION 'relation %.% exists already', quote_ident(r.nspname), quote_ident(changes)
          USING ERRCODE = 'duplicate_table',
                DETAIL = 'It is the changes table of an earlier tracking of this table, or another relation of that name.',
                HINT = 'Once sfexport.status shows nothing pending for it, drop it (DROP FOREIGN TABLE), then track again.';
    END IF;
    SELECT coalesce(bool_or(o.option_value IN ('true', 'on', 'yes', '1')), false) INTO upper_names
      FROM pg_foreign_server s, pg_options_to_table(s.srvoptions) o
     WHERE s.srvname = server AND o.option_name = 'upper_case_identifiers';
    IF target IS NULL THEN
        target := CASE WHEN upper_names
                       THEN translate(r.relname, 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')
                       ELSE r.relname END;
    END IF;

    EXECUTE format('CREATE FOREIGN TABLE %I.%I (_sf_op text, _sf_seq bigint, _sf_at timestamptz, %s) SERVER %I'
                   ' OPTIONS (merge_into %L, merge_keys %L%s%s)',
                   r.nspname, changes, cols, server, target,
                   (SELECT string_agg(quote_ident(k), ',') FROM unnest(keys) k),
                   CASE WHEN history
                        THEN format(', merge_history %L',
                                    target || CASE WHEN upper_names THEN '_HISTORY' ELSE '_history' END)
                        ELSE '' END,
                   CASE WHEN mirror THEN '' ELSE ', merge_mirror ''false''' END);
    EXECUTE format('COMMENT ON FOREIGN TABLE %I.%I IS %L', r.nspname, changes,
                   format('changes of tracked table %s (sfexport.track)', tbl));
    EXECUTE format('CREATE TRIGGER sfexport_track AFTER INSERT OR UPDATE OR DELETE ON %I.%I'
                   ' FOR EACH ROW EXECUTE FUNCTION sfexport.track_row_trigger(%L, %L)',
                   r.nspname, r.relname, r.nspname, changes);
    EXECUTE format('CREATE TRIGGER sfexport_track_truncate AFTER TRUNCATE ON %I.%I'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sfexport.track_truncate_trigger(%L, %L)',
                   r.nspname, r.relname, r.nspname, changes);
    -- also under session_replication_role = replica (a logical replication
    -- subscriber's apply, pg_restore --disable-triggers): a change the
    -- triggers miss would be missing from the mirror for good
    EXECUTE format('ALTER TABLE %I.%I ENABLE ALWAYS TRIGGER sfexport_track,'
                   ' ENABLE ALWAYS TRIGGER sfexport_track_truncate', r.nspname, r.relname);
    IF snapshot THEN
        PERFORM sfexport.snapshot_chunk(tbl, 0, 4294967295);
    END IF;
    RETURN format('%I.%I', r.nspname, changes)::regclass;
END
$$;
COMMENT ON FUNCTION sfexport.track(regclass, name, text, boolean, boolean, boolean) IS
  'mirror an ordinary table with a primary key in Snowflake: capture its changes from now on (and, with snapshot, its rows) through a changes foreign table; with history, also (with mirror => false: only) append every change to <target>_history';

CREATE FUNCTION sfexport.untrack(tbl regclass)
RETURNS regclass
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    changes regclass;
BEGIN
    SELECT c.relname, n.nspname INTO r
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    -- the trigger's arguments: schema and name of the changes table, each ending in a zero byte
    SELECT format('%I.%I',
                  convert_from(substring(t.tgargs FROM 1 FOR position('\x00'::bytea IN t.tgargs) - 1),
                               getdatabaseencoding()),
                  convert_from(substring(t.tgargs FROM position('\x00'::bytea IN t.tgargs) + 1
                                         FOR length(t.tgargs) - position('\x00'::bytea IN t.tgargs) - 1),
                               getdatabaseencoding()))::regclass
      INTO changes
      FROM pg_trigger t WHERE t.tgrelid = tbl AND t.tgname = 'sfexport_track';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not tracked', tbl
          USING ERRCODE = 'object_not_in_prerequisite_state',
                DETAIL = 'A tracked table has the trigger sfexport_track.',
                HINT = 'Start tracking it with sfexport.track().';
    END IF;
    EXECUTE format('DROP TRIGGER sfexport_track ON %I.%I', r.nspname, r.relname);
    EXECUTE format('DROP TRIGGER IF EXISTS sfexport_track_truncate ON %I.%I', r.nspname, r.relname);
    RETURN changes;
END
$$;
COMMENT ON FUNCTION sfexport.untrack(regclass) IS
  'stop capturing the changes of a tracked table; the changes already captured are still applied, then the changes foreign table it returns can be dropped';

-- No SET search_path here: a procedure with one cannot COMMIT.  Every name is qualified.
CREATE PROCEDURE sfexport.snapshot(tbl regclass, chunk_blocks integer DEFAULT 1024)
LANGUAGE plpgsql
AS $$
DECLARE
    nblocks bigint;
    first bigint := 0;
BEGIN
    IF chunk_blocks IS NULL OR chunk_blocks OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'chunk_blocks must be at least 1'
          USING ERRCODE = 'invalid_parameter_value',
                DETAIL = 'Each chunk reads this many blocks of the table in its own transaction.',
                HINT = 'The default is 1024 blocks (8 MB).';
    END IF;
    nblocks := pg_catalog.pg_relation_size(tbl) OPERATOR(pg_catalog./)
               pg_catalog.current_setting('block_size')::pg_catalog.int8;
    WHILE first OPERATOR(pg_catalog.<) nblocks LOOP
        PERFORM sfexport.snapshot_chunk(tbl, first, chunk_blocks);
        COMMIT;
        first := first OPERATOR(pg_catalog.+) chunk_blocks;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE sfexport.snapshot(regclass, integer) IS
  'export the rows of a tracked table as upserts, chunk by chunk, each chunk its own transaction (consistent with the changes that run meanwhile)';

-- Columns added to a tracked table go to its changes foreign table too
-- (the worker then adds them to the changes table and the mirror in
-- Snowflake before it loads or merges); other changes of the columns make
-- the capture fail with a hint (track.c).  It runs as whoever ran the
-- ALTER TABLE (a superuser too) and follows the arguments of a trigger named sfexport_track, which
-- the altered table's owner wrote: it acts only where those arguments name
-- a foreign table of the same owner and the trigger is sfexport's own, as
-- sfexport.track() makes them (docs/security-review.md).
CREATE FUNCTION sfexport.track_ddl()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    col record;
BEGIN
    FOR r IN
        SELECT DISTINCT t.tgrelid, n.nspname, c.relname,
               convert_from(substring(t.tgargs FROM 1 FOR position('\x00'::bytea IN t.tgargs) - 1),
                            getdatabaseencoding()) AS changes_nsp,
               convert_from(substring(t.tgargs FROM position('\x00'::bytea IN t.tgargs) + 1
                                      FOR length(t.tgargs) - position('\x00'::bytea IN t.tgargs) - 1),
                            getdatabaseencoding()) AS changes_name
          FROM pg_event_trigger_ddl_commands() d
          JOIN pg_trigger t ON t.tgrelid = d.objid AND t.tgname = 'sfexport_track'
          JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
           AND t.tgfoid = 'sfexport.track_row_trigger()'::regprocedure
           AND t.tgnargs = 2
    LOOP
        -- the changes table: a foreign table owned by the tracked table's owner
        IF NOT EXISTS (SELECT 1 FROM pg_class bc
                         JOIN pg_namespace bn ON bn.oid = bc.relnamespace
                         JOIN pg_class tc ON tc.oid = r.tgrelid
                        WHERE bn.nspname = r.changes_nsp AND bc.relname = r.changes_name
                          AND bc.relkind = 'f' AND bc.relowner = tc.relowner) THEN
            CONTINUE;
        END IF;
        FOR col IN
            SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS typ
              FROM pg_attribute a
             WHERE a.attrelid = r.tgrelid AND a.attnum > 0 AND NOT a.attisdropped
               AND NOT EXISTS (SELECT 1 FROM pg_attribute b
                                JOIN pg_class bc ON bc.oid = b.attrelid
                                JOIN pg_namespace bn ON bn.oid = bc.relnamespace
                               WHERE bn.nspname = r.changes_nsp AND bc.relname = r.changes_name
                                 AND b.attname = a.attname AND NOT b.attisdropped)
             ORDER BY a.attnum
        LOOP
            EXECUTE format('ALTER FOREIGN TABLE %I.%I ADD COLUMN %I %s',
                           r.changes_nsp, r.changes_name, col.attname, col.typ);
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION sfexport.track_ddl() IS
  'event trigger: columns added to a tracked table are added to its changes foreign table';
REVOKE ALL ON FUNCTION sfexport.track_ddl() FROM PUBLIC;
CREATE EVENT TRIGGER sfexport_track_ddl ON ddl_command_end
  WHEN TAG IN ('ALTER TABLE')
  EXECUTE FUNCTION sfexport.track_ddl();

-- features merged today must work together (or refuse clearly)
--
-- docs/combinations.md.  A tracked table's changes must reach its changes
-- table in Snowflake as staged files (COPY or Snowpipe): the worker's merge
-- (src/merge_apply.c) holds back until every file of the changes table is
-- loaded, and bounds what it merges by the smallest _sf_seq of the changes
-- still in the outbox, read from their CSV records.  load_mode 'streaming'
-- moves rows out of the outbox into stream batches that bound does not
-- see (a later change of a key could be merged before an earlier one
-- committed in Snowflake), and file_format 'json' writes records the bound
-- cannot read.  So a changes table refuses both, whichever command brings
-- them: sfexport.track() (its CREATE FOREIGN TABLE), ALTER FOREIGN TABLE,
-- or ALTER SERVER of the server its load_mode comes from.  Any table also
-- refuses file_format 'json' with load_mode 'streaming': streaming sends
-- its own JSON objects and stages no files.  For superusers too: this
-- protects the rows, not privileges.
CREATE FUNCTION sfexport.combination_check()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT t.ftrelid::pg_catalog.regclass AS ft, s.srvname,
               COALESCE((SELECT o.option_value FROM pg_catalog.pg_options_to_table(t.ftoptions) o
                          WHERE o.option_name OPERATOR(pg_catalog.=) 'load_mode'),
                        (SELECT o.option_value FROM pg_catalog.pg_options_to_table(s.srvoptions) o
                          WHERE o.option_name OPERATOR(pg_catalog.=) 'load_mode'),
                        'copy') AS load_mode,
               EXISTS (SELECT 1 FROM pg_catalog.pg_options_to_table(t.ftoptions) o
                        WHERE o.option_name OPERATOR(pg_catalog.=) 'load_mode') AS own_mode,
               COALESCE((SELECT o.option_value FROM pg_catalog.pg_options_to_table(t.ftoptions) o
                          WHERE o.option_name OPERATOR(pg_catalog.=) 'file_format'),
                        'csv') AS file_format,
               EXISTS (SELECT 1 FROM pg_catalog.pg_options_to_table(t.ftoptions) o
                        WHERE o.option_name OPERATOR(pg_catalog.=) 'merge_into') AS changes
          FROM pg_catalog.pg_event_trigger_ddl_commands() c
          JOIN pg_catalog.pg_foreign_table t
            ON (c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                AND t.ftrelid OPERATOR(pg_catalog.=) c.objid)
            OR (c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_foreign_server'::pg_catalog.regclass
                AND t.ftserver OPERATOR(pg_catalog.=) c.objid)
          JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) t.ftserver
          JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) s.srvfdw
         WHERE w.fdwname OPERATOR(pg_catalog.=) 'sfexport'
    LOOP
        IF r.load_mode OPERATOR(pg_catalog.=) 'streaming' AND r.file_format OPERATOR(pg_catalog.=) 'json' THEN
            RAISE EXCEPTION 'foreign table % cannot use file_format json with load_mode streaming', r.ft
              USING ERRCODE = 'feature_not_supported',
                    DETAIL = 'Streamed rows are sent as JSON objects keyed by column name in any case; file_format chooses how staged files are written, and a streaming table stages none.',
                    HINT = 'Drop the option (ALTER FOREIGN TABLE ... OPTIONS (DROP file_format)), or use load_mode copy or snowpipe for NDJSON files (docs/combinations.md).';
        END IF;
        CONTINUE WHEN NOT r.changes;
        IF r.load_mode OPERATOR(pg_catalog.=) 'streaming' THEN
            RAISE EXCEPTION 'changes table % of a tracked table cannot use load_mode streaming', r.ft
              USING ERRCODE = 'feature_not_supported',
                    DETAIL = pg_catalog.format('Its load_mode comes from %s. The merge into the mirror needs the changes loaded as staged files, in the order the bound of each merge assumes; streamed rows leave the outbox before Snowflake commits them.',
                                               CASE WHEN r.own_mode THEN 'the table''s own option'
                                                    ELSE pg_catalog.format('server %I', r.srvname) END),
                    HINT = CASE WHEN r.own_mode
                                THEN 'Use load_mode copy or snowpipe for the changes table (docs/combinations.md).'
                                ELSE pg_catalog.format('Track the table on a server with load_mode copy or snowpipe, or give the changes table its own option: ALTER FOREIGN TABLE %s OPTIONS (ADD load_mode ''copy'') (docs/combinations.md).', r.ft) END;
        END IF;
        IF r.file_format OPERATOR(pg_catalog.=) 'json' THEN
            RAISE EXCEPTION 'changes table % of a tracked table cannot use file_format json', r.ft
              USING ERRCODE = 'feature_not_supported',
                    DETAIL = 'The worker reads the order of pending changes from their CSV records before each merge into the mirror.',
                    HINT = 'Keep file_format csv (the default) for changes tables; the mirror in Snowflake has typed columns either way (docs/combinations.md).';
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION sfexport.combination_check() IS
  'event trigger: refuses load_mode streaming and file_format json on changes tables, and file_format json with load_mode streaming (docs/combinations.md)';
REVOKE ALL ON FUNCTION sfexport.combination_check() FROM PUBLIC;
CREATE EVENT TRIGGER sfexport_combination_check ON ddl_command_end
  WHEN TAG IN ('CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'ALTER TABLE',
               'IMPORT FOREIGN SCHEMA', 'ALTER SERVER')
  EXECUTE FUNCTION sfexport.combination_check();

-- One row per sfexport foreign table: pending rows and staged files.
-- Everyone sees the counts; the error text (which Snowflake writes with the
-- offending row's values in it) only those who may read the table: its
-- owner, roles with SELECT on it, pg_monitor (which reads sfexport.files
-- anyway) and superusers.  security_barrier: no function of the caller's
-- runs before the mask.
--
-- oldest_pending_age is how long the oldest pending row has waited,
-- next_flush_at when the worker plans to flush the table (NULL: nothing
-- pending); both come from insert times and options, nothing row-derived.
-- load_mode 'streaming': rows the worker moved from the outbox into stream
-- batches are not in Snowflake until their channel
-- commits them.  streaming_rows counts them (rows of rejected batches are
-- in sfexport.stream_status), and oldest_pending_age covers them too (from
-- when their batch was made), so "rows waiting longer than N" sees them.
CREATE VIEW sfexport.status WITH (security_barrier) AS
SELECT c.oid::regclass                        AS foreign_table,
       s.srvname                              AS server,
       coalesce(o.pending_rows, 0)            AS pending_rows,
       coalesce(o.pending_bytes, 0)           AS pending_bytes,
       o.oldest_pending                       AS oldest_pending,
       coalesce(f.staged_files, 0)            AS staged_files,
       coalesce(f.staged_rows, 0)             AS staged_rows,
       coalesce(f.submitted_files, 0)         AS submitted_files,
       coalesce(f.submitted_rows, 0)          AS submitted_rows,
       coalesce(f.failed_files, 0)            AS failed_files,
       coalesce(f.loaded_files, 0)            AS loaded_files,
       coalesce(f.loaded_rows, 0)             AS loaded_rows,
       f.last_loaded_at                       AS last_loaded_at,
       CASE WHEN pg_catalog.pg_has_role(c.relowner, 'USAGE')
              OR pg_catalog.has_table_privilege(c.oid, 'SELECT')
              OR pg_catalog.pg_has_role('pg_monitor', 'USAGE')
            THEN f.last_error END             AS last_error,
       pg_catalog.now() OPERATOR(pg_catalog.-) LEAST(o.oldest_pending, sb.oldest)
                                              AS oldest_pending_age,	-- LEAST skips NULLs
       CASE WHEN o.oldest_pending IS NOT NULL
            THEN sfexport.next_flush_at(c.oid, o.oldest_pending) END
                                              AS next_flush_at,
       coalesce(sb.streaming_rows, 0)         AS streaming_rows
  FROM pg_catalog.pg_foreign_table ft
  JOIN pg_catalog.pg_class c ON c.oid = ft.ftrelid
  JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
  LEFT JOIN (SELECT relid,
                    count(*)                               AS pending_rows,
                    sum(pg_catalog.octet_length(line) + 1) AS pending_bytes,
                    min(inserted_at)                       AS oldest_pending
               FROM sfexport.outbox
              GROUP BY relid) o ON o.relid = c.oid
  LEFT JOIN (SELECT relid,
                    count(*) FILTER (WHERE state = 'staged')              AS staged_files,
                    sum(rows) FILTER (WHERE state = 'staged')             AS staged_rows,
                    count(*) FILTER (WHERE state = 'submitted')           AS submitted_files,
                    sum(rows) FILTER (WHERE state = 'submitted')          AS submitted_rows,
                    count(*) FILTER (WHERE state IN ('failed', 'partially_loaded')) AS failed_files,
                    count(*) FILTER (WHERE state = 'loaded')              AS loaded_files,
                    sum(rows_loaded) FILTER (WHERE state = 'loaded')      AS loaded_rows,
                    max(loaded_at)                                        AS last_loaded_at,
                    (array_agg(coalesce(last_error, first_error) ORDER BY file_id DESC)
                       FILTER (WHERE state <> 'loaded'
                                 AND coalesce(last_error, first_error) IS NOT NULL))[1]
                                                                          AS last_error
               FROM sfexport.files
              GROUP BY relid) f ON f.relid = c.oid
  LEFT JOIN (SELECT relid,
                    sum(rows)       AS streaming_rows,
                    min(created_at) AS oldest
               FROM sfexport.stream_batches
              WHERE state OPERATOR(pg_catalog.=) 'pending'
              GROUP BY relid) sb ON sb.relid = c.oid
 WHERE w.fdwname = 'sfexport';

COMMENT ON VIEW sfexport.status IS
  'per foreign table: rows waiting in the outbox, staged, failed and loaded files';

GRANT SELECT ON sfexport.status TO PUBLIC;
