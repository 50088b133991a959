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

-- sfexport.status: replaced at the end of this file, after next_flush_at()
-- and sfexport.stream_batches, which it reads.

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

-- Foreign tables that roles other than their server's owner defined under
-- 0.1.0 keep loading; list them, so that an administrator can decide.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT t.ftrelid::pg_catalog.regclass AS ft, s.srvname,
               c.relowner::pg_catalog.regrole AS owner
          FROM pg_catalog.pg_foreign_table t
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.ftrelid
          JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) t.ftserver
          JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) s.srvfdw
         WHERE w.fdwname OPERATOR(pg_catalog.=) 'sfexport'
           AND NOT pg_catalog.pg_has_role(c.relowner, s.srvowner, 'USAGE')
    LOOP
        RAISE WARNING 'foreign table % of server % is owned by %, who does not own the server', r.ft, r.srvname, r.owner
          USING DETAIL = 'Since sfexport 0.2.0 only the owner of a server may create or alter its foreign tables; this one was made before and keeps loading with the server owner''s Snowflake role.',
                HINT = 'Check its table, schema and column_name options, and give it to the server''s owner (ALTER FOREIGN TABLE ... OWNER TO) or drop it.';
    END LOOP;
END
$$;

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
DROP FUNCTION sfexport.flush();
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

-- sfexport.status shows error text (which quotes row values) only to those
-- who may read the table; everyone else sees the counts.
--
-- oldest_pending_age is how long the oldest pending row has waited,
-- next_flush_at when the worker plans to flush the table (NULL: nothing
-- pending); both come from insert times and options, nothing row-derived.
-- load_mode 'streaming': rows the worker moved from the outbox into stream
-- batches are not in Snowflake until their channel
-- commits them.  streaming_rows counts them (rows of rejected batches are
-- in sfexport.stream_status), and oldest_pending_age covers them too (from
-- when their batch was made), so "rows waiting longer than N" sees them.
CREATE OR REPLACE VIEW sfexport.status WITH (security_barrier) AS
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
